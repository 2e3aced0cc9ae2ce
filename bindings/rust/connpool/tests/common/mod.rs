// Shared helpers of the integration tests. They run under tests/with-postgres.sh, which sets
// the PG* variables (libpq's conninfo "" then reaches the throwaway server) and
// CONNPOOL_TEST_SQLITE_DIR.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use connpool::Pool;

pub fn env_or_fail(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{} is not set: run under tests/with-postgres.sh (see bindings/rust/run-tests.sh)",
            name
        ),
    }
}

/// A libpq conninfo whose sessions carry an application_name unique to this test and process,
/// so a monitor can count them.
pub fn pg_conninfo(test: &str) -> (String, String) {
    env_or_fail("PGPORT");
    let app = format!("rs_test_{}_{}", test, std::process::id());
    (format!("application_name={}", app), app)
}

pub fn pg_pool(test: &str, options: &[(&str, &str)]) -> (Pool, String) {
    let (conninfo, app) = pg_conninfo(test);
    let pool = Pool::new(&conninfo, options).expect("pool");
    (pool, app)
}

/// Sessions on the server with this application_name, counted from a separate pool.
pub fn sessions(app: &str) -> i64 {
    let monitor = Pool::new("application_name=rs_monitor", &[("pool_size", "1")]).unwrap();
    let lease = monitor.checkout(None, Some("monitor")).unwrap();
    let r = lease
        .query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[Some(app)],
        )
        .unwrap();
    r.get(0, 0).unwrap().parse().unwrap()
}

/// Waits (at most 10 s) until `sessions(app) == n`; backends exit asynchronously.
pub fn await_sessions(app: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = sessions(app);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} sessions of {}, expected {}",
            now,
            app,
            n
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
