#!/usr/bin/env bash
# Gives every internal global symbol of libspqr.a the spqri_ prefix, so none
# can clash with a name in a program that links the library. Mechanical:
# the names come from the built archive (globals not starting with "spqr"),
# and each is replaced as a whole word in the C sources, tests, benches,
# fuzz targets and docs. Re-run after a merge brings new names; then
# rebuild, and tests/cli_symbols.sh checks that none is left.
# Usage: tools/rename_internal.sh BUILD_DIR [more BUILD_DIRs, e.g. an aarch64 build]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..." >&2; exit 2; }
names=$(for d in "$@"; do nm -g --defined-only "$d/libspqr.a" 2>/dev/null; done |
    awk 'NF == 3 && $2 ~ /^[A-Z]$/ { print $3 }' | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | grep -v '^spqr' | sort -u)
[ -n "$names" ] || { echo "nothing to rename"; exit 0; }
echo "$names" | awk '{ printf "s/\\<%s\\>/spqri_%s/g\n", $1, $1 }' > /tmp/spqr_rename.sed
# names made by token pasting (ARCH_DECLARE / ARCH_ADDRESS: arch_##f)
echo 's/\<arch_##/spqri_arch_##/g' >> /tmp/spqr_rename.sed
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h' 'fuzz/*.c' 'fuzz/*.h' 'docs/*.md')
sed -i -f /tmp/spqr_rename.sed $files
echo "renamed $(echo "$names" | wc -l) names (sed list: /tmp/spqr_rename.sed)"
