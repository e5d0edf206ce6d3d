"""Errors come back as SpqrError with the library's status and its one-line
message (the same text the CLI prints); closed handles refuse politely; the
package version is spqr.h's and the library's; the log callback receives
the library's messages."""
import os
import re
import subprocess
import tempfile
import unittest

from util import CLI, FIX, ROOT, read_text, spqr


class Errors(unittest.TestCase):
    def test_missing_file(self):
        missing = os.path.join(tempfile.gettempdir(), "spqr-no-such-model-dir")
        with self.assertRaises(spqr.SpqrError) as c:
            spqr.Model(missing)
        e = c.exception
        self.assertEqual(e.status, spqr.Status.IO)
        self.assertIsInstance(e.status, spqr.Status)
        self.assertIn(missing, e.message)
        self.assertEqual(str(e), e.message)
        self.assertNotIn("\n", e.message)
        if CLI:  # the CLI reports the library's message for the same failure
            r = subprocess.run([CLI, "generate", missing, "-p", "x"], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(e.message, r.stderr)

    def test_bad_files(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.spqr")
            with open(bad, "wb") as f:
                f.write(b"SPQR" + b"\0" * 200)
            with self.assertRaises(spqr.SpqrError) as c:
                spqr.Model(bad)
            self.assertEqual(c.exception.status, spqr.Status.FORMAT)
            with self.assertRaises(spqr.SpqrError) as c:
                spqr.Tokenizer(os.path.join(d, "none.json"))
            self.assertEqual(c.exception.status, spqr.Status.IO)

    def test_closed_handles(self):
        m = spqr.Model(os.path.join(FIX, "tiny_gqa"))
        s = m.session(8, 1)
        s.close()
        with self.assertRaises(spqr.SpqrError):
            s.forward([1])
        tok = m.tokenizer
        m.close()
        m.close()  # twice is fine
        for f in (lambda: m.tokenize("x"), lambda: tok.encode("x"), lambda: m.session(8, 1)):
            with self.assertRaises(spqr.SpqrError):
                f()
        with self.assertRaises(spqr.SpqrError):
            spqr.Model(os.path.join(FIX, "tiny_gqa")).detokenize([10**6])
        # closing a model closes its sessions and generations first
        m = spqr.Model(os.path.join(FIX, "tiny_gqa"))
        s = m.session(8, 1)
        g = m.generate("Hello", max_tokens=5)
        next(g)
        m.close()
        with self.assertRaises(spqr.SpqrError):
            s.forward([1])
        with self.assertRaises(spqr.SpqrError):
            list(g)

    def test_log_callback(self):
        msgs = []
        with spqr.Model(os.path.join(FIX, "tiny_gqa"), log=lambda level, msg: msgs.append((level, msg))):
            pass
        self.assertTrue(any(lv == 2 and msg.startswith("loaded ") and "2 layers" in msg for lv, msg in msgs), msgs)

    def test_version(self):
        h = read_text(os.path.join(ROOT, "include", "spqr.h"))
        v = ".".join(re.search(r"#define SPQR_VERSION_%s (\d+)" % k, h).group(1) for k in ("MAJOR", "MINOR", "PATCH"))
        self.assertEqual(spqr.__version__, v)
        self.assertEqual(spqr.library_version(), v)


if __name__ == "__main__":
    unittest.main()
