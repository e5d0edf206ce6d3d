#!/usr/bin/env bash
# `spqr quantize --target-bits B` on a synthetic checkpoint of Llama-3-8B's
# shapes (vocab 128256, hidden 4096, MLP 14336, 32 heads, 8 KV heads; random
# fp16 weights, which are fine for size) with LAYERS blocks: the real
# measurement pass and allocation over the grid, the embedding and head
# quantized, then the written file's whole-file bits and bytes, and its
# per-tensor accounting scaled to 32 layers (bench/size_extrapolate.c).
# A 32-layer run takes hours of a 2-core machine (LAYERS=32 does it).
#
# usage: bench/target_bits_8b.sh [B]      (default 3.6)
# env:   BUILD (default build), WORK (scratch, default a temp dir; needs
#        ~2.2 GB + 0.44 GB per layer), LAYERS (default 2), NSAMPLES (4),
#        SEQLEN (128), THREADS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-3.6}
BUILD=${BUILD:-build}
WORK=${WORK:-$(mktemp -d /tmp/spqr_tb8b.XXXXXX)}
LAYERS=${LAYERS:-2}
export OMP_WAIT_POLICY=passive
"$BUILD/gen_synthetic_llama" "$WORK/hf" --layers "$LAYERS" --hidden 4096 --inter 14336 --heads 32 --kv-heads 8 \
    --vocab 128256 --ctx 8192 >/dev/null
echo "== $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== spqr quantize (Llama-3-8B shapes, $LAYERS layers) --target-bits $B"
/usr/bin/time -f "wall %e s, cpu %U+%S s, max rss %M KB" "$BUILD/spqr" quantize "$WORK/hf" -o "$WORK/m.spqr" \
    --calib data/calib.txt --nsamples "${NSAMPLES:-4}" --seqlen "${SEQLEN:-128}" -t "${THREADS:-2}" -q \
    --target-bits "$B" 2>&1 | grep -vE '^\s*model\.layers\.[1-9][0-9]*\.'
echo "== spqr info"
"$BUILD/spqr" info "$WORK/m.spqr" | grep -E '^(whole file|target|allocated linears)'
echo "file bytes: $(stat -c %s "$WORK/m.spqr")"
echo "== scaled to 32 layers"
"$BUILD/size_extrapolate" "$WORK/m.spqr" 32
rm -rf "$WORK"
