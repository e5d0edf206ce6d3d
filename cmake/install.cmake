# `cmake --install`: libspqr.so (SONAME libspqr.so.MAJOR.MINOR), libspqr.a,
# spqr.h, the spqr CLI, spqr.pc and a CMake package giving spqr::spqr
# (shared) and spqr::spqr_static. Included from the top CMakeLists.txt.
include(CMakePackageConfigHelpers)

install(TARGETS spqr_shared spqr EXPORT spqrTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS spqr_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/spqr.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(SPQR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/spqr)
install(EXPORT spqrTargets NAMESPACE spqr:: DESTINATION ${SPQR_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/spqrConfig.cmake.in
  ${PROJECT_BINARY_DIR}/spqrConfig.cmake INSTALL_DESTINATION ${SPQR_CMAKE_DIR})
# 0.x: a new minor version may break the API, so only the same minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spqrConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/spqrConfig.cmake ${PROJECT_BINARY_DIR}/spqrConfigVersion.cmake
  DESTINATION ${SPQR_CMAKE_DIR})

# pkg-config: a shared link needs only -lspqr; a static one (--static) the dependencies too.
# The prefix is found from the .pc file's own place, so `--prefix` at install time works.
file(RELATIVE_PATH SPQR_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${PROJECT_SOURCE_DIR}/cmake/spqr.pc.in ${PROJECT_BINARY_DIR}/spqr.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/spqr.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
