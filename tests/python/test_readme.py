"""The example of python/README.md runs as written (from the repository root)."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

from util import ROOT, read_text


class Readme(unittest.TestCase):
    def test_example_runs(self):
        blocks = re.findall(r"```python\n(.*?)```", read_text(os.path.join(ROOT, "python", "README.md")), re.S)
        self.assertEqual(len(blocks), 1)
        with tempfile.TemporaryDirectory() as d:
            code = blocks[0].replace("/tmp/tiny.spqr", os.path.join(d, "tiny.spqr"))
            env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
            r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("IO /no/such/model does not exist", r.stdout)
        self.assertIn("True", r.stdout)
        self.assertIn("ppl 353.6136", r.stdout)  # tests/fixtures/model_ppl.json's PyTorch value


if __name__ == "__main__":
    unittest.main()
