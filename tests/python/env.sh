# Sourced by tests/cli_python*.sh (not a test): sets PY to an interpreter
# with numpy ($SPQR_TEST_PYTHON, else Debian's /usr/bin/python3, else the
# python3 on PATH; exits 77, CTest's skip, when none has numpy), and makes
# a sanitized build's libspqr.so loadable into it (the ASan runtime
# preloaded; leak checking off, since the interpreter itself keeps memory
# at exit). Needs $BUILD, the build directory.
PY=
for c in ${SPQR_TEST_PYTHON:-} /usr/bin/python3 python3; do
    if "$c" -c "import numpy" >/dev/null 2>&1; then PY=$c; break; fi
done
if [ -z "$PY" ]; then
    echo "SKIP: no python3 with numpy (Debian: apt-get install python3-numpy)"
    exit 77
fi
export SPQR_LIBRARY=$BUILD/libspqr.so
if grep -q '^SPQR_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    export LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi
