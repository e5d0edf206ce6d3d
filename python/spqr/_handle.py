"""The lifetime rule shared by every class that owns a library handle."""


class Closing:
    """`with` support and a finalizer for a class whose close() frees its
    library handle (close() must be safe to call twice)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
