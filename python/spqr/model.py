"""Models (Hugging Face directory or .spqr file), their tokenizer, and sessions."""
import ctypes
import json
import os
import weakref

import numpy as np

from . import _lib
from ._handle import Closing
from . import _types as T
from .errors import SpqrError, Status
from .tokenizer import Tokenizer, as_ids


def default_threads():
    """OMP_NUM_THREADS when set, else the CPUs this process may run on."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else max(1, min(1024, len(os.sched_getaffinity(0))))


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


class _Logger:
    """A spqr_logger calling fn(level, message); kept alive as long as its owner."""

    def __init__(self, fn, max_level=2):
        self._cb = T.LogFn(lambda user, level, msg: fn(int(level), msg.decode("utf-8", "replace")))
        self.struct = T.Logger(self._cb, None, max_level)


def make_logger(log):
    return _Logger(log) if log is not None else None


class Model(Closing):
    """A loaded model: spqr.Model(path) with path a Hugging Face checkpoint
    directory or a .spqr file. Use as a context manager or call close()."""

    def __init__(self, path, log=None):
        self._h = None
        self._sessions = weakref.WeakSet()  # closed before the model: they point into it
        self._lib = _lib.load()
        self.path = os.fspath(path)
        self._log = make_logger(log)
        err, h = T.Err(), ctypes.c_void_p()
        lg = ctypes.byref(self._log.struct) if self._log else None
        _lib.check(self._lib.spqr_model_load(os.fsencode(self.path), lg, ctypes.byref(h), ctypes.byref(err)), err)
        self._h = h

    # --- lifetime ---------------------------------------------------
    def close(self):
        """Frees the model, after closing the sessions still open on it."""
        for s in list(getattr(self, "_sessions", ())):
            s.close()
        if self._h:
            self._lib.spqr_model_free(self._h)
            self._h = None

    @property
    def handle(self):
        if not self._h:
            raise SpqrError(Status.INVALID_ARG, "the model is closed")
        return self._h

    # --- facts ------------------------------------------------------
    @property
    def config(self):
        """The spqr_config fields as a dict (eos_token_ids cut to n_eos_token_ids)."""
        c = T.to_dict(self._lib.spqr_model_config(self.handle).contents)
        c["eos_token_ids"] = c["eos_token_ids"][: c["n_eos_token_ids"]]
        c["rope_scaling"] = {0: "none", 1: "llama3"}.get(c["rope_scaling"], c["rope_scaling"])
        return c

    @property
    def vocab_size(self):
        return self._lib.spqr_model_config(self.handle).contents.vocab_size

    @property
    def is_quantized(self):
        return bool(self._lib.spqr_model_is_quantized(self.handle))

    @property
    def chat_template(self):
        t = self._lib.spqr_model_chat_template(self.handle)
        return t.decode("utf-8", "replace") if t is not None else None

    def is_eos(self, token):
        return bool(self._lib.spqr_config_is_eos(self._lib.spqr_model_config(self.handle), int(token)))

    def info(self):
        """config, quantized or not, and for a .spqr file where its bytes go:
        archive (spqr_archive_bytes), params (model parameters, a tied matrix
        once) and file_bits (8 * file bytes / model parameters), metadata."""
        out = {"path": self.path, "quantized": self.is_quantized, "config": self.config,
               "chat_template": self.chat_template is not None}
        if os.path.isfile(self.path):
            out.update(archive_info(self.path, bool(out["config"]["tie_word_embeddings"])))
        return out

    # --- tokenizer ----------------------------------------------------
    @property
    def tokenizer(self):
        """The model's Tokenizer."""
        return Tokenizer(_handle=self._lib.spqr_model_tokenizer(self.handle), _owner=self)

    @property
    def bos_id(self):
        return self.tokenizer.bos_id

    @property
    def eos_id(self):
        return self.tokenizer.eos_id

    @property
    def adds_bos(self):
        return self.tokenizer.adds_bos

    def tokenize(self, text, add_bos=False):
        """Token ids (np.int32) of text; add_bos=None: as Hugging Face does."""
        return self.tokenizer.encode(text, add_bos)

    def detokenize(self, ids, errors="replace"):
        """Text of ids (str)."""
        return self.tokenizer.decode(ids, errors)

    def detokenize_bytes(self, ids):
        return self.tokenizer.decode_bytes(ids)

    def chat_render(self, messages, add_generation_prompt=True):
        """The model's chat template over [{"role": .., "content": ..}, ...] (text holding its BOS)."""
        msgs = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m) for m in messages]
        arr = (T.ChatMessage * max(1, len(msgs)))()
        keep = []
        for i, (r, c) in enumerate(msgs):
            rb, cb = r.encode(), c.encode()
            keep += [rb, cb]
            arr[i] = T.ChatMessage(rb, cb)
        err, p = T.Err(), ctypes.c_void_p()
        _lib.check(self._lib.spqr_chat_render(self.handle, arr, len(msgs), int(bool(add_generation_prompt)),
                                              ctypes.byref(p), ctypes.byref(err)), err)
        try:
            return ctypes.string_at(p).decode("utf-8", "replace")
        finally:
            _lib.free(p)

    # --- running ------------------------------------------------------
    def session(self, max_ctx=None, n_threads=None, kv_type="f32"):
        """A Session holding the KV cache for max_ctx positions (default the model's maximum);
        kv_type "f32" (exact) or "f16" (half the memory, keys and values rounded)."""
        return Session(self, max_ctx, n_threads, kv_type)

    def prompt_ids(self, prompt=None, messages=None):
        """Ids to generate from, as `spqr generate` builds them: plain text with
        BOS where Hugging Face adds one (or when empty), or chat messages
        rendered through the model's template."""
        if (prompt is None) == (messages is None):
            raise SpqrError(Status.INVALID_ARG, "give one of prompt or messages")
        if messages is not None:
            return self.tokenize(self.chat_render(messages), add_bos=False)
        ids = self.tokenize(prompt, add_bos=False)
        bos = self.config["bos_token_id"]
        if bos >= 0 and (self.adds_bos or ids.size == 0):
            ids = np.concatenate([np.array([bos], np.int32), ids])
        return ids

    def generate(self, prompt=None, messages=None, max_tokens=128, temperature=0.0, top_p=1.0, seed=0, ctx=None,
                 n_threads=None):
        """A streaming iterator of text pieces (see spqr.Generation)."""
        from .generate import Generation
        return Generation(self, self.prompt_ids(prompt, messages), max_tokens, temperature, top_p, seed, ctx,
                          n_threads, chat=messages is not None)

    def perplexity(self, text=None, tokens=None, **kw):
        """See spqr.perplexity."""
        from .evaluate import perplexity
        return perplexity(self, text=text, tokens=tokens, **kw)


def archive_info(path, tied):
    """Byte accounting of a .spqr file as `spqr info` reports it."""
    lib = _lib.load()
    err, a = T.Err(), ctypes.c_void_p()
    _lib.check(lib.spqr_archive_open(os.fspath(path).encode(), ctypes.byref(a), ctypes.byref(err)), err)
    try:
        ab = T.ArchiveBytes()
        lib.spqr_archive_bytes_of(a, ctypes.byref(ab))
        head = lib.spqr_archive_find_packed(a, b"lm_head.weight")
        head_params = 0
        if head:  # rows, cols: the first two int32 of spqr_tensor
            rc = ctypes.cast(head, ctypes.POINTER(ctypes.c_int32 * 2)).contents
            head_params = rc[0] * rc[1]
        params = ab.packed_params + ab.dense_params - (head_params if tied else 0)
        meta = lib.spqr_archive_metadata_json(a)
        packed_bytes_stored = 0
        for i in range(lib.spqr_archive_count(a)):
            t = lib.spqr_archive_packed_at(a, i)
            if t:
                r = T.SizeReport()
                lib.spqr_tensor_size(t, ctypes.byref(r))
                packed_bytes_stored += r.stored_bytes
        return {"archive": T.to_dict(ab), "params": params,
                "file_bits": 8.0 * ab.file_bytes / params if params else 0.0,
                "packed_bits": 8.0 * packed_bytes_stored / ab.packed_params if ab.packed_params else 0.0,
                "metadata": json.loads(meta) if meta else None}
    finally:
        lib.spqr_archive_close(a)


class Session(Closing):
    """Run state (KV cache) of a model: forward() appends tokens and returns logits."""

    def __init__(self, model, max_ctx=None, n_threads=None, kv_type="f32"):
        self._h = None
        if kv_type not in T.KV_TYPES:
            raise SpqrError(Status.INVALID_ARG, "kv_type %r: expected 'f32' or 'f16'" % (kv_type,))
        self._lib = model._lib
        self.model = model  # keeps the model alive while the session is
        cfg = model.config
        self.vocab_size = cfg["vocab_size"]
        self.max_ctx = int(max_ctx if max_ctx is not None else cfg["max_position_embeddings"])
        self.n_threads = int(n_threads if n_threads is not None else default_threads())
        err, h = T.Err(), ctypes.c_void_p()
        self.kv_type = kv_type
        opts = T.SessionOpts(self.max_ctx, self.n_threads, T.KV_TYPES[kv_type])
        _lib.check(self._lib.spqr_session_create_opts(model.handle, ctypes.byref(opts), ctypes.byref(h),
                                                      ctypes.byref(err)), err)
        self._h = h
        model._sessions.add(self)

    def close(self):
        if self._h:
            self._lib.spqr_session_free(self._h)
            self._h = None

    @property
    def handle(self):
        if not self._h:
            raise SpqrError(Status.INVALID_ARG, "the session (or its model) is closed")
        return self._h

    @property
    def pos(self):
        return self._lib.spqr_session_pos(self.handle)

    def reset(self):
        self._lib.spqr_session_reset(self.handle)

    def rewind(self, pos):
        self._lib.spqr_session_rewind(self.handle, int(pos))

    def forward(self, tokens, all_logits=False, out=None):
        """Appends tokens at the current position. Returns float32 logits:
        [n, vocab] when all_logits, else [vocab] of the last token."""
        ids = as_ids(tokens)
        if ids.size == 0:
            raise SpqrError(Status.INVALID_ARG, "forward needs at least one token")
        shape = (ids.size, self.vocab_size) if all_logits else (self.vocab_size,)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise SpqrError(Status.INVALID_ARG, "out must be a C-contiguous float32 array of shape %s" % (shape,))
        err = T.Err()
        _lib.check(self._lib.spqr_session_forward(self.handle, _ptr(ids, ctypes.c_int32), ids.size,
                                                  int(bool(all_logits)), _ptr(out, ctypes.c_float),
                                                  ctypes.byref(err)), err)
        return out
