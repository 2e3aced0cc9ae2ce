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

/// The backends the typed tests run on: libpq, psqlODBC (through unixODBC, to the same
/// server) and SQLite (through unixODBC and the SQLite ODBC driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Libpq,
    PsqlOdbc,
    Sqlite,
}

/// Every backend this run has: psqlODBC only if tests/with-postgres.sh gave its connection
/// string (CONNPOOL_TEST_ODBC_PG), which it always does.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Libpq, Backend::Sqlite];
    match std::env::var("CONNPOOL_TEST_ODBC_PG") {
        Ok(v) if !v.is_empty() => all.insert(1, Backend::PsqlOdbc),
        _ => eprintln!("CONNPOOL_TEST_ODBC_PG is not set: the psqlODBC cases are skipped"),
    }
    all
}

/// A pool on one backend, named after its test (application_name on PostgreSQL, the file
/// name on SQLite, whose file is deleted before and after).
pub struct Db {
    pub backend: Backend,
    pub pool: Pool,
    pub name: String,
    file: Option<String>,
}

impl Db {
    pub fn new(backend: Backend, test: &str, options: &[(&str, &str)]) -> Db {
        let name = format!("rs_{}_{:?}_{}", test, backend, std::process::id()).to_lowercase();
        let mut file = None;
        let conninfo = match backend {
            Backend::Libpq => {
                env_or_fail("PGPORT");
                format!("application_name={}", name)
            }
            Backend::PsqlOdbc => format!(
                "{};Pqopt={{application_name={}}}",
                env_or_fail("CONNPOOL_TEST_ODBC_PG"),
                name
            ),
            Backend::Sqlite => {
                let path = format!("{}/{}.db", env_or_fail("CONNPOOL_TEST_SQLITE_DIR"), name);
                let _ = std::fs::remove_file(&path);
                let conninfo = format!("odbc:Driver=SQLite3;Database={}", path);
                file = Some(path);
                conninfo
            }
        };
        let pool = Pool::new(&conninfo, options)
            .unwrap_or_else(|e| panic!("{:?}: pool on {}: {}", backend, conninfo, e));
        Db {
            backend,
            pool,
            name,
            file,
        }
    }

    /// Whether the database is PostgreSQL (libpq or psqlODBC).
    pub fn is_pg(&self) -> bool {
        self.backend != Backend::Sqlite
    }

    /// `sql` in the backend's dialect: for libpq every `?` becomes `$1`, `$2`... (the
    /// statements of the tests have no `?` in literals).
    pub fn sql(&self, sql: &str) -> String {
        if self.backend != Backend::Libpq {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${}", n));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The PostgreSQL declaration or the SQLite one.
    pub fn decl<'a>(&self, pg: &'a str, lite: &'a str) -> &'a str {
        if self.is_pg() {
            pg
        } else {
            lite
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}
