// The safe API on an SQLite file through unixODBC and the SQLite ODBC driver, registered by
// tests/with-postgres.sh in a private ODBCSYSINI (CONNPOOL_TEST_SQLITE_DIR is its scratch
// directory).
mod common;

use connpool::{Error, Pool};

#[test]
fn sqlite_through_odbc() {
    let dir = common::env_or_fail("CONNPOOL_TEST_SQLITE_DIR");
    let db = format!("{}/rs.db", dir);
    let _ = std::fs::remove_file(&db);
    let pool = Pool::new(
        &format!("odbc:Driver=SQLite3;Database={}", db),
        &[("pool_size", "2")],
    )
    .expect("odbc pool");
    {
        let lease = pool.checkout(None, Some("sqlite")).unwrap();
        assert!(!lease.native_handle().is_null()); // an SQLHDBC
        lease
            .query(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, note TEXT)",
                &[],
            )
            .unwrap();
        let r = lease
            .query(
                "INSERT INTO items (id, name, note) VALUES (?, ?, ?)",
                &[Some("1"), Some("wrench"), None],
            )
            .unwrap();
        assert_eq!(r.affected, Some(1));
        lease
            .query(
                "INSERT INTO items (id, name, note) VALUES (?, ?, ?)",
                &[Some("2"), Some("grüße"), Some("n")],
            )
            .unwrap();
        let err = lease
            .query("SELECT * FROM no_such_table_rs", &[])
            .unwrap_err();
        assert!(matches!(err, Error::Query { .. }), "{:?}", err);
        assert!(
            err.message().contains("no_such_table_rs"),
            "{}",
            err.message()
        );
    }
    // Another checkout (the same connection or the other one) sees the committed rows.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let lease = pool.checkout(None, None).unwrap();
                let r = lease
                    .query("SELECT id, name, note FROM items ORDER BY id", &[])
                    .unwrap();
                assert_eq!(r.columns, ["id", "name", "note"]);
                assert_eq!(
                    r.rows,
                    vec![
                        vec![Some("1".to_string()), Some("wrench".to_string()), None],
                        vec![
                            Some("2".to_string()),
                            Some("grüße".to_string()),
                            Some("n".to_string())
                        ],
                    ]
                );
                assert_eq!(r.affected, None);
            });
        }
    });
    let r = pool
        .checkout(None, None)
        .unwrap()
        .query("DELETE FROM items", &[])
        .unwrap();
    assert_eq!(r.affected, Some(2));
    let st = pool.stats();
    assert_eq!(st.checked_out, 0);
    assert!(st.opened_total >= 1 && st.opened_total <= 2, "{:?}", st);
    drop(pool);
    let _ = std::fs::remove_file(&db);
}
