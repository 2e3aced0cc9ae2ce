"""The C ABI of libconnpool (include/connpool.h), declared for ctypes, and how the library is found.

The library is loaded on first use (see lib()), from the first of:
  1. $CONNPOOL_LIBRARY, a full path (if set, nothing else is tried);
  2. the system's library path: "libconnpool.so.1", then ctypes.util.find_library("connpool");
  3. the in-tree build: build/libconnpool.so.1 at the root of the connpool source tree.

ctypes.CDLL (not PyDLL) releases the GIL around every foreign call, so a thread blocked in
pool_checkout() does not stop other Python threads.
"""

import ctypes
import ctypes.util
import os
import threading
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_void_p

SONAME = "libconnpool.so.1"
MIN_VERSION = 10100  # 1.1: pool_query(), pool_checkout_tagged(), pool_stats_prometheus()...

# Status codes (append-only in the C library).
POOL_OK = 0
POOL_ERROR = -1
POOL_EINVAL = -2
POOL_ENOMEM = -3
POOL_ETIMEDOUT = -4
POOL_ECONNECT = -5
POOL_EBUSY = -6
POOL_ECLOSED = -7
POOL_ESTATE = -8
POOL_ENOTSUP = -9
POOL_EFORKED = -10
POOL_ETOOMANYWAITERS = -11
POOL_ERANGE = -12
POOL_EQUERY = -13

POOL_WAIT_BUCKETS = 6
POOL_WAIT_BUCKET_US = (100, 1000, 10000, 100000, 1000000, 10000000)


class PoolStats(ctypes.Structure):
    """pool_stats_t: only int64_t fields, only ever appended. Set `size` before the call."""

    _fields_ = [
        ("size", c_int64),
        ("pool_size", c_int64),
        ("max_overflow", c_int64),
        ("checked_out", c_int64),
        ("idle", c_int64),
        ("opening", c_int64),
        ("overflow", c_int64),
        ("waiting", c_int64),
        ("opened_total", c_int64),
        ("closed_total", c_int64),
        ("connect_failures_total", c_int64),
        ("checkouts_total", c_int64),
        ("timeouts_total", c_int64),
        ("wait_total_us", c_int64),
        ("wait_max_us", c_int64),
        ("inherited_total", c_int64),
        # since 1.1
        ("connect_time_total_us", c_int64),
        ("connect_time_max_us", c_int64),
        ("waits_total", c_int64),
        ("wait_le_us", c_int64 * POOL_WAIT_BUCKETS),
        ("pings_total", c_int64),
        ("dead_total", c_int64),
        ("recycled_total", c_int64),
        ("idle_closed_total", c_int64),
        ("invalidated_total", c_int64),
        ("reset_closed_total", c_int64),
        ("resets_total", c_int64),
        ("leaks_total", c_int64),
        ("fast_fails_total", c_int64),
        ("rejected_total", c_int64),
    ]


# Handles (pool_t *, pool_lease_t *, pool_result_t *) are opaque: c_void_p.
_handle_out = POINTER(c_void_p)
_strings = POINTER(c_char_p)

# name: (restype, argtypes). Only what the binding uses; hooks and custom connectors are not
# exposed (their callbacks may run on the pool's maintenance thread).
_SIGNATURES = {
    "pool_create_params": (c_int, [_handle_out, c_char_p, _strings, _strings]),
    "pool_dispose": (c_int, [c_void_p]),
    "pool_checkout_tagged": (c_int, [_handle_out, c_void_p, c_int64, c_char_p]),
    "pool_lease_native": (c_void_p, [c_void_p]),
    "pool_checkin": (c_int, [c_void_p]),
    "pool_invalidate": (c_int, [c_void_p]),
    "pool_reset": (c_int, [c_void_p]),
    "pool_wait_ready": (c_int, [c_void_p, c_int64]),
    "pool_stats_get": (c_int, [c_void_p, POINTER(PoolStats)]),
    "pool_stats_prometheus": (c_int, [c_char_p, c_size_t, POINTER(c_size_t), c_void_p, c_char_p]),
    "pool_query": (c_int, [_handle_out, c_void_p, c_char_p, c_int, _strings]),
    "pool_result_rows": (c_int64, [c_void_p]),
    "pool_result_columns": (c_int, [c_void_p]),
    "pool_result_column_name": (c_char_p, [c_void_p, c_int]),
    "pool_result_value": (c_char_p, [c_void_p, c_int64, c_int]),
    "pool_result_affected": (c_int64, [c_void_p]),
    "pool_result_free": (None, [c_void_p]),
    "pool_version": (c_int, []),
    "pool_version_string": (c_char_p, []),
    "pool_error_name": (c_char_p, [c_int]),
    "pool_last_error": (c_char_p, []),
    "pool_last_sqlstate": (c_char_p, []),
}

_lock = threading.Lock()
_lib = None
_path = None


# bindings/python/connpool/_lib.py -> the root of the connpool source tree, if it is one.
_SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _candidates():
    """Where to look, in order (a generator: find_library runs a subprocess, so only if needed)."""
    explicit = os.environ.get("CONNPOOL_LIBRARY")
    if explicit:
        yield explicit
        return
    yield SONAME
    found = ctypes.util.find_library("connpool")
    if found and found != SONAME:
        yield found
    if os.path.exists(os.path.join(_SOURCE_ROOT, "include", "connpool.h")):
        yield os.path.join(_SOURCE_ROOT, "build", SONAME)


def _declare(cdll, path):
    version = cdll.pool_version()
    if not MIN_VERSION <= version < 20000:
        raise OSError(f"{path}: libconnpool version {version // 10000}.{version // 100 % 100}"
                      f".{version % 100}; this binding needs 1.x from 1.1 on")
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(cdll, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return cdll


def lib():
    """The loaded library (loaded and declared on the first call)."""
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            tried = []
            for path in _candidates():
                try:
                    _lib, _path = _declare(ctypes.CDLL(path), path), path
                    break
                except (OSError, AttributeError) as e:  # not there, too old, a symbol missing
                    tried.append(str(e))
            else:
                raise OSError("no usable libconnpool; set CONNPOOL_LIBRARY to its full path. "
                              "Tried: " + "; ".join(tried))
    return _lib


def path():
    """How the library was found: the path or name given to dlopen()."""
    lib()
    return _path
