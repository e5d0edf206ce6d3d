#!/usr/bin/python3
"""Byte-level BPE tokenizer (GPT-2 style), trainer + reference encoder/decoder.

This module is the INDEPENDENT reference the C tokenizer is tested against.
It implements Hugging Face `tokenizers` semantics for a tokenizer.json with
  model: BPE, pre_tokenizer: ByteLevel(add_prefix_space=false, use_regex=true),
  decoder: ByteLevel, normalizer: null, post_processor: null.

Encoding, step by step (exactly what HF does for this configuration):
 1. Special tokens: the input is split on literal occurrences of the added
    special tokens (here only "<|endoftext|>"); each occurrence becomes its id.
    (encode(..., allow_special=False) treats them as plain text.)
 2. Pre-tokenization: each remaining segment is split with the GPT-2 regex
        's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    Python's `re` has no \\p{..}, and the `regex` module is not installed, so
    pretokenize() is a hand-written scanner that tries the alternatives in
    order at each position (leftmost-first, greedy, like the regex engine):
      \\p{L} = unicodedata.category(c) starts with "L"
      \\p{N} = category starts with "N"
      \\s    = Unicode White_Space property (WHITESPACE below)
    The contractions are case-sensitive ("'S" is not one), as in GPT-2.
 3. Each pre-token's UTF-8 bytes are mapped to printable unicode characters
    with GPT-2's bytes_to_unicode() table.
 4. BPE: starting from single characters, repeatedly find the adjacent pair
    with the LOWEST merge rank present in the word and merge every
    non-overlapping occurrence of it, left to right; stop when no adjacent
    pair has a rank. Each resulting symbol is looked up in the vocab.
Decoding: concatenate the token strings, map each character back to its byte
with the inverse table, decode UTF-8 (errors="replace"); special tokens are
emitted as their text (skip_special=True drops them).

Vocabulary layout of the trained tokenizer (vocab_size = 4096 by default):
  id 0            "<|endoftext|>"  special; used as BOS and EOS (like GPT-2)
  id 1 + b        the single byte b (b = 0..255), as its bytes_to_unicode char
  id 257 + r      the result of merge rank r (r = 0 .. vocab_size-258)
No BOS is added automatically (post_processor null): encode() returns the
ids of the text only.

Training: classic BPE on word (pre-token) frequencies: at each step merge the
most frequent adjacent pair (ties: the lexicographically smallest pair of
strings), with incremental pair-count updates. Deterministic.

CLI:
  train:  /usr/bin/python3 tools/bpe_tokenizer.py train OUT.json [--vocab 4096]
          (trains on the training books of tools/prepare_data.py)
  encode: /usr/bin/python3 tools/bpe_tokenizer.py encode TOKENIZER.json "text"
  check:  /usr/bin/python3 tools/bpe_tokenizer.py selftest TOKENIZER.json
"""
from __future__ import annotations

import collections
import json
import os
import sys
import unicodedata

SPECIAL = "<|endoftext|>"

# Unicode White_Space property (what \s means in the Oniguruma/regex engines
# for Unicode strings). Note: this is NOT str.isspace(), which also accepts
# U+001C..U+001F.
WHITESPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] + [" ", "\x85", "\xa0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)]
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
)

CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")   # after "'", in regex order


def bytes_to_unicode() -> dict:
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE2CHAR = bytes_to_unicode()
CHAR2BYTE = {c: b for b, c in BYTE2CHAR.items()}


def _is_letter(c: str) -> bool:
    return unicodedata.category(c)[0] == "L"


def _is_number(c: str) -> bool:
    return unicodedata.category(c)[0] == "N"


def _is_space(c: str) -> bool:
    return c in WHITESPACE


def _is_other(c: str) -> bool:   # [^\s\p{L}\p{N}]
    return not (_is_space(c) or _is_letter(c) or _is_number(c))


def pretokenize(text: str) -> list:
    """Split text like the GPT-2 regex (see module docstring). Returns the list
    of matched substrings; their concatenation is exactly `text`."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        # 1. contractions 's 't 're 've 'm 'll 'd
        if c == "'":
            m = None
            for suf in CONTRACTIONS:
                if text.startswith(suf, i + 1):
                    m = suf
                    break
            if m is not None:
                out.append(text[i: i + 1 + len(m)])
                i += 1 + len(m)
                continue
        # 2-4. optional single space, then a run of letters / numbers / others
        j = i + 1 if (c == " " and i + 1 < n) else i
        d = text[j]
        matched = False
        for klass in (_is_letter, _is_number, _is_other):
            if klass(d):
                k = j + 1
                while k < n and klass(text[k]):
                    k += 1
                out.append(text[i:k])
                i = k
                matched = True
                break
        if matched:
            continue
        # 5. \s+(?!\S): whitespace run not followed by a non-space; the engine
        #    backtracks one character if the run is followed by a non-space.
        # 6. \s+ : otherwise (a single whitespace char followed by non-space).
        if _is_space(c):
            k = i + 1
            while k < n and _is_space(text[k]):
                k += 1
            if k < n and k - i > 1:
                k -= 1          # leave the last space to prefix the next word
            out.append(text[i:k])
            i = k
            continue
        raise AssertionError("unreachable: every character is L, N, space or other")
    return out


def word_to_symbols(word: str) -> list:
    return [BYTE2CHAR[b] for b in word.encode("utf-8")]


def bpe_merge(symbols: list, ranks: dict) -> list:
    """Apply merges by lowest rank until none applies (GPT-2 algorithm)."""
    word = list(symbols)
    while len(word) > 1:
        best = None
        best_rank = None
        for a, b in zip(word, word[1:]):
            r = ranks.get((a, b))
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = (a, b), r
        if best is None:
            break
        a, b = best
        merged = []
        i = 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


class BPETokenizer:
    def __init__(self, vocab: dict, merges: list, special: dict):
        self.vocab = dict(vocab)                       # token string -> id
        self.merges = [tuple(m) for m in merges]       # [(a, b)] in rank order
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.special = dict(special)                   # special text -> id
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        for t, i in self.special.items():
            self.id_to_token[i] = t
        self._cache = {}

    # ---- encode / decode
    def encode_word(self, word: str) -> list:
        ids = self._cache.get(word)
        if ids is None:
            ids = [self.vocab[s] for s in bpe_merge(word_to_symbols(word), self.ranks)]
            if len(self._cache) < 500000:
                self._cache[word] = ids
        return ids

    def encode(self, text: str, allow_special: bool = True) -> list:
        ids = []
        for seg, sid in self._split_special(text, allow_special):
            if sid is not None:
                ids.append(sid)
            else:
                for w in pretokenize(seg):
                    ids.extend(self.encode_word(w))
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        out = bytearray()
        for i in ids:
            t = self.id_to_token[int(i)]
            if t in self.special:
                if not skip_special:
                    out.extend(t.encode("utf-8"))
                continue
            out.extend(CHAR2BYTE[ch] for ch in t)
        return out.decode("utf-8", errors="replace")

    def _split_special(self, text: str, allow_special: bool):
        if not allow_special or not self.special:
            return [(text, None)] if text else []
        parts = []
        i = 0
        while i < len(text):
            # leftmost occurrence of any special token (longest first on ties)
            best = None
            for s in sorted(self.special, key=len, reverse=True):
                p = text.find(s, i)
                if p >= 0 and (best is None or p < best[0]):
                    best = (p, s)
            if best is None:
                parts.append((text[i:], None))
                break
            p, s = best
            if p > i:
                parts.append((text[i:p], None))
            parts.append((s, self.special[s]))
            i = p + len(s)
        return parts

    # ---- HF tokenizer.json
    def to_hf_json(self) -> dict:
        added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for t, i in sorted(self.special.items(), key=lambda x: x[1])]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                # the special token is listed in vocab too (as in GPT-2's tokenizer.json);
                # it is matched as an added token before BPE, so BPE never produces it.
                "vocab": dict(sorted({**self.vocab, **self.special}.items(), key=lambda x: x[1])),
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_hf_json(), f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def from_hf_json(cls, j: dict) -> "BPETokenizer":
        m = j["model"]
        if m.get("type") != "BPE":
            raise ValueError("not a BPE tokenizer.json")
        pt = j.get("pre_tokenizer") or {}
        if pt.get("type") != "ByteLevel" or pt.get("add_prefix_space") or not pt.get("use_regex", True):
            raise ValueError("only ByteLevel(add_prefix_space=false, use_regex=true) is supported")
        merges = []
        for mm in m["merges"]:
            a, b = mm.split(" ") if isinstance(mm, str) else mm
            merges.append((a, b))
        special = {t["content"]: t["id"] for t in j.get("added_tokens", []) if t.get("special")}
        vocab = {t: i for t, i in m["vocab"].items() if t not in special}
        return cls(vocab, merges, special)

    @classmethod
    def load(cls, path: str) -> "BPETokenizer":
        with open(path, encoding="utf-8") as f:
            return cls.from_hf_json(json.load(f))

    @property
    def vocab_size(self) -> int:
        return max(self.id_to_token) + 1


# ------------------------------------------------------------------ training --

def train_bpe(texts, vocab_size: int = 4096, verbose: bool = False) -> BPETokenizer:
    """Train byte-level BPE on an iterable of texts. Layout: see module docstring."""
    n_merges = vocab_size - 257
    freq = collections.Counter()
    for t in texts:
        freq.update(pretokenize(t))
    words = [word_to_symbols(w) for w in freq]
    counts = [freq[w] for w in freq]

    pair_count = collections.Counter()
    pair_where = collections.defaultdict(set)       # pair -> indices of words containing it
    for wi, (syms, c) in enumerate(zip(words, counts)):
        for p in zip(syms, syms[1:]):
            pair_count[p] += c
            pair_where[p].add(wi)

    merges = []
    while len(merges) < n_merges and pair_count:
        # most frequent pair; ties -> smallest (a, b) for determinism
        best = min(pair_count.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] <= 0:
            break
        (a, b) = best[0]
        merges.append((a, b))
        ab = a + b
        for wi in list(pair_where.get((a, b), ())):
            syms = words[wi]
            c = counts[wi]
            # remove this word's old pair contributions
            for p in zip(syms, syms[1:]):
                pair_count[p] -= c
                if pair_count[p] == 0:
                    del pair_count[p]
                ws = pair_where.get(p)
                if ws is not None:
                    ws.discard(wi)
            new = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    new.append(ab)
                    i += 2
                else:
                    new.append(syms[i])
                    i += 1
            words[wi] = new
            for p in zip(new, new[1:]):
                pair_count[p] += c
                pair_where[p].add(wi)
        pair_count.pop((a, b), None)
        pair_where.pop((a, b), None)
        if verbose and len(merges) % 500 == 0:
            print(f"  bpe: {len(merges)} merges, last {a!r}+{b!r}", file=sys.stderr)

    vocab = {}
    for byte in range(256):
        vocab[BYTE2CHAR[byte]] = 1 + byte
    for r, (a, b) in enumerate(merges):
        vocab[a + b] = 257 + r
    return BPETokenizer(vocab, merges, {SPECIAL: 0})


def selftest(tokenizer_path: str) -> int:
    """Checks against independent facts: (1) on ASCII text the scanner equals
    Python `re` running the GPT-2 pattern with ASCII classes; (2) decode(encode(x))
    == x on the held-out and calibration texts and on non-ASCII strings; (3) every
    merge's parts exist in the vocab and ids are dense 0..vocab_size-1."""
    import re
    ascii_pat = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    texts = []
    for name in ("data/heldout.txt", "data/calib.txt"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            texts.append(f.read())
    extra = ["  hi\n\n  there 's ''s ?'ll x\t\t\ny  \n", "a  b   c\n \n", "'S 'LL 're've", " 12ab3 !! ", "\n"]
    ok = True
    for t in texts + extra:
        a = "".join(ch for ch in t if ord(ch) < 128)
        if pretokenize(a) != ascii_pat.findall(a):
            print("FAIL pretokenize != re on ASCII text"); ok = False
    tok = BPETokenizer.load(tokenizer_path)
    for t in texts + extra + ["Cæsar naïve 日本語 🙂\u00a0x\u2003y", "<|endoftext|>a<|endoftext|>"]:
        if tok.decode(tok.encode(t)) != t:
            print("FAIL roundtrip", repr(t[:40])); ok = False
    if sorted(tok.id_to_token) != list(range(tok.vocab_size)):
        print("FAIL ids not dense"); ok = False
    for a, b in tok.merges:
        if a not in tok.vocab or b not in tok.vocab or a + b not in tok.vocab:
            print("FAIL merge parts", a, b); ok = False
            break
    print("selftest", "OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "train":
        vs = 4096
        if "--vocab" in argv:
            vs = int(argv[argv.index("--vocab") + 1])
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import prepare_data
        tok = train_bpe([t for _, t in prepare_data.train_docs()], vs, verbose=True)
        tok.save(argv[1])
        print(f"saved {argv[1]}: vocab {tok.vocab_size}, {len(tok.merges)} merges")
    elif len(argv) >= 2 and argv[0] == "selftest":
        return selftest(argv[1])
    elif len(argv) >= 3 and argv[0] == "encode":
        tok = BPETokenizer.load(argv[1])
        ids = tok.encode(argv[2])
        print(json.dumps(ids))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
