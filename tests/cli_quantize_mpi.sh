#!/bin/bash
# `spqr quantize` under mpirun (docs/quantize.md, "Scale-out"): the file is
# byte-identical to the one-process run for 1, 2 and 3 ranks; a rank that
# fails says so in one line and stops the job; a killed rank stops the job
# with the checkpoints intact, and --resume with another rank count
# completes to the same bytes. Usage: bash cli_quantize_mpi.sh <spqr-binary> <repo-root>
# SPQR_MPIEXEC (set by CMake when the CLI was built with MPI) is the launcher.
set -u
SPQR=$1
ROOT=$2
if [ -z "${SPQR_MPIEXEC:-}" ]; then echo "skipped: no MPI (the CLI was built without it)"; exit 77; fi
TMP=$(mktemp -d /tmp/spqr_cli_mpi.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# CI runs as root; 3 ranks on 2 cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# The ASan build (CI): no leak check under mpirun, whose plugins' allocations live
# until exit in unloaded modules no suppression can name; memory errors are
# still caught there, and the one-process runs below keep the leak check.
# Each job is bounded (timeout), so a launcher that hangs on a strange network
# setup fails this test instead of stalling CI.
MPI=(timeout -k 10 300 env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$SPQR_MPIEXEC" --oversubscribe --bind-to none)
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same() { # description file-a file-b
    if cmp -s "$2" "$3"; then ok "$1: byte-identical"; else bad "$1: $2 and $3 differ"; fi
}
CAL=$ROOT/tests/fixtures/model_text.txt
GQA=$ROOT/tests/fixtures/tiny_gqa
TIED=$ROOT/tests/fixtures/tiny_tied
Q=(quantize --calib "$CAL" --nsamples 7 --seqlen 32 -t 1 -q)

# 1. one process, then 1, 2, 3 ranks (7 windows: uneven shares, q/k/v on three ranks)
"$SPQR" "${Q[@]}" "$GQA" -o "$TMP/ref.spqr" >/dev/null 2>"$TMP/err" || bad "one-process run: $(cat "$TMP/err")"
for n in 1 2 3; do
    if "${MPI[@]}" -np $n "$SPQR" "${Q[@]}" "$GQA" -o "$TMP/np$n.spqr" >"$TMP/out$n" 2>"$TMP/err"; then
        same "mpirun -np $n" "$TMP/ref.spqr" "$TMP/np$n.spqr"
    else bad "mpirun -np $n failed: $(head -c 400 "$TMP/err")"; fi
done
# the report is printed once, by rank 0
[ "$(grep -c 'restored by --resume' "$TMP/out3")" -eq 1 ] && ok "one report for 3 ranks" || bad "report: $(cat "$TMP/out3")"

# 2. --target-bits (every rank allocates and quantizes every linear) and 2 threads per rank
"$SPQR" "${Q[@]}" "$GQA" -o "$TMP/tb.spqr" --target-bits 5 -t 2 >/dev/null 2>"$TMP/err" || bad "target-bits: $(cat "$TMP/err")"
"${MPI[@]}" -np 2 "$SPQR" "${Q[@]}" "$GQA" -o "$TMP/tb2.spqr" --target-bits 5 -t 2 >/dev/null 2>"$TMP/err" ||
    bad "target-bits under mpirun: $(head -c 400 "$TMP/err")"
same "--target-bits 5, mpirun -np 2" "$TMP/tb.spqr" "$TMP/tb2.spqr"

# 3. a rank that cannot read the model: its one-line message, a non-zero exit, no file
"${MPI[@]}" -np 1 "$SPQR" "${Q[@]}" "$GQA" -o "$TMP/bad.spqr" : -np 1 "$SPQR" "${Q[@]}" "$TMP/nomodel" -o "$TMP/bad.spqr" \
    >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -ne 0 ] && ok "rank 1 without the model: exit $rc" || bad "rank 1 without the model: exit 0"
grep -q '^spqr: quantize: rank 1 of 2: .*nomodel' "$TMP/err" && ok "rank 1 says what failed" ||
    bad "no rank-1 message: $(head -c 600 "$TMP/err")"
[ ! -e "$TMP/bad.spqr" ] && ok "no output after a failed rank" || bad "output written after a failed rank"

# 4. rank 1 killed (SIGKILL) after block 1 of 3: non-zero exit, block 0 checkpointed;
#    --resume with 3 ranks, and with one process, gives the one-process bytes
"$SPQR" "${Q[@]}" "$TIED" -o "$TMP/tref.spqr" >/dev/null 2>"$TMP/err" || bad "tied one-process run: $(cat "$TMP/err")"
SPQR_TEST_KILL_AFTER_BLOCK=1:1 "${MPI[@]}" -np 2 "$SPQR" "${Q[@]}" "$TIED" -o "$TMP/t.spqr" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -ne 0 ] && ok "killed rank: exit $rc" || bad "killed rank: exit 0"
[ ! -e "$TMP/t.spqr" ] && ok "killed rank: no output" || bad "killed rank: output written"
[ -f "$TMP/t.spqr.partial/block_0000.spqr" ] && ok "killed rank: block 0 checkpointed" ||
    bad "killed rank: no block 0 checkpoint ($(ls "$TMP/t.spqr.partial" 2>&1))"
cp -r "$TMP/t.spqr.partial" "$TMP/saved.partial"
"${MPI[@]}" -np 3 "$SPQR" "${Q[@]}" "$TIED" -o "$TMP/t.spqr" --resume >"$TMP/out" 2>"$TMP/err" ||
    bad "resume with 3 ranks: $(head -c 400 "$TMP/err")"
grep -Eq '[12] block\(s\) restored' "$TMP/out" && ok "resume restored blocks" || bad "resume restored nothing: $(cat "$TMP/out")"
same "killed at 2 ranks, resumed at 3" "$TMP/tref.spqr" "$TMP/t.spqr"
mv "$TMP/saved.partial" "$TMP/t1.spqr.partial"
"$SPQR" "${Q[@]}" "$TIED" -o "$TMP/t1.spqr" --resume >/dev/null 2>"$TMP/err" || bad "resume with one process: $(cat "$TMP/err")"
same "killed at 2 ranks, resumed by one process" "$TMP/tref.spqr" "$TMP/t1.spqr"

[ $fails -eq 0 ] && echo "all MPI quantize checks passed" || echo "$fails failed"
exit $((fails > 0))
