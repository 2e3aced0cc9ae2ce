//! Safe Rust binding of libconnpool, a database connection pool behind a C ABI.
//!
//! A thin layer: every call goes straight to the C function of the same name
//! (`include/connpool.h` is the reference); this crate only converts strings, turns status
//! codes into [`Error`], and gives leases back on `Drop`.
//!
//! ```no_run
//! use std::time::Duration;
//! use connpool::Pool;
//!
//! # fn main() -> Result<(), connpool::Error> {
//! let pool = Pool::new("application_name=demo", &[("pool_size", "4"), ("max_overflow", "0")])?;
//! let lease = pool.checkout(Some(Duration::from_secs(5)), Some("main"))?;
//! let res = lease.query("SELECT $1::int + 1 AS n", &[Some("41")])?;
//! assert_eq!(res.rows[0][0].as_deref(), Some("42"));
//! drop(lease); // checked in
//! println!("{} checkouts", pool.stats().checkouts_total);
//! # Ok(()) }
//! ```
//!
//! [`Pool`] is `Send + Sync`: share it between threads by reference (`std::thread::scope`) or
//! in an `Arc`. A [`Lease`] is `Send` but not `Sync`: one thread uses it at a time.

use std::ffi::CString;
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::time::Duration;

pub use connpool_sys as sys;

mod error;
pub use error::Error;
use error::{check, copy_cstr};

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
    }
};

/// The rows of a statement, as text (`pool_query()`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One entry per row, one value per column; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows inserted, updated or deleted; `None` for other statements or when the driver
    /// does not say.
    pub affected: Option<u64>,
}

impl QueryResult {
    /// The index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The value at (row, column); `None` for SQL NULL or out of range.
    pub fn get(&self, row: usize, column: usize) -> Option<&str> {
        self.rows.get(row)?.get(column)?.as_deref()
    }
}

/// A snapshot of a pool's counters (`pool_stats_t`; see the header for each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    pub pool_size: i64,
    pub max_overflow: i64,
    pub checked_out: i64,
    pub idle: i64,
    pub opening: i64,
    pub overflow: i64,
    pub waiting: i64,
    pub opened_total: i64,
    pub closed_total: i64,
    pub connect_failures_total: i64,
    pub checkouts_total: i64,
    pub timeouts_total: i64,
    pub wait_total_us: i64,
    pub wait_max_us: i64,
    pub inherited_total: i64,
    pub connect_time_total_us: i64,
    pub connect_time_max_us: i64,
    pub waits_total: i64,
    /// Cumulative histogram of waits: `wait_le_us[i]` waits took at most
    /// `Stats::WAIT_BUCKET_US[i]` microseconds.
    pub wait_le_us: [i64; sys::POOL_WAIT_BUCKETS],
    pub pings_total: i64,
    pub dead_total: i64,
    pub recycled_total: i64,
    pub idle_closed_total: i64,
    pub invalidated_total: i64,
    pub reset_closed_total: i64,
    pub resets_total: i64,
    pub leaks_total: i64,
    pub fast_fails_total: i64,
    pub rejected_total: i64,
}

impl Stats {
    /// Upper bounds of the buckets of `wait_le_us`, in microseconds.
    pub const WAIT_BUCKET_US: [i64; sys::POOL_WAIT_BUCKETS] = sys::POOL_WAIT_BUCKET_US;
}

impl From<sys::pool_stats_t> for Stats {
    fn from(s: sys::pool_stats_t) -> Stats {
        Stats {
            pool_size: s.pool_size,
            max_overflow: s.max_overflow,
            checked_out: s.checked_out,
            idle: s.idle,
            opening: s.opening,
            overflow: s.overflow,
            waiting: s.waiting,
            opened_total: s.opened_total,
            closed_total: s.closed_total,
            connect_failures_total: s.connect_failures_total,
            checkouts_total: s.checkouts_total,
            timeouts_total: s.timeouts_total,
            wait_total_us: s.wait_total_us,
            wait_max_us: s.wait_max_us,
            inherited_total: s.inherited_total,
            connect_time_total_us: s.connect_time_total_us,
            connect_time_max_us: s.connect_time_max_us,
            waits_total: s.waits_total,
            wait_le_us: s.wait_le_us,
            pings_total: s.pings_total,
            dead_total: s.dead_total,
            recycled_total: s.recycled_total,
            idle_closed_total: s.idle_closed_total,
            invalidated_total: s.invalidated_total,
            reset_closed_total: s.reset_closed_total,
            resets_total: s.resets_total,
            leaks_total: s.leaks_total,
            fast_fails_total: s.fast_fails_total,
            rejected_total: s.rejected_total,
        }
    }
}

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
        let result = ResultGuard(raw);
        Ok(result.read())
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

/// Frees a pool_result_t however the copy ends.
struct ResultGuard(*mut sys::pool_result_t);

impl ResultGuard {
    fn read(&self) -> QueryResult {
        let r = self.0 as *const sys::pool_result_t;
        unsafe {
            let ncols = sys::pool_result_columns(r).max(0);
            let nrows = sys::pool_result_rows(r).max(0);
            let columns = (0..ncols)
                .map(|c| copy_cstr(sys::pool_result_column_name(r, c)))
                .collect();
            let rows = (0..nrows)
                .map(|row| {
                    (0..ncols)
                        .map(|c| {
                            let v = sys::pool_result_value(r, row, c);
                            if v.is_null() {
                                None
                            } else {
                                Some(copy_cstr(v))
                            }
                        })
                        .collect()
                })
                .collect();
            let affected = u64::try_from(sys::pool_result_affected(r)).ok();
            QueryResult {
                columns,
                rows,
                affected,
            }
        }
    }
}

impl Drop for ResultGuard {
    fn drop(&mut self) {
        unsafe { sys::pool_result_free(self.0) }
    }
}

/// The library's version at run time (`pool_version_string`), e.g. `"1.1.0"`.
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
