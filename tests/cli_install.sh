#!/bin/bash
# A new user's path: `cmake --install` to a temporary prefix, then the
# example program built against it once with pkg-config and once with
# find_package(spqr), run on the tiny model (its perplexity must equal the
# PyTorch reference); the SONAME is versioned, `spqr --version` matches
# spqr.h, and a parent project can add_subdirectory() the source tree.
# Usage: bash cli_install.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
BUILD=$(cd "$(dirname "$SPQR")" && pwd)
TMP=$(mktemp -d /tmp/spqr_cli_install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$ROOT/tests/lib.sh" || exit 1
P=$TMP/prefix
MODEL=$ROOT/tests/fixtures/tiny_gqa
TEXT=$ROOT/tests/fixtures/model_text.txt
WANT=$(tr -d '\n ' < "$ROOT/tests/fixtures/model_ppl.json" | sed -E 's/.*"ctx32":\{"ppl":([0-9.]+),"tokens_scored":([0-9]+).*/\1 \2/')
# a sanitized build's library needs the sanitizer runtime in the program too
SAN=
grep -q '^SPQR_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && SAN="-fsanitize=address,undefined"
VER=$(awk '/^#define SPQR_VERSION_(MAJOR|MINOR|PATCH) / { v = v (v == "" ? "" : ".") $3 } END { print v }' "$ROOT/include/spqr.h")

expect_rc 0 "spqr --version" "$SPQR" --version
[ "$(cat "$TMP/out")" = "spqr $VER" ] && ok "--version prints spqr $VER" || bad "--version: $(cat "$TMP/out"), want spqr $VER"

expect_rc 0 "cmake --install to a temporary prefix" cmake --install "$BUILD" --prefix "$P"
LIB=$P/lib
[ -d "$P/lib64" ] && [ ! -f "$LIB/libspqr.a" ] && LIB=$P/lib64
[ -d "$LIB" ] || LIB=$(dirname "$(find "$P" -name libspqr.a | head -1)")
for f in "$LIB/libspqr.a" "$P/include/spqr.h" "$LIB/pkgconfig/spqr.pc" "$LIB/cmake/spqr/spqrConfig.cmake" \
         "$LIB/cmake/spqr/spqrConfigVersion.cmake" "$P/bin/spqr"; do
    [ -f "$f" ] && ok "installed ${f#$P/}" || bad "missing ${f#$P/}"
done
SONAME=$(readelf -d "$LIB/libspqr.so" 2>/dev/null | sed -nE 's/.*Library soname: \[(.*)\].*/\1/p')
[ "$SONAME" = "libspqr.so.${VER%.*}" ] && [ -f "$LIB/$SONAME" ] && [ -f "$LIB/libspqr.so.$VER" ] \
    && ok "SONAME $SONAME, libspqr.so.$VER installed" || bad "SONAME '$SONAME' (want libspqr.so.${VER%.*})"
expect_rc 0 "installed spqr --version" "$P/bin/spqr" --version

check_run() { # label binary: runs the example, compares its perplexity with the PyTorch reference
    LD_LIBRARY_PATH=$LIB expect_rc 0 "$1: example runs" "$2" "$MODEL" "$TEXT" 32
    set -- "$1" $WANT
    local got n
    got=$(sed -nE 's/^ppl=([0-9.]+) tokens=([0-9]+).*/\1/p' "$TMP/out")
    n=$(sed -nE 's/^ppl=([0-9.]+) tokens=([0-9]+).*/\2/p' "$TMP/out")
    awk -v a="$got" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d / b < 1e-4) }' && [ "$n" = "$3" ] \
        && ok "$1: ppl $got over $n tokens = reference $2 over $3" || bad "$1: ppl '$got' over '$n' tokens, reference $2 over $3"
    grep -q '^layer rel_error=0\.[0-9]' "$TMP/out" && ok "$1: quantized a layer" || bad "$1: no layer line: $(head -3 "$TMP/out")"
    grep -q '^generated: ' "$TMP/out" && ok "$1: generated" || bad "$1: no generated line"
    grep -q "^libspqr $VER " "$TMP/out" && ok "$1: spqr_version() = $VER" || bad "$1: version line: $(head -1 "$TMP/out")"
}

# pkg-config, shared library
export PKG_CONFIG_PATH=$LIB/pkgconfig
FLAGS=$(pkg-config --cflags --libs spqr) || bad "pkg-config --libs spqr"
expect_rc 0 "example builds with pkg-config" cc -std=c11 -O1 $SAN -o "$TMP/ex_pc" "$ROOT/examples/quantize_and_run.c" $FLAGS -lm
[ -x "$TMP/ex_pc" ] && check_run pkg-config "$TMP/ex_pc"
readelf -d "$TMP/ex_pc" 2>/dev/null | grep -q "NEEDED.*\[libspqr.so.${VER%.*}\]" && ok "pkg-config example links libspqr.so" \
    || bad "pkg-config example does not need libspqr.so.${VER%.*}"
# pkg-config --static links the archive with its dependencies
SFLAGS=$(pkg-config --static --cflags --libs spqr | sed "s#-lspqr#$LIB/libspqr.a#")
expect_rc 0 "example builds statically with pkg-config --static" cc -std=c11 -O1 $SAN -o "$TMP/ex_st" "$ROOT/examples/quantize_and_run.c" $SFLAGS -lm
[ -x "$TMP/ex_st" ] && LD_LIBRARY_PATH= expect_rc 0 "static example runs" "$TMP/ex_st" "$MODEL" "$TEXT" 32

# find_package(spqr)
expect_rc 0 "example configures with find_package" cmake -S "$ROOT/examples" -B "$TMP/exb" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN"
expect_rc 0 "example builds with find_package" cmake --build "$TMP/exb"
[ -x "$TMP/exb/quantize_and_run" ] && check_run find_package "$TMP/exb/quantize_and_run"

# add_subdirectory: a parent project configures with the source tree inside it
mkdir -p "$TMP/parent"
cat > "$TMP/parent/CMakeLists.txt" <<EOT
cmake_minimum_required(VERSION 3.18)
project(parent LANGUAGES C)
add_subdirectory("$ROOT" spqr)
add_executable(ex "$ROOT/examples/quantize_and_run.c")
target_link_libraries(ex PRIVATE spqr::spqr m)
EOT
expect_rc 0 "a parent project add_subdirectory()s spqr (configure)" cmake -S "$TMP/parent" -B "$TMP/parent/b"
exit $((fails > 0))
