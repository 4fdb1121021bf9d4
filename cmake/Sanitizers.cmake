# Sanitizer selection (userver Sanitizers.cmake): "address" means
# address+undefined; "thread" must run alone.
add_library(troupe_sanitizers INTERFACE)
if(TROUPE_SANITIZE STREQUAL "address")
  target_compile_options(troupe_sanitizers INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(troupe_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(TROUPE_SANITIZE STREQUAL "thread")
  target_compile_options(troupe_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(troupe_sanitizers INTERFACE -fsanitize=thread)
elseif(NOT TROUPE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "TROUPE_SANITIZE must be '', 'address' or 'thread', not '${TROUPE_SANITIZE}'")
endif()
