// The safe API against the throwaway PostgreSQL of tests/with-postgres.sh, through libpq.
mod common;

use std::os::raw::{c_int, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{await_sessions, pg_pool};
use connpool::{Error, Lease, Pool};

// Compile-time: a Pool can be shared between threads, a Lease moved to another thread.
const _: () = {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    #[allow(dead_code)]
    fn check() {
        send_sync::<Pool>();
        send_sync::<Arc<Pool>>();
        send::<Lease<'static>>();
    }
};

#[link(name = "pq")]
extern "C" {
    fn PQbackendPID(conn: *const c_void) -> c_int;
}

fn backend_pid(lease: &Lease<'_>) -> String {
    lease.query("SELECT pg_backend_pid()", &[]).unwrap().rows[0][0]
        .clone()
        .unwrap()
}

#[test]
fn threads_share_one_pool() {
    let (pool, app) = pg_pool("threads", &[("pool_size", "4"), ("max_overflow", "0")]);
    std::thread::scope(|s| {
        for t in 0..16 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..50 {
                    let lease = pool.checkout(None, Some("worker")).unwrap();
                    let n = (t * 1000 + i).to_string();
                    let r = lease.query("SELECT $1::int + 1", &[Some(&n)]).unwrap();
                    assert_eq!(r.get(0, 0), Some((t * 1000 + i + 1).to_string().as_str()));
                }
            });
        }
    });
    let st = pool.stats();
    assert_eq!(st.checkouts_total, 16 * 50);
    assert_eq!(st.checked_out, 0);
    assert!(st.opened_total <= 4, "{:?}", st);
    assert_eq!(st.idle, st.opened_total);
    assert_eq!(st.timeouts_total, 0);
    drop(pool);
    await_sessions(&app, 0); // Drop disposed the pool and closed its connections
}

#[test]
fn arc_pool_across_spawned_threads() {
    let (pool, _) = pg_pool("arc", &[("pool_size", "2")]);
    let pool = Arc::new(pool);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let lease = pool.checkout(None, None).unwrap();
                lease.query("SELECT 1", &[]).unwrap().rows.len()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 1);
    }
    assert_eq!(pool.stats().checkouts_total, 4);
}

#[test]
fn query_with_params_and_nulls() {
    let (pool, app) = pg_pool("params", &[]);
    let lease = pool.checkout(None, None).unwrap();
    let r = lease
        .query(
            "SELECT $1::text AS a, $2::text AS b, $2::text IS NULL AS b_is_null, \
             $3::int * 2 AS c, current_setting('application_name') AS app",
            &[Some("héllo 'quoted' $1"), None, Some("21")],
        )
        .unwrap();
    assert_eq!(r.columns, ["a", "b", "b_is_null", "c", "app"]);
    assert_eq!(
        r.rows,
        vec![vec![
            Some("héllo 'quoted' $1".to_string()),
            None,
            Some("t".to_string()),
            Some("42".to_string()),
            Some(app),
        ]]
    );
    assert_eq!(r.affected, None);
    assert_eq!(r.column_index("c"), Some(3));

    // DML reports affected rows; a statement without rows has no columns.
    lease
        .query("CREATE TEMP TABLE t (id int, v text)", &[])
        .unwrap();
    let r = lease
        .query(
            "INSERT INTO t VALUES (1, $1), (2, $2), (3, NULL)",
            &[Some("x"), None],
        )
        .unwrap();
    assert_eq!(r.affected, Some(3));
    assert!(r.rows.is_empty() && r.columns.is_empty());
    let r = lease
        .query("UPDATE t SET v = 'y' WHERE v IS NULL", &[])
        .unwrap();
    assert_eq!(r.affected, Some(2));
    let r = lease.query("SELECT id, v FROM t ORDER BY id", &[]).unwrap();
    assert_eq!(r.rows.len(), 3);
    assert_eq!(r.get(0, 1), Some("x"));
    assert_eq!(r.get(1, 1), Some("y"));
    let r = lease.query("SELECT id FROM t WHERE false", &[]).unwrap();
    assert_eq!((r.columns.len(), r.rows.len()), (1, 0));
}

#[test]
fn failed_statement_carries_sqlstate_and_the_lease_survives() {
    let (pool, _) = pg_pool("sqlstate", &[("pool_size", "1")]);
    let lease = pool.checkout(None, None).unwrap();
    let err = lease
        .query("SELECT * FROM no_such_table_rs", &[])
        .unwrap_err();
    match &err {
        Error::Query { message, sqlstate } => {
            assert_eq!(sqlstate, "42P01");
            assert!(message.contains("no_such_table_rs"), "{}", message);
        }
        other => panic!("expected Error::Query, got {:?}", other),
    }
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert_eq!(err.code(), connpool::sys::POOL_EQUERY);
    assert_eq!(err.name(), "POOL_EQUERY");
    let text = err.to_string();
    assert!(
        text.starts_with("POOL_EQUERY: ") && text.ends_with("(SQLSTATE 42P01)"),
        "{}",
        text
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert!(boxed.to_string().contains("no_such_table_rs"));

    // Another SQLSTATE, from a parameter the server refuses.
    let err = lease
        .query("SELECT $1::int", &[Some("not a number")])
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("22P02"));

    // The lease is still usable, and an unrelated success leaves no stale message.
    let r = lease.query("SELECT 1", &[]).unwrap();
    assert_eq!(r.get(0, 0), Some("1"));
    drop(lease);
    let st = pool.stats();
    assert_eq!((st.opened_total, st.invalidated_total), (1, 0));
}

#[test]
fn timeout_on_an_exhausted_pool() {
    let (pool, _) = pg_pool("timeout", &[("pool_size", "1"), ("max_overflow", "0")]);
    let held = pool.checkout(None, Some("holder_rs")).unwrap();

    let start = Instant::now();
    let err = pool
        .checkout(Some(Duration::from_millis(200)), Some("waiter_rs"))
        .unwrap_err();
    let waited = start.elapsed();
    match &err {
        Error::Timeout { message } => {
            assert!(
                message.contains("QueuePool limit of size 1 overflow 0"),
                "{}",
                message
            );
            assert!(
                message.contains("holder_rs"),
                "the holder's tag: {}",
                message
            );
        }
        other => panic!("expected Error::Timeout, got {:?}", other),
    }
    assert!(waited >= Duration::from_millis(190), "{:?}", waited);
    assert!(waited < Duration::from_secs(5), "{:?}", waited);
    assert_eq!(err.sqlstate(), None);

    // Duration::ZERO: do not wait.
    let start = Instant::now();
    assert!(matches!(
        pool.checkout(Some(Duration::ZERO), None),
        Err(Error::Timeout { .. })
    ));
    assert!(start.elapsed() < Duration::from_millis(150));

    let st = pool.stats();
    assert_eq!((st.timeouts_total, st.checked_out), (2, 1));
    drop(held);
    // Checked in: the next checkout gets it at once.
    pool.checkout(Some(Duration::ZERO), None).unwrap();
}

#[test]
fn a_waiter_gets_the_connection_a_drop_checks_in() {
    let (pool, _) = pg_pool("handoff", &[("pool_size", "1"), ("max_overflow", "0")]);
    let held = pool.checkout(None, None).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let lease = pool.checkout(Some(Duration::from_secs(10)), None).unwrap();
            lease
                .query("SELECT 1", &[])
                .unwrap()
                .get(0, 0)
                .map(str::to_string)
        });
        while pool.stats().waiting == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        assert_eq!(waiter.join().unwrap().as_deref(), Some("1"));
    });
    let st = pool.stats();
    assert_eq!((st.opened_total, st.waits_total, st.checked_out), (1, 1, 0));
}

#[test]
fn too_many_waiters() {
    let (pool, _) = pg_pool(
        "waiters",
        &[
            ("pool_size", "1"),
            ("max_overflow", "0"),
            ("max_waiting", "0"),
        ],
    );
    let _held = pool.checkout(None, None).unwrap();
    let err = pool
        .checkout(Some(Duration::from_secs(10)), None)
        .unwrap_err();
    assert!(matches!(err, Error::TooManyWaiters { .. }), "{:?}", err);
    assert!(!err.message().is_empty());
    assert_eq!(pool.stats().rejected_total, 1);
}

#[test]
fn lease_drop_and_checkin_give_the_connection_back() {
    let (pool, _) = pg_pool("dropcheckin", &[("pool_size", "2")]);
    {
        let a = pool.checkout(None, None).unwrap();
        let b = pool.checkout(None, None).unwrap();
        let st = pool.stats();
        assert_eq!((st.checked_out, st.idle), (2, 0));
        drop(a);
        let st = pool.stats();
        assert_eq!((st.checked_out, st.idle), (1, 1));
        b.checkin().unwrap(); // explicit, with its outcome
    }
    let st = pool.stats();
    assert_eq!(
        (st.checked_out, st.idle, st.opened_total, st.closed_total),
        (0, 2, 2, 0)
    );

    // A lease may move to another thread and be checked in there.
    let lease = pool.checkout(None, None).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            lease.query("SELECT 1", &[]).unwrap();
            drop(lease);
        });
    });
    assert_eq!(pool.stats().checked_out, 0);
}

#[test]
fn rollback_on_return() {
    let (pool, _) = pg_pool("rollback", &[("pool_size", "1")]);
    let lease = pool.checkout(None, None).unwrap();
    lease.query("BEGIN", &[]).unwrap();
    lease
        .query("CREATE TABLE rs_rolled_back (x int)", &[])
        .unwrap();
    drop(lease); // reset_on_return=rollback
    let lease = pool.checkout(None, None).unwrap();
    let r = lease
        .query("SELECT to_regclass('rs_rolled_back') IS NULL", &[])
        .unwrap();
    assert_eq!(r.get(0, 0), Some("t"));
}

#[test]
fn invalidate_closes_the_connection_at_checkin() {
    let (pool, app) = pg_pool("invalidate", &[("pool_size", "2")]);
    let lease = pool.checkout(None, None).unwrap();
    let first = backend_pid(&lease);
    lease.invalidate().unwrap();
    // Still usable until checkin.
    assert_eq!(backend_pid(&lease), first);
    drop(lease);
    let st = pool.stats();
    assert_eq!((st.invalidated_total, st.closed_total, st.idle), (1, 1, 0));
    await_sessions(&app, 0);
    let lease = pool.checkout(None, None).unwrap();
    assert_ne!(backend_pid(&lease), first);
}

#[test]
fn native_handle_is_the_libpq_connection() {
    let (pool, _) = pg_pool("native", &[]);
    let lease = pool.checkout(None, None).unwrap();
    let conn = lease.native_handle();
    assert!(!conn.is_null());
    let pid = unsafe { PQbackendPID(conn) };
    assert_eq!(pid.to_string(), backend_pid(&lease));
}

#[test]
fn stats_reflect_options_and_activity() {
    let (pool, _) = pg_pool("stats", &[("pool_size", "3"), ("max_overflow", "7")]);
    let st = pool.stats();
    assert_eq!((st.pool_size, st.max_overflow), (3, 7));
    assert_eq!(
        (st.opened_total, st.checkouts_total, st.checked_out),
        (0, 0, 0)
    );
    let leases: Vec<_> = (0..5).map(|_| pool.checkout(None, None).unwrap()).collect();
    let st = pool.stats();
    assert_eq!((st.checked_out, st.overflow, st.opened_total), (5, 2, 5));
    drop(leases);
    let st = pool.stats();
    // Overflow connections are closed at checkin; pool_size stay idle.
    assert_eq!(
        (st.checked_out, st.idle, st.closed_total, st.checkouts_total),
        (0, 3, 2, 5)
    );
    assert_eq!(connpool::Stats::WAIT_BUCKET_US[0], 100);

    let text = pool.prometheus(Some("rs")).unwrap();
    assert!(
        text.contains("connpool_checkouts_total{pool=\"rs\"} 5"),
        "{}",
        text
    );
}

#[test]
fn reset_retires_open_connections() {
    let (pool, _) = pg_pool("reset", &[("pool_size", "2")]);
    let idle = pool.checkout(None, None).unwrap();
    let idle_pid = backend_pid(&idle);
    drop(idle);
    let out = pool.checkout(None, None).unwrap();
    assert_eq!(backend_pid(&out), idle_pid);
    pool.reset().unwrap();
    // The lease out keeps working; its connection is closed at checkin.
    assert_eq!(backend_pid(&out), idle_pid);
    drop(out);
    let st = pool.stats();
    assert_eq!((st.resets_total, st.reset_closed_total, st.idle), (1, 1, 0));
    let lease = pool.checkout(None, None).unwrap();
    assert_ne!(backend_pid(&lease), idle_pid);
}

#[test]
fn bad_arguments_and_connect_errors() {
    let err = Pool::new("", &[("no_such_option", "1")]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);
    assert!(
        err.message().contains("no_such_option"),
        "{}",
        err.message()
    );

    let err = Pool::new("", &[("pool_size", "many")]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);
    assert!(err.message().contains("many"), "{}", err.message());

    // Values need no quoting.
    Pool::new(
        "",
        &[("pool_timeout", "2.5"), ("reset_on_return", "commit")],
    )
    .unwrap();

    let err = Pool::new("no\0pe", &[]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);

    let (pool, _) = pg_pool("badargs", &[]);
    let lease = pool.checkout(None, None).unwrap();
    let err = lease.query("SELECT 1\0", &[]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);
    let err = lease.query("SELECT $1::text", &[Some("a\0b")]).unwrap_err();
    assert!(err.message().contains("parameter 1"), "{}", err.message());
    assert!(pool.checkout(None, Some("t\0g")).is_err());

    // Nothing listens on port 1.
    let dead = Pool::new(
        "host=127.0.0.1 port=1 connect_timeout=5 application_name=rs_dead",
        &[("pool_size", "1")],
    )
    .unwrap();
    let err = dead
        .checkout(Some(Duration::from_secs(5)), None)
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{:?}", err);
    assert!(!err.message().is_empty());
    assert_eq!(dead.stats().connect_failures_total, 1);
}

#[test]
fn version_is_known() {
    assert!(
        connpool::version().starts_with("1."),
        "{}",
        connpool::version()
    );
}
