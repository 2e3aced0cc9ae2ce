"""Fixtures. The tests run under tests/with-postgres.sh, which starts a throwaway PostgreSQL
(PG* variables, so a libpq conninfo of "" reaches it) and sets CONNPOOL_TEST_SQLITE_DIR."""

import os
import sys

import pytest

# The package from this source tree, ahead of any installed copy.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import connpool  # noqa: E402

APP = f"connpool-py-{os.getpid()}"


@pytest.fixture
def pg_conninfo():
    if "PGPORT" not in os.environ:
        pytest.skip("no PostgreSQL: run under tests/with-postgres.sh")
    return f"application_name={APP}"


@pytest.fixture
def pg_pool(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=2, max_overflow=0, pool_timeout=5) as pool:
        yield pool


@pytest.fixture
def sqlite_conninfo():
    base = os.environ.get("CONNPOOL_TEST_SQLITE_DIR")
    if not base:
        pytest.skip("no SQLite ODBC driver: run under tests/with-postgres.sh")
    path = os.path.join(base, "py.db")
    if os.path.exists(path):
        os.unlink(path)
    return "odbc:Driver=SQLite3;Database=" + path
