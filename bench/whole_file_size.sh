#!/usr/bin/env bash
# Whole-file size of a Llama-3-8B-shaped .spqr (vocab 128256, hidden 4096,
# MLP 14336, 32 heads, 8 KV heads, 32 layers) with the embedding and head
# quantized, without writing the 3.6 GB file: a 2-layer synthetic
# checkpoint of the same shapes is written (random codes, w3, 3-bit
# bilevel statistics, beta1 = beta2 = 16, act-order permutations on the
# linears and the head, none on the embedding) and its measured per-tensor
# byte accounting extrapolated to 32 layers (bench/size_extrapolate.c).
#
# usage: bench/whole_file_size.sh [OUTLIER_SHARES...]   (default: 0 0.005 0.01)
# env:   BUILD (build dir, default build), WORK (scratch dir, default a temp dir; needs ~0.8 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
WORK=${WORK:-$(mktemp -d /tmp/spqr_size.XXXXXX)}
SHARES=("$@")
[ ${#SHARES[@]} -gt 0 ] || SHARES=(0 0.005 0.01)
for share in "${SHARES[@]}"; do
  f="$WORK/l3_2layers_$share.spqr"
  "$BUILD/gen_synthetic_llama" --spqr "$f" --whole --outlier-share "$share" --layers 2 --hidden 4096 --inter 14336 \
      --heads 32 --kv-heads 8 --vocab 128256 --ctx 8192 >/dev/null 2>&1
  echo "== outlier share $share"
  "$BUILD/size_extrapolate" "$f" 32
  rm -f "$f"
done
