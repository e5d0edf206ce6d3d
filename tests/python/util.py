"""Shared by the tests of the Python bindings (tests/cli_python.sh runs them):
paths from the environment, and an independent safetensors reader (numpy)."""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.environ.get("SPQR_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
CLI = os.environ.get("SPQR_CLI")  # the spqr binary of the same build
sys.path.insert(0, os.path.join(ROOT, "python"))

import spqr  # noqa: E402  (after the path; the tests import it from here)

__all__ = ["ROOT", "FIX", "CLI", "spqr", "read_safetensors", "rel_diff", "log_softmax", "load_json", "write_json",
           "read_text"]

_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
       "I8": np.int8, "I16": np.int16, "U16": np.uint16, "BOOL": np.bool_}


def read_safetensors(path):
    """(tensors as numpy arrays, metadata dict); BF16 is widened to float32."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    out = {}
    for name, t in head.items():
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "BF16":
            u = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, _DT[t["dtype"]])
        out[name] = arr.reshape(t["shape"])
    return out, meta


def rel_diff(a, b):
    """max |a - b| / max |b|, as tests/test_model.c measures logits."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def load_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def read_text(path):
    with open(path) as f:
        return f.read()
