"""Finds libspqr.so and declares the C signatures of spqr.h used here (ctypes).

Search order: $SPQR_LIBRARY, a libspqr.so copied next to this package, the
library `cmake --install` put beside the installed package (_install.py),
then the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache) and
ctypes.util.find_library.
"""
import ctypes
import ctypes.util
import os

from . import _types as T
from .errors import SpqrError, Status

from ._version import __version__

# The SONAME major.minor this package is written against.
ABI = ".".join(__version__.split(".")[:2])

_lib = None


def _candidates():
    env = os.environ.get("SPQR_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libspqr.so.%s" % ABI, "libspqr.so"):
        p = os.path.join(here, name)
        if os.path.exists(p):
            yield p
    try:
        from . import _install  # written by cmake --install
        p = os.path.normpath(os.path.join(here, _install.LIBRARY))
        if os.path.exists(p):
            yield p
    except ImportError:
        pass
    yield "libspqr.so.%s" % ABI
    found = ctypes.util.find_library("spqr")
    if found:
        yield found


def load():
    """The loaded library (CDLL), loaded and declared on first use."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    else:
        raise SpqrError(Status.IO, "libspqr not found; set SPQR_LIBRARY to its path (tried: %s)" % "; ".join(tried))
    got = lib.spqr_version
    got.restype = ctypes.c_char_p
    ver = got().decode()
    if ".".join(ver.split(".")[:2]) != ABI:
        raise SpqrError(Status.UNSUPPORTED, "libspqr %s at %s, this package needs %s.x" % (ver, path, ABI))
    _declare(lib)
    lib.spqr_python_path = path
    _lib = lib
    return lib


def has(name):
    """Whether the loaded library exports name (newer API, feature detection)."""
    return hasattr(load(), name)


_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def free(ptr):
    """free() of memory the library malloc'ed for the caller."""
    _libc.free(ptr)


def _sig(lib, name, res, *args):
    if not hasattr(lib, name):
        return  # an older library: the binding feature-detects it with has()
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)


def _declare(lib):
    P, E = ctypes.POINTER, ctypes.POINTER(T.Err)
    i32, i64, u64, f32, sz = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float, ctypes.c_size_t
    st, vp, cp = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    s = lambda name, res, *args: _sig(lib, name, res, *args)
    s("spqr_status_str", cp, st)
    s("spqr_quant_params_default", None, P(T.QuantParams))
    s("spqr_quant_params_validate", st, P(T.QuantParams), E)
    s("spqr_tensor_free", None, vp)
    s("spqr_tensor_size", None, vp, P(T.SizeReport))
    s("spqr_quantize_layer", st, P(f32), i32, i32, P(f32), P(T.QuantParams), i32, P(T.Logger), P(vp),
      P(f32), P(ctypes.c_uint8), P(T.QuantReport), E)
    s("spqr_tokenizer_load", st, cp, P(vp), E)
    s("spqr_tokenizer_free", None, vp)
    s("spqr_tokenizer_vocab_size", i32, vp)
    s("spqr_tokenizer_bos_id", i32, vp)
    s("spqr_tokenizer_eos_id", i32, vp)
    s("spqr_tokenizer_adds_bos", ctypes.c_int, vp)
    s("spqr_tokenizer_encode", st, vp, cp, sz, ctypes.c_int, P(P(i32)), P(i32), E)
    s("spqr_tokenizer_decode", st, vp, P(i32), i32, P(vp), P(sz), E)
    s("spqr_tokenizer_piece", i32, vp, i32, i32, cp, i32)
    s("spqr_archive_open", st, cp, P(vp), E)
    s("spqr_archive_close", None, vp)
    s("spqr_archive_config_json", cp, vp)
    s("spqr_archive_metadata_json", cp, vp)
    s("spqr_archive_bytes_of", None, vp, P(T.ArchiveBytes))
    s("spqr_archive_find_packed", vp, vp, cp)
    s("spqr_archive_count", i32, vp)
    s("spqr_archive_packed_at", vp, vp, i32)
    s("spqr_archive_dense_at", P(T.StTensor), vp, i32)
    s("spqr_config_is_eos", ctypes.c_int, P(T.Config), i32)
    s("spqr_model_load", st, cp, P(T.Logger), P(vp), E)
    s("spqr_model_free", None, vp)
    s("spqr_model_is_quantized", i32, vp)
    s("spqr_model_config", P(T.Config), vp)
    s("spqr_model_tokenizer", vp, vp)
    s("spqr_model_chat_template", cp, vp)
    s("spqr_chat_render", st, vp, P(T.ChatMessage), i32, ctypes.c_int, P(vp), E)
    s("spqr_session_create", st, vp, i32, i32, P(vp), E)
    s("spqr_session_create_opts", st, vp, P(T.SessionOpts), P(vp), E)
    s("spqr_session_free", None, vp)
    s("spqr_session_reset", None, vp)
    s("spqr_session_pos", i32, vp)
    s("spqr_session_rewind", None, vp, i32)
    s("spqr_session_forward", st, vp, P(i32), i32, ctypes.c_int, P(f32), E)
    s("spqr_quantize_options_default", None, P(T.QuantizeOptions))
    s("spqr_model_quantize", st, vp, P(i32), i64, P(T.QuantizeOptions), cp, P(T.QuantizeSummary), E)
    # evaluation and sampling (newer libraries)
    s("spqr_eval_options_default", None, P(T.EvalOptions))
    s("spqr_model_perplexity", st, vp, cp, sz, P(T.EvalOptions), P(T.EvalResult), E)
    s("spqr_model_perplexity_tokens", st, vp, P(i32), i64, P(T.EvalOptions), P(T.EvalResult), E)
    s("spqr_sampler_create", st, i32, f32, f32, u64, P(vp), E)
    s("spqr_sampler_free", None, vp)
    s("spqr_sampler_sample", i32, vp, P(f32))


def check(status, err):
    """Raises SpqrError for a non-zero status with the message in err."""
    if status:
        msg = err.msg.decode("utf-8", "replace") or load().spqr_status_str(status).decode()
        raise SpqrError(status, msg)
