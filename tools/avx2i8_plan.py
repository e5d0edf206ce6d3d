#!/usr/bin/env python3
"""Searches the avx2i8 one-token tile plans (PLAN in src/kernels/spqr_kernel_avx2i8.c).

For code width B and half h of a code block (16 columns, string bits
[16Bh, 16B(h+1)) of each row's 32B-bit block string), the kernel takes two
fields per vpmaddwd: one in the low and one in the high 16-bit word of a
32-bit *view* of the string, in place at bit r of its word with
r <= 8 and r + B <= 15 (activation word x * 2^(8 - r)). A view is a stored
dword (free), a vpshufb of one (1 op), a shift (1), a funnel shift of two
dwords (3) or a word blend of two (1, 2 with a shift). Each op costs 3 (AND,
vpmaddwd, vpaddd). The search tries every set of up to KMAX non-free views
(after dropping dominated ones), pairs the columns by maximum matching, and
keeps the cheapest plan; ops are printed sorted by view, as the kernel wants.

Needs networkx (Debian: python3-networkx). Takes from seconds (B = 2, 4, 8)
to ~10 minutes (B = 7 with --kmax 5) per width.

usage: tools/avx2i8_plan.py [--kmax K] [B ...]     (default: --kmax 4, B = 2..8;
       the committed table used --kmax 4, and --kmax 5 for B = 7)
"""
import argparse
import itertools

import networkx as nx

R = 8  # activation words are x * 2^(R - r)


def views(B):
    """(name, cost, kernel step, low window, high window); a window is
    (first string bit of the 16-bit word, valid bits from, valid bits to)."""
    V = []
    for d in range(B):
        base = 32 * d
        for bl in range(4):
            for bh in range(4):
                lo = (base + 8 * bl, base, base + 32)
                hi = (base + 8 * bh, base, base + 32)
                if (bl, bh) == (0, 2):
                    V.append((f"load{d}", 0, ("KV_LOAD", d, 0, 0), lo, hi))
                else:
                    V.append((f"shuf{d}_{bl}{bh}", 1, ("KV_SHUF", d, bl, bh), lo, hi))
        for s in range(1, 32):
            if s % 8:
                V.append((f"srl{d}_{s}", 1, ("KV_SRL", d, s, 0), (base + s, base, base + 32),
                          (base + s + 16, base, base + 32)))
                V.append((f"sll{d}_{s}", 1, ("KV_SLL", d, s, 0), (base - s, base, base + 32),
                          (base - s + 16, base, base + 32)))
            if d + 1 < B:
                V.append((f"fun{d}_{s}", 3, ("KV_FUN", d, s, 0), (base + s, base, base + 64),
                          (base + s + 16, base, base + 64)))
        for e in range(B):
            if e != d:
                V.append((f"blend{d}{e}", 1, ("KV_BLEND", d, e, 0), (base, base, base + 32),
                          (32 * e + 16, 32 * e, 32 * e + 32)))
    return V


def clean(o, B, win):
    a, vl, vh = win
    r = o - a
    return 0 <= r <= min(R, 15 - B) and o >= vl and o + B <= vh


def solve(B, h, kmax):
    fields = [(16 * h + c) * B for c in range(16)]
    cand = []
    for v in views(B):
        L = [i for i, o in enumerate(fields) if clean(o, B, v[3])]
        H = [i for i, o in enumerate(fields) if clean(o, B, v[4])]
        if L or H:
            E = frozenset(frozenset((a, b)) for a in L for b in H if a != b)
            cand.append((v, L, H, E, frozenset(L) | frozenset(H)))
    keep = []
    for i, (v, L, H, E, C) in enumerate(cand):
        dominated = any(w[1] <= v[1] and E <= E2 and C <= C2 and (w[1] < v[1] or E < E2 or C < C2 or j < i)
                        for j, (w, L2, H2, E2, C2) in enumerate(cand) if j != i)
        if not dominated:
            keep.append((v, L, H))
    free = [c for c in keep if c[0][1] == 0]
    paid = [c for c in keep if c[0][1] > 0]
    best = None
    for k in range(kmax + 1):
        for comb in itertools.combinations(paid, k):
            vc = sum(c[0][1] for c in comb)
            if best and vc + 24 >= best[0]:
                continue
            sel = free + list(comb)
            G = nx.Graph()
            G.add_nodes_from(range(16))
            cov = set()
            for v, L, H in sel:
                cov |= set(L) | set(H)
                G.add_edges_from((a, b) for a in L for b in H if a != b)
            if len(cov) < 16:
                continue
            M = nx.max_weight_matching(G, maxcardinality=True)
            cost = vc + 3 * (16 - len(M))
            if not best or cost < best[0]:
                best = (cost, sel, M)
    cost, sel, M = best
    ops, used = [], set()
    for a, b in M:
        for v, L, H in sel:
            if a in L and b in H:
                ops.append((v, a, b))
                break
            if b in L and a in H:
                ops.append((v, b, a))
                break
        used |= {a, b}
    for f in range(16):
        if f not in used:
            for v, L, H in sel:
                if f in L:
                    ops.append((v, f, None))
                    break
                if f in H:
                    ops.append((v, None, f))
                    break
    vu = []
    for v, _, _ in ops:
        if v not in vu:
            vu.append(v)
    out = []
    for v, a, b in ops:
        lo = (a, fields[a] - v[3][0]) if a is not None else (-1, 0)
        hi = (b, fields[b] - v[4][0]) if b is not None else (-1, 0)
        out.append((vu.index(v), lo, hi))
    out.sort(key=lambda o: o[0])
    return cost, vu, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kmax", type=int, default=4)
    ap.add_argument("widths", type=int, nargs="*", default=list(range(2, 9)))
    args = ap.parse_args()
    for B in args.widths:
        for h in (0, 1):
            cost, vu, ops = solve(B, h, args.kmax)
            vv = ", ".join("{%s, %d, %d, %d}" % v[2] for v in vu)
            oo = ", ".join("{%d, %d, %d, %d, %d}" % (v, lo[0], lo[1], hi[0], hi[1]) for v, lo, hi in ops)
            print(f"    /* w{B} h{h}: {len(ops)} ops, {cost} ALU ops per 8 rows */")
            print(f"    {{{len(vu)}, {len(ops)}, {{{vv}}},\n     {{{oo}}}}},", flush=True)


if __name__ == "__main__":
    main()
