#!/bin/bash
# The Python package as a user installs it: `cmake --install` to a temporary
# prefix, then `import spqr` from there (PYTHONPATH) finds the installed
# libspqr.so by itself and generates the same text as the build tree's;
# `pip install --no-build-isolation --no-index` of python/ works offline and
# runs over SPQR_LIBRARY; a libspqr.so copied next to the package is found
# without any setting; a wrong SPQR_LIBRARY is a clear SpqrError.
# Usage: bash cli_python_install.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
BUILD=$(cd "$(dirname "$SPQR")" && pwd)
TMP=$(mktemp -d /tmp/spqr_cli_pyinst.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. "$ROOT/tests/lib.sh" || exit 1
. "$ROOT/tests/python/env.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive PYTHONDONTWRITEBYTECODE=1
if ! grep -q '^SPQR_PYTHON:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    echo "SKIP: configured with SPQR_PYTHON=OFF"
    exit 77
fi
P=$TMP/prefix
MODEL=$ROOT/tests/fixtures/tiny_gqa
# prints the library's path, then a greedy continuation (token ids) and the model's info line
GEN='import spqr, sys
print(spqr.library_path())
with spqr.Model(sys.argv[1]) as m:
    g = m.generate("Once upon a time", max_tokens=12)
    g.text()
    print(g.tokens, g.stop_reason, m.info()["config"]["n_layers"])'

SPQR_LIBRARY=$BUILD/libspqr.so PYTHONPATH=$ROOT/python expect_rc 0 "build tree: generate" "$PY" -c "$GEN" "$MODEL"
WANT=$(sed -n 2p "$TMP/out")
echo "$WANT" | grep -q "length 2$" && ok "build tree: 12 tokens ($WANT)" || bad "build tree output: $(cat "$TMP/out")"

expect_rc 0 "cmake --install to a temporary prefix" cmake --install "$BUILD" --prefix "$P"
PKG=$(dirname "$(find "$P" -path '*/spqr/__init__.py' | head -1)")
[ -f "$PKG/_install.py" ] && [ -f "$PKG/model.py" ] && ok "installed the package at ${PKG#$P/}" || bad "no installed package under $P"
SITE=$(dirname "$PKG")
( fails=0; unset SPQR_LIBRARY; cd "$TMP" && PYTHONPATH=$SITE expect_rc 0 "installed package: generate" "$PY" -c "$GEN" "$MODEL"
  LIBP=$(head -1 "$TMP/out")
  case "$LIBP" in "$P"/*) ok "installed package loads the installed library ${LIBP#$P/}" ;;
                  *) bad "installed package loaded $LIBP, not the prefix's" ;; esac
  [ "$(sed -n 2p "$TMP/out")" = "$WANT" ] && ok "installed package generates the build tree's tokens" \
      || bad "installed: $(sed -n 2p "$TMP/out"), build tree: $WANT"
  exit $fails ) || fails=$((fails + $?))
LIB=$(dirname "$(find "$P" -name 'libspqr.so' | head -1)")

# pip, offline, from a copy of python/ (pip builds in the source directory)
if "$PY" -m pip --version >/dev/null 2>&1; then
    cp -r "$ROOT/python" "$TMP/src"
    rm -rf "$TMP/src/build" "$TMP/src/"*.egg-info
    expect_rc 0 "pip install --no-build-isolation --no-index (offline)" "$PY" -m pip install --no-build-isolation \
        --no-index --no-deps --disable-pip-version-check --target "$TMP/pip" "$TMP/src"
    [ -f "$TMP/pip/spqr/__init__.py" ] && ok "pip installed the package" || bad "pip: no package in $TMP/pip"
    ( fails=0; cd "$TMP" && SPQR_LIBRARY=$LIB/libspqr.so PYTHONPATH=$TMP/pip expect_rc 0 "pip-installed package: generate" "$PY" -c "$GEN" "$MODEL"
      [ "$(sed -n 2p "$TMP/out")" = "$WANT" ] && ok "pip-installed package generates the same tokens" || bad "pip: $(cat "$TMP/out")"
      exit $fails ) || fails=$((fails + $?))
else
    echo "note: no pip for $PY (Debian: python3-pip); the pip install was not tried"
fi

# a libspqr.so next to the package is found with no setting
mkdir -p "$TMP/copy"
cp -r "$ROOT/python/spqr" "$TMP/copy/"
rm -f "$TMP/copy/spqr/_install.py"
cp -L "$LIB/libspqr.so" "$TMP/copy/spqr/libspqr.so"
( fails=0; unset SPQR_LIBRARY; cd "$TMP" && PYTHONPATH=$TMP/copy expect_rc 0 "library next to the package: generate" "$PY" -c "$GEN" "$MODEL"
  [ "$(head -1 "$TMP/out")" = "$TMP/copy/spqr/libspqr.so" ] && ok "found the library next to the package" \
      || bad "loaded $(head -1 "$TMP/out")"
  exit $fails ) || fails=$((fails + $?))

# a wrong SPQR_LIBRARY: the import works, the first use says what is wrong
SPQR_LIBRARY=$TMP/nope.so PYTHONPATH=$ROOT/python expect_rc 0 "wrong SPQR_LIBRARY" "$PY" -c '
import spqr
try:
    spqr.Model("x")
except spqr.SpqrError as e:
    print(e.status.name, e.message)'
grep -q "^IO libspqr not found; set SPQR_LIBRARY.*nope.so" "$TMP/out" && ok "wrong SPQR_LIBRARY: SpqrError IO naming it" \
    || bad "wrong SPQR_LIBRARY: $(cat "$TMP/out" "$TMP/err")"
exit $((fails > 0))
