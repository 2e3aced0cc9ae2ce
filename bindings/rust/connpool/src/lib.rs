//! Safe Rust binding of libconnpool, a database connection pool behind a C ABI.
//!
//! A thin layer: every call goes straight to the C function of the same name
//! (`include/connpool.h` is the reference); this crate only converts strings and values,
//! turns status codes into [`Error`], and gives leases back on `Drop`.
//!
//! ```no_run
//! use std::time::Duration;
//! use connpool::Pool;
//!
//! # fn main() -> Result<(), connpool::Error> {
//! let pool = Pool::new("application_name=demo", &[("pool_size", "4"), ("max_overflow", "0")])?;
//! let lease = pool.checkout(Some(Duration::from_secs(5)), Some("main"))?;
//! // Text parameters and values (1.1):
//! let res = lease.query("SELECT $1::int + 1 AS n", &[Some("41")])?;
//! assert_eq!(res.get(0, 0), Some("42"));
//! // Typed parameters and values (1.2), in rust-postgres' style:
//! let res = lease.query_params("SELECT $1::int8 + 1 AS n, $2::text AS t", &[&41i64, &None::<&str>])?;
//! for row in res.rows() {
//!     let n: i64 = row.try_get("n")?;
//!     let t: Option<&str> = row.get(1); // get() panics where try_get() returns the error
//!     assert_eq!((n, t), (42, None));
//! }
//! drop(lease); // checked in
//! println!("{} checkouts", pool.stats().checkouts_total);
//! # Ok(()) }
//! ```
//!
//! [`Pool`] is `Send + Sync`: share it between threads by reference (`std::thread::scope`) or
//! in an `Arc`. A [`Lease`] is `Send` but not `Sync`: one thread uses it at a time. A
//! [`QueryResult`] keeps the C library's result and reads its values in place; it is
//! `Send + Sync`. Values convert to Rust types through [`FromValue`], parameters from Rust
//! types through [`ToParam`]; [`Lease::stream`] reads a big result in pieces.

use std::ffi::CString;
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::time::Duration;

pub use connpool_sys as sys;

mod error;
mod param;
mod result;
mod row;
mod stats;
mod stream;
mod value;

pub use error::Error;
pub use param::{Param, ToParam};
pub use result::{QueryResult, TextRows};
pub use row::{ColumnIndex, Row, RowIter};
pub use stats::Stats;
pub use stream::Stream;
pub use value::{FromValue, Type, Value};

use error::check;
use param::CParams;

/// A pool of connections to one database (`pool_t`). Disposed on `Drop`.
pub struct Pool {
    raw: NonNull<sys::pool_t>,
}

// The C API: "a pool_t may be used from any number of threads at once".
unsafe impl Send for Pool {}
unsafe impl Sync for Pool {}

/// One checked-out connection (`pool_lease_t`), borrowed from its [`Pool`]. Checked in on
/// `Drop` (the pool applies `reset_on_return`).
///
/// A lease may move to another thread (`Send`) but is not shared between threads:
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>() {}
/// shared::<connpool::Lease<'static>>();
/// ```
///
/// and it cannot outlive its pool:
///
/// ```compile_fail,E0597
/// let lease = {
///     let pool = connpool::Pool::new("", &[]).unwrap();
///     pool.checkout(None, None).unwrap()
/// };
/// ```
pub struct Lease<'pool> {
    raw: NonNull<sys::pool_lease_t>,
    _pool: PhantomData<&'pool Pool>,
}

// The C API: "a lease belongs to one thread at a time (it may move between threads, but must
// not be used by two at once)": Send, and not Sync (NonNull is !Sync).
unsafe impl Send for Lease<'_> {}

// Compile-time checks of the above.
const _: () = {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    #[allow(dead_code)]
    fn check() {
        send_sync::<Pool>();
        send::<Lease<'static>>();
        send_sync::<Error>();
        send_sync::<QueryResult>();
        send_sync::<Row<'static>>();
        send::<Stream<'static>>();
    }
};

/// `what` as a C string; a NUL byte inside is an [`Error::InvalidArgument`].
fn cstring(what: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|e| {
        Error::invalid(format!(
            "{} contains a NUL byte at offset {}",
            what,
            e.nul_position()
        ))
    })
}

/// A checkout's timeout for C: None is -1 (the pool's pool_timeout), a Duration is rounded up
/// to whole milliseconds (so a tiny wait is not "do not wait"), `Duration::ZERO` is 0.
fn timeout_ms(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            i64::try_from(ms).unwrap_or(i64::MAX)
        }
    }
}

impl Pool {
    /// Create a pool (`pool_create_params`). `conninfo` selects the connector: `"odbc:..."`
    /// for ODBC, else libpq (a URI, a `key=value` string, or `""` for the `PG*` variables).
    /// `options` are the pool's options as pairs, unquoted: `&[("pool_size", "4")]`.
    /// No connection is opened until the first checkout.
    pub fn new(conninfo: &str, options: &[(&str, &str)]) -> Result<Pool, Error> {
        let conninfo = cstring("conninfo", conninfo)?;
        let mut keys = Vec::with_capacity(options.len());
        let mut values = Vec::with_capacity(options.len());
        for (k, v) in options {
            keys.push(cstring("option key", k)?);
            values.push(cstring("option value", v)?);
        }
        let key_ptrs: Vec<*const c_char> = keys
            .iter()
            .map(|k| k.as_ptr())
            .chain(Some(ptr::null()))
            .collect();
        let value_ptrs: Vec<*const c_char> = values
            .iter()
            .map(|v| v.as_ptr())
            .chain(Some(ptr::null()))
            .collect();
        let mut raw = ptr::null_mut();
        let rc = unsafe {
            sys::pool_create_params(
                &mut raw,
                conninfo.as_ptr(),
                key_ptrs.as_ptr(),
                value_ptrs.as_ptr(),
            )
        };
        check(rc)?;
        match NonNull::new(raw) {
            Some(raw) => Ok(Pool { raw }),
            None => Err(Error::Internal {
                message: "pool_create_params returned no pool".into(),
            }),
        }
    }

    /// Check a connection out (`pool_checkout_tagged`). `timeout`: None waits up to the pool's
    /// `pool_timeout`, `Some(Duration::ZERO)` does not wait. `tag` labels the lease in leak
    /// reports and timeout messages (at most 63 bytes are kept).
    ///
    /// Errors: [`Error::Timeout`], [`Error::Connect`], [`Error::TooManyWaiters`], ...
    pub fn checkout(
        &self,
        timeout: Option<Duration>,
        tag: Option<&str>,
    ) -> Result<Lease<'_>, Error> {
        let tag = match tag {
            Some(t) => Some(cstring("tag", t)?),
            None => None,
        };
        let mut raw = ptr::null_mut();
        let rc = unsafe {
            sys::pool_checkout_tagged(
                &mut raw,
                self.raw.as_ptr(),
                timeout_ms(timeout),
                tag.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
            )
        };
        check(rc)?;
        match NonNull::new(raw) {
            Some(raw) => Ok(Lease {
                raw,
                _pool: PhantomData,
            }),
            None => Err(Error::Internal {
                message: "pool_checkout_tagged returned no lease".into(),
            }),
        }
    }

    /// A snapshot of the pool's counters (`pool_stats_get`).
    pub fn stats(&self) -> Stats {
        let mut st = sys::pool_stats_t::default();
        let rc = unsafe { sys::pool_stats_get(self.raw.as_ptr(), &mut st) };
        // Fails only for a NULL pool or a `size` smaller than one field: neither can happen.
        debug_assert_eq!(rc, sys::POOL_OK);
        Stats::from(st)
    }

    /// Retire every connection open now (`pool_reset`): idle ones are closed at once,
    /// checked-out ones at checkin.
    pub fn reset(&self) -> Result<(), Error> {
        check(unsafe { sys::pool_reset(self.raw.as_ptr()) })
    }

    /// Start the background work and wait until `min_idle` connections are open
    /// (`pool_wait_ready`). `timeout` as for [`Pool::checkout`].
    pub fn wait_ready(&self, timeout: Option<Duration>) -> Result<(), Error> {
        check(unsafe { sys::pool_wait_ready(self.raw.as_ptr(), timeout_ms(timeout)) })
    }

    /// The statistics in Prometheus' text format (`pool_stats_prometheus`); `name` becomes a
    /// `pool="name"` label.
    pub fn prometheus(&self, name: Option<&str>) -> Result<String, Error> {
        let name = match name {
            Some(n) => Some(cstring("name", n)?),
            None => None,
        };
        let name_ptr = name.as_ref().map_or(ptr::null(), |n| n.as_ptr());
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let mut len = 0usize;
            let rc = unsafe {
                sys::pool_stats_prometheus(
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len(),
                    &mut len,
                    self.raw.as_ptr(),
                    name_ptr,
                )
            };
            if rc == sys::POOL_ERANGE && len >= buf.len() {
                // The counters may grow between two calls: leave some room.
                buf.resize(len + 256, 0);
                continue;
            }
            check(rc)?;
            buf.truncate(len);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
    }

    /// The `pool_t *`, for calls through [`sys`]. It stays owned by this `Pool`.
    pub fn as_ptr(&self) -> *mut sys::pool_t {
        self.raw.as_ptr()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // No Lease can outlive the borrow of its Pool, so no lease is out here (unless one was
        // leaked with mem::forget: then the C library keeps the pool until it comes back).
        unsafe {
            sys::pool_dispose(self.raw.as_ptr());
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("raw", &self.raw).finish()
    }
}

impl Lease<'_> {
    /// Run one statement (`pool_query`) with positional text parameters (`$1`, `$2`... for
    /// libpq, `?` for ODBC); `None` is SQL NULL. Parameters are never interpolated.
    ///
    /// A failed statement is [`Error::Query`] with the driver's message and SQLSTATE; the
    /// lease stays usable unless the connection was lost (then the pool has invalidated it).
    pub fn query(&self, sql: &str, params: &[Option<&str>]) -> Result<QueryResult, Error> {
        let sql = cstring("sql", sql)?;
        let nparams = c_int::try_from(params.len())
            .map_err(|_| Error::invalid(format!("too many parameters: {}", params.len())))?;
        let mut owned = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            owned.push(match p {
                Some(s) => Some(cstring(&format!("parameter {}", i + 1), s)?),
                None => None,
            });
        }
        let ptrs: Vec<*const c_char> = owned
            .iter()
            .map(|p| p.as_ref().map_or(ptr::null(), |c| c.as_ptr()))
            .collect();
        let mut raw = ptr::null_mut();
        let rc = unsafe {
            sys::pool_query(
                &mut raw,
                self.raw.as_ptr(),
                sql.as_ptr(),
                nparams,
                if ptrs.is_empty() {
                    ptr::null()
                } else {
                    ptrs.as_ptr()
                },
            )
        };
        check(rc)?;
        QueryResult::from_raw(raw, "pool_query")
    }

    /// Run one statement with typed, binary-safe parameters (`pool_query_params`): see
    /// [`ToParam`] for the Rust types and what each is sent as (`&[u8]` and `Vec<u8>` as
    /// bytea, NUL bytes included; numbers and bool as their text, declared as their type;
    /// strings as text whose type the server infers). `$1`, `$2`... for libpq, `?` for ODBC.
    ///
    /// ```no_run
    /// # fn demo(lease: &connpool::Lease<'_>) -> Result<(), connpool::Error> {
    /// let blob: &[u8] = b"\0\xff";
    /// let res = lease.query_params(
    ///     "INSERT INTO files (id, name, data, note) VALUES ($1, $2, $3, $4)",
    ///     &[&7i64, &"a.bin", &blob, &None::<&str>],
    /// )?;
    /// assert_eq!(res.affected, Some(1));
    /// # Ok(()) }
    /// ```
    ///
    /// Errors as [`Lease::query`].
    pub fn query_params(&self, sql: &str, params: &[&dyn ToParam]) -> Result<QueryResult, Error> {
        self.run(sql, params, 0)
    }

    /// [`Lease::query_params`] with `POOL_QUERY_PREPARE`: the connection keeps the statement
    /// prepared (libpq: a named server-side statement, keyed by the SQL text and the
    /// parameters' types, at most `statement_cache_size` per connection), so later runs of
    /// the same SQL on that connection send only its parameters; the first run prepares it.
    /// Safe through PgBouncer in transaction mode (a statement the server lost is sent
    /// unprepared outside a transaction; see the header). ODBC: runs unprepared.
    pub fn query_prepared(&self, sql: &str, params: &[&dyn ToParam]) -> Result<QueryResult, Error> {
        self.run(sql, params, sys::POOL_QUERY_PREPARE)
    }

    fn run(&self, sql: &str, params: &[&dyn ToParam], flags: c_int) -> Result<QueryResult, Error> {
        let sql = cstring("sql", sql)?;
        let params = CParams::new(params)?;
        let mut raw = ptr::null_mut();
        let rc = unsafe {
            sys::pool_query_params(
                &mut raw,
                self.raw.as_ptr(),
                sql.as_ptr(),
                params.len(),
                params.as_ptr(),
                flags,
            )
        };
        check(rc)?;
        QueryResult::from_raw(raw, "pool_query_params")
    }

    /// Run one statement and read its result in pieces of at most `max_rows` rows
    /// (`pool_stream_open`; parameters as [`Lease::query_params`]): see [`Stream`]. The
    /// stream borrows the lease mutably until it is dropped or closed: the lease runs nothing
    /// else meanwhile.
    ///
    /// ```no_run
    /// # fn demo(mut lease: connpool::Lease<'_>) -> Result<(), connpool::Error> {
    /// let mut total = 0i64;
    /// for piece in lease.stream("SELECT g FROM generate_series(1, $1) g", &[&1_000_000i64], 1000)? {
    ///     for row in piece?.rows() {
    ///         total += row.try_get::<_, i64>(0)?;
    ///     }
    /// }
    /// lease.query("SELECT 1", &[])?; // the stream is closed: the lease works again
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: as [`Lease::query`] (libpq reports the statement's own failure from the
    /// stream's pieces, psqlODBC may report it here), and [`Error::InvalidArgument`] for
    /// `max_rows` 0.
    pub fn stream(
        &mut self,
        sql: &str,
        params: &[&dyn ToParam],
        max_rows: usize,
    ) -> Result<Stream<'_>, Error> {
        let sql = cstring("sql", sql)?;
        let params = CParams::new(params)?;
        Stream::open(self.raw.as_ptr(), &sql, &params, max_rows)
    }

    /// Mark the connection unusable (`pool_invalidate`): it is closed at checkin instead of
    /// reused.
    pub fn invalidate(&self) -> Result<(), Error> {
        check(unsafe { sys::pool_invalidate(self.raw.as_ptr()) })
    }

    /// Tell the pool a statement run through the native handle failed with `sqlstate`
    /// (`pool_report_error`): a code meaning the server went away resets the pool.
    pub fn report_error(&self, sqlstate: &str) -> Result<(), Error> {
        let s = cstring("sqlstate", sqlstate)?;
        check(unsafe { sys::pool_report_error(self.raw.as_ptr(), s.as_ptr()) })
    }

    /// The driver's connection (`pool_lease_native`): a `PGconn *` for libpq, an `SQLHDBC`
    /// for ODBC. Borrowed: valid until this lease is checked in; never close it (use
    /// [`Lease::invalidate`]). NULL for a lease inherited across `fork()`.
    pub fn native_handle(&self) -> *mut c_void {
        unsafe { sys::pool_lease_native(self.raw.as_ptr()) }
    }

    /// Check the lease in now (`pool_checkin`) and see the outcome; dropping it does the same
    /// and ignores errors.
    pub fn checkin(self) -> Result<(), Error> {
        let raw = self.raw;
        std::mem::forget(self);
        check(unsafe { sys::pool_checkin(raw.as_ptr()) })
    }

    /// The `pool_lease_t *`, for calls through [`sys`]. Do not check it in yourself.
    pub fn as_ptr(&self) -> *mut sys::pool_lease_t {
        self.raw.as_ptr()
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        unsafe {
            sys::pool_checkin(self.raw.as_ptr());
        }
    }
}

impl fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("raw", &self.raw).finish()
    }
}

/// The library's version at run time (`pool_version_string`), e.g. `"1.2.0"`.
pub fn version() -> &'static str {
    unsafe { std::ffi::CStr::from_ptr(sys::pool_version_string()) }
        .to_str()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(250))), 250);
        assert_eq!(timeout_ms(Some(Duration::from_micros(250_001))), 251);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i64::MAX);
    }
}
