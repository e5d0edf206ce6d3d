"""Streaming generation and the library's sampler."""
import codecs
import ctypes

import numpy as np

from . import _lib
from ._handle import Closing
from . import _types as T
from .errors import SpqrError, Status


class Sampler(Closing):
    """spqr_sampler: greedy at temperature 0 (the first largest logit),
    otherwise nucleus (top-p) sampling from its own seeded generator."""

    def __init__(self, vocab, temperature=0.0, top_p=1.0, seed=0):
        self._h = None
        lib = self._lib = _lib.load()
        self.vocab, self.temperature = int(vocab), float(temperature)
        if not _lib.has("spqr_sampler_create"):
            if self.temperature != 0.0:
                raise SpqrError(Status.UNSUPPORTED, "sampling (temperature > 0) is not available in this libspqr")
            return  # greedy needs no state
        err, h = T.Err(), ctypes.c_void_p()
        _lib.check(lib.spqr_sampler_create(self.vocab, self.temperature, float(top_p), int(seed) & (2**64 - 1),
                                           ctypes.byref(h), ctypes.byref(err)), err)
        self._h = h

    def sample(self, logits):
        """Next token id from logits [vocab] (float32; a copy is overwritten, not logits)."""
        x = np.array(logits, dtype=np.float32, copy=True).reshape(-1)
        if x.size != self.vocab:
            raise SpqrError(Status.INVALID_ARG,
                            "logits hold %d values, the sampler's vocabulary %d" % (x.size, self.vocab))
        return self._sample_inplace(x)

    def _sample_inplace(self, x):
        if self._h is None:
            return int(np.argmax(x))  # first maximum, as spqr_argmax
        return int(self._lib.spqr_sampler_sample(self._h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))

    def close(self):
        if self._h:
            self._lib.spqr_sampler_free(self._h)
            self._h = None


class Generation:
    """Iterates over the text pieces of a continuation, as `spqr generate`
    streams them: stops at any of the model's EOS ids (stop_reason "eos"),
    after max_tokens ("length") or when the context is full ("context").
    Pieces are str; a UTF-8 character split over tokens comes out whole.
    .tokens holds the generated ids, .prompt the prompt's."""

    def __init__(self, model, prompt_ids, max_tokens=128, temperature=0.0, top_p=1.0, seed=0, ctx=None,
                 n_threads=None, chat=False):
        self.model = model
        self._chat = chat
        self.prompt = np.asarray(prompt_ids, np.int32)
        self.max_tokens = int(max_tokens)
        self.tokens = []
        self.stop_reason = None
        if self.prompt.size == 0:
            raise SpqrError(Status.INVALID_ARG, "the prompt is empty and the model has no BOS token")
        if self.max_tokens < 0:
            raise SpqrError(Status.INVALID_ARG, "max_tokens must be >= 0")
        cfg = model.config
        maxpos = cfg["max_position_embeddings"]
        if ctx is None:
            ctx = min(maxpos, self.prompt.size + self.max_tokens)
        if ctx > maxpos:
            raise SpqrError(Status.INVALID_ARG, "ctx %d exceeds the model's max_position_embeddings %d" % (ctx, maxpos))
        if self.prompt.size > ctx:
            raise SpqrError(Status.INVALID_ARG, "prompt of %d tokens does not fit the context of %d"
                            % (self.prompt.size, ctx))
        self.ctx = int(ctx)
        self._sampler = Sampler(cfg["vocab_size"], temperature, top_p, seed)
        self._session = model.session(self.ctx, n_threads)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def text(self):
        """Runs to the end; the whole continuation."""
        return "".join(self)

    def close(self):
        self._it.close()
        self._session.close()
        self._sampler.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self):
        s, m = self._session, self.model
        tok = m.tokenizer
        logits = s.forward(self.prompt)
        prev = -1 if self._chat else int(self.prompt[-1])  # a chat reply starts a text of its own
        try:
            while True:
                if len(self.tokens) >= self.max_tokens:
                    self.stop_reason = "length"
                    break
                nxt = self._sampler._sample_inplace(logits)
                if m.is_eos(nxt):
                    self.stop_reason = "eos"
                    break
                self.tokens.append(nxt)
                text = self._utf8.decode(tok.piece(prev, nxt))
                prev = nxt
                if text:
                    yield text
                if s.pos >= self.ctx:
                    self.stop_reason = "context"
                    break
                if len(self.tokens) < self.max_tokens:
                    s.forward([nxt], out=logits)
            tail = self._utf8.decode(b"", final=True)
            if tail:
                yield tail
        finally:
            s.close()
            self._sampler.close()
