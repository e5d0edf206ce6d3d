"""quantize(): the tiny fixture model becomes a .spqr that loads as a
quantized model whose file equals `spqr quantize` with the same knobs byte
for byte, with a progress call per step; info() reports the file's bytes as
`spqr info` does; a cancelled run (threading.Event, or the callback's
return value) raises SpqrError INTERRUPTED and writes nothing; an exception
in the callback stops the run and comes back out."""
import os
import re
import subprocess
import tempfile
import threading
import unittest

import numpy as np

from util import CLI, FIX, spqr

MODEL = os.path.join(FIX, "tiny_gqa")
KW = dict(nsamples=4, seqlen=32, n_threads=2)


class Quantize(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(FIX, "model_text.txt")) as f:
            cls.calib = f.read()
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_quantize_loads_and_matches_cli(self):
        out = self.path("q.spqr")
        events = []
        with spqr.Model(MODEL) as m:
            summary = spqr.quantize(m, self.calib, out, progress=events.append, **KW)
        self.assertTrue(os.path.isfile(out))
        self.assertFalse(os.path.exists(out + ".partial"))
        # one event per step, counting up to n_steps
        steps = [e["step"] for e in events]
        self.assertGreater(len(events), 2)
        self.assertEqual(steps, sorted(steps))
        self.assertEqual(steps[-1], events[-1]["n_steps"])
        self.assertEqual(events[-1]["n_blocks"], 2)
        self.assertTrue(all(isinstance(e["what"], str) for e in events))
        self.assertEqual(summary["file_bytes"], os.path.getsize(out))
        self.assertEqual(len(summary["kinds"]), 7)
        self.assertEqual(summary["nsamples"], 4)
        with spqr.Model(out) as q:
            self.assertTrue(q.is_quantized)
            info = q.info()
            self.assertEqual(info["archive"]["file_bytes"], os.path.getsize(out))
            self.assertEqual(info["params"], summary["model_params"])
            self.assertAlmostEqual(info["file_bits"], summary["file_bits"], places=9)
            self.assertEqual(info["metadata"]["preset"], "custom")
            self.assertEqual(q.generate("Hello", max_tokens=5).text() is not None, True)
        if CLI:
            # the CLI with the same knobs writes the same bytes; its info prints the same whole-file bits
            cli_out = self.path("cli.spqr")
            calib = self.path("calib.txt")
            with open(calib, "w") as f:
                f.write(self.calib)
            subprocess.run([CLI, "quantize", MODEL, "-o", cli_out, "--calib", calib, "--nsamples", "4", "--seqlen",
                            "32", "-t", "2", "-q"], check=True, capture_output=True)
            with open(out, "rb") as a, open(cli_out, "rb") as b:
                self.assertEqual(a.read(), b.read())
            txt = subprocess.run([CLI, "info", out], check=True, capture_output=True, text=True).stdout
            bits = float(re.search(r"whole file: ([0-9.]+) bits per model parameter", txt).group(1))
            self.assertEqual("%.4f" % info["file_bits"], "%.4f" % bits)
        print("quantized: %d bytes, %.4f bits per parameter, %d progress calls"
              % (summary["file_bytes"], summary["file_bits"], len(events)))

    def test_cancel_with_event(self):
        out = self.path("cancelled.spqr")
        ev = threading.Event()
        calls = []

        def progress(p):
            calls.append(p)
            if len(calls) == 2:
                ev.set()
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize(MODEL, self.calib, out, progress=progress, cancel=ev, **KW)
        self.assertEqual(c.exception.status, spqr.Status.INTERRUPTED)
        self.assertFalse(os.path.exists(out))
        self.assertLess(len(calls), 6)

    def test_cancel_from_another_thread(self):
        out = self.path("cancelled2.spqr")
        ev = threading.Event()
        first = threading.Event()

        def progress(p):
            first.set()
            ev.wait(5)  # hold the run until the other thread has cancelled
        t = threading.Thread(target=lambda: (first.wait(60), ev.set()))
        t.start()
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize(MODEL, self.calib, out, progress=progress, cancel=ev, **KW)
        t.join()
        self.assertEqual(c.exception.status, spqr.Status.INTERRUPTED)
        self.assertFalse(os.path.exists(out))

    def test_cancel_by_return_value(self):
        out = self.path("cancelled3.spqr")
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize(MODEL, self.calib, out, progress=lambda p: True, **KW)
        self.assertEqual(c.exception.status, spqr.Status.INTERRUPTED)
        self.assertIn("interrupt", c.exception.message.lower() + c.exception.status.name.lower())
        self.assertFalse(os.path.exists(out))

    def test_callback_exception(self):
        out = self.path("raised.spqr")

        def progress(p):
            raise ValueError("from the callback")
        with self.assertRaises(ValueError):
            spqr.quantize(MODEL, self.calib, out, progress=progress, **KW)
        self.assertFalse(os.path.exists(out))

    def test_errors(self):
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize(MODEL, "", self.path("e.spqr"), **KW)
        self.assertEqual(c.exception.status, spqr.Status.INVALID_ARG)
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.quantize(MODEL, self.calib, self.path("e.spqr"), wbits=12, **KW)
        self.assertIn("wbits", c.exception.message)
        with self.assertRaises(spqr.SpqrError) as c:  # the output is a directory
            spqr.quantize(MODEL, self.calib, self.tmp.name, **KW)
        self.assertNotEqual(c.exception.status, spqr.Status.OK)
        ids = np.arange(5, dtype=np.int32)
        with self.assertRaises(spqr.SpqrError):  # shorter than one window
            spqr.quantize(MODEL, ids, self.path("e.spqr"), **KW)
        self.assertFalse(os.path.exists(self.path("e.spqr")))


if __name__ == "__main__":
    unittest.main()
