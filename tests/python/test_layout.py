"""The ctypes structs match spqr.h: every field's offset and every struct's
size as the C compiler lays them out (a program built from spqr.h prints them)."""
import ctypes
import os
import subprocess
import tempfile
import unittest

from util import ROOT, read_text
from spqr import _types as T

STRUCTS = {"Err": "spqr_err", "Logger": "spqr_logger", "QuantParams": "spqr_quant_params",
           "SizeReport": "spqr_size_report", "QuantReport": "spqr_quant_report", "StTensor": "spqr_st_tensor",
           "ChatMessage": "spqr_chat_message", "ArchiveBytes": "spqr_archive_bytes", "Config": "spqr_config",
           "QuantizeProgress": "spqr_quantize_progress", "QuantizeOptions": "spqr_quantize_options",
           "KindSummary": "spqr_quantize_kind_summary", "QuantizeSummary": "spqr_quantize_summary",
           "EvalProgress": "spqr_eval_progress", "EvalOptions": "spqr_eval_options",
           "EvalResult": "spqr_eval_result", "SessionOpts": "spqr_session_opts"}


class Layout(unittest.TestCase):
    def test_offsets_match_the_compiler(self):
        header = read_text(os.path.join(ROOT, "include", "spqr.h"))
        have = {py: c for py, c in STRUCTS.items() if "} %s;" % c in header}
        self.assertEqual(sorted(set(STRUCTS.values()) - set(have.values())), [])
        lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "spqr.h"', "int main(void) {"]
        want = []
        for py, c in have.items():
            cls = getattr(T, py)
            lines.append('printf("%%zu\\n", sizeof(%s));' % c)
            want.append(("sizeof " + c, ctypes.sizeof(cls)))
            for name, _ in cls._fields_:
                lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (c, name))
                want.append(("%s.%s" % (c, name), getattr(cls, name).offset))
        lines.append("return 0; }")
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            with open(src, "w") as f:
                f.write("\n".join(lines))
            subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-I", os.path.join(ROOT, "include"), src,
                            "-o", exe], check=True)
            got = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split()
        self.assertEqual(len(got), len(want))
        for (what, w), g in zip(want, got):
            self.assertEqual(int(g), w, what)
        print("%d offsets and sizes of %d structs match" % (len(want), len(have)))


if __name__ == "__main__":
    unittest.main()
