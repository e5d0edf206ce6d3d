"""perplexity(): exp(mean NLL) of the same windows computed here in numpy
(float64 log-softmax of Session.forward logits), and the PyTorch reference
of tests/fixtures/model_ppl.json (tools/llama_ref.py) for the spqr protocol;
the llamacpp protocol scores the second half of BOS-led windows; progress
is reported per window and a cancel stops the run."""
import os
import tempfile
import threading
import unittest
from unittest import mock

import numpy as np

from util import FIX, load_json, log_softmax, read_text, spqr

MODEL = os.path.join(FIX, "tiny_gqa")


def numpy_kl(sb, so, ids, ctx, windows):
    """Sum of KL(base || other) over the first windows back-to-back windows
    of ctx tokens (every row but the last), the rows whose argmax agrees,
    and the rows: sb and so are sessions of the base and the other run."""
    kl, agree, n = 0.0, 0, 0
    for w in range(windows):
        win = ids[w * ctx:(w + 1) * ctx]
        sb.reset()
        so.reset()
        lb = log_softmax(sb.forward(win, all_logits=True))[:-1]
        lo = log_softmax(so.forward(win, all_logits=True))[:-1]
        kl += float((np.exp(lb) * (lb - lo)).sum())
        agree += int((lb.argmax(1) == lo.argmax(1)).sum())
        n += ctx - 1
    return kl, agree, n


def numpy_ppl(m, ids, ctx, first_row, bos=None):
    """exp(mean NLL) over back-to-back windows of ctx tokens of ids, the
    logits rows first_row..ctx-2 of each scored on the token after them;
    with bos (llama.cpp), the text starts with it and it replaces each
    window's first token."""
    ids = ([bos] if bos is not None else []) + list(ids)
    nll, n = 0.0, 0
    with m.session(ctx, 2) as s:
        for w in range(len(ids) // ctx):
            win = np.array(ids[w * ctx:(w + 1) * ctx], np.int32)
            if bos is not None:
                win[0] = bos
            s.reset()
            lp = log_softmax(s.forward(win, all_logits=True))
            for j in range(first_row, ctx - 1):
                nll -= lp[j, win[j + 1]]
                n += 1
    return float(np.exp(nll / n)), n


@unittest.skipUnless(spqr._lib.has("spqr_model_perplexity"), "this libspqr has no public perplexity")
class Perplexity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = spqr.Model(MODEL)
        cls.text = read_text(os.path.join(FIX, "model_text.txt"))

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def test_spqr_protocol(self):
        ref = load_json(os.path.join(FIX, "model_ppl.json"))
        ids = self.m.tokenize(self.text, add_bos=False)
        for ctx in (32, 64):
            r = self.m.perplexity(self.text, ctx=ctx, n_threads=2)
            want, n = numpy_ppl(self.m, ids, ctx, 0)
            torch_ref = ref["ctx%d" % ctx]
            print("ctx %d: ppl %.6f, numpy %.6f, PyTorch %.6f over %d tokens"
                  % (ctx, r["ppl"], want, torch_ref["ppl"], r["n_scored"]))
            self.assertEqual(r["n_scored"], n)
            self.assertEqual(r["n_scored"], torch_ref["tokens_scored"])
            self.assertEqual(r["n_windows"], torch_ref["windows"])
            self.assertLess(abs(r["ppl"] / want - 1), 1e-6)
            self.assertLess(abs(r["ppl"] / torch_ref["ppl"] - 1), 1e-4)
            self.assertAlmostEqual(np.exp(r["nll_mean"]), r["ppl"], delta=1e-9 * r["ppl"])
            # the same from token ids
            t = self.m.perplexity(tokens=ids, ctx=ctx, n_threads=2)
            self.assertEqual(t["ppl"], r["ppl"])

    def test_llamacpp_protocol(self):
        ids = self.m.tokenize(self.text, add_bos=False)
        ctx = 32
        r = self.m.perplexity(self.text, protocol="llamacpp", ctx=ctx, n_threads=2)
        bos = self.m.bos_id if self.m.adds_bos else None
        want, n = numpy_ppl(self.m, ids, ctx, ctx // 2, bos=bos)
        print("llamacpp ctx %d: ppl %.6f, numpy %.6f over %d tokens" % (ctx, r["ppl"], want, r["n_scored"]))
        self.assertEqual(r["n_scored"], n)
        self.assertLess(abs(r["ppl"] / want - 1), 1e-6)

    def test_kl_against_base(self):
        """KL(base || quantized) and top-1 agreement vs numpy over both models' forward logits."""
        ctx = 32
        with tempfile.TemporaryDirectory() as d:
            base, q = os.path.join(d, "base.kl"), os.path.join(d, "q.spqr")
            r0 = self.m.perplexity(self.text, ctx=ctx, chunks=6, kl_base_out=base, n_threads=2)
            self.assertTrue(os.path.isfile(base))
            same = self.m.perplexity(self.text, ctx=ctx, chunks=6, kl_in=base, n_threads=2)
            self.assertTrue(same["has_kl"])
            self.assertLess(abs(same["kl_mean"]), 1e-6)
            self.assertEqual(same["top1"], 1.0)
            self.assertAlmostEqual(same["base_ppl"], r0["ppl"], delta=1e-9 * r0["ppl"])
            spqr.quantize(self.m, self.text, q, nsamples=4, seqlen=32, n_threads=2, wbits=2, groupsize=16)
            with spqr.Model(q) as qm:
                r = qm.perplexity(self.text, ctx=ctx, chunks=6, kl_in=base, n_threads=2)
                ids = self.m.tokenize(self.text)
                with self.m.session(ctx, 1) as sb, qm.session(ctx, 1) as sq:
                    kl, agree, n = numpy_kl(sb, sq, ids, ctx, 6)
            print("KL(base||2-bit) %.6f (numpy %.6f), top-1 %.4f (numpy %.4f)" % (r["kl_mean"], kl / n, r["top1"],
                                                                               agree / n))
            self.assertEqual(r["n_scored"], n)
            self.assertGreater(r["kl_mean"], 1e-4)
            self.assertLess(abs(r["kl_mean"] / (kl / n) - 1), 1e-3)
            self.assertEqual(r["top1_count"], agree)
            with self.assertRaises(spqr.SpqrError):  # a base of another context
                self.m.perplexity(self.text, ctx=64, kl_in=base, n_threads=2)
            # the fp16 KV cache against the exact base: its KL as numpy computes it from the two sessions
            r16 = self.m.perplexity(self.text, ctx=ctx, chunks=6, kl_in=base, n_threads=2, kv_type="f16")
            with self.m.session(ctx, 1) as sb, self.m.session(ctx, 1, kv_type="f16") as sh:
                kl16, _, _ = numpy_kl(sb, sh, ids, ctx, 6)
            print("KL(base||KV f16) %.3g (numpy %.3g)" % (r16["kl_mean"], kl16 / n))
            self.assertGreater(r16["kl_mean"], 0)  # something was rounded
            self.assertLess(r16["kl_mean"], 1e-6)
            # ~3e-9 here: at that size both sums carry ~1e-10 of float rounding
            self.assertLess(abs(r16["kl_mean"] - kl16 / n), 0.2 * kl16 / n + 1e-9)
            with self.assertRaises(spqr.SpqrError):
                self.m.perplexity(self.text, ctx=ctx, chunks=1, n_threads=1, kv_type="q8_0")

    def test_progress_and_cancel(self):
        calls = []
        self.m.perplexity(self.text, ctx=32, progress=calls.append, n_threads=1)
        self.assertGreater(len(calls), 1)
        self.assertEqual(calls[-1]["n_windows"], 40)
        ev = threading.Event()
        ev.set()
        with self.assertRaises(spqr.SpqrError) as c:
            self.m.perplexity(self.text, ctx=32, cancel=ev, n_threads=1)
        self.assertEqual(c.exception.status, spqr.Status.INTERRUPTED)
        with self.assertRaises(spqr.SpqrError) as c:
            self.m.perplexity(self.text, ctx=32, progress=lambda p: True, n_threads=1)
        self.assertEqual(c.exception.status, spqr.Status.INTERRUPTED)

    def test_errors(self):
        with self.assertRaises(spqr.SpqrError):
            self.m.perplexity("hi", ctx=32)  # shorter than one window
        with self.assertRaises(spqr.SpqrError):
            self.m.perplexity(self.text, protocol="nope")


class Reference(unittest.TestCase):
    def test_numpy_reference_is_pytorch(self):
        """The numpy reference above reproduces the PyTorch perplexities, so it can judge the library's."""
        ref = load_json(os.path.join(FIX, "model_ppl.json"))
        with spqr.Model(MODEL) as m:
            ids = m.tokenize(read_text(os.path.join(FIX, "model_text.txt")))
            for ctx in (32, 64):
                ppl, n = numpy_ppl(m, ids, ctx, 0)
                self.assertEqual(n, ref["ctx%d" % ctx]["tokens_scored"])
                self.assertLess(abs(ppl / ref["ctx%d" % ctx]["ppl"] - 1), 1e-6)


class Unavailable(unittest.TestCase):
    """A libspqr older than the evaluation API (simulated: its symbols hidden)."""

    def test_clear_error(self):
        with mock.patch.object(spqr._lib, "has", lambda name: False), spqr.Model(MODEL) as m:
            with self.assertRaises(spqr.SpqrError) as c:
                m.perplexity("some text")
            self.assertEqual(c.exception.status, spqr.Status.UNSUPPORTED)
            self.assertIn("not available in this libspqr", c.exception.message)
            with self.assertRaises(spqr.SpqrError) as c:
                m.generate("Hello", temperature=0.7)
            self.assertEqual(c.exception.status, spqr.Status.UNSUPPORTED)
            old = m.generate("Hello", max_tokens=12)  # greedy needs no library sampler
            old.text()
        with spqr.Model(MODEL) as m:
            new = m.generate("Hello", max_tokens=12)
            new.text()
        self.assertEqual(old.tokens, new.tokens)


if __name__ == "__main__":
    unittest.main()
