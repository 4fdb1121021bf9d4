#include "config/value_parsers.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <vector>

#include "syntax/lexing.h"

namespace troupe::config {
namespace {

using syntax::detail::is_digit;
using syntax::detail::parse_digits;
using syntax::detail::quoted;

}  // namespace

Parsed<std::size_t> parse_size(std::string_view text) {
  const std::string generic = R"(expected a size like "512", "64KiB" or "4MiB" (units B, KiB, )"
                              R"(MiB, GiB), got )" +
                              quoted(text);
  if (!text.empty() && text.front() == '-') {
    return Parsed<std::size_t>::fail("a size cannot be negative, got " + quoted(text));
  }
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == 0) return Parsed<std::size_t>::fail(generic);
  const std::string_view unit = text.substr(i);
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "KiB") {
    multiplier = 1ULL << 10;
  } else if (unit == "MiB") {
    multiplier = 1ULL << 20;
  } else if (unit == "GiB") {
    multiplier = 1ULL << 30;
  } else {
    return Parsed<std::size_t>::fail("unknown size unit " + quoted(unit) + " in " + quoted(text) +
                                     R"(; use B, KiB, MiB or GiB (e.g. "4MiB"))");
  }
  std::uint64_t count = 0;
  if (!parse_digits(text.substr(0, i), count) ||
      count > std::numeric_limits<std::size_t>::max() / multiplier) {
    return Parsed<std::size_t>::fail("size " + quoted(text) + " is too large");
  }
  return Parsed<std::size_t>::ok(static_cast<std::size_t>(count * multiplier));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  // A third of the word's length, at least 1 and at most 3 edits: close enough
  // to be a typo, far enough to avoid silly suggestions for short words.
  const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  // Case and '-' vs '_' slips count as the smallest possible typo.
  std::string lowered(word);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::replace(lowered.begin(), lowered.end(), '-', '_');
  for (const auto candidate : candidates) {
    if (candidate == word) continue;
    const std::size_t distance = lowered == candidate ? 1 : edit_distance(lowered, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (best && best_distance <= limit) return best;
  return std::nullopt;
}

std::string format_size(std::size_t bytes) {
  constexpr std::array<std::pair<std::size_t, std::string_view>, 3> kUnits{{
      {std::size_t{1} << 30, "GiB"},
      {std::size_t{1} << 20, "MiB"},
      {std::size_t{1} << 10, "KiB"},
  }};
  for (const auto& [size, name] : kUnits) {
    if (bytes != 0 && bytes % size == 0) return std::to_string(bytes / size) + std::string(name);
  }
  return std::to_string(bytes) + "B";
}

}  // namespace troupe::config
