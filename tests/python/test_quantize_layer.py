"""quantize_layer against the float64 PyTorch reference of the per-layer
algorithm (tests/fixtures/layer_*.safetensors, tools/spqr_reference.py:
the dequantized weight and the outlier mask bit for bit, the relative
Hessian error to 1e-6), and against `spqr quantize-matrix` on the same input
(identical weight, mask and reported numbers)."""
import glob
import math
import os
import subprocess
import tempfile
import unittest

import numpy as np

from util import CLI, FIX, read_safetensors, spqr

KNOBS = ("wbits", "groupsize", "qq_scale_bits", "qq_zero_bits", "qq_groupsize", "outlier_threshold",
         "simplified_outliers", "percdamp", "blocksize", "perm", "round_zero", "sym", "gptq")


def params_of(meta):
    p = {}
    for k in KNOBS:
        v = meta[k]
        p[k] = v if k == "perm" else float(v) if k in ("outlier_threshold", "percdamp") else int(v)
    return p


class QuantizeLayer(unittest.TestCase):
    def test_pytorch_fixtures(self):
        files = sorted(glob.glob(os.path.join(FIX, "layer_*.safetensors")))
        files = [f for f in files if not f.endswith("layer_cli.safetensors")]
        self.assertGreaterEqual(len(files), 14)
        for f in files:
            t, meta = read_safetensors(f)
            r = spqr.quantize_layer(t["W"], t["H"], n_threads=2, **params_of(meta))
            name = os.path.basename(f)
            self.assertEqual(r.weight.dtype, np.float32)
            self.assertTrue(np.array_equal(r.weight, t["W_hat"]), name)
            self.assertTrue(np.array_equal(r.mask, t["mask"].astype(bool)), name)
            self.assertEqual(r.n_outliers, int(meta["n_outliers"]), name)
            want = float(meta["rel_error"])
            self.assertLess(abs(r.rel_hessian_error - want), 1e-6 * max(want, 1e-12) + 1e-12, name)
            self.assertEqual(r.stored_bytes * 8 / t["W"].size, r.stored_bits)
        print("%d PyTorch layer fixtures reproduced bit for bit" % len(files))

    @unittest.skipUnless(CLI, "SPQR_CLI not set")
    def test_same_as_cli(self):
        src = os.path.join(FIX, "layer_cli.safetensors")
        t, meta = read_safetensors(src)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.safetensors")
            subprocess.run([CLI, "quantize-matrix", src, "-o", out, "-t", "2"], check=True, capture_output=True)
            c, cm = read_safetensors(out)
        r = spqr.quantize_layer(t["weight"], t["hessian"])  # the defaults, as the CLI's
        self.assertTrue(np.array_equal(r.weight, c["weight"]))
        self.assertTrue(np.array_equal(r.mask, c["outlier_mask"].astype(bool)))
        self.assertTrue(np.array_equal(r.weight, t["expected_weight"]))
        self.assertEqual(r.n_outliers, int(cm["outlier_count"]))
        self.assertEqual("%.6f" % r.formula_bits, cm["avg_bits_formula"])
        self.assertEqual("%.6f" % r.stored_bits, cm["avg_bits_measured"])
        self.assertEqual("%.9g" % r.rel_hessian_error, cm["rel_hessian_error"])

    def test_params(self):
        p = spqr.QuantParams()
        self.assertEqual((p.wbits, p.groupsize, p.perm, p.gptq), (3, 16, "act_order", 1))
        p = spqr.QuantParams(wbits=4, outlier_threshold=None, perm="identity", gptq=False)
        self.assertTrue(math.isinf(p.outlier_threshold))
        self.assertEqual(p.validate().wbits, 4)
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.QuantParams(wbits=1).validate()
        self.assertEqual(c.exception.status, spqr.Status.INVALID_ARG)
        self.assertIn("wbits", c.exception.message)
        with self.assertRaises(spqr.SpqrError):
            spqr.QuantParams(bogus=1)
        W = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
        with self.assertRaises(spqr.SpqrError) as c:  # the library's range check
            spqr.quantize_layer(W, np.eye(32), wbits=9)
        self.assertIn("wbits", c.exception.message)
        with self.assertRaises(spqr.SpqrError):
            spqr.quantize_layer(W, np.eye(16))
        bad = W.copy()
        bad[0, 0] = np.nan
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize_layer(bad, np.eye(32))
        self.assertEqual(c.exception.status, spqr.Status.NUMERIC)


if __name__ == "__main__":
    unittest.main()
