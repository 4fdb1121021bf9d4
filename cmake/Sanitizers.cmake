# Sanitizer selection (userver Sanitizers.cmake): "address" means
# address+undefined; "thread" must run alone.
#
# The flags apply to every target of the tree (directory-wide, before any
# add_subdirectory), not to one interface target: a target that missed them
# (the generated protobuf library, the tools, the test helpers) would both go
# unchecked and, under ThreadSanitizer, disagree with its callers about the
# size of every message that has a map field (see below).
#
# Debug information is line tables only (-g1, after RelWithDebInfo's -g):
# all a sanitizer report's stack needs (function, file, line), and a third
# less compile time than full -g (docs/testing.md, "What CI runs").
if(NOT TROUPE_SANITIZE STREQUAL "")
  add_compile_options(-g1)
endif()
if(TROUPE_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(TROUPE_SANITIZE STREQUAL "thread")
  # Debian's libprotobuf, libgrpc and libabsl are not built with
  # -fsanitize=thread, but their headers change under __SANITIZE_THREAD__:
  # protobuf 3.21's map_field.h gives MapFieldBase two extra counters, so
  # our code sees MapFieldBase (and every message with a map<> field) 8 bytes
  # larger than the library that destroys, swaps and reflects over it (an ODR
  # violation: corrupted map fields, crashes in field accessors); absl's
  # headers likewise switch its inline SpinLock annotations on, for locks
  # the uninstrumented library also takes without them.
  # Undefining the macro makes these headers describe the libraries as they
  # were built. The instrumentation itself comes from -fsanitize=thread, not
  # from the macro; _GLIBCXX_TSAN keeps libstdc++'s TSan-aware shared_ptr
  # release path that the macro would otherwise have chosen.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -U__SANITIZE_THREAD__ -D_GLIBCXX_TSAN=1)
  add_link_options(-fsanitize=thread)
elseif(NOT TROUPE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "TROUPE_SANITIZE must be '', 'address' or 'thread', not '${TROUPE_SANITIZE}'")
endif()
