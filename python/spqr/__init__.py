"""Python bindings of libspqr (ctypes): load, run, evaluate and quantize
SpQR-compressed language models. See python/README.md."""
from .errors import SpqrError, Status
from .tokenizer import Tokenizer
from .model import Model, Session, default_threads
from .generate import Generation, Sampler
from .quantize import QuantParams, LayerResult, quantize, quantize_layer
from .evaluate import perplexity

from ._version import __version__


def load(path, log=None):
    """spqr.Model(path): a Hugging Face checkpoint directory or a .spqr file."""
    return Model(path, log=log)


def library_version():
    """spqr_version() of the loaded libspqr."""
    from . import _lib
    return _lib.load().spqr_version().decode()


def library_path():
    """Where the loaded libspqr.so came from."""
    from . import _lib
    return _lib.load().spqr_python_path


__all__ = ["__version__", "SpqrError", "Status", "Tokenizer", "Model", "Session", "Generation", "Sampler",
           "QuantParams", "LayerResult",
           "quantize", "quantize_layer", "perplexity", "load", "library_version", "library_path", "default_threads"]
