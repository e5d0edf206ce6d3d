"""Perplexity (and KL against a saved base) through spqr_model_perplexity."""
import ctypes
import os

import numpy as np

from . import _lib
from . import _types as T
from .errors import SpqrError, Status
from .model import default_threads

PROTOCOLS = {"spqr": 0, "llamacpp": 1}


def perplexity(model, text=None, tokens=None, *, protocol="spqr", ctx=0, chunks=0, batch=0, n_threads=None,
               kl_base_out=None, kl_in=None, overwrite=False, progress=None, cancel=None, kv_type="f32"):
    """Perplexity of model (a spqr.Model) on text (str/bytes) or tokens
    (ids, BOS included as you want it scored), with the protocol "spqr"
    (non-overlapping windows of ctx tokens) or "llamacpp" (llama.cpp's:
    the second half of each window scored). ctx/chunks/batch 0: the
    library's defaults; kv_type "f32" (exact) or "f16". kl_base_out writes the full distributions for a
    later KL run; kl_in compares against such a file. progress(dict with
    window, n_windows, elapsed_s) returning True, or a set threading.Event
    cancel, stops the run (SpqrError INTERRUPTED). Returns the
    spqr_eval_result as a dict (ppl, ppl_stderr, nll_mean, n_tokens,
    n_scored, n_windows, ctx, has_kl, kl_mean, kl_stderr, top1, base_ppl,
    seconds, tokens_per_s)."""
    if not _lib.has("spqr_model_perplexity"):
        raise SpqrError(Status.UNSUPPORTED, "perplexity is not available in this libspqr")
    if (text is None) == (tokens is None):
        raise SpqrError(Status.INVALID_ARG, "give one of text or tokens")
    if protocol not in PROTOCOLS:
        raise SpqrError(Status.INVALID_ARG, "protocol must be one of %s" % ", ".join(PROTOCOLS))
    if kv_type not in T.KV_TYPES:
        raise SpqrError(Status.INVALID_ARG, "kv_type %r: expected 'f32' or 'f16'" % (kv_type,))
    lib = _lib.load()
    o = T.EvalOptions()
    lib.spqr_eval_options_default(ctypes.byref(o))
    o.protocol = PROTOCOLS[protocol]
    if ctx:
        o.ctx = int(ctx)
    if chunks:
        o.chunks = int(chunks)
    if batch:
        o.batch = int(batch)
    o.n_threads = int(n_threads if n_threads is not None else default_threads())
    o.kv_type = T.KV_TYPES[kv_type]
    o.kl_base_out = os.fsencode(kl_base_out) if kl_base_out is not None else None
    o.kl_in = os.fsencode(kl_in) if kl_in is not None else None
    o.overwrite = int(overwrite)
    flag, failure = ctypes.c_int(0), []
    o.cancel = ctypes.pointer(flag)

    def on_progress(user, p):
        try:
            if (cancel is not None and cancel.is_set()) or (progress is not None and progress(T.to_dict(p.contents))):
                flag.value = 1
        except BaseException as e:
            failure.append(e)
            flag.value = 1
    cb = T.EvalProgressFn(on_progress)
    o.progress = cb
    res, err = T.EvalResult(), T.Err()
    if text is not None:
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        st = lib.spqr_model_perplexity(model.handle, b, len(b), ctypes.byref(o), ctypes.byref(res), ctypes.byref(err))
    else:
        ids = np.ascontiguousarray(np.asarray(tokens).reshape(-1).astype(np.int32))
        st = lib.spqr_model_perplexity_tokens(model.handle, ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                              ids.size, ctypes.byref(o), ctypes.byref(res), ctypes.byref(err))
    if failure:
        raise failure[0]
    _lib.check(st, err)
    return T.to_dict(res)
