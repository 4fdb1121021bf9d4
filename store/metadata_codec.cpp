#include "store/metadata_codec.h"

#include <cstdint>

namespace troupe::store::detail {

namespace {

void put(std::string& out, std::string_view text) {
  auto n = static_cast<std::uint32_t>(text.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(text);
}

std::optional<std::string> take(std::string_view& in) {
  if (in.size() < 4) return std::nullopt;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(4);
  if (in.size() < n) return std::nullopt;
  std::string text(in.substr(0, n));
  in.remove_prefix(n);
  return text;
}

}  // namespace

std::string encode_metadata(const core::Metadata& metadata) {
  std::string out;
  for (const auto& [key, value] : metadata) {
    put(out, key);
    put(out, value);
  }
  return out;
}

std::optional<core::Metadata> decode_metadata(std::string_view bytes) {
  core::Metadata metadata;
  while (!bytes.empty()) {
    auto key = take(bytes);
    if (!key) return std::nullopt;
    auto value = take(bytes);
    if (!value) return std::nullopt;
    metadata.emplace(std::move(*key), std::move(*value));
  }
  return metadata;
}

}  // namespace troupe::store::detail
