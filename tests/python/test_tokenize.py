"""tokenize/detokenize against the reference ids: tests/fixtures/tokenizer_cases.json
(tools/make_tokenizer_fixtures.py) and, when node_modules has them, the real
Llama-2/3, Qwen3 and Gemma tokenizers against Hugging Face's Rust tokenizers
(hf_tokenizer_cases.json)."""
import os
import unittest

import numpy as np

from util import FIX, ROOT, load_json, spqr


class Fixtures(unittest.TestCase):
    def test_tokenizer_cases(self):
        d = load_json(os.path.join(FIX, "tokenizer_cases.json"))
        n = 0
        for entry in d["tokenizers"]:
            path = os.path.join(FIX, entry["file"])
            if not os.path.exists(path):  # models/default: made by scripts/setup.sh
                continue
            with spqr.Tokenizer(path) as t:
                self.assertEqual(t.vocab_size, entry["vocab_size"], path)
                self.assertEqual((t.bos_id, t.eos_id), (entry["bos_id"], entry["eos_id"]), path)
                for c in entry["cases"]:
                    text = bytes.fromhex(c["hex"])
                    ids = t.encode(text)
                    self.assertEqual(ids.dtype, np.int32)
                    self.assertEqual(ids.tolist(), c["ids"], "%s %r" % (entry["file"], text))
                    self.assertEqual(t.decode_bytes(ids), bytes.fromhex(c["decoded_hex"]), entry["file"])
                    if c["roundtrip"] and text.decode("utf-8", "replace").encode() == text:
                        self.assertEqual(t.decode(ids), text.decode())
                    with_bos = t.encode(text, add_bos=True)
                    self.assertEqual(with_bos.tolist(), ([t.bos_id] if t.bos_id >= 0 else []) + c["ids"])
                    n += 1
        self.assertGreater(n, 100)
        print("%d tokenizer cases equal the reference" % n)

    def test_hugging_face_tokenizers(self):
        h = load_json(os.path.join(FIX, "hf_tokenizer_cases.json"))
        texts = h["lines"] + [h["document"], "\n".join(h["lines"])]
        ran = 0
        for e in h["tokenizers"]:
            path = os.path.join(ROOT, e["file"])
            if not os.path.exists(path):
                continue
            ran += 1
            with spqr.Tokenizer(path) as t:
                for i, (text, want) in enumerate(zip(texts, e["ids"])):
                    self.assertEqual(t.encode(text).tolist(), want, "%s text %d" % (e["name"], i))
                    self.assertEqual(t.decode(want), e.get("decoded", {}).get(str(i), text), "%s %d" % (e["name"], i))
        if not ran:
            self.skipTest("node_modules has none of the real tokenizers (npm ci --omit=dev)")
        print("%d Hugging Face tokenizers: %d texts each equal" % (ran, len(texts)))

    def test_model_tokenizer(self):
        with spqr.Model(os.path.join(FIX, "tiny_gqa")) as m:
            ids = m.tokenize("Hello world")
            self.assertEqual(m.detokenize(ids), "Hello world")
            with spqr.Tokenizer(os.path.join(FIX, "tiny_gqa", "tokenizer.json")) as t:
                self.assertEqual(t.encode("Hello world").tolist(), ids.tolist())
            self.assertEqual(m.tokenizer.vocab_size, 300)
            # streamed pieces concatenate to the decode
            pieces = b"".join(m.tokenizer.piece(p, i) for p, i in zip([-1] + ids[:-1].tolist(), ids.tolist()))
            self.assertEqual(pieces, b"Hello world")
            self.assertEqual(m.tokenize("").size, 0)
            self.assertEqual(m.tokenize("", add_bos=True).tolist(), [m.bos_id])


if __name__ == "__main__":
    unittest.main()
