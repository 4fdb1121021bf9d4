# Install layout (FHS): `cmake --install build/release --prefix /usr` puts
#   bin/trouped, bin/troupectl, bin/troupe-bench   (install rules of each target)
#   lib/systemd/system/trouped.service             (ExecStart = this prefix's bin)
#   /etc/troupe/trouped.yaml                       (<prefix>/etc/troupe unless prefix is /usr)
# The prefix that counts is the one in force at install time: the configured
# CMAKE_INSTALL_PREFIX, or `cmake --install --prefix P`. DESTDIR is honoured.
include(GNUInstallDirs)

# The example config: the one `make run` uses (loopback only).
if(EXISTS ${PROJECT_SOURCE_DIR}/config/trouped.yaml)
  set(TROUPE_EXAMPLE_CONFIG ${PROJECT_SOURCE_DIR}/config/trouped.yaml)
else()
  set(TROUPE_EXAMPLE_CONFIG ${PROJECT_SOURCE_DIR}/deploy/docker/trouped.yaml)
endif()
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/deploy/systemd/trouped.service)

# The shipped unit names /usr/bin and /etc; it is rewritten when installing,
# for the prefix of that install, so that `--prefix /usr/local` gets a unit
# that runs /usr/local/bin/trouped with /usr/local/etc/troupe/trouped.yaml.
install(CODE "
  set(troupe_prefix \"\${CMAKE_INSTALL_PREFIX}\")
  if(troupe_prefix STREQUAL \"/usr\")
    set(troupe_config_dir \"/etc/troupe\")
  else()
    set(troupe_config_dir \"\${troupe_prefix}/etc/troupe\")
  endif()
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/systemd/trouped.service\" troupe_unit)
  string(REPLACE \"/usr/bin/trouped\" \"\${troupe_prefix}/${CMAKE_INSTALL_BINDIR}/trouped\"
    troupe_unit \"\${troupe_unit}\")
  string(REPLACE \"/etc/troupe/\" \"\${troupe_config_dir}/\" troupe_unit \"\${troupe_unit}\")
  # A scratch copy, removed again: a `sudo cmake --install` leaves no
  # root-owned file in the build tree.
  set(troupe_scratch \"${PROJECT_BINARY_DIR}/install-unit\")
  file(WRITE \"\${troupe_scratch}/trouped.service\" \"\${troupe_unit}\")
  file(INSTALL DESTINATION \"\${troupe_prefix}/lib/systemd/system\" TYPE FILE
    FILES \"\${troupe_scratch}/trouped.service\")
  file(REMOVE_RECURSE \"\${troupe_scratch}\")
  file(INSTALL DESTINATION \"\${troupe_config_dir}\" TYPE FILE
    RENAME trouped.yaml FILES \"${TROUPE_EXAMPLE_CONFIG}\")
")
