"""generate(): greedy output is the argmax chain of forward logits of the
whole sequence recomputed from scratch; the pieces stream the decode of the
tokens; it stops at an EOS id (a copy of the fixture whose config names the
greedy chain's third token as EOS stops after two), at max_tokens and when
the context is full; chat messages go through the model's template; sampling
with the library's sampler is seeded (same seed, same text)."""
import os
import shutil
import tempfile
import unittest

import numpy as np

from util import FIX, load_json, spqr, write_json

MODEL = os.path.join(FIX, "tiny_gqa")


class Generate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = spqr.Model(MODEL)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def greedy_reference(self, prompt, n):
        """argmax of each full forward (no KV-cache reuse between steps)."""
        ids = list(prompt)
        for _ in range(n):
            with self.m.session(len(ids), 1) as s:
                ids.append(int(np.argmax(s.forward(ids, all_logits=True)[-1])))
        return ids[len(prompt):]

    def test_greedy_is_argmax_chain(self):
        g = self.m.generate("Once upon a time", max_tokens=24, n_threads=1)
        pieces = list(g)
        want = self.greedy_reference(g.prompt.tolist(), 24)
        self.assertEqual(g.tokens, want)
        self.assertEqual(g.stop_reason, "length")
        self.assertEqual(g.prompt.tolist(), self.m.tokenize("Once upon a time", add_bos=None).tolist())
        # the streamed pieces are the continuation's text
        full = self.m.detokenize_bytes(g.prompt.tolist() + g.tokens)
        head = self.m.detokenize_bytes(g.prompt.tolist())
        self.assertEqual("".join(pieces), full[len(head):].decode("utf-8", "replace"))
        print("greedy: %d tokens = argmax chain" % len(g.tokens))

    def test_stops_at_eos_and_context(self):
        chain = self.greedy_reference(self.m.tokenize("Hello"), 3)
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(MODEL, d, dirs_exist_ok=True)
            cfg = load_json(os.path.join(d, "config.json"))
            cfg["eos_token_id"] = [cfg.get("eos_token_id", 0), chain[2]]
            write_json(os.path.join(d, "config.json"), cfg)
            with spqr.Model(d) as m2:
                if chain[2] in chain[:2]:
                    self.skipTest("the greedy chain repeats its EOS candidate")
                g = m2.generate("Hello", max_tokens=50)
                g.text()
                self.assertEqual((g.tokens, g.stop_reason), (chain[:2], "eos"))
        g = self.m.generate("Hello", max_tokens=50, ctx=len(self.m.tokenize("Hello")) + 4)
        g.text()
        # ctx positions predict ctx - prompt + 1 tokens: the last is emitted, not fed
        self.assertEqual((len(g.tokens), g.stop_reason), (5, "context"))
        g = self.m.generate("Hello", max_tokens=0)
        self.assertEqual((g.text(), g.stop_reason), ("", "length"))

    def test_chat_messages(self):
        with self.assertRaises(spqr.SpqrError) as c:  # the fixture has no chat template
            self.m.generate(messages=[{"role": "user", "content": "hi"}])
        self.assertEqual(c.exception.status, spqr.Status.UNSUPPORTED)
        tmpl = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}" \
               "{% if add_generation_prompt %}<assistant>{% endif %}"
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(MODEL, d, dirs_exist_ok=True)
            write_json(os.path.join(d, "tokenizer_config.json"), {"chat_template": tmpl})
            with spqr.Model(d) as m2:
                msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
                text = "<system>Be brief.\n<user>Hi there\n<assistant>"
                self.assertEqual(m2.chat_render(msgs), text)
                g = m2.generate(messages=msgs, max_tokens=6)
                g.text()
                self.assertEqual(g.prompt.tolist(), m2.tokenize(text).tolist())
                self.assertEqual(g.tokens, self.greedy_reference(m2.tokenize(text), 6))

    def test_sampling(self):
        if not spqr._lib.has("spqr_sampler_create"):
            with self.assertRaises(spqr.SpqrError) as c:
                self.m.generate("Hello", temperature=0.8)
            self.assertEqual(c.exception.status, spqr.Status.UNSUPPORTED)
            self.skipTest("this libspqr has no public sampler")
        a = self.m.generate("Hello", max_tokens=30, temperature=1.0, top_p=0.95, seed=7)
        b = self.m.generate("Hello", max_tokens=30, temperature=1.0, top_p=0.95, seed=7)
        c = self.m.generate("Hello", max_tokens=30, temperature=1.0, top_p=0.95, seed=8)
        self.assertEqual(a.text(), b.text())
        c.text()
        self.assertEqual(a.tokens, b.tokens)
        self.assertNotEqual(a.tokens, c.tokens)
        # a nucleus this small holds only the most likely token: greedy
        t = self.m.generate("Hello", max_tokens=10, temperature=1.0, top_p=1e-6, seed=3)
        t.text()
        self.assertEqual(t.tokens, self.greedy_reference(self.m.tokenize("Hello"), 10))
        # the sampler alone: the frequencies of its draws follow softmax(logits / T)
        logits = np.array([0.0, 1.0, 2.0, -1.0], np.float32)
        with spqr.Sampler(4, temperature=1.0, top_p=1.0, seed=1) as s:
            draws = np.bincount([s.sample(logits) for _ in range(20000)], minlength=4) / 20000
        p = np.exp(logits) / np.exp(logits).sum()
        self.assertLess(np.max(np.abs(draws - p)), 0.02)
        with spqr.Sampler(4, temperature=0.0) as s:
            self.assertEqual(s.sample(np.array([1, 3, 3, 0], np.float32)), 1)  # the first maximum
        with self.assertRaises(spqr.SpqrError):
            spqr.Sampler(4, temperature=1.0, top_p=0.0)

    def test_bad_arguments(self):
        with self.assertRaises(spqr.SpqrError):
            self.m.generate("x", ctx=10**6)
        with self.assertRaises(spqr.SpqrError):
            self.m.generate()


if __name__ == "__main__":
    unittest.main()
