#!/usr/bin/python3
"""Writes the tokenizer fixtures and their expected ids:

  tests/fixtures/tok_bytelevel.json    byte-level BPE, GPT-2 regex, "a b" merges
  tests/fixtures/tok_llama3style.json  Split(Llama-3 regex) + ByteLevel(use_regex=false),
                                       ignore_merges, [a, b] merges, bos template
  tests/fixtures/tok_sp.json           SentencePiece-style BPE (Llama-2 layout), byte_fallback
  tests/fixtures/tok_sp_meta.json      the same model as a Metaspace(first, split) export,
                                       with two merges across "▁"
  tests/fixtures/tokenizer_cases.json  for each tokenizer (plus models/default/tokenizer.json
                                       when it exists): tricky and random inputs (hex) with
                                       the expected ids and decoded bytes

Expected ids come from Python references that share no code with the C
tokenizer: tools/bpe_tokenizer.py (the TRAIN helper's byte-level BPE, GPT-2
scanner and merge loop), a Llama-3 scanner below, and tools/sp_bpe_ref.py.
Inputs that are not valid UTF-8 go through errors="surrogateescape": a bad
byte becomes a lone surrogate, which is "other" for the regexes and maps back
to its byte.

When the `regex` module is importable (the pyenv python3 has it; Debian's
/usr/bin/python3 does not), the hand-written Python scanners are also checked
against the real regexes on every case and on random strings:
    python3 tools/make_tokenizer_fixtures.py --check-regex
Generate with Debian's Python (unicodedata 14.0; the C tables are Unicode
16.0, and these cases use no character whose class differs between the two;
the Unicode 15-16 characters are covered by make_hf_tokenizer_fixtures.js):
    /usr/bin/python3 tools/make_tokenizer_fixtures.py
"""
from __future__ import annotations

import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, HERE)

import bpe_tokenizer as bt  # noqa: E402
import sp_bpe_ref  # noqa: E402

GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_RE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
             r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's a lazy dog, after all.",
    "She said: \"We'll meet at 10:30, won't we?\" He replied, \"I'm not sure, they're late again.\"",
    "In 2023 the company shipped 12,345 units, up from 9,876 in 2022 (an increase of 24.99%).",
    "def tokenize(text):\n    return [t for t in text.split() if t]\n\nprint(tokenize('hello world'))\n",
    "Tokenization is the process of turning text into tokens; tokens are then turned into ids.",
    "Le café était très bon, et l'élève a mangé une crème brûlée à côté de la fenêtre.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Straße, Größe, Mädchen.",
    "中文分词是自然语言处理的基础。日本語のテキストも少し。한국어도 조금.",
    "Emoji: 👍 👍🏽 🎉 ❤️ — and a family 👨‍👩‍👧 with zero-width joiners.",
    "Numbers like 3.14159, 2.71828 and 1,000,000 appear often; so do dates like 2024-01-15.",
    "Contractions: I'd, you'd, he'll, she's, it's, we've, they're, can't, won't, shouldn't.",
    "   Leading spaces, trailing spaces   \n\n\tTabs\tand\r\nwindows line endings\r\n",
    "the the the the of of and and to to in in is is that that for for with with on on as as",
    "Once upon a time there was a little girl who lived in a village near the forest.",
    "Whenever she went out, the little girl wore a red riding cloak, so everyone called her Red.",
]
TRAIN_TEXT = TRAIN_TEXT * 3

CASES = [
    b"", b" ", b"  ", b"     ", b"a", b"Hello", b" Hello", b"Hello world", b"Hello  world", b"Hello   world  ",
    b"\n", b"\n\n", b"line1\nline2", b"line1\r\nline2\r\n", b"a \n b", b"  \n  x", b"\t", b"\ttabbed\tword",
    b"x\t\t y", b"it's", b"I'll", b"they're", b"WE'RE HERE'S", b"'s", b"'sup", b"''", b"don't'll",
    b"12345", b"1 2 34 567 8901", b"3.14159", b"v1.2.3-rc4", b"$100,000.00!", b"!!!???...", b"((a))", b"-->",
    b"a--b", b"#include <stdio.h>", b"x = y + z * (w - 1);", b"https://example.com/a?b=c&d=e",
    "café".encode(), "naïve résumé".encode(), "e\u0301".encode(), "Ünïcödé ÄÖÜ ß".encode(),
    "中文".encode(), "中文 分词".encode(), "日本語テキスト".encode(), "한국어".encode(),
    "👍".encode(), "👍🏽".encode(), "👨\u200d👩\u200d👧".encode(), "a\u200db".encode(), "❤️".encode(),
    "non\u00a0breaking\u3000space".encode(), "ſs long s 'ſ".encode(), "\u2028sep\u2029".encode(),
    "Ⅻ ½ ²".encode(), "\u0000nul".encode(), "\x1cfs\x1f".encode(), "▁meta▁space".encode(),
    b"supercalifragilisticexpialidocious " * 3, b"tokenization tokenization", b"x" * 700,
    b"The quick brown fox jumps over the lazy dog. " * 4,
    b"\xff", b"\x80abc", b"abc\xc3", b"\xc3\x28", b"\xe2\x82", b"\xe2\x82 x", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xc0\xaf", b"caf\xe9 latin1", b"\xf0\x9f\x91", b" \xff\xfe ",
    b"a\xffb\xfe\xfd c", b"'\xff", b"1\xff2", b"x\xe0\x81\x81y", b"x\xc1\x81y", b"x\xed\x9f\xbfy",
    b"x\xf0\x8f\xbf\xbfy", "it'ſok 'ſ".encode(),
]
SPECIAL_CASES = {
    "bl": [b"<|endoftext|>", b"Hello<|endoftext|>world", b"a <|endoftext|> b", b"<|end|><|endoftext|>",
           b"<|end|>x<|end", b"<|endoftext|><|endoftext|>", b"<|endoftext"],
    "llama3": [b"<|begin_of_text|>Hi", b"x<|eot_id|> y", b"<|end_of_text|>\n", b"<|eot_id", b"<|begin_of_text|>"],
    "sp": [b"<s>", b"Hello</s>world", b"a <s> b", b"</s></s>", b"<unk>x"],
}
RANDOM_PIECES = ["a", "b", "e", "t", "th", "he", "the", "The", " ", " ", "  ", "\n", "\r\n", "\t", "'", "s",
                 "'s", "'S", "'ll", "ll", "1", "23", "4567", ".", ",", "!", "?", "(", ")", "-", "é", "ü", "中",
                 "文", "👍", "🏽", "\u0301", "\u200d", "\u00a0", "\u3000", "ſ", "Ⅻ", "½", "\x00", "\x1c", "▁",
                 "dog", " quick", "tokenization", "\x0b", "\x85", "\u2028", "\r", " \n", "A", "RE"]
RANDOM_BYTES = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80", b"\xf0\x9f"]


# ------------------------------------------------------------ references

def is_l(c):
    return unicodedata.category(c)[0] == "L"


def is_n(c):
    return unicodedata.category(c)[0] == "N"


def is_s(c):
    return c in bt.WHITESPACE


def is_o(c):
    return not (is_l(c) or is_n(c) or is_s(c))


def llama3_pretokenize(text: str, max_digits: int = 3) -> list:
    """The Llama-3 regex, alternative by alternative (leftmost-first, greedy)."""
    out, i, n = [], 0, len(text)

    def run(j, pred):
        while j < n and pred(text[j]):
            j += 1
        return j

    while i < n:
        c = text[i]
        k = None
        if c == "'" and i + 1 < n:                                   # (?i:'s|'t|'re|'ve|'m|'ll|'d)
            for suf in ("s", "t", "re", "ve", "m", "ll", "d"):
                cand = text[i + 1:i + 1 + len(suf)]
                if len(cand) == len(suf) and all(x.lower() == y or (y == "s" and x == "ſ") for x, y in zip(cand, suf)):
                    k = i + 1 + len(suf)
                    break
        if k is None and is_l(c):                                    # [^\r\n\p{L}\p{N}]?\p{L}+
            k = run(i, is_l)
        if k is None and c not in "\r\n" and not is_n(c) and i + 1 < n and is_l(text[i + 1]):
            k = run(i + 1, is_l)
        if k is None and is_n(c):                                    # \p{N}{1,3}
            k = i
            while k < n and k - i < max_digits and is_n(text[k]):
                k += 1
        if k is None:                                                # ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            j = i + 1 if c == " " and i + 1 < n and is_o(text[i + 1]) else i
            if j > i or is_o(c):
                k = run(j, is_o)
                k = run(k, lambda x: x in "\r\n")
        if k is None:                                                # \s*[\r\n]+
            j = run(i, is_s)
            nl = [p for p in range(i, j) if text[p] in "\r\n"]
            if nl:
                k = nl[-1] + 1
            else:                                                    # \s+(?!\S) | \s+
                k = j if (j == n or j - i == 1) else j - 1
        out.append(text[i:k])
        i = k
    return out


def split_special(text: str, special: dict):
    return bt.BPETokenizer({}, [], special)._split_special(text, True)


class ByteLevelRef:
    """HF byte-level BPE on top of tools/bpe_tokenizer.py's pieces."""

    def __init__(self, vocab, merges, special, scanner, ignore_merges=False):
        self.vocab, self.special, self.scanner, self.ignore_merges = vocab, special, scanner, ignore_merges
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.id_to = {i: t for t, i in vocab.items()}
        self.id_to.update({i: t for t, i in special.items()})

    def encode_bytes(self, data: bytes) -> list:
        text = data.decode("utf-8", "surrogateescape")
        ids = []
        for seg, sid in split_special(text, self.special):
            if sid is not None:
                ids.append(sid)
                continue
            for w in self.scanner(seg):
                syms = [bt.BYTE2CHAR[b] for b in w.encode("utf-8", "surrogateescape")]
                if self.ignore_merges and "".join(syms) in self.vocab:
                    ids.append(self.vocab["".join(syms)])
                    continue
                ids.extend(self.vocab[s] for s in bt.bpe_merge(syms, self.ranks))
        return ids

    def decode_bytes(self, ids) -> bytes:
        out = bytearray()
        for i in ids:
            t = self.id_to[i]
            if t in self.special:
                out += t.encode("utf-8")
            else:
                out += bytes(bt.CHAR2BYTE[c] for c in t)
        return bytes(out)


# ------------------------------------------------------------ fixtures

def make_bytelevel():
    tok = bt.train_bpe(TRAIN_TEXT, vocab_size=257 + 300)
    special = {bt.SPECIAL: 0, "<|end|>": tok.vocab_size}
    tok = bt.BPETokenizer(tok.vocab, tok.merges, special)
    return tok.to_hf_json(), ByteLevelRef(tok.vocab, tok.merges, special, bt.pretokenize)


def make_llama3(bl_json):
    m = bl_json["model"]
    vocab = {t: i for t, i in m["vocab"].items() if t != bt.SPECIAL}   # id 0 stays free
    merges = [tuple(x.split(" ")) for x in m["merges"]]
    ranks = {mm: r for r, mm in enumerate(merges)}
    # whole words that BPE alone does not reach: ignore_merges must emit them
    extra = []
    # ("'ſ" and the overlong bytes E0 81 81 make the scanner's contraction
    # and UTF-8 validity decisions visible in the ids)
    for w in [b" tokenization", b" supercalifragilisticexpialidocious", b"ello", b" quick",
              "'ſ".encode(), b"\xe0\x81\x81"]:
        mapped = "".join(bt.BYTE2CHAR[b] for b in w)
        if mapped in vocab:
            continue
        assert len(bt.bpe_merge(list(mapped), ranks)) > 1
        extra.append(mapped)
    nid = max(vocab.values()) + 1
    for e in extra:
        vocab[e] = nid
        nid += 1
    special = {"<|begin_of_text|>": nid, "<|end_of_text|>": nid + 1, "<|eot_id|>": nid + 2}
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c, i in special.items()]
    j = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [nid], "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    return j, ByteLevelRef(vocab, merges, special, llama3_pretokenize, ignore_merges=True)


def make_sp():
    vocab, merges = sp_bpe_ref.train(TRAIN_TEXT, n_merges=300)
    ref = sp_bpe_ref.SPBPE(vocab, merges, {"<unk>": 0, "<s>": 1, "</s>": 2})
    return sp_bpe_ref.to_hf_json(vocab, merges), ref


def make_sp_meta():
    """Metaspace(prepend_scheme=first, split=true) over the same model, plus two
    merges across a "▁" ("e▁", "s▁") that only an unsplit word could use:
    they make the split visible in the ids."""
    vocab, merges = sp_bpe_ref.train(TRAIN_TEXT, n_merges=300)
    M = sp_bpe_ref.META
    for a in ("e", "s"):
        merges.insert(0, (a, M))
        vocab[a + M] = len(vocab)
    ref = sp_bpe_ref.SPBPE(vocab, merges, {"<unk>": 0, "<s>": 1, "</s>": 2}, scheme="first", split=True)
    return sp_bpe_ref.to_hf_json_metaspace(vocab, merges, "first", True), ref


def random_cases(rng, with_bytes: bool, n: int):
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if with_bytes and rng.random() < 0.1:
                parts.append(rng.choice(RANDOM_BYTES))
            else:
                parts.append(rng.choice(RANDOM_PIECES).encode())
        out.append(b"".join(parts))
    return out


def check_regex(rng):
    import regex  # noqa: F401  (only with --check-regex)
    g, l3 = regex.compile(GPT2_RE), regex.compile(LLAMA3_RE)
    texts = [c.decode("utf-8", "surrogateescape") for c in CASES + random_cases(rng, True, 3000)]
    bad = 0
    for t in texts:
        if g.findall(t) != bt.pretokenize(t):
            bad += 1
            print("GPT-2 scanner differs:", repr(t), g.findall(t), bt.pretokenize(t))
        if l3.findall(t) != llama3_pretokenize(t):
            bad += 1
            print("Llama-3 scanner differs:", repr(t), l3.findall(t), llama3_pretokenize(t))
    print(f"regex check: {len(texts)} strings, {bad} mismatches (regex {regex.__version__}, "
          f"unicodedata {unicodedata.unidata_version})")
    return bad == 0


def main(argv):
    rng = random.Random(1234)
    if "--check-regex" in argv:
        return 0 if check_regex(rng) else 1
    bl_json, bl_ref = make_bytelevel()
    l3_json, l3_ref = make_llama3(bl_json)
    sp_json, sp_ref = make_sp()
    spm_json, spm_ref = make_sp_meta()
    tokenizers = [
        ("tok_bytelevel.json", bl_json, bl_ref, "bl", 0, 0, True),
        ("tok_llama3style.json", l3_json, l3_ref, "llama3", None, None, True),
        ("tok_sp.json", sp_json, sp_ref, "sp", 1, 2, False),
        ("tok_sp_meta.json", spm_json, spm_ref, "sp_meta", 1, 2, False),
    ]
    for name, j, *_ in tokenizers:
        with open(os.path.join(FIX, name), "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=None, separators=(",", ":"))
            f.write("\n")

    default = os.path.join(ROOT, "models", "default", "tokenizer.json")
    entries = []
    plan = [(f"{n}", j, r, k, bos, eos, rb) for n, j, r, k, bos, eos, rb in tokenizers]
    if os.path.exists(default):
        tok = bt.BPETokenizer.load(default)
        with open(default, encoding="utf-8") as f:
            dj = json.load(f)
        ref = ByteLevelRef(tok.vocab, tok.merges, tok.special, bt.pretokenize)
        plan.append(("../../models/default/tokenizer.json", dj, ref, "bl", None, None, True))
    for name, j, ref, kind, bos, eos, bytes_ok in plan:
        if kind == "llama3":
            bos = j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"][0]
            eos = next(t["id"] for t in j["added_tokens"] if t["content"] == "<|end_of_text|>")
        if name.startswith("../"):
            bos = eos = tok.special[bt.SPECIAL]
        specials = SPECIAL_CASES["sp" if kind.startswith("sp") else "bl" if kind == "bl" else "llama3"]
        if name.startswith("../"):
            specials = [s for s in SPECIAL_CASES["bl"] if b"<|end|>" not in s]
        # SentencePiece: a literal "▁" in the input decodes as a space, and text
        # after an added token gets its own "▁" prefix: no round trip there.
        # Metaspace "first" also drops a leading space of the input.
        sp = kind.startswith("sp")
        inputs = [(c, True) for c in CASES] + [(c, not sp) for c in specials]
        inputs += [(c, True) for c in random_cases(rng, True, 150)]
        inputs = [(c, rt and (not sp or "\u2581".encode() not in c)) for c, rt in inputs]
        if kind == "sp_meta":
            inputs = [(c, rt and not c.startswith(b" ")) for c, rt in inputs]
        cases = []
        for data, roundtrip in inputs:
            ids = ref.encode_bytes(data)
            dec = ref.decode_bytes(ids)
            if roundtrip:
                assert dec == data, (name, data, dec)
            case = {"hex": data.hex(), "ids": ids, "decoded_hex": dec.hex(), "roundtrip": roundtrip}
            try:
                case["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            cases.append(case)
        vocab_size = max(list(j["model"]["vocab"].values()) + [t["id"] for t in j["added_tokens"]]) + 1
        entries.append({"file": name, "vocab_size": vocab_size, "bos_id": bos, "eos_id": eos,
                        "byte_level": not sp, "leading_space_lost": kind == "sp_meta", "cases": cases})
        print(f"{name}: vocab {vocab_size}, {len(cases)} cases")
    out = {"generator": "tools/make_tokenizer_fixtures.py", "unicode": unicodedata.unidata_version,
           "tokenizers": entries}
    with open(os.path.join(FIX, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
