"""Tokenizers: a model's, or one loaded from a Hugging Face tokenizer.json."""
import ctypes
import os

import numpy as np

from . import _lib
from ._handle import Closing
from . import _types as T
from .errors import SpqrError, Status


def as_ids(tokens):
    """tokens as a contiguous np.int32 vector (refusing values outside int32)."""
    a = np.asarray(tokens).reshape(-1)
    if a.size and a.dtype != np.int32:
        a = a.astype(np.int64)
        if a.min() < -(2**31) or a.max() >= 2**31:
            raise SpqrError(Status.INVALID_ARG, "token id out of the int32 range")
    return np.ascontiguousarray(a, dtype=np.int32)


class Tokenizer(Closing):
    """spqr.Tokenizer(path) loads a tokenizer.json; Model.tokenizer is the
    model's own (valid while the model is open)."""

    def __init__(self, path=None, *, _handle=None, _owner=None):
        self._h, self._own = None, False
        self._lib = _lib.load()
        self._owner = _owner  # keeps a model alive while its tokenizer is used
        if _handle is not None:
            self._h = _handle
            return
        err, h = T.Err(), ctypes.c_void_p()
        _lib.check(self._lib.spqr_tokenizer_load(os.fsencode(path), ctypes.byref(h), ctypes.byref(err)), err)
        self._h, self._own = h, True

    def close(self):
        if self._h and self._own:
            self._lib.spqr_tokenizer_free(self._h)
        self._h = None

    @property
    def handle(self):
        if not self._h or (self._owner is not None and not self._owner._h):
            raise SpqrError(Status.INVALID_ARG, "the tokenizer (or its model) is closed")
        return self._h

    @property
    def vocab_size(self):
        return self._lib.spqr_tokenizer_vocab_size(self.handle)

    @property
    def bos_id(self):
        """-1 when there is none."""
        return self._lib.spqr_tokenizer_bos_id(self.handle)

    @property
    def eos_id(self):
        return self._lib.spqr_tokenizer_eos_id(self.handle)

    @property
    def adds_bos(self):
        """Whether Hugging Face starts plain text with BOS for this tokenizer."""
        return bool(self._lib.spqr_tokenizer_adds_bos(self.handle))

    def encode(self, text, add_bos=False):
        """Token ids (np.int32) of text (str, or bytes: invalid UTF-8 allowed);
        add_bos=None: as Hugging Face does (adds_bos)."""
        h = self.handle
        if isinstance(text, str):
            text = text.encode("utf-8")
        if add_bos is None:
            add_bos = self.adds_bos
        err, ids, n = T.Err(), ctypes.POINTER(ctypes.c_int32)(), ctypes.c_int32()
        _lib.check(self._lib.spqr_tokenizer_encode(h, bytes(text), len(text), int(bool(add_bos)), ctypes.byref(ids),
                                                   ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return np.ctypeslib.as_array(ids, (n.value,)).copy() if n.value else np.zeros(0, np.int32)
        finally:
            _lib.free(ids)

    def decode_bytes(self, ids):
        a = as_ids(ids)
        err, p, n = T.Err(), ctypes.c_void_p(), ctypes.c_size_t()
        _lib.check(self._lib.spqr_tokenizer_decode(self.handle, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                                   a.size, ctypes.byref(p), ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ctypes.string_at(p, n.value)
        finally:
            _lib.free(p)

    def decode(self, ids, errors="replace"):
        """Text of ids (bytes that are not UTF-8 handled per errors)."""
        return self.decode_bytes(ids).decode("utf-8", errors)

    def piece(self, prev, token):
        """Bytes of token when it follows prev (-1 at the start), as streamed."""
        h, cap = self.handle, 256
        while True:
            buf = ctypes.create_string_buffer(cap)
            k = self._lib.spqr_tokenizer_piece(h, int(prev), int(token), buf, cap)
            if k < 0:
                raise SpqrError(Status.INVALID_ARG, "token id %d is outside the vocabulary" % token)
            if k < cap or cap >= 1 << 20:
                return buf.raw[:k]
            cap *= 16  # filled the buffer: maybe truncated
