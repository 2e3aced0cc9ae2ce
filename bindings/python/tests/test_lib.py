"""Finding the library, and the exception classes (no database needed)."""

import ctypes
import ctypes.util
import os
import pickle
import re
import subprocess
import sys

import pytest

import connpool
from connpool import _lib
from connpool.errors import error

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_TREE = os.path.join(os.path.dirname(os.path.dirname(PACKAGE_DIR)), "build", _lib.SONAME)


def run(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("CONNPOOL_LIBRARY", "LD_LIBRARY_PATH")}
    env.update(env_changes, PYTHONPATH=PACKAGE_DIR, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_loaded_library():
    assert connpool.library_version().startswith("1.")
    if os.environ.get("CONNPOOL_LIBRARY"):
        assert connpool.library_path() == os.environ["CONNPOOL_LIBRARY"]


def test_connpool_library_is_the_only_place_tried_when_set():
    r = run("import connpool\ntry:\n connpool.Pool('')\nexcept OSError as e:\n print(e)",
            CONNPOOL_LIBRARY="/nonexistent/libconnpool.so.1")
    assert r.returncode == 0 and "/nonexistent/libconnpool.so.1" in r.stdout
    assert "no usable libconnpool" in r.stdout


@pytest.mark.skipif(not os.path.exists(IN_TREE), reason="no in-tree build")
def test_found_without_connpool_library():
    r = run("import connpool; print(connpool.library_path())")
    assert r.returncode == 0, r.stderr
    # The system's copy comes first; the in-tree build otherwise.
    assert r.stdout.strip() in (_lib.SONAME, ctypes.util.find_library("connpool"), IN_TREE)


def test_exception_classes():
    cases = {_lib.POOL_ETIMEDOUT: (connpool.PoolTimeout, TimeoutError),
             _lib.POOL_ECONNECT: (connpool.ConnectError, connpool.Error),
             _lib.POOL_EQUERY: (connpool.QueryError, connpool.Error),
             _lib.POOL_ECLOSED: (connpool.PoolClosed, connpool.Error),
             _lib.POOL_ETOOMANYWAITERS: (connpool.TooManyWaiters, connpool.Error),
             _lib.POOL_EINVAL: (connpool.InvalidArgument, ValueError),
             _lib.POOL_ESTATE: (connpool.StateError, connpool.Error),
             _lib.POOL_EFORKED: (connpool.Forked, connpool.Error)}
    for code, (cls, also) in cases.items():
        e = error(code, "detail", "")
        assert type(e) is cls and isinstance(e, also) and isinstance(e, connpool.Error)
        assert e.code == code and e.message == "detail"
        assert e.name == _lib.lib().pool_error_name(code).decode()
    other = error(_lib.POOL_ENOMEM, "no memory")
    assert type(other) is connpool.Error and other.name == "POOL_ENOMEM"
    assert str(other) == "POOL_ENOMEM: no memory"
    q = pickle.loads(pickle.dumps(error(_lib.POOL_EQUERY, "bad", "42601")))
    assert (type(q), q.code, q.message, q.sqlstate) == (connpool.QueryError, -13, "bad", "42601")


def test_stats_struct_matches_the_library_and_header():
    # The library fills min(size, its own size) and says how much: offer more than we declare.
    class Bigger(ctypes.Structure):
        _fields_ = [("stats", _lib.PoolStats), ("spare", ctypes.c_int64 * 16)]

    with connpool.Pool("host=127.0.0.1 port=1") as pool:  # no connection is opened
        big = Bigger()
        big.stats.size = ctypes.sizeof(big)
        stats = ctypes.cast(ctypes.byref(big), ctypes.POINTER(_lib.PoolStats))
        assert _lib.lib().pool_stats_get(pool._handle, stats) == 0
        assert big.stats.size == ctypes.sizeof(_lib.PoolStats)
    header = os.path.join(os.path.dirname(os.path.dirname(PACKAGE_DIR)), "include", "connpool.h")
    if os.path.exists(header):
        text = open(header).read()
        body = text[text.index("typedef struct pool_stats {"):text.index("} pool_stats_t;")]
        names = re.findall(r"int64_t (\w+)(?:\[(\w+)\])?;", body)
        assert [n for n, _ in names] == [n for n, _ in _lib.PoolStats._fields_]
        assert [a for _, a in names if a] == ["POOL_WAIT_BUCKETS"]
        buckets = re.search(r"#define POOL_WAIT_BUCKET_US \{([^}]*)\}", text).group(1)
        assert tuple(int(b) for b in buckets.split(",")) == connpool.WAIT_BUCKET_US
