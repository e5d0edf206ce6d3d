"""The package's version: libspqr's (include/spqr.h SPQR_VERSION_*), which tests/python/test_errors.py checks."""
__version__ = "0.1.0"
