# Helpers shared by the tests/cli_*.sh scripts; sourced, not a test itself
# (CMake registers only cli_*.sh). The sourcing script creates $TMP first;
# failures are counted in $fails, which the script turns into its exit code.
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
expect_rc() { # expected-rc description command...: runs it, stdout/stderr to $TMP/out, $TMP/err
    local want=$1 what=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$what (exit $rc)"; else bad "$what: exit $rc, want $want; stderr: $(head -c 300 "$TMP/err")"; fi
}
run_cpu() { # command...: runs it, stdout/stderr to $TMP/out, $TMP/err; sets $rc and $cpu, its user+sys
    # seconds (CPU time, which a loaded machine inflates far less than wall time, for cost assertions)
    local TIMEFORMAT='%U %S' t
    t=$({ time "$@" >"$TMP/out" 2>"$TMP/err"; } 2>&1)
    rc=$?
    cpu=$(echo "$t" | awk '{ printf "%.2f", $1 + $2 }')
}
expect_cpu() { # max-seconds description: the last run_cpu used less CPU than max
    if awk -v c="$cpu" -v m="$1" 'BEGIN { exit !(c < m) }'; then ok "$2: ${cpu}s CPU (< $1)"
    else bad "$2: ${cpu}s CPU, want < $1"; fi
}
