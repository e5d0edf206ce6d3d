"""Status codes of libspqr and the exception that carries them."""
import enum


class Status(enum.IntEnum):
    """spqr_status from spqr.h."""
    OK = 0
    INVALID_ARG = 1
    IO = 2
    FORMAT = 3
    NOMEM = 4
    NUMERIC = 5
    UNSUPPORTED = 6
    INTERRUPTED = 7


class SpqrError(Exception):
    """A failed libspqr call: .status (Status) and .message (the library's one-line reason)."""

    def __init__(self, status, message):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        super().__init__(message)

    def __repr__(self):
        return "SpqrError(%s, %r)" % (getattr(self.status, "name", self.status), self.message)
