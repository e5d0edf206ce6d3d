#!/usr/bin/env bash
# spqr bench-kernel: bad flags give one line + exit 2; a tiny run prints
# valid JSON with the documented fields and positive rates.
set -u
BIN="$1"
fail=0
for args in "--wbits 9" "--shape 4x" "--shape 0x16" "--outlier-share 2" "-t 0" "--path sse" "--bogus" "--wbits"; do
    err=$("$BIN" bench-kernel $args 2>&1 >/dev/null); rc=$?
    lines=$(printf '%s\n' "$err" | wc -l)
    if [ "$rc" != 2 ] || [ "$lines" != 1 ]; then echo "FAIL: '$args' rc=$rc lines=$lines: $err"; fail=1; fi
done
# a path this CPU lacks: one line, exit 1, before the bandwidth probe prints anything
case "$(uname -m)" in x86_64) other=neon ;; *) other=avx2 ;; esac
out=$("$BIN" bench-kernel --path $other 2>/dev/null); rc=$?
err=$("$BIN" bench-kernel --path $other 2>&1 >/dev/null)
if [ "$rc" != 1 ] || [ -n "$out" ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then
    echo "FAIL: --path $other: rc=$rc stdout='$out' stderr='$err'"; fail=1; fi
out=$("$BIN" bench-kernel --shape 64x256,33x100 --wbits 4 --outlier-share 0.02 -t 1 --reps 1 --json 2>&1) || { echo "FAIL: run: $out"; exit 1; }
printf '%s' "$out" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["bandwidth_gbps"] > 0, d
assert [s["shape"] for s in d["shapes"]] == ["64x256", "33x100"], d
for s in d["shapes"]:
    for k in ("spqr_gbps", "fp16_gbps", "fp32_gbps", "ref_gbps", "spqr_us", "fp16_us", "fp32_us", "ref_us"):
        assert s[k] > 0, (k, s)
    # every probe counts towards the strict yardstick of the run
    assert s["probe_gbps"] > 0 and s["probe_gbps"] <= d["best_read_gbps"], s
    assert abs(s["spqr_vs_probe"] - s["spqr_gbps"] / s["probe_gbps"]) < 1e-9, s
assert d["bandwidth_gbps"] <= d["best_read_gbps"], d
' || { echo "FAIL: json: $out"; fail=1; }
# a tiny shape caps its copies (it allocated millions of 2x2 tensors, 5.8 GB, before)
out=$(timeout 300 "$BIN" bench-kernel --shape 2x2 --reps 1 -t 1 --json) || { echo "FAIL: --shape 2x2 rc $?"; fail=1; }
printf '%s' "$out" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["shapes"][0]
assert s["shape"] == "2x2" and s["copies"] == 4096, s
' || { echo "FAIL: 2x2 copies: $out"; fail=1; }
[ $fail = 0 ] && echo "cli_bench_kernel: ok"
exit $fail
