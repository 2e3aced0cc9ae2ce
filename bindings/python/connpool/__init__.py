"""connpool: Python binding (ctypes) of libconnpool, a database connection pool.

    import connpool
    with connpool.Pool("", pool_size=5) as pool:          # "": libpq's PG* variables
        with pool.connection(timeout=2) as conn:
            print(conn.execute("SELECT $1::int * 2", [21]))   # [('42',)]
"""

from . import _lib
from .errors import (ConnectError, Error, Forked, InvalidArgument, PoolClosed, PoolTimeout,
                     QueryError, StateError, TooManyWaiters)
from .pool import Connection, Pool

__version__ = "1.1.0"
WAIT_BUCKET_US = _lib.POOL_WAIT_BUCKET_US


def library_version():
    """The loaded libconnpool's version string, e.g. "1.1.0"."""
    return _lib.lib().pool_version_string().decode("ascii")


def library_path():
    """The path (or name) the library was loaded from."""
    return _lib.path()


__all__ = ["Pool", "Connection", "Error", "PoolTimeout", "ConnectError", "QueryError",
           "PoolClosed", "TooManyWaiters", "InvalidArgument", "StateError", "Forked",
           "WAIT_BUCKET_US", "library_version", "library_path"]
