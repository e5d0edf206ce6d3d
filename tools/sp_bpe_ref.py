#!/usr/bin/python3
"""Reference SentencePiece-style BPE (Llama-2 / Mistral tokenizer.json layout),
written from Hugging Face `tokenizers` semantics, independent of the C code.
Used by tools/make_tokenizer_fixtures.py to compute expected ids.

tokenizer.json layout handled (Llama-2):
  normalizer      Sequence[Prepend("▁"), Replace(" " -> "▁")]
  pre_tokenizer   null   (the whole segment is one BPE word)
  model           BPE, byte_fallback=true, fuse_unk=true, unk_token "<unk>"
  decoder         Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  post_processor  TemplateProcessing "<s> $A"

Encoding:
 1. added tokens split the input (leftmost occurrence, longest on ties);
    each becomes its id;
 2. each non-empty remaining segment: prepend "▁", replace " " by "▁";
 3. symbols: each character, if in the vocab; else its UTF-8 bytes as
    <0xNN> tokens (byte_fallback); else <unk> (consecutive unks fused).
    Input bytes that are not valid UTF-8 arrive here as lone surrogates
    (errors="surrogateescape") and fall back to their byte;
 4. BPE: repeatedly merge the adjacent pair with the lowest merge rank,
    leftmost among equal ranks, until no adjacent pair has a rank.
Decoding: <0xNN> tokens -> that byte, other tokens -> text with "▁" -> " ",
concatenated; one leading space of the whole text is removed (Strip).
Returns bytes (no U+FFFD substitution, unlike HF for invalid UTF-8).
"""
from __future__ import annotations

import collections

META = "\u2581"


def _char_bytes(ch: str) -> bytes:
    return ch.encode("utf-8", "surrogateescape")


class SPBPE:
    def __init__(self, vocab: dict, merges: list, added: dict, unk: str = "<unk>",
                 scheme: str = "prepend", split: bool = False):
        # scheme "prepend": Llama-2 normalizer, "▁" before every non-empty segment.
        # scheme "first" / "always": Metaspace pre-tokenizer: spaces -> "▁", then
        # "▁" prepended unless the segment already starts with one ("first": only
        # the segment at offset 0 of the input); split: a new word at each "▁".
        self.scheme, self.split = scheme, split
        self.vocab = dict(vocab)                    # piece -> id
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.added = dict(added)                    # content -> id
        self.unk = unk
        self.id_to_piece = {i: p for p, i in self.vocab.items()}
        self.added_by_id = {i: c for c, i in self.added.items()}

    # ---------------------------------------------------------- encode
    def _split_added(self, text: str):
        out, i = [], 0
        while i < len(text):
            best = None
            for c in self.added:
                p = text.find(c, i)
                if p >= 0 and (best is None or p < best[0] or (p == best[0] and len(c) > len(best[1]))):
                    best = (p, c)
            if best is None:
                out.append((text[i:], None))
                break
            p, c = best
            if p > i:
                out.append((text[i:p], None))
            out.append((c, self.added[c]))
            i = p + len(c)
        return out

    def _symbols(self, word: str) -> list:
        syms = []
        for ch in word:
            if ch in self.vocab:
                syms.append(ch)
                continue
            pieces = ["<0x%02X>" % b for b in _char_bytes(ch)]
            if all(p in self.vocab for p in pieces):
                syms.extend(pieces)
            elif self.unk in self.vocab and not (syms and syms[-1] == self.unk):
                syms.append(self.unk)
        return syms

    def _bpe(self, syms: list) -> list:
        syms = list(syms)
        while True:
            best = None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                return syms
            _, i = best
            syms[i:i + 2] = [syms[i] + syms[i + 1]]

    def encode_bytes(self, data: bytes, add_bos: bool = False, bos: int | None = None) -> list:
        text = data.decode("utf-8", "surrogateescape")
        ids = [bos] if add_bos and bos is not None else []
        offset = 0
        for seg, aid in self._split_added(text):
            at_start = offset == 0
            offset += len(seg)
            if aid is not None:
                ids.append(aid)
                continue
            if not seg:
                continue
            if self.scheme == "prepend":
                norm = META + seg.replace(" ", META)
            else:
                norm = seg.replace(" ", META)
                if not norm.startswith(META) and (self.scheme == "always" or at_start):
                    norm = META + norm
            words = [norm]
            if self.split:
                words, cur = [], ""
                for ch in norm:
                    if ch == META and cur:
                        words.append(cur)
                        cur = ""
                    cur += ch
                words.append(cur)
            for word in words:
                ids.extend(self.vocab[s] for s in self._bpe(self._symbols(word)))
        return ids

    # ---------------------------------------------------------- decode
    def decode_bytes(self, ids) -> bytes:
        out = bytearray()
        for i in ids:
            if i in self.added_by_id:
                out += self.added_by_id[i].encode("utf-8")
                continue
            p = self.id_to_piece[i]
            if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                out.append(int(p[3:5], 16))
            else:
                out += p.replace(META, " ").encode("utf-8")
        if out[:1] == b" ":
            del out[0]
        return bytes(out)


def train(texts, n_merges: int, min_char_count: int = 2):
    """Small SentencePiece-like BPE trainer for fixtures. Words are the
    normalized text split before each "▁"; the alphabet is every character
    seen at least min_char_count times (the rest is left to byte fallback).
    Layout: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF>=3..258, alphabet, merges.
    Ties in pair frequency go to the lexicographically smallest pair."""
    words = collections.Counter()
    chars = collections.Counter()
    for t in texts:
        norm = META + t.replace(" ", META)
        for w in norm.split(META):
            w = META + w
            words[w] += 1
            chars.update(w)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for ch in sorted(c for c, n in chars.items() if n >= min_char_count):
        vocab[ch] = len(vocab)
    seqs = {w: [c if c in vocab else "\0" for c in w] for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, s in seqs.items():
            for a, b in zip(s, s[1:]):
                if a != "\0" and b != "\0":
                    pairs[(a, b)] += words[w]
        if not pairs:
            break
        (a, b), cnt = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if cnt < 2:
            break
        merges.append((a, b))
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        for w, s in seqs.items():
            i, new = 0, []
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    new.append(a + b)
                    i += 2
                else:
                    new.append(s[i])
                    i += 1
            seqs[w] = new
    return vocab, merges


def to_hf_json_metaspace(vocab: dict, merges: list, prepend_scheme: str, split: bool) -> dict:
    """The newer export of the same model: Metaspace pre-tokenizer, no normalizer."""
    j = to_hf_json(vocab, merges)
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": META, "prepend_scheme": prepend_scheme, "split": split}
    return j


def to_hf_json(vocab: dict, merges: list) -> dict:
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c, i in (("<unk>", 0), ("<s>", 1), ("</s>", 2))]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": META},
            {"type": "Replace", "pattern": {"String": " "}, "content": META}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": META}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }
