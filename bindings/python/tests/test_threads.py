"""Threads: ctypes.CDLL releases the GIL around every call into the library."""

import threading
import time

import pytest

import connpool


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_blocked_checkout_does_not_block_other_threads(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=1, max_overflow=0) as pool:
        held = pool.connection()
        got = {}

        def waiter():
            start = time.monotonic()
            with pool.connection(timeout=10) as conn:  # blocks in C until the checkin below
                got["waited"] = time.monotonic() - start
                got["rows"] = conn.execute("SELECT 1")

        thread = threading.Thread(target=waiter)
        thread.start()
        assert wait_until(lambda: pool.stats()["waiting"] == 1)
        # The waiter is inside pool_checkout(); this thread must keep running Python code.
        count, until = 0, time.monotonic() + 0.2
        while time.monotonic() < until:
            count += 1
        assert count > 10000
        assert pool.stats()["waiting"] == 1 and thread.is_alive() and not got
        held.close()  # hands the connection to the waiter
        thread.join(5)
        assert not thread.is_alive()
        assert got["rows"] == [("1",)] and 0.2 <= got["waited"] < 5
        st = pool.stats()
        assert st["waits_total"] == 1 and st["timeouts_total"] == 0


def test_dispose_wakes_a_waiter_with_pool_closed(pg_conninfo):
    pool = connpool.Pool(pg_conninfo, pool_size=1, max_overflow=0)
    held = pool.connection()
    errors = []

    def waiter():
        try:
            pool.connection(timeout=10)
        except connpool.Error as e:
            errors.append(e)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_until(lambda: pool.stats()["waiting"] == 1)
    with pytest.warns(ResourceWarning):  # POOL_EBUSY: `held` is still out
        pool.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], connpool.PoolClosed)
    assert errors[0].code == connpool.PoolClosed.code and errors[0].message
    held.close()


def test_threads_share_a_pool(pg_conninfo):
    with connpool.Pool(pg_conninfo, pool_size=2, max_overflow=1) as pool:
        failures = []

        def work(i):
            try:
                for _ in range(20):
                    with pool.connection() as conn:
                        assert conn.execute("SELECT $1::int * 2", [i]) == [(str(2 * i),)]
            except Exception as e:  # pragma: no cover - reported below
                failures.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        st = pool.stats()
        assert st["checkouts_total"] == 160 and st["opened_total"] <= 3 and st["checked_out"] == 0


def test_error_details_are_per_thread(pg_conninfo):
    """pool_last_error()/pool_last_sqlstate() are read on the thread that failed."""
    with connpool.Pool(pg_conninfo, pool_size=4, max_overflow=0) as pool:
        cases = {"SELECT 1/0": "22012", "SELEC 1": "42601", "SELECT * FROM nowhere": "42P01",
                 "SELECT 'x'::int": "22P02"}
        wrong = []

        def work(sql, sqlstate):
            with pool.connection() as conn:
                for _ in range(50):
                    try:
                        conn.execute(sql)
                    except connpool.QueryError as e:
                        if e.sqlstate != sqlstate:
                            wrong.append((sql, e.sqlstate, e.message))

        threads = [threading.Thread(target=work, args=c) for c in cases.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not wrong
