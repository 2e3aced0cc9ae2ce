"""Fork: a pool created in the parent works in forked children, and the parent is unharmed."""

import multiprocessing
import os

import connpool

POOL = None  # the parent's pool, inherited by the forked workers


def backend_pid(_):
    with POOL.connection() as conn:
        pid = conn.execute("SELECT pg_backend_pid()")[0][0]
    return os.getpid(), int(pid), POOL.stats()["inherited_total"]


def parent_pids(pool):
    """The backend pids of the parent's two connections, both checked out at once."""
    with pool.connection() as a, pool.connection() as b:
        return {int(c.execute("SELECT pg_backend_pid()")[0][0]) for c in (a, b)}


def test_multiprocessing_fork_workers_get_their_own_connections(pg_conninfo):
    global POOL
    with connpool.Pool(pg_conninfo, pool_size=2, max_overflow=0) as pool:
        POOL = pool
        before = parent_pids(pool)  # both connections now idle in the parent's pool
        assert len(before) == 2 and pool.stats()["idle"] == 2
        try:
            with multiprocessing.get_context("fork").Pool(2) as workers:
                results = workers.map(backend_pid, range(6), chunksize=1)
        finally:
            POOL = None
        assert {r[0] for r in results}.isdisjoint({os.getpid()})
        child_pids = {r[1] for r in results}
        assert child_pids.isdisjoint(before)
        assert all(r[2] == 2 for r in results)  # each worker dropped the 2 it inherited
        # The parent still has the same two sessions, and they work.
        assert parent_pids(pool) == before
        st = pool.stats()
        assert (st["opened_total"], st["closed_total"], st["inherited_total"]) == (2, 0, 0)
        with pool.connection() as conn:
            live = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                ["{" + ",".join(map(str, before)) + "}"])
            assert live == [("2",)]


def test_connection_held_across_fork_is_dead_in_the_child(pg_pool):
    with pg_pool.connection() as conn:
        pid = conn.execute("SELECT pg_backend_pid()")[0][0]
        child = os.fork()
        if child == 0:  # the child: report through the exit status, never return to pytest
            status = 1
            try:
                assert conn.native_handle is None
                for call in (conn.invalidate, lambda: conn.execute("SELECT 1")):
                    try:
                        call()
                        raise AssertionError("no error")
                    except connpool.Forked as e:
                        assert e.code == connpool.Forked.code and e.message
                conn.close()  # dropped without a word to the server
                with pg_pool.connection() as fresh:
                    assert fresh.execute("SELECT pg_backend_pid()")[0][0] != pid
                status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert conn.execute("SELECT pg_backend_pid()")[0][0] == pid
