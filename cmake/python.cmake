# `cmake --install` of the Python package (python/spqr, pure Python over
# ctypes) into <prefix>/${SPQR_PYTHON_INSTALL_DIR}/spqr, with _install.py
# naming the installed libspqr.so relative to the package, so the package
# finds its library wherever --prefix puts both. Included from the top
# CMakeLists.txt when SPQR_PYTHON is on.
set(SPQR_PYTHON_INSTALL_DIR "lib/python3/dist-packages" CACHE STRING
  "Where the spqr Python package goes, under the prefix (Debian's layout for /usr; else put it on PYTHONPATH)")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/spqr/ DESTINATION ${SPQR_PYTHON_INSTALL_DIR}/spqr
  FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
set(_spqr_soname libspqr.so.${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
if(IS_ABSOLUTE "${SPQR_PYTHON_INSTALL_DIR}")
  set(_spqr_py_lib ${CMAKE_INSTALL_FULL_LIBDIR}/${_spqr_soname})
else()
  file(RELATIVE_PATH _spqr_py_lib /p/${SPQR_PYTHON_INSTALL_DIR}/spqr /p/${CMAKE_INSTALL_LIBDIR}/${_spqr_soname})
endif()
file(WRITE ${PROJECT_BINARY_DIR}/python/_install.py
  "\"\"\"Written by cmake --install: where libspqr.so is, relative to this package.\"\"\"\nLIBRARY = \"${_spqr_py_lib}\"\n")
install(FILES ${PROJECT_BINARY_DIR}/python/_install.py DESTINATION ${SPQR_PYTHON_INSTALL_DIR}/spqr)
