#!/usr/bin/env bash
# Quality against llama.cpp's K-quants (issue 14): the same model quantized
# by llama.cpp (importance matrix from our calibration text, llama-quantize
# Q2_K..Q6_K) and by `spqr quantize --target-bits B` at the whole-file bits
# each K-quant file measures, every file scored against the F16 model with
# llama-perplexity's protocol (BOS, windows of CTX tokens, second half
# scored): llama-perplexity --kl-divergence for theirs, `spqr perplexity
# --protocol llamacpp --kl` for ours. One table, both engines, one run.
#
# llama.cpp is not part of this project: build it from its public source
# (CPU, Release; targets llama-imatrix, llama-quantize, llama-perplexity) and
# point at it:
#   LLAMA_CPP_DIR  its build directory (bin/llama-*)
#   LLAMA_CPP_SRC  its source tree (gguf-py/, for the F16 GGUF conversion by
#                  bench/hf_to_gguf_llama.py)
#
# usage: LLAMA_CPP_DIR=... LLAMA_CPP_SRC=... bench/quality_llamacpp.sh [MODEL_DIR] [OUT.md]
# env:   SPQR (build/spqr), WORK (/tmp/spqr_quality_llamacpp: the F16 GGUF,
#        imatrix and quantized files are cached there per model), CALIB
#        (data/calib.txt), HELDOUT (data/heldout.txt), NSAMPLES (128
#        calibration windows of SEQLEN (256) tokens, for both engines), CTX
#        (256), CHUNKS (0: the whole held-out text), THREADS (nproc),
#        LLAMA_QUANTS (default "Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M Q5_K_S Q5_K_M
#        Q6_K"), TARGETS (our budgets; default: each K-quant file's measured
#        whole-file bits), SPQR_PRESETS (fixed presets to add, default none),
#        PYTHON (/usr/bin/python3), SPQR_KERNEL (exact by default, as
#        bench/quality.sh). LLAMA_QUANTS="" with TARGETS set runs the spqr
#        rows alone (into the cache, e.g. beside a run doing llama.cpp's).
set -euo pipefail
export SPQR_KERNEL=${SPQR_KERNEL:-exact}
cd "$(dirname "$0")/.."
die() { echo "quality_llamacpp.sh: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

MODEL=${1:-models/default}
OUT=${2:-bench/results/quality_llamacpp.md}
[ -n "${LLAMA_CPP_DIR:-}" ] || die "LLAMA_CPP_DIR is not set (a llama.cpp build directory with bin/llama-imatrix, llama-quantize, llama-perplexity)"
[ -n "${LLAMA_CPP_SRC:-}" ] || die "LLAMA_CPP_SRC is not set (a llama.cpp source tree, for its gguf-py)"
for t in imatrix quantize perplexity; do
    [ -x "$LLAMA_CPP_DIR/bin/llama-$t" ] || die "$LLAMA_CPP_DIR/bin/llama-$t is missing (build llama.cpp's llama-$t target)"
done
[ -d "$LLAMA_CPP_SRC/gguf-py/gguf" ] || die "$LLAMA_CPP_SRC/gguf-py/gguf is missing (LLAMA_CPP_SRC must be llama.cpp's source tree)"
SPQR=${SPQR:-build/spqr}
[ -x "$SPQR" ] || die "$SPQR is missing (build spqr first: scripts/build.sh, or set SPQR)"
[ -s "$MODEL/model.safetensors" ] || die "$MODEL/model.safetensors is missing (scripts/setup.sh makes the default model)"
PYTHON=${PYTHON:-/usr/bin/python3}
CALIB=${CALIB:-data/calib.txt}
HELDOUT=${HELDOUT:-data/heldout.txt}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-256}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-0}
THREADS=${THREADS:-$(nproc)}
LLAMA_QUANTS=${LLAMA_QUANTS-Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K}
WORK=${WORK:-/tmp/spqr_quality_llamacpp}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=$WORK/$(basename "$MODEL")
mkdir -p "$W" "$(dirname "$OUT")"
RUN=$(mktemp -d "$W/run.XXXXXX")
LL=$LLAMA_CPP_DIR/bin

# parameters of the model (every tensor of the checkpoint): the denominator of both engines' bits
NPARAM=$("$PYTHON" - "$MODEL/model.safetensors" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n, = struct.unpack("<Q", f.read(8)); h = json.loads(f.read(n))
tot = 0
for k, v in h.items():
    if k == "__metadata__": continue
    p = 1
    for d in v["shape"]: p *= d
    tot += p
print(tot)
PY
)
fbits() { awk -v b="$(stat -c %s "$1")" -v n="$NPARAM" 'BEGIN { printf "%.3f", 8 * b / n }'; }
fmb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1e6 }'; }

F16=$W/f16.gguf
if [ ! -s "$F16" ]; then
    log "F16 GGUF -> $F16"
    PYTHONPATH=$LLAMA_CPP_SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH} nice -n 10 "$PYTHON" bench/hf_to_gguf_llama.py "$MODEL" "$F16.tmp" >&2
    mv "$F16.tmp" "$F16"
fi
IMAT=$W/imatrix-n$NSAMPLES-c$SEQLEN.gguf
if [ ! -s "$IMAT" ]; then
    log "llama-imatrix on $CALIB ($NSAMPLES x $SEQLEN tokens) -> $IMAT"
    nice -n 10 "$LL/llama-imatrix" -m "$F16" -f "$CALIB" -c "$SEQLEN" --chunks "$NSAMPLES" -t "$THREADS" \
        -o "$IMAT.tmp.gguf" --no-ppl >"$W/imatrix.log" 2>&1 || die "llama-imatrix failed: see $W/imatrix.log"
    mv "$IMAT.tmp.gguf" "$IMAT"
fi
for q in $LLAMA_QUANTS; do
    g=$W/$q-imat-n$NSAMPLES.gguf
    [ -s "$g" ] && continue
    log "llama-quantize --imatrix $q -> $g"
    nice -n 10 "$LL/llama-quantize" --imatrix "$IMAT" "$F16" "$g.tmp" "$q" "$THREADS" >"$W/quantize-$q.log" 2>&1 ||
        die "llama-quantize $q failed: see $W/quantize-$q.log"
    mv "$g.tmp" "$g"
done

# Every result is cached in W/cache under what determines it (the bases and
# llama.cpp rows by quantization, calibration and evaluation settings; spqr
# rows also by the spqr binary's checksum), so a rerun, or a second run with
# other LLAMA_QUANTS / TARGETS, adds only what is new and prints the table.
CACHE=$W/cache
mkdir -p "$CACHE"
EVAL_KEY=c$CTX-k$CHUNKS-$(cksum <"$HELDOUT" | cut -d' ' -f1)
SPQR_SUM=$(cksum <"$SPQR" | cut -d' ' -f1)
LPPL=(-f "$HELDOUT" -c "$CTX" -t "$THREADS")
SPPL=(-f "$HELDOUT" -c "$CTX" -t "$THREADS" --protocol llamacpp --json)
if [ "$CHUNKS" -gt 0 ]; then LPPL+=(--chunks "$CHUNKS"); SPPL+=(--chunks "$CHUNKS"); fi
LB=$CACHE/llama-base-$EVAL_KEY
if [ ! -s "$LB.log" ]; then
    log "llama-perplexity F16 base (KL base file)"
    nice -n 10 "$LL/llama-perplexity" -m "$F16" "${LPPL[@]}" --kl-divergence-base "$LB.kld.tmp" >"$RUN/llama-base.log" 2>&1 ||
        die "llama-perplexity (F16) failed: see $RUN/llama-base.log"
    mv "$LB.kld.tmp" "$LB.kld" && mv "$RUN/llama-base.log" "$LB.log"
fi
LBASE=$(sed -nE 's/^.*Final estimate: PPL = ([0-9.]+).*/\1/p' "$LB.log" | tail -1)
LTOK=$(sed -nE 's/.*calculating perplexity over ([0-9]+) chunks.*/\1/p' "$LB.log" | head -1)
SB=$CACHE/spqr-base-$EVAL_KEY
if [ ! -s "$SB.json" ]; then
    log "spqr perplexity fp16 base (KL base file)"
    nice -n 10 "$SPQR" perplexity "$MODEL" "${SPPL[@]}" --kl-base "$SB.kl.tmp" >"$RUN/spqr-base.json" 2>/dev/null
    mv "$SB.kl.tmp" "$SB.kl" && mv "$RUN/spqr-base.json" "$SB.json"
fi
json() { sed -E "s/.*\"$1\": ([-0-9.eE+]+).*/\1/" "$2"; }
SBASE=$(json ppl "$SB.json")
STOK=$(json tokens "$SB.json")

# rows: engine<TAB>name<TAB>MB<TAB>bits<TAB>KL<TAB>dppl%<TAB>top1%<TAB>quantize s
ROWS=$RUN/rows.tsv
: >"$ROWS"
for q in $LLAMA_QUANTS; do
    g=$W/$q-imat-n$NSAMPLES.gguf
    row=$CACHE/llama-$q-n$NSAMPLES-s$SEQLEN-$EVAL_KEY.tsv
    if [ -s "$row" ]; then cat "$row" >>"$ROWS"; continue; fi
    log "llama-perplexity --kl-divergence $q"
    nice -n 10 "$LL/llama-perplexity" -m "$g" "${LPPL[@]}" --kl-divergence-base "$LB.kld" --kl-divergence \
        >"$RUN/llama-$q.log" 2>&1 || die "llama-perplexity $q failed: see $RUN/llama-$q.log"
    kl=$(sed -nE 's/^.*Mean +KLD: +([-0-9.eE+]+).*/\1/p' "$RUN/llama-$q.log" | tail -1)
    pq=$(sed -nE 's/^.*Mean PPL\(Q\) +: +([0-9.]+).*/\1/p' "$RUN/llama-$q.log" | tail -1)
    pb=$(sed -nE 's/^.*Mean PPL\(base\) +: +([0-9.]+).*/\1/p' "$RUN/llama-$q.log" | tail -1)
    top=$(sed -nE 's/^.*Same top p: +([0-9.]+).*/\1/p' "$RUN/llama-$q.log" | tail -1)
    [ -n "$kl" ] && [ -n "$pq" ] || die "no KL in $RUN/llama-$q.log"
    printf 'llama.cpp\t%s (imatrix)\t%s\t%s\t%s\t%s\t%s\t-\n' "$q" "$(fmb "$g")" "$(fbits "$g")" "$kl" \
        "$(awk -v a="$pq" -v b="$pb" 'BEGIN { printf "%+.2f", 100 * (a / b - 1) }')" "$top" >"$row"
    cat "$row" >>"$ROWS"
    cat "$row" >&2
done

TARGETS=${TARGETS:-$(awk -F'\t' '{ printf "%.2f ", $4 }' "$ROWS")}
SPQR_ROWS=()
for p in ${SPQR_PRESETS:-}; do SPQR_ROWS+=("preset $p|--preset $p"); done
for b in $TARGETS; do SPQR_ROWS+=("--target-bits $b|--target-bits $b"); done
for row in "${SPQR_ROWS[@]}"; do
    name=${row%%|*}
    flags=${row#*|}
    cached=$CACHE/spqr-$(echo "$flags" | tr -c 'A-Za-z0-9.\n-' '_')-n$NSAMPLES-s$SEQLEN-$EVAL_KEY-$SPQR_SUM.tsv
    if [ -s "$cached" ]; then cat "$cached" >>"$ROWS"; continue; fi
    log "spqr quantize $flags"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    if ! nice -n 10 "$SPQR" quantize "$MODEL" -o "$RUN/q.spqr" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
        -t "$THREADS" -q $flags >"$RUN/q.txt" 2>"$RUN/q.err"; then
        if grep -q 'outside what the settings can reach' "$RUN/q.err"; then
            printf 'spqr\t%s: not reachable (%s)\t\t\t\t\t\t\n' "$name" "$(sed -E 's/.*can reach for this model: //' "$RUN/q.err")" >"$cached"
            cat "$cached" >>"$ROWS"
            continue
        fi
        cat "$RUN/q.err" >&2
        die "spqr quantize $flags failed"
    fi
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    nice -n 10 "$SPQR" perplexity "$RUN/q.spqr" "${SPPL[@]}" --kl "$SB.kl" >"$RUN/p.json" 2>/dev/null
    printf 'spqr\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\n' "$name" "$(fmb "$RUN/q.spqr")" "$(fbits "$RUN/q.spqr")" \
        "$(json kl_mean "$RUN/p.json")" \
        "$(awk -v a="$(json ppl "$RUN/p.json")" -v b="$SBASE" 'BEGIN { printf "%+.2f", 100 * (a / b - 1) }')" \
        "$(json top1_agreement "$RUN/p.json")" "$secs" >"$cached"
    cat "$cached" >>"$ROWS"
    cat "$cached" >&2
done

{
    echo "# Quality against llama.cpp K-quants, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- model \`$MODEL\`: $NPARAM parameters (every tensor of the checkpoint; the denominator of both engines' bits)"
    echo "- calibration: $NSAMPLES windows x $SEQLEN tokens of \`$CALIB\` for both (llama-imatrix --chunks $NSAMPLES -c $SEQLEN; spqr quantize --nsamples $NSAMPLES --seqlen $SEQLEN)"
    echo "- evaluation: \`$HELDOUT\`, llama-perplexity's protocol for both (BOS, windows of $CTX tokens, second half scored): llama.cpp $LTOK windows, spqr $STOK tokens scored; F16 ppl llama.cpp $LBASE, spqr $SBASE"
    echo "- KL = mean KL(F16 || quantized) per scored token (llama-perplexity --kl-divergence; spqr perplexity --kl), each engine against its own F16 run; top-1 = same most likely token as F16 (llama.cpp's 'Same top p')"
    echo "- file bits = file bytes x 8 / parameters (whole file: GGUF with its tokenizer, .spqr with its tokenizer and metadata)"
    echo "- llama.cpp: $LLAMA_CPP_DIR (source $LLAMA_CPP_SRC); spqr at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include || echo ' (src modified)'), SPQR_KERNEL=$SPQR_KERNEL; $THREADS threads; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load after: $(uptime | sed 's/.*load average: //')"
    echo "- made by: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN CTX=$CTX CHUNKS=$CHUNKS LLAMA_QUANTS=\"$LLAMA_QUANTS\"${SPQR_PRESETS:+ SPQR_PRESETS=\"$SPQR_PRESETS\"} bench/quality_llamacpp.sh $MODEL\`"
    echo
    echo "| engine | file | MB | file bits/param | KL (nats) | Δppl % | top-1 % | quantize s |"
    echo "|---|---|---|---|---|---|---|---|"
    sort -t$'\t' -k4,4g "$ROWS" | awk -F'\t' '{
        kl = $5 == "" ? "" : sprintf("%.6f", $5); top = $7 == "" ? "" : sprintf("%.2f", $7)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, kl, $6, top, $8 }'
    echo
    echo "Each spqr file against llama.cpp's curve at the same bits (log-linear interpolation of KL between the"
    echo "two K-quant files around it; within 0.01 bits of an end, that file; further outside: not compared):"
    echo
    awk -F'\t' '
        $1 == "llama.cpp" && $5 > 0 { n++; lb[n] = $4; lk[n] = $5 }
        $1 == "spqr" && $5 > 0 { m++; sn[m] = $2; sb[m] = $4; sk[m] = $5 }
        END {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (lb[j] < lb[i]) {
                t = lb[i]; lb[i] = lb[j]; lb[j] = t; t = lk[i]; lk[i] = lk[j]; lk[j] = t }
            for (k = 1; k <= m; k++) {
                ref = ""
                for (i = 1; i < n; i++) if (sb[k] >= lb[i] && sb[k] <= lb[i + 1]) {
                    f = lb[i + 1] > lb[i] ? (sb[k] - lb[i]) / (lb[i + 1] - lb[i]) : 0
                    ref = exp((1 - f) * log(lk[i]) + f * log(lk[i + 1]))
                }
                if (ref == "" && n > 0 && sb[k] < lb[1] && lb[1] - sb[k] <= 0.01) ref = lk[1]
                if (ref == "" && n > 0 && sb[k] > lb[n] && sb[k] - lb[n] <= 0.01) ref = lk[n]
                if (ref == "") printf "- %s (%.3f bits): outside llama.cpp'"'"'s range\n", sn[k], sb[k]
                else printf "- %s (%.3f bits): KL %.5f vs llama.cpp %.5f: %s (%.2fx)\n", sn[k], sb[k], sk[k], ref,
                            sk[k] < ref ? "below (better)" : "above (worse)", sk[k] / ref
            }
        }' "$ROWS"
} >"$OUT"
cat "$OUT"
log "raw logs in $RUN"
