"""Pool and Connection: thin wrappers over pool_t and pool_lease_t."""

import ctypes
import math
import warnings
from ctypes import byref, c_char_p, c_size_t, c_void_p

from . import _lib
from .errors import InvalidArgument, PoolClosed, StateError, check


def _encode(what, value):
    """str -> UTF-8 bytes for a C string, refusing a NUL (C would cut the string there)."""
    data = value.encode("utf-8")
    if b"\0" in data:
        raise InvalidArgument(f"{what} contains a NUL character")
    return data


def _option_text(value):
    """An option's value as the C parser wants it: true/false, integers, plain decimals."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        # The C parser takes no exponent: 1e-05 -> 0.00001.
        return format(value, ".20f").rstrip("0") if "e" in text else text
    return str(value)


_INT64_MAX = 2**63 - 1


def _timeout_ms(timeout):
    """Seconds (None: the pool's pool_timeout; inf: no limit) -> the C API's milliseconds
    (-1: pool_timeout). ctypes would silently wrap an int64 overflow: clamp instead."""
    if timeout is None:
        return -1
    seconds = float(timeout)
    if not seconds >= 0:  # negative or NaN
        raise InvalidArgument(f"timeout: {timeout!r} is not a number of seconds >= 0 (or None)")
    return _INT64_MAX if seconds * 1000 >= _INT64_MAX else math.ceil(seconds * 1000)


def _param(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("bytes parameters are not supported: parameters are text")
    return _encode("a parameter", str(value))


class Pool:
    """A connection pool: Pool(conninfo, **options), options with the C names.

        with Pool("postgresql://app@db/app", pool_size=5, pool_timeout=2.5) as pool:
            with pool.connection() as conn:
                rows = conn.execute("SELECT $1::int + 1", [41])

    conninfo is passed to the driver untouched: a libpq URI or key=value string, "" for the
    PG* environment variables, or "odbc:" followed by an ODBC connection string.
    A pool may be used from any number of threads; close() must not race with other calls
    (threads already waiting in connection() are woken with PoolClosed).
    """

    def __init__(self, conninfo="", **options):
        self._handle = None
        lib = _lib.lib()
        n = len(options)
        keys = (c_char_p * (n + 1))(*[_encode("an option name", k) for k in options], None)
        values = (c_char_p * (n + 1))(
            *[_encode(f"option {k}", _option_text(v)) for k, v in options.items()], None)
        handle = c_void_p()
        check(lib.pool_create_params(byref(handle), _encode("conninfo", conninfo), keys, values))
        self._handle = handle.value

    def _live(self):
        if self._handle is None:
            raise PoolClosed("the pool is closed")
        return self._handle

    def connection(self, timeout=None, tag=None):
        """Check a connection out: wait up to `timeout` seconds (None: the pool's pool_timeout;
        0: do not wait, which also leaves no time to open a connection; inf: no limit). `tag`
        labels it in leak reports and timeout messages. Use it in a `with` block, or call
        close() to give it back."""
        lease = c_void_p()
        tag_bytes = None if tag is None else _encode("tag", tag)
        check(_lib.lib().pool_checkout_tagged(byref(lease), self._live(), _timeout_ms(timeout),
                                              tag_bytes))
        return Connection(self, lease.value)

    def stats(self):
        """pool_stats_get(): a dict of every field the library filled (wait_le_us a list)."""
        st = _lib.PoolStats()
        st.size = ctypes.sizeof(st)
        check(_lib.lib().pool_stats_get(self._live(), byref(st)))
        out = {}
        for name, _ in _lib.PoolStats._fields_[1:]:
            field = getattr(_lib.PoolStats, name)
            if field.offset + field.size > st.size:
                break  # an older library: it did not fill this field
            value = getattr(st, name)
            out[name] = list(value) if isinstance(value, ctypes.Array) else value
        return out

    def metrics(self, name=None):
        """The statistics in the Prometheus text format; `name` becomes a pool="name" label."""
        lib = _lib.lib()
        handle = self._live()
        name_bytes = None if name is None else _encode("name", name)
        length = c_size_t()
        buf, size = None, 0
        while True:
            rc = lib.pool_stats_prometheus(buf, size, byref(length), handle, name_bytes)
            if rc != _lib.POOL_ERANGE:
                break
            # Counters may grow between two calls: leave room, and retry if it was not enough.
            size = length.value + 1 + 256
            buf = ctypes.create_string_buffer(size)
        check(rc)
        return buf.raw[:length.value].decode("utf-8")

    def reset(self):
        """pool_reset(): retire every connection open now (idle ones close at once)."""
        check(_lib.lib().pool_reset(self._live()))

    def wait_ready(self, timeout=None):
        """pool_wait_ready(): wait until min_idle connections are open."""
        check(_lib.lib().pool_wait_ready(self._live(), _timeout_ms(timeout)))

    def close(self):
        """pool_dispose(). Threads waiting in connection() wake with PoolClosed; connections
        still out keep working until closed, and then close. As in C, no other thread may be
        about to call into the pool: the handle is gone once close() starts."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        lib = _lib.lib()
        rc = lib.pool_dispose(handle)
        if rc == _lib.POOL_EBUSY:  # connections still out: released at their checkin
            warnings.warn(lib.pool_last_error().decode("utf-8", "replace"), ResourceWarning,
                          stacklevel=2)
            return
        check(rc)

    dispose = close

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            try:
                self.close()
            except Exception:
                pass


class Connection:
    """A checked-out connection (a lease). Used by one thread at a time."""

    def __init__(self, pool, lease):
        self._pool = pool  # keeps the Pool object (and so the C pool) alive while out
        self._lease = lease
        self.columns = ()
        self.description = None
        self.rowcount = -1

    def _live(self):
        if self._lease is None:
            raise StateError("the connection was given back to the pool")
        return self._lease

    def execute(self, sql, params=()):
        """Run one statement with positional text parameters ($1, $2 for libpq; ? for ODBC).
        Returns the rows as a list of tuples of str or None; sets .columns, .description and
        .rowcount (rows affected, -1 if the driver does not say)."""
        if isinstance(params, (str, bytes, bytearray)):
            raise TypeError("params must be a sequence of values, not a string")
        values = [_param(p) for p in params]
        array = (c_char_p * len(values))(*values) if values else None
        lib = _lib.lib()
        result = c_void_p()
        check(lib.pool_query(byref(result), self._live(), _encode("sql", sql), len(values),
                             array))
        try:
            ncols = lib.pool_result_columns(result)
            nrows = lib.pool_result_rows(result)
            names = tuple(lib.pool_result_column_name(result, c).decode("utf-8")
                          for c in range(ncols))
            value = lib.pool_result_value
            rows = [tuple(None if v is None else v.decode("utf-8")
                          for v in (value(result, r, c) for c in range(ncols)))
                    for r in range(nrows)]
            affected = lib.pool_result_affected(result)
        finally:
            lib.pool_result_free(result)
        self.columns = names
        self.description = tuple((n, None, None, None, None, None, None) for n in names) or None
        self.rowcount = affected
        return rows

    @property
    def native_handle(self):
        """The driver's handle (PGconn * or SQLHDBC) as an int; None after a fork."""
        return _lib.lib().pool_lease_native(self._live())

    def invalidate(self):
        """Close this connection at checkin instead of reusing it."""
        check(_lib.lib().pool_invalidate(self._live()))

    def close(self):
        """Give the connection back (pool_checkin). Idempotent."""
        lease, self._lease = self._lease, None
        if lease is not None:
            check(_lib.lib().pool_checkin(lease))

    @property
    def closed(self):
        return self._lease is None

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_lease", None) is not None:
            warnings.warn("connpool connection was never closed; checked in now", ResourceWarning)
            try:
                self.close()
            except Exception:
                pass
