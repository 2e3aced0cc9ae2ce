"""Exceptions, one class per status code of the C library.

Every exception carries `.code` (the POOL_E* value), `.name` ("POOL_ETIMEDOUT"), `.message`
(pool_last_error(), read right after the failing call on the same thread) and `.sqlstate`
(pool_last_sqlstate(): five characters for a failed statement, "" otherwise).
"""

from . import _lib


class Error(Exception):
    """Base class of every connpool error."""

    code = _lib.POOL_ERROR
    name = "POOL_ERROR"

    def __init__(self, message="", *, code=None, name=None, sqlstate=""):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name

    def __str__(self):
        text = f"{self.name}: {self.message}" if self.message else self.name
        return f"{text} (SQLSTATE {self.sqlstate})" if self.sqlstate else text


class PoolTimeout(Error, TimeoutError):
    """No connection became free within the timeout (the message names the longest holders)."""
    code, name = _lib.POOL_ETIMEDOUT, "POOL_ETIMEDOUT"


class ConnectError(Error):
    """The driver failed to open a connection (or the pool is failing fast)."""
    code, name = _lib.POOL_ECONNECT, "POOL_ECONNECT"


class QueryError(Error):
    """The statement failed; `.sqlstate` says why."""
    code, name = _lib.POOL_EQUERY, "POOL_EQUERY"


class PoolClosed(Error):
    """The pool is disposed."""
    code, name = _lib.POOL_ECLOSED, "POOL_ECLOSED"


class TooManyWaiters(Error):
    """max_waiting threads wait already: the checkout was not queued."""
    code, name = _lib.POOL_ETOOMANYWAITERS, "POOL_ETOOMANYWAITERS"


class InvalidArgument(Error, ValueError):
    """A bad argument: unknown option, bad value."""
    code, name = _lib.POOL_EINVAL, "POOL_EINVAL"


class StateError(Error):
    """The connection is not checked out (it was given back already)."""
    code, name = _lib.POOL_ESTATE, "POOL_ESTATE"


class Forked(Error):
    """The connection was checked out before fork(): unusable in this process; close it."""
    code, name = _lib.POOL_EFORKED, "POOL_EFORKED"


_BY_CODE = {cls.code: cls for cls in (PoolTimeout, ConnectError, QueryError, PoolClosed,
                                      TooManyWaiters, InvalidArgument, StateError, Forked)}


def error(code, message, sqlstate=""):
    """The exception for `code`; codes without a class of their own give an Error."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message, sqlstate=sqlstate)
    name = _lib.lib().pool_error_name(code).decode("ascii", "replace")
    return Error(message, code=code, name=name, sqlstate=sqlstate)


def check(rc):
    """Raise for a failed status code. Call it right after the C call, on the same thread:
    the detail message and SQLSTATE are per-thread and replaced by the next connpool call."""
    if rc == _lib.POOL_OK:
        return
    lib = _lib.lib()
    message = lib.pool_last_error().decode("utf-8", "replace")
    sqlstate = lib.pool_last_sqlstate().decode("ascii", "replace")
    raise error(rc, message, sqlstate)
