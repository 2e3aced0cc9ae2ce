"""Pool, Connection and queries against the test PostgreSQL (libpq)."""

import gc
import warnings

import pytest

import connpool
from connpool import _lib


def test_execute_returns_text_rows_and_nulls(pg_pool):
    with pg_pool.connection() as conn:
        rows = conn.execute("SELECT $1::int + 1 AS n, NULL AS nothing, $2 AS t, $3::text IS NULL",
                            [41, "café ✓", None])
        assert rows == [("42", None, "café ✓", "t")]
        assert conn.columns == ("n", "nothing", "t", "?column?")
        assert conn.description[0] == ("n", None, None, None, None, None, None)
        assert conn.execute("SELECT g FROM generate_series(1, 3) g") == [("1",), ("2",), ("3",)]


def test_params_are_converted_with_str(pg_pool):
    with pg_pool.connection() as conn:
        rows = conn.execute("SELECT $1::numeric, $2::float8, $3::bool, $4::bool, $5::text",
                            (12345678901234567890, 0.5, True, False, "x'); DROP TABLE t; --"))
        assert rows == [("12345678901234567890", "0.5", "t", "f", "x'); DROP TABLE t; --")]
        with pytest.raises(TypeError):
            conn.execute("SELECT $1", [b"bytes"])
        with pytest.raises(TypeError):
            conn.execute("SELECT $1", "a string is not a parameter list")
        with pytest.raises(connpool.InvalidArgument):
            conn.execute("SELECT $1", ["nul\0inside"])


def test_rowcount_and_statements_without_rows(pg_pool):
    with pg_pool.connection() as conn:
        assert conn.execute("CREATE TEMP TABLE t (a int, b text)") == []
        assert conn.description is None and conn.columns == ()
        assert conn.rowcount == -1
        conn.execute("INSERT INTO t VALUES ($1, $2), ($3, NULL)", [1, "one", 2])
        assert conn.rowcount == 2
        conn.execute("UPDATE t SET b = 'x'")
        assert conn.rowcount == 2
        assert conn.execute("SELECT a, b FROM t ORDER BY a") == [("1", "x"), ("2", "x")]
        assert conn.rowcount == -1  # only statements that write count


def test_open_transaction_is_rolled_back_at_checkin(pg_pool):
    with pg_pool.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS py_tx (a int)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO py_tx VALUES (1)")
    with pg_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM py_tx") == [("0",)]
        conn.execute("DROP TABLE py_tx")


def test_query_error_has_sqlstate_and_connection_stays_usable(pg_pool):
    with pg_pool.connection() as conn:
        with pytest.raises(connpool.QueryError) as info:
            conn.execute("SELECT 1/0")
        e = info.value
        assert e.sqlstate == "22012" and e.code == _lib.POOL_EQUERY and e.name == "POOL_EQUERY"
        assert "division by zero" in e.message and "22012" in str(e)
        with pytest.raises(connpool.QueryError) as info:
            conn.execute("SELEC 1")
        assert info.value.sqlstate == "42601"
        assert conn.execute("SELECT 1") == [("1",)]


def test_lost_connection_is_invalidated(pg_pool):
    with pg_pool.connection() as victim, pg_pool.connection() as killer:
        pid = victim.execute("SELECT pg_backend_pid()")[0][0]
        killer.execute("SELECT pg_terminate_backend($1::int)", [pid])
        with pytest.raises(connpool.QueryError) as info:
            victim.execute("SELECT 1")
        assert info.value.sqlstate[:2] in ("08", "57")
    st = pg_pool.stats()
    assert st["checked_out"] == 0 and st["invalidated_total"] >= 1
    with pg_pool.connection() as conn:  # the pool opens a fresh one
        assert conn.execute("SELECT pg_backend_pid() <> $1::int", [pid]) == [("t",)]


def test_connection_is_always_checked_in(pg_pool):
    with pytest.raises(RuntimeError):
        with pg_pool.connection() as conn:
            raise RuntimeError("boom")
    assert conn.closed and pg_pool.stats()["checked_out"] == 0
    with pytest.raises(connpool.StateError):
        conn.execute("SELECT 1")
    conn.close()  # idempotent


def test_native_handle_and_invalidate(pg_pool):
    with pg_pool.connection() as conn:
        assert isinstance(conn.native_handle, int) and conn.native_handle != 0
        conn.invalidate()
    st = pg_pool.stats()
    assert st["invalidated_total"] == 1 and st["closed_total"] == 1 and st["idle"] == 0


def test_options_reach_the_pool(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=3, max_overflow=0, pool_use_lifo=True,
                       pool_timeout=0.25, pool_pre_ping=False, pre_ping_interval=1e-05,
                       reset_on_return="rollback", max_waiting=-1) as pool:
        st = pool.stats()
        assert (st["pool_size"], st["max_overflow"]) == (3, 0)


def test_bad_options_raise_invalid_argument(pg_conninfo):
    with pytest.raises(connpool.InvalidArgument) as info:
        connpool.Pool(pg_conninfo, pool_sise=3)
    assert isinstance(info.value, ValueError) and "pool_sise" in info.value.message
    with pytest.raises(ValueError, match="pool_size"):
        connpool.Pool(pg_conninfo, pool_size=0)
    with pytest.raises(ValueError, match="pool_timeout"):
        connpool.Pool(pg_conninfo, pool_timeout="soon")


def test_stats_has_every_field(pg_pool):
    with pg_pool.connection():
        pass
    st = pg_pool.stats()
    assert list(st) == [name for name, _ in _lib.PoolStats._fields_[1:]]
    assert st["wait_le_us"] == [0] * len(connpool.WAIT_BUCKET_US)
    assert st["checkouts_total"] == 1 and st["opened_total"] == 1 and st["idle"] == 1


def test_metrics(pg_pool):
    with pg_pool.connection():
        pass
    text = pg_pool.metrics("orders")
    assert 'connpool_connections{pool="orders",state="idle"} 1' in text
    assert "# TYPE connpool_checkout_wait_seconds histogram" in text and text.endswith("\n")
    assert "connpool_connections{state=\"idle\"} 1" in pg_pool.metrics()


def test_reset_closes_idle_connections(pg_pool):
    with pg_pool.connection(), pg_pool.connection():
        pass
    assert pg_pool.stats()["idle"] == 2
    pg_pool.reset()
    st = pg_pool.stats()
    assert st["idle"] == 0 and st["reset_closed_total"] == 2 and st["resets_total"] == 1


def test_timeout_names_the_holder(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=1, max_overflow=0) as pool:
        with pool.connection(tag="report:monthly"):
            with pytest.raises(connpool.PoolTimeout) as info:
                pool.connection(timeout=0.05)
        e = info.value
        assert isinstance(e, TimeoutError) and e.code == _lib.POOL_ETIMEDOUT and e.sqlstate == ""
        assert "QueuePool limit of size 1 overflow 0" in e.message
        assert "report:monthly" in e.message
        assert pool.stats()["timeouts_total"] == 1


def test_timeout_argument(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=1, max_overflow=0) as pool:
        with pool.connection(timeout=float("inf")):  # no limit (clamped to INT64_MAX ms)
            pass
        # 0: do not wait. It also leaves no time to connect: only an idle connection will do.
        with pool.connection(timeout=0):
            with pytest.raises(connpool.PoolTimeout):
                pool.connection(timeout=0)
        for bad in (-1, -0.0001, float("nan")):
            with pytest.raises(connpool.InvalidArgument):
                pool.connection(timeout=bad)


def test_too_many_waiters(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=1, max_overflow=0, max_waiting=0) as pool:
        with pool.connection():
            with pytest.raises(connpool.TooManyWaiters):
                pool.connection(timeout=5)
        assert pool.stats()["rejected_total"] == 1


def test_connect_error_hides_the_password():
    with connpool.Pool("host=127.0.0.1 port=1 user=u password=hunter2 connect_timeout=2") as pool:
        with pytest.raises(connpool.ConnectError) as info:
            pool.connection()
    assert info.value.message and "hunter2" not in str(info.value)


def test_closed_pool(pg_conninfo):
    with connpool.Pool(pg_conninfo) as pool:
        pass
    assert pool.closed
    with pytest.raises(connpool.PoolClosed):
        pool.connection()
    with pytest.raises(connpool.PoolClosed):
        pool.stats()
    pool.close()  # idempotent


def test_close_with_a_connection_out(pg_conninfo):
    pool = connpool.Pool(pg_conninfo)
    conn = pool.connection()
    with pytest.warns(ResourceWarning, match=r"1 lease\(s\) still out"):
        pool.close()
    assert conn.execute("SELECT 1") == [("1",)]  # still works until checked in
    conn.close()


def test_forgotten_connection_is_checked_in_when_collected(pg_pool):
    conn = pg_pool.connection()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del conn
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert pg_pool.stats()["checked_out"] == 0
