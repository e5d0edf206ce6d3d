#!/bin/bash
# Time per block of `spqr quantize`, one process with THREADS threads vs
# mpirun -np NP with one thread per rank, and the peak RSS of each process
# (docs/quantize.md, "Scale-out"). Stops each run after BLOCKS blocks (SIGINT:
# the run checkpoints and exits), so a long model can be sampled.
# Usage: bench/quantize_mpi.sh BUILD_DIR MODEL_DIR CALIB OUT_DIR
# env: NSAMPLES (32) SEQLEN (512) THREADS (2) NP (2) BLOCKS (1) MPIEXEC (mpirun)
#      RUNS ("serial mpi": which of the two runs)
set -u
B=$1; MODEL=$2; CAL=$3; OUT=$4
NS=${NSAMPLES:-32}; SL=${SEQLEN:-512}; TH=${THREADS:-2}; NP=${NP:-2}; BLOCKS=${BLOCKS:-1}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
Q=(quantize "$MODEL" --calib "$CAL" --nsamples "$NS" --seqlen "$SL" --recipe paper-w3 --dense-head --dense-embed)
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
run() { # name command...
    local name=$1; shift
    rm -rf "$OUT/$name.spqr" "$OUT/$name.spqr.partial"
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    local pid=$!
    while kill -0 $pid 2>/dev/null; do
        if [ "$(grep -c ' done (' "$OUT/$name.err")" -ge "$BLOCKS" ]; then
            # /usr/bin/time ignores SIGINT while it waits: signal the spqr processes under it
            for c in $(descendants $pid); do [ "$(ps -o comm= -p "$c")" = spqr ] && kill -INT "$c"; done
            break
        fi
        sleep 2
    done
    wait $pid
    echo "== $name (exit $?)"; grep -E ' done \(|Maximum resident|Elapsed' "$OUT/$name.err"
}
RUNS=${RUNS:-serial mpi}
[[ " $RUNS " == *" serial "* ]] && run serial /usr/bin/time -v "$B/spqr" "${Q[@]}" -o "$OUT/serial.spqr" -t "$TH"
[[ " $RUNS " == *" mpi "* ]] && run mpi ${MPIEXEC:-mpirun} -np "$NP" /usr/bin/time -v "$B/spqr" "${Q[@]}" -o "$OUT/mpi.spqr" -t 1
