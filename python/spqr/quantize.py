"""Quantizing one matrix (spqr_quantize_layer) and a whole model (spqr_model_quantize)."""
import ctypes
import math
import os
import threading

import numpy as np

from . import _lib
from . import _types as T
from .errors import SpqrError, Status
from .model import Model, default_threads, make_logger

_PERM = {"identity": 0, "act_order": 1}


class QuantParams:
    """spqr_quant_params; starts from spqr_quant_params_default (the paper's
    w3, beta1 = beta2 = 16, 3-bit statistics, tau 0.2, act_order). Knobs as
    keyword arguments: wbits, groupsize, qq_scale_bits, qq_zero_bits,
    qq_groupsize, outlier_threshold (None or inf: no outliers),
    simplified_outliers, percdamp, blocksize, perm ("act_order" or
    "identity"), round_zero, sym, gptq (False: round-to-nearest).
    Ranges: docs/quantize.md, "Limits of the knobs"; validate() checks them."""

    def __init__(self, **knobs):
        self._s = T.QuantParams()
        _lib.load().spqr_quant_params_default(ctypes.byref(self._s))
        for k, v in knobs.items():
            setattr(self, k, v)

    def __setattr__(self, k, v):
        if k == "_s":
            return object.__setattr__(self, k, v)
        if k not in dict(T.QuantParams._fields_):
            raise SpqrError(Status.INVALID_ARG, "unknown quantization knob '%s'" % k)
        if k == "perm":
            v = _PERM[v] if isinstance(v, str) and v in _PERM else v
        if k == "outlier_threshold" and v is None:
            v = math.inf
        setattr(self._s, k, int(v) if isinstance(v, bool) else v)

    def __getattr__(self, k):
        if k != "_s" and k in dict(T.QuantParams._fields_):
            v = getattr(self._s, k)
            return {0: "identity", 1: "act_order"}.get(v, v) if k == "perm" else v
        raise AttributeError(k)

    def as_dict(self):
        return {k: getattr(self, k) for k, _ in T.QuantParams._fields_}

    def __repr__(self):
        return "QuantParams(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items())

    def validate(self):
        err = T.Err()
        _lib.check(_lib.load().spqr_quant_params_validate(ctypes.byref(self._s), ctypes.byref(err)), err)
        return self


def _params(params, knobs):
    if params is None:
        return QuantParams(**knobs)
    p = QuantParams(**(params.as_dict() if isinstance(params, QuantParams) else dict(params)))
    for k, v in knobs.items():
        setattr(p, k, v)
    return p


class LayerResult:
    """quantize_layer's output: weight (dequantized float32 [rows, cols],
    original column order), mask (bool, True = outlier), n_outliers,
    rel_hessian_error (tr(dW H dW^T) / tr(W H W^T), undamped H), seconds,
    formula_bits, stored_bits (per parameter), stored_bytes."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "LayerResult(%s)" % ", ".join("%s=%r" % (k, v) for k, v in self.__dict__.items()
                                             if k not in ("weight", "mask"))


def quantize_layer(W, H, params=None, n_threads=0, log=None, **knobs):
    """SpQR of one linear layer W [rows = out, cols = in] with its Hessian H
    [cols, cols] (symmetric PSD). params: a QuantParams or dict; knobs
    override it. Returns a LayerResult."""
    W = np.ascontiguousarray(W, dtype=np.float32)
    H = np.ascontiguousarray(H, dtype=np.float32)
    if W.ndim != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise SpqrError(Status.INVALID_ARG, "W must be [rows, cols] and H [cols, cols]; got %s and %s"
                        % (W.shape, H.shape))
    p = _params(params, knobs)
    rows, cols = W.shape
    lib = _lib.load()
    out = np.empty((rows, cols), np.float32)
    mask = np.empty((rows, cols), np.uint8)
    rep, err, t = T.QuantReport(), T.Err(), ctypes.c_void_p()
    lg = make_logger(log)
    fp = ctypes.POINTER(ctypes.c_float)
    _lib.check(lib.spqr_quantize_layer(W.ctypes.data_as(fp), rows, cols, H.ctypes.data_as(fp), ctypes.byref(p._s),
                                       int(n_threads), ctypes.byref(lg.struct) if lg else None, ctypes.byref(t),
                                       out.ctypes.data_as(fp), mask.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                       ctypes.byref(rep), ctypes.byref(err)), err)
    try:
        sz = T.SizeReport()
        lib.spqr_tensor_size(t, ctypes.byref(sz))
    finally:
        lib.spqr_tensor_free(t)
    return LayerResult(weight=out, mask=mask.astype(bool), n_outliers=rep.n_outliers,
                       rel_hessian_error=rep.rel_hessian_error, seconds=rep.seconds,
                       formula_bits=sz.formula_bits_per_param, stored_bits=sz.stored_bits_per_param,
                       stored_bytes=sz.stored_bytes, params=p)


class _Cancel:
    """The int the library polls, raised by a threading.Event (watched by a
    thread), by a progress callback returning True, or by an exception in
    the callback (re-raised after the call)."""

    def __init__(self, event):
        self.flag = ctypes.c_int(0)
        self.error = None
        self._event, self._done = event, threading.Event()
        self._watch = None
        if event is not None:
            self._watch = threading.Thread(target=self._watcher, daemon=True)
            self._watch.start()

    def _watcher(self):
        while not self._done.is_set():
            if self._event.wait(0.05):
                self.flag.value = 1
                return

    def poll(self):
        if self._event is not None and self._event.is_set():
            self.flag.value = 1

    def stop(self):
        self._done.set()
        if self._watch:
            self._watch.join()


def _progress_dict(p):
    d = T.to_dict(p.contents)
    return d


def quantize(model, calib, out_path, params=None, *, nsamples=128, seqlen=0, seed=0, n_threads=None,
             checkpoint_dir=None, resume=False, quantize_head=True, quantize_embed=True, tied_two_tables=False,
             target_bits=0.0, target_linears=False, overwrite=False, preset_label=None, progress=None, cancel=None,
             log=None, **knobs):
    """Quantizes every linear of a model (a spqr.Model loaded from a Hugging
    Face directory, or its path) and writes out_path (.spqr) atomically.

    calib: calibration text (str/bytes, tokenized without BOS, as `spqr
    quantize --calib`) or token ids. params/knobs: see QuantParams (presets
    are a CLI table, not library API: give their knobs). target_bits > 0:
    a setting per linear from the bit-budget grid (docs/quantize.md).
    quantize_head / quantize_embed default on, as every CLI preset does.
    progress(dict): called per calibration pass and per layer with block,
    n_blocks, step, n_steps, steps_skipped, what, elapsed_s; returning True
    cancels. cancel: a threading.Event that cancels when set. A cancelled
    run raises SpqrError with status INTERRUPTED and leaves no out_path.
    Returns the spqr_quantize_summary as a dict."""
    own = not isinstance(model, Model)
    if own:
        model = Model(model, log=log)
    try:
        if isinstance(calib, (str, bytes)):
            ids = model.tokenize(calib, add_bos=False)
        else:
            ids = np.ascontiguousarray(np.asarray(calib).reshape(-1).astype(np.int32))
        if ids.size == 0:
            raise SpqrError(Status.INVALID_ARG, "the calibration text is empty")
        lib = _lib.load()
        o = T.QuantizeOptions()
        lib.spqr_quantize_options_default(ctypes.byref(o))
        o.params = _params(params, knobs)._s
        o.nsamples, o.seqlen, o.seed = int(nsamples), int(seqlen), int(seed)
        o.n_threads = int(n_threads if n_threads is not None else default_threads())
        o.checkpoint_dir = os.fsencode(checkpoint_dir) if checkpoint_dir is not None else None
        o.resume, o.quantize_head, o.quantize_embed = int(resume), int(quantize_head), int(quantize_embed)
        o.tied_two_tables, o.target_bits = int(tied_two_tables), float(target_bits)
        o.target_linears = int(target_linears)
        o.overwrite = int(overwrite)
        o.preset = (preset_label or "custom").encode()
        cn = _Cancel(cancel)
        o.cancel = ctypes.pointer(cn.flag)

        def on_progress(user, p):
            try:
                cn.poll()
                if progress is not None and progress(_progress_dict(p)):
                    cn.flag.value = 1
            except BaseException as e:  # stop the run; raised again below
                cn.error = e
                cn.flag.value = 1
        cb = T.QuantizeProgressFn(on_progress)
        o.progress = cb
        lg = make_logger(log)
        if lg:
            o.log = ctypes.pointer(lg.struct)
        summary, err = T.QuantizeSummary(), T.Err()
        try:
            st = lib.spqr_model_quantize(model.handle, ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), ids.size,
                                         ctypes.byref(o), os.fsencode(out_path), ctypes.byref(summary),
                                         ctypes.byref(err))
        finally:
            cn.stop()
        if cn.error is not None:
            raise cn.error
        _lib.check(st, err)
        d = T.to_dict(summary)
        d["kinds"] = d["kinds"][: d["n_kinds"]]
        return d
    finally:
        if own:
            model.close()
