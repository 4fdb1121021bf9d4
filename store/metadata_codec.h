#pragma once

/// The byte encoding of a job's metadata in the store's `metadata` column.

#include <optional>
#include <string>
#include <string_view>

#include "core/job.h"

namespace troupe::store::detail {

/// Each key and value as a 4-byte little-endian length and its bytes, in
/// the map's order. Empty metadata encodes as "".
std::string encode_metadata(const core::Metadata& metadata);

/// The metadata `bytes` encodes; nullopt when they are truncated or a
/// length runs past the end.
std::optional<core::Metadata> decode_metadata(std::string_view bytes);

}  // namespace troupe::store::detail
