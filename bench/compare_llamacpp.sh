#!/usr/bin/env bash
# End-to-end speed against llama.cpp (issue 12): prompt (pp) and decode (tg)
# tokens/s of llama.cpp F16 / Q4_K_M / Q3_K_M and spqr fp16 / spqr 3.6bit on
# the same Llama-7B-shaped synthetic weights, same threads, in one run, with
# the ratios the issue targets (spqr 3.6bit / llama.cpp Q4_K_M: decode >=
# 1.2x, prompt >= 1.0x).
#
# llama.cpp is not part of this project: build it yourself from its public
# source (CPU, Release) and point at it:
#   LLAMA_CPP_DIR  its build directory (bin/llama-bench; bin/llama-quantize
#                  while a GGUF quantization is not cached yet)
#   LLAMA_CPP_SRC  its source tree (gguf-py/, for the F16 GGUF conversion)
# The F16 GGUF is written by bench/hf_to_gguf_llama.py with llama.cpp's own
# gguf-py (its convert_hf_to_gguf.py needs `transformers`; see that script).
#
# Inputs are made once and cached in WORK (keyed by LAYERS): the synthetic HF
# checkpoint (bench/gen_synthetic_llama --layers LAYERS), its `spqr quantize
# --recipe paper-w3` (NSAMPLES x SEQLEN windows of data/calib.txt), the F16 GGUF
# and its Q4_K_M / Q3_K_M quantizations. Quantizing takes ~8 min per 7B-shaped
# layer on 2 busy cores, so the full 32 layers use SPQR_MODEL=synthetic: a
# random .spqr in the 3.6bit layout (w3, 16-groups, 3-bit statistics,
# OUTLIER_SHARE outliers; gen_synthetic_llama --spqr), which decodes at the
# same speed as a quantized one of that outlier share. WHOLE=1 (default)
# packs its embedding and head too, as `spqr quantize` stores a whole file
# (WHOLE=0: a dense F16 head, 0.26 GB more streamed per token at 7B).
#
# usage: LLAMA_CPP_DIR=... LLAMA_CPP_SRC=... bench/compare_llamacpp.sh [--work DIR]
# env:   WORK (/tmp/spqr_llamacpp), LAYERS (2), THREADS (2), PP (64), TG (32),
#        REPS (3), NSAMPLES (8), SEQLEN (256), SPQR_MODEL (quantize |
#        synthetic), OUTLIER_SHARE (0.01, synthetic only), WHOLE (1,
#        synthetic only), SKIP_F16 (1: no F16
#        rows, for big LAYERS), LLAMA_QUANTS (llama-quantize types, default
#        "Q4_K_M Q3_K_M"), SPQR (build/spqr), GEN
#        (gen_synthetic_llama next to SPQR), PYTHON (/usr/bin/python3),
#        SPQR_KERNEL (passed through: force a kernel path, docs/kernels.md),
#        LLAMA_TAG (a label for the llama.cpp build in the table, default
#        its build directory's name), LLAMA_CPP_COMMIT (shown; default: git
#        of LLAMA_CPP_SRC, else what llama-bench reports), OMP_WAIT_POLICY
#        (passive, for both programs), SPQR_KV (spqr's --kv-type, f16 as
#        llama.cpp's default cache), DEPTH (0; > 0: also decode tg$TG after a
#        DEPTH-token prompt, llama-bench -d DEPTH against spqr bench -p DEPTH,
#        the quantized models only)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "compare_llamacpp.sh: $*" >&2; exit 1; }

WORK=${WORK:-/tmp/spqr_llamacpp}
while [ $# -gt 0 ]; do
    case $1 in
        --work) [ $# -ge 2 ] || die "--work needs a directory"; WORK=$2; shift 2 ;;
        -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[ -n "${LLAMA_CPP_DIR:-}" ] || die "LLAMA_CPP_DIR is not set (a llama.cpp build directory with bin/llama-bench and bin/llama-quantize)"
[ -n "${LLAMA_CPP_SRC:-}" ] || die "LLAMA_CPP_SRC is not set (a llama.cpp source tree, for its gguf-py)"
LB=$LLAMA_CPP_DIR/bin/llama-bench
LQ=$LLAMA_CPP_DIR/bin/llama-quantize
[ -x "$LB" ] || die "$LB is missing (build llama.cpp's llama-bench target in LLAMA_CPP_DIR)"
[ -d "$LLAMA_CPP_SRC/gguf-py/gguf" ] || die "$LLAMA_CPP_SRC/gguf-py/gguf is missing (LLAMA_CPP_SRC must be llama.cpp's source tree)"

SPQR=${SPQR:-build/spqr}
GEN=${GEN:-$(dirname "$SPQR")/gen_synthetic_llama}
PYTHON=${PYTHON:-/usr/bin/python3}
LAYERS=${LAYERS:-2}
THREADS=${THREADS:-2}
PP=${PP:-64}
DEPTH=${DEPTH:-0}
SPQR_KV=${SPQR_KV:-f16}
TG=${TG:-32}
REPS=${REPS:-3}
NSAMPLES=${NSAMPLES:-8}
SEQLEN=${SEQLEN:-256}
LLAMA_TAG=${LLAMA_TAG:-$(basename "$LLAMA_CPP_DIR")}
SPQR_MODEL=${SPQR_MODEL:-quantize}
OUTLIER_SHARE=${OUTLIER_SHARE:-0.01}
WHOLE=${WHOLE:-1}
SKIP_F16=${SKIP_F16:-0}
LLAMA_QUANTS=${LLAMA_QUANTS:-Q4_K_M Q3_K_M}
case " $LLAMA_QUANTS " in *" Q4_K_M "*) ;; *) die "LLAMA_QUANTS must include Q4_K_M (the issue's reference)" ;; esac
case $SPQR_MODEL in quantize|synthetic) ;; *) die "SPQR_MODEL must be quantize or synthetic, not '$SPQR_MODEL'" ;; esac
[ -x "$SPQR" ] || die "$SPQR is missing (build spqr first: scripts/build.sh, or set SPQR)"
[ -x "$GEN" ] || die "$GEN is missing (set GEN to bench/gen_synthetic_llama's binary)"
command -v jq >/dev/null || die "jq is missing (apt-get install jq)"
"$PYTHON" -c 'import numpy' 2>/dev/null || die "$PYTHON has no numpy (apt-get install python3-numpy)"
[ "$PP" -ge 16 ] || die "PP must be >= 16 (a batched prompt)"
# llama-bench gained -d (--n-depth) in 2025; say so before the long runs, not after
if [ "$DEPTH" -gt 0 ] && ! "$LB" --help 2>&1 | grep -q -- '--n-depth'; then
    die "DEPTH=$DEPTH needs a llama-bench with -d/--n-depth (this one has none: an older llama.cpp); run with DEPTH=0"
fi

# passive: spinning OpenMP barriers are very slow when the box is shared (docs/model.md);
# the same environment for both programs.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OPENBLAS_NUM_THREADS=1
mkdir -p "$WORK"
HF=$WORK/hf-L$LAYERS
if [ "$SPQR_MODEL" = quantize ]; then SQ=$WORK/spqr-3.6bit-L$LAYERS-n${NSAMPLES}x$SEQLEN.spqr
else SQ=$WORK/spqr-synthetic-w3-L$LAYERS-o$OUTLIER_SHARE$([ "$WHOLE" = 1 ] && echo -whole).spqr; fi
F16=$WORK/llama-L$LAYERS-f16.gguf
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

if [ ! -s "$HF/model.safetensors" ]; then
    log "writing the synthetic Llama-7B-shaped checkpoint ($LAYERS layers) -> $HF"
    nice -n 10 "$GEN" "$HF" --layers "$LAYERS" >&2
fi
if [ ! -s "$SQ" ] && [ "$SPQR_MODEL" = synthetic ]; then
    log "random .spqr in the 3.6bit layout (outlier share $OUTLIER_SHARE) -> $SQ"
    nice -n 10 "$GEN" --spqr "$SQ" --layers "$LAYERS" --wbits 3 --outlier-share "$OUTLIER_SHARE" \
        $([ "$WHOLE" = 1 ] && echo --whole) >&2
elif [ ! -s "$SQ" ]; then
    log "spqr quantize --recipe paper-w3 ($NSAMPLES x $SEQLEN calibration tokens) -> $SQ"
    t0=$(date +%s)
    nice -n 10 "$SPQR" quantize "$HF" -o "$SQ" --calib data/calib.txt --recipe paper-w3 \
        --nsamples "$NSAMPLES" --seqlen "$SEQLEN" -t "$THREADS" -q >&2
    log "quantized in $(( $(date +%s) - t0 )) s"
fi
if [ ! -s "$F16" ]; then
    log "F16 GGUF -> $F16"
    PYTHONPATH=$LLAMA_CPP_SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH} nice -n 10 "$PYTHON" bench/hf_to_gguf_llama.py "$HF" "$F16.tmp" >&2
    mv "$F16.tmp" "$F16"
fi
LLAMA_MODELS=()
for q in $LLAMA_QUANTS; do
    g=$WORK/llama-L$LAYERS-$(echo "$q" | tr '[:upper:]' '[:lower:]').gguf
    if [ ! -s "$g" ]; then
        [ -x "$LQ" ] || die "$LQ is missing (build llama.cpp's llama-quantize target in LLAMA_CPP_DIR)"
        log "llama-quantize $q -> $g"
        nice -n 10 "$LQ" "$F16" "$g.tmp" "$q" "$THREADS" >"$WORK/quantize-L$LAYERS-$q.log" 2>&1 ||
            die "llama-quantize $q failed: see $WORK/quantize-L$LAYERS-$q.log"
        mv "$g.tmp" "$g"
    fi
    LLAMA_MODELS+=(-m "$g")
done

RUN=$WORK/run-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RUN"
echo "# spqr vs llama.cpp, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores online; load before: $(uptime | sed 's/.*load average: //')"
echo "- model: synthetic Llama-7B shape (hidden 4096, MLP 11008, 32 heads, vocab 32000), $LAYERS layers; random weights"
echo "- threads $THREADS, pp$PP (one batch) and tg$TG, $REPS reps each, mean ± sd tokens/s; OMP_WAIT_POLICY=$OMP_WAIT_POLICY for both; KV cache: spqr $SPQR_KV, llama.cpp its default (f16)"
echo "- spqr kernel: SPQR_KERNEL=${SPQR_KERNEL:-(auto)}; llama.cpp: $LLAMA_TAG ($LLAMA_CPP_DIR)"

SPQR_MODELS=("$SQ")
QUANT_MODELS=("${LLAMA_MODELS[@]}")
if [ "$SKIP_F16" != 1 ]; then LLAMA_MODELS=(-m "$F16" "${LLAMA_MODELS[@]}"); SPQR_MODELS=("$HF" "$SQ"); fi
log "llama-bench (${LLAMA_MODELS[*]})"
nice -n 10 "$LB" "${LLAMA_MODELS[@]}" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPS" -o json >"$RUN/llama.json" 2>"$RUN/llama.err" ||
    die "llama-bench failed: see $RUN/llama.err"
log "spqr bench (${SPQR_MODELS[*]})"
nice -n 10 "$SPQR" bench "${SPQR_MODELS[@]}" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" --kv-type "$SPQR_KV" --json >"$RUN/spqr.json" 2>"$RUN/spqr.err" ||
    die "spqr bench failed: see $RUN/spqr.err"
if [ -n "${LLAMA_CPP_COMMIT:-}" ]; then commit=$LLAMA_CPP_COMMIT
elif [ -e "$LLAMA_CPP_SRC/.git" ]; then commit=$(git -C "$LLAMA_CPP_SRC" rev-parse HEAD)
else commit=$(jq -r '.[0].build_commit' "$RUN/llama.json"); fi
echo "- llama.cpp: commit $commit, $(jq -r '.[0] | "backend \(.backends), flash_attn \(.flash_attn), n_batch \(.n_batch), n_ubatch \(.n_ubatch)"' "$RUN/llama.json")"
echo "- spqr: $("$SPQR" --version 2>/dev/null || echo "$SPQR") at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include || echo ' (src modified)'), 3.6bit model $(basename "$SQ") ($SPQR_MODEL)"
echo "- spqr bench's read-bandwidth probe: $(jq -r '.bandwidth_gbps * 100 | round / 100' "$RUN/spqr.json") GB/s (31-38 on this box when idle: bench/results/model.md)"
echo "- load after: $(uptime | sed 's/.*load average: //'); raw JSON in $RUN"
echo

# One row per model: name, size MB, pp mean, pp sd, tg mean, tg sd (tab-separated).
jq -r --argjson pp "$PP" --argjson tg "$TG" --arg tag "$LLAMA_TAG" '
    group_by(.model_filename)[] | . as $g
    | ($g[] | select(.n_prompt == $pp and .n_gen == 0)) as $p
    | ($g[] | select(.n_gen == $tg and .n_prompt == 0)) as $d
    | ["llama.cpp \($p.model_filename | capture("-(?<t>[^-]+)\\.gguf$").t | ascii_upcase) [\($tag)]", ($p.model_size / 1e6), $p.avg_ts, $p.stddev_ts, $d.avg_ts, $d.stddev_ts] | @tsv' \
    "$RUN/llama.json" >"$RUN/rows.tsv"
jq -r '.models[] | ["spqr \(if .kind == "spqr" then "3.6bit" else .kind end) [\(.kernel_path)]", (.weight_bytes / 1e6),
        .prompt_tps, .prompt_tps_sd, .decode_tps, .decode_tps_sd] | @tsv' "$RUN/spqr.json" >>"$RUN/rows.tsv"

echo "| engine, weights [path] | weights MB | pp$PP tok/s | tg$TG tok/s |"
echo "|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %.0f | %.2f ± %.2f | %.2f ± %.2f |\n", $1, $2, $3, $4, $5, $6 }' "$RUN/rows.tsv"
echo
echo "(weights MB: llama.cpp's model size (all tensors); spqr's weight bytes streamed per decoded token (block linears + head).)"
echo
awk -F'\t' '
    $1 ~ /^llama.cpp Q4_K_M/ { qp = $3; qd = $5 }
    $1 ~ /^llama.cpp Q3_K_M/ { tp = $3; td = $5 }
    $1 ~ /^llama.cpp F16/    { fp = $3; fd = $5 }
    $1 ~ /^spqr 3.6bit/      { sp = $3; sd = $5 }
    END {
        if (!qp || !sp) { print "missing rows: no ratios"; exit 1 }
        printf "**spqr 3.6bit / llama.cpp Q4_K_M: decode %.2fx (target >= 1.2x), prompt %.2fx (target >= 1.0x)**\n\n", sd / qd, sp / qp
        if (tp) printf "spqr 3.6bit / llama.cpp Q3_K_M: decode %.2fx, prompt %.2fx; ", sd / td, sp / tp
        if (fp) printf "spqr 3.6bit / llama.cpp F16: decode %.2fx, prompt %.2fx", sd / fd, sp / fp
        printf "\n"
    }' "$RUN/rows.tsv"

if [ "$DEPTH" -gt 0 ]; then
    log "decode after $DEPTH tokens: llama-bench -d $DEPTH (${QUANT_MODELS[*]}), spqr bench -p $DEPTH ($SQ)"
    nice -n 10 "$LB" "${QUANT_MODELS[@]}" -t "$THREADS" -p 0 -n "$TG" -d "$DEPTH" -r "$REPS" -o json \
        >"$RUN/llama-depth.json" 2>"$RUN/llama-depth.err" || die "llama-bench -d failed: see $RUN/llama-depth.err"
    nice -n 10 "$SPQR" bench "$SQ" -p "$DEPTH" -n "$TG" -r "$REPS" -t "$THREADS" --kv-type "$SPQR_KV" --json \
        >"$RUN/spqr-depth.json" 2>"$RUN/spqr-depth.err" || die "spqr bench -p $DEPTH failed: see $RUN/spqr-depth.err"
    jq -r --arg tag "$LLAMA_TAG" '.[] | ["llama.cpp \(.model_filename | capture("-(?<t>[^-]+)\\.gguf$").t | ascii_upcase) [\($tag)]",
        .avg_ts, .stddev_ts] | @tsv' "$RUN/llama-depth.json" >"$RUN/depth.tsv"
    jq -r '.models[] | ["spqr 3.6bit [\(.kernel_path)]", .decode_tps, .decode_tps_sd] | @tsv' "$RUN/spqr-depth.json" \
        >>"$RUN/depth.tsv"
    echo
    echo "| engine, weights [path] | tg$TG after $DEPTH tokens, tok/s |"
    echo "|---|---|"
    awk -F'\t' '{ printf "| %s | %.2f ± %.2f |\n", $1, $2, $3 }' "$RUN/depth.tsv"
    echo
    awk -F'\t' -v d="$DEPTH" '
        $1 ~ /^llama.cpp Q4_K_M/ { q = $2 }
        $1 ~ /^spqr 3.6bit/      { s = $2 }
        END { if (q && s) printf "**spqr 3.6bit / llama.cpp Q4_K_M at depth %d: decode %.2fx**\n", d, s / q }' "$RUN/depth.tsv"
fi
