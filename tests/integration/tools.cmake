# troupectl and troupe-bench against the real trouped (tools_test.cpp). Needs
# the integration harness (troupe_test_support) and a trouped that serves;
# included from tests/CMakeLists.txt after the integration directory, so it
# builds as soon as both have landed and stays out of the way before.
if(TARGET troupe_test_support)
  add_executable(tools_integration_tests ${CMAKE_CURRENT_LIST_DIR}/tools_test.cpp)
  target_link_libraries(tools_integration_tests
    PRIVATE troupe_test_support GTest::gtest_main troupe_warnings)
  target_compile_definitions(tools_integration_tests PRIVATE
    TROUPECTL_PATH="$<TARGET_FILE:troupectl>"
    TROUPE_BENCH_PATH="$<TARGET_FILE:troupe-bench>")
  add_dependencies(tools_integration_tests troupectl troupe-bench trouped)
  file(READ ${PROJECT_SOURCE_DIR}/daemon/main.cpp TROUPE_TOOLS_TROUPED_MAIN)
  string(FIND "${TROUPE_TOOLS_TROUPED_MAIN}" "run_daemon" TROUPE_TOOLS_TROUPED_SERVES)
  if(TROUPE_TOOLS_TROUPED_SERVES EQUAL -1)
    message(STATUS "tools_integration_tests built but not registered: trouped does not serve yet")
  else()
    gtest_discover_tests(tools_integration_tests DISCOVERY_TIMEOUT 60
      PROPERTIES TIMEOUT 180 LABELS integration)
  endif()
else()
  message(STATUS "tools_integration_tests skipped: no integration harness (troupe_test_support) yet")
endif()
