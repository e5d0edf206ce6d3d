#!/bin/bash
# libspqr.so exports exactly the functions include/spqr.h declares SPQR_API
# (nothing internal leaks into a program's namespace, nothing public is
# missing), and every global symbol libspqr.a defines starts with spqr
# (spqr_; spqri_ for internal names), so none can clash in someone else's
# program.
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

# every function spqr.h declares is marked SPQR_API (else it would silently not be exported)
unmarked=$(grep -nE '^[A-Za-z_][A-Za-z0-9_ ]*[ *]spqr_[a-z0-9_]+\(' "$ROOT/include/spqr.h" | grep -vE ':(SPQR_API|typedef|#)')
[ -z "$unmarked" ] && ok "every spqr.h function declaration is SPQR_API" || bad "spqr.h declarations without SPQR_API: $(echo $unmarked | head -c 600)"

# global symbols the static archive defines
nm -g --defined-only "$BUILD/libspqr.a" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[A-Z]$/ { print $3 }' | sort -u > "$TMP/static"
# (GCC names the lock of `omp critical(spqr_x)` .gomp_critical_user_spqr_x; ASan adds
# __odr_asan.spqr_x indicators for globals in sanitized builds)
stray=$(grep -vE '^(spqr|\.gomp_critical_user_spqr|__odr_asan\.spqr)' "$TMP/static")
[ -z "$stray" ] && ok "libspqr.a: all $(wc -l < "$TMP/static") global symbols prefixed" \
    || bad "libspqr.a defines $(echo "$stray" | wc -l) global symbols without the spqr prefix: $(echo $stray | head -c 800)"
exit $((fails > 0))
