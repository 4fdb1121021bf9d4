# Install layout (FHS): `cmake --install build/release --prefix /usr` puts
#   bin/trouped, bin/troupectl, bin/troupe-bench   (install rules of each target)
#   lib/systemd/system/trouped.service             (ExecStart = this prefix's bin)
#   /etc/troupe/trouped.yaml                       (<prefix>/etc/troupe unless prefix is /usr)
include(GNUInstallDirs)

# The shipped unit names /usr/bin and /etc; rewrite them for the configured
# prefix so `--prefix /usr/local` gets a unit that runs /usr/local/bin/trouped.
# (A prefix given only at `cmake --install` time does not rewrite the unit.)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(TROUPE_CONFIG_DIR /etc/troupe)
  set(TROUPE_CONFIG_FULL_DIR /etc/troupe)
else()
  set(TROUPE_CONFIG_DIR ${CMAKE_INSTALL_SYSCONFDIR}/troupe)
  set(TROUPE_CONFIG_FULL_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/troupe)
endif()
file(READ ${PROJECT_SOURCE_DIR}/deploy/systemd/trouped.service TROUPE_UNIT)
string(REPLACE "/usr/bin/trouped" "${CMAKE_INSTALL_FULL_BINDIR}/trouped" TROUPE_UNIT "${TROUPE_UNIT}")
string(REPLACE "/etc/troupe/" "${TROUPE_CONFIG_FULL_DIR}/" TROUPE_UNIT "${TROUPE_UNIT}")
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/deploy/trouped.service CONTENT "${TROUPE_UNIT}" @ONLY)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/deploy/systemd/trouped.service)

install(FILES ${PROJECT_BINARY_DIR}/deploy/trouped.service DESTINATION lib/systemd/system)

# The example config: the one `make run` uses (loopback only).
if(EXISTS ${PROJECT_SOURCE_DIR}/config/trouped.yaml)
  set(TROUPE_EXAMPLE_CONFIG ${PROJECT_SOURCE_DIR}/config/trouped.yaml)
else()
  set(TROUPE_EXAMPLE_CONFIG ${PROJECT_SOURCE_DIR}/deploy/docker/trouped.yaml)
endif()
install(FILES ${TROUPE_EXAMPLE_CONFIG} DESTINATION ${TROUPE_CONFIG_DIR} RENAME trouped.yaml)
