"""ctypes mirrors of the structs of spqr.h, field for field, in order
(tests/python/test_layout.py compares their offsets with the C compiler's)."""
import ctypes
from ctypes import POINTER, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64, c_uint32, c_uint64, c_void_p

MAX_EOS_IDS = 16
MAX_LINEAR_KINDS = 16
MAX_DIMS = 8


class Err(ctypes.Structure):
    _fields_ = [("code", c_int), ("msg", c_char * 512)]


LogFn = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class Logger(ctypes.Structure):
    _fields_ = [("fn", LogFn), ("user", c_void_p), ("max_level", c_int)]


class QuantParams(ctypes.Structure):
    _fields_ = [("wbits", c_int32), ("groupsize", c_int32), ("qq_scale_bits", c_int32), ("qq_zero_bits", c_int32),
                ("qq_groupsize", c_int32), ("outlier_threshold", c_float), ("simplified_outliers", c_int32),
                ("percdamp", c_float), ("blocksize", c_int32), ("perm", c_int), ("round_zero", c_int32),
                ("sym", c_int32), ("gptq", c_int32)]


class SizeReport(ctypes.Structure):
    _fields_ = [("formula_bits_per_param", c_double), ("stored_bits_per_param", c_double),
                ("stored_bytes", c_uint64), ("overhead_bytes", c_uint64), ("overhead_bits", c_uint64)]


class QuantReport(ctypes.Structure):
    _fields_ = [("n_outliers", c_int64), ("rel_hessian_error", c_double), ("seconds", c_double)]


class StTensor(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("dtype", c_int), ("ndim", c_int32), ("shape", c_int64 * MAX_DIMS),
                ("numel", c_int64), ("data", c_void_p), ("nbytes", c_uint64)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class ArchiveBytes(ctypes.Structure):
    _fields_ = [("file_bytes", c_uint64), ("container_bytes", c_uint64), ("text_bytes", c_uint64),
                ("dense_bytes", c_uint64), ("packed_bytes", c_uint64), ("dense_params", c_int64),
                ("packed_params", c_int64), ("version", c_uint32)]


class Config(ctypes.Structure):
    _fields_ = [("vocab_size", c_int32), ("hidden_size", c_int32), ("intermediate_size", c_int32),
                ("n_layers", c_int32), ("n_heads", c_int32), ("n_kv_heads", c_int32), ("head_dim", c_int32),
                ("max_position_embeddings", c_int32), ("rms_norm_eps", c_float), ("rope_theta", c_float),
                ("rope_scaling", c_int), ("rope_factor", c_float), ("rope_low_freq_factor", c_float),
                ("rope_high_freq_factor", c_float), ("rope_original_max_position", c_int32),
                ("tie_word_embeddings", c_int32), ("bos_token_id", c_int32), ("eos_token_id", c_int32),
                ("n_eos_token_ids", c_int32), ("eos_token_ids", c_int32 * MAX_EOS_IDS)]


class QuantizeProgress(ctypes.Structure):
    _fields_ = [("block", c_int32), ("n_blocks", c_int32), ("step", c_int64), ("n_steps", c_int64),
                ("steps_skipped", c_int64), ("what", c_char_p), ("elapsed_s", c_double)]


QuantizeProgressFn = ctypes.CFUNCTYPE(None, c_void_p, POINTER(QuantizeProgress))


class QuantizeOptions(ctypes.Structure):
    _fields_ = [("params", QuantParams), ("nsamples", c_int32), ("seqlen", c_int32), ("seed", c_uint64),
                ("n_threads", c_int32), ("checkpoint_dir", c_char_p), ("resume", c_int32),
                ("cancel", POINTER(c_int)), ("progress", QuantizeProgressFn), ("progress_user", c_void_p),
                ("log", POINTER(Logger)), ("preset", c_char_p), ("quantize_head", c_int32),
                ("quantize_embed", c_int32), ("tied_two_tables", c_int32), ("target_bits", c_double),
                ("target_linears", c_int32), ("overwrite", c_int32),
                ("comm", c_void_p)]  # const spqr_comm *: NULL, one process (scale-out is the CLI's, under mpirun)


class KindSummary(ctypes.Structure):
    _fields_ = [("name", c_char * 48), ("count", c_int32), ("params", c_int64), ("outliers", c_int64),
                ("rel_err_mean", c_double), ("rel_err_max", c_double), ("formula_bits", c_double),
                ("stored_bits", c_double), ("seconds", c_double)]


class QuantizeSummary(ctypes.Structure):
    _fields_ = [("kinds", KindSummary * MAX_LINEAR_KINDS), ("n_kinds", c_int32), ("head", KindSummary),
                ("embed", KindSummary), ("quantized_params", c_int64), ("quantized_bytes", c_uint64),
                ("avg_bits_stored", c_double), ("avg_bits_formula", c_double),
                ("avg_bits_stored_blocks", c_double), ("avg_bits_formula_blocks", c_double),
                ("dense_params", c_int64), ("dense_bytes", c_uint64), ("model_params", c_int64),
                ("file_bytes", c_uint64), ("file_bits", c_double), ("resumed_blocks", c_int32),
                ("seqlen", c_int32), ("nsamples", c_int32), ("calib_tokens", c_int64), ("seconds", c_double)]


class EvalProgress(ctypes.Structure):
    _fields_ = [("window", c_int32), ("n_windows", c_int32), ("elapsed_s", c_double), ("ppl", c_double),
                ("tokens_per_s", c_double)]


EvalProgressFn = ctypes.CFUNCTYPE(None, c_void_p, POINTER(EvalProgress))


class EvalOptions(ctypes.Structure):
    _fields_ = [("protocol", c_int), ("ctx", c_int32), ("chunks", c_int32), ("batch", c_int32),
                ("n_threads", c_int32), ("kl_base_out", c_char_p), ("overwrite", c_int32), ("kl_in", c_char_p),
                ("cancel", POINTER(c_int)), ("progress", EvalProgressFn), ("progress_user", c_void_p),
                ("kv_type", c_int)]


class SessionOpts(ctypes.Structure):
    _fields_ = [("max_ctx", c_int32), ("n_threads", c_int32), ("kv_type", c_int)]


KV_TYPES = {"f32": 0, "f16": 1}


class EvalResult(ctypes.Structure):
    _fields_ = [("ppl", c_double), ("ppl_stderr", c_double), ("nll_mean", c_double), ("n_tokens", c_int64),
                ("n_scored", c_int64), ("n_windows", c_int32), ("ctx", c_int32), ("has_kl", c_int32),
                ("kl_mean", c_double), ("kl_stderr", c_double), ("top1", c_double), ("base_ppl", c_double),
                ("seconds", c_double), ("tokens_per_s", c_double), ("base_ppl_stderr", c_double),
                ("top1_count", c_int64)]


def to_dict(s):
    """A struct's fields as a dict (nested structs and arrays converted, bytes decoded)."""
    out = {}
    for name, _ in s._fields_:
        v = getattr(s, name)
        if isinstance(v, ctypes.Structure):
            v = to_dict(v)
        elif isinstance(v, ctypes.Array):
            v = [to_dict(x) if isinstance(x, ctypes.Structure) else x for x in v]
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        out[name] = v
    return out
