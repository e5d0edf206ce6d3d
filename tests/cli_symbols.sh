#!/bin/bash
# libspqr.so exports exactly the functions include/spqr.h declares SPQR_API
# (nothing internal leaks into a program's namespace, nothing public is
# missing).
# Usage: bash cli_symbols.sh <spqr-binary> <repo-root>
set -u
SPQR=$1
ROOT=$2
BUILD=$(dirname "$SPQR")
TMP=$(mktemp -d /tmp/spqr_cli_symbols.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. "$ROOT/tests/lib.sh" || exit 1

# the public functions: each SPQR_API declaration's name (declarations may span lines)
grep -v '^#' "$ROOT/include/spqr.h" | tr '\n' ' ' | grep -oE 'SPQR_API [^;(]*\(' | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)\($/\1/' \
    | sort -u > "$TMP/public"
[ "$(wc -l < "$TMP/public")" -gt 50 ] && ok "$(wc -l < "$TMP/public") public functions in spqr.h" || bad "too few SPQR_API declarations parsed"

# exported (dynamic, defined, global or weak) symbols of the shared library
nm -D --defined-only "$BUILD/libspqr.so" | awk '$2 ~ /^[A-Z]$/ { print $3 }' | sed 's/@.*//' | sort -u > "$TMP/exported"
extra=$(comm -13 "$TMP/public" "$TMP/exported")
missing=$(comm -23 "$TMP/public" "$TMP/exported")
[ -z "$extra" ] && ok "libspqr.so exports nothing outside spqr.h" || bad "libspqr.so exports $(echo "$extra" | wc -l) symbols not in spqr.h: $(echo $extra | head -c 600)"
[ -z "$missing" ] && ok "libspqr.so exports every spqr.h function" || bad "declared but not exported: $(echo $missing | head -c 600)"

exit $((fails > 0))
