# Warnings every target of ours carries (userver: one INTERFACE target).
add_library(troupe_warnings INTERFACE)
target_compile_options(troupe_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow=local
  # GCC 12 at -O3 reports impossible overlaps inside std::string
  # concatenation (GCC bug 105651, fixed in GCC 13): a false positive that
  # -Werror would turn into a broken release build.
  # Likewise -Wstringop-overflow inside std::string/vector copies (GCC bug 106199).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict -Wno-stringop-overflow>
  $<$<BOOL:${TROUPE_WERROR}>:-Werror>)
