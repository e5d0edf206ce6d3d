"""Session.forward logits against float64 PyTorch references: the tiny
models of tests/fixtures/model_logits.safetensors (tools/llama_ref.py) and
the seven families of tests/fixtures/families (tools/family_ref.py), with
the bound of tests/test_model.c (max |diff| / max |ref| < 1e-3); the KV
cache (token by token, rewind) must agree with one full forward."""
import os
import unittest

import numpy as np

from util import FIX, read_safetensors, rel_diff, spqr


class Forward(unittest.TestCase):
    def test_tiny_models(self):
        fx, _ = read_safetensors(os.path.join(FIX, "model_logits.safetensors"))
        for name in ("tiny_gqa", "tiny_tied"):
            with spqr.Model(os.path.join(FIX, name)) as m:
                for k in range(2):
                    ids, ref = fx["%s.seq%d.ids" % (name, k)], fx["%s.seq%d.logits" % (name, k)]
                    with m.session(len(ids), n_threads=2) as s:
                        full = s.forward(ids, all_logits=True)
                        self.assertEqual(full.shape, ref.shape)
                        self.assertEqual(full.dtype, np.float32)
                        e = rel_diff(full, ref)
                        print("%s seq%d: rel diff %.3g" % (name, k, e))
                        self.assertLess(e, 1e-3)
                        self.assertEqual(s.pos, len(ids))
                        # the last-token form, and a rewind that re-feeds the tail
                        s.rewind(len(ids) - 5)
                        self.assertEqual(s.pos, len(ids) - 5)
                        last = s.forward(ids[-5:])
                        self.assertEqual(last.shape, (m.vocab_size,))
                        self.assertLess(rel_diff(last, full[-1]), 1e-4)
                        s.reset()
                        step = np.stack([s.forward(ids[t:t + 1]) for t in range(8)])
                        self.assertLess(rel_diff(step, full[:8]), 1e-4)

    def test_families(self):
        fx, meta = read_safetensors(os.path.join(FIX, "families", "logits.safetensors"))
        fams = meta["families"].split(",")
        self.assertGreaterEqual(len(fams), 7)
        for fam in fams:
            with spqr.Model(os.path.join(FIX, "families", fam)) as m:
                ids, ref = fx[fam + ".ids"], fx[fam + ".logits"]
                with m.session(len(ids), n_threads=1) as s:
                    e = rel_diff(s.forward(ids, all_logits=True), ref)
                # the fp16 KV cache: within tests/test_families.c's bound, and really rounded
                with m.session(len(ids), n_threads=1, kv_type="f16") as s:
                    h = s.forward(ids, all_logits=True)
                e16 = rel_diff(h, ref)
                print("%s: rel diff %.3g, KV f16 %.3g" % (fam, e, e16))
                self.assertLess(e, 1e-3, fam)
                self.assertLess(e16, 2e-3, fam)
                self.assertGreater(e16, e * 2, fam)

    def test_bad_input(self):
        with spqr.Model(os.path.join(FIX, "tiny_gqa")) as m, m.session(4, 1) as s:
            with self.assertRaises(spqr.SpqrError) as c:
                s.forward([1, 2, 3, 4, 5])  # past the context
            self.assertEqual(c.exception.status, spqr.Status.INVALID_ARG)
            with self.assertRaises(spqr.SpqrError):
                s.forward([10**6])  # not a token id
            with self.assertRaises(spqr.SpqrError):
                s.forward([])
            with self.assertRaises(spqr.SpqrError) as c:
                m.session(4, 1, kv_type="q8_0")
            self.assertEqual(c.exception.status, spqr.Status.INVALID_ARG)


if __name__ == "__main__":
    unittest.main()
