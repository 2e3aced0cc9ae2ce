"""ODBC: an SQLite file through the SQLite ODBC driver (placeholders are ?)."""

import pytest

import connpool


def test_sqlite_through_odbc(sqlite_conninfo):
    with connpool.Pool(sqlite_conninfo, pool_size=1) as pool:
        with pool.connection() as conn:
            conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, note TEXT)")
            conn.execute("INSERT INTO item (name, note) VALUES (?, ?), (?, ?)",
                         ["café ✓", None, 7, "n"])
            assert conn.rowcount == 2
            rows = conn.execute("SELECT id, name, note FROM item WHERE id >= ? ORDER BY id", [1])
            assert rows == [("1", "café ✓", None), ("2", "7", "n")]
            assert conn.columns == ("id", "name", "note")
            conn.execute("DELETE FROM item WHERE id = ?", [2])
            assert conn.rowcount == 1
        with pool.connection() as conn:  # the same file, through the pooled connection
            assert conn.execute("SELECT count(*) FROM item") == [("1",)]
            conn.execute("BEGIN")
            conn.execute("INSERT INTO item (name) VALUES (?)", ["uncommitted"])
        with pool.connection() as conn:  # reset_on_return rolled the BEGIN back
            assert conn.execute("SELECT count(*) FROM item") == [("1",)]


def test_sqlite_error(sqlite_conninfo):
    with connpool.Pool(sqlite_conninfo, pool_size=1) as pool:
        with pool.connection() as conn:
            with pytest.raises(connpool.QueryError) as info:
                conn.execute("SELECT * FROM no_such_table")
            assert "no_such_table" in info.value.message
            assert len(info.value.sqlstate) == 5
            assert conn.execute("SELECT 1") == [("1",)]
