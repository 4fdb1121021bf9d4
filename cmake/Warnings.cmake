# Warnings every target of ours carries (userver: one INTERFACE target).
add_library(troupe_warnings INTERFACE)
target_compile_options(troupe_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow=local
  $<$<BOOL:${TROUPE_WERROR}>:-Werror>)
