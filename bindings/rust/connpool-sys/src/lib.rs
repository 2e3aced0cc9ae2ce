//! Raw FFI declarations of libconnpool 1.2 (`include/connpool.h`), written by hand.
//!
//! Everything here is `unsafe` and follows the header's conventions exactly; its comments are
//! the reference. The safe API is the `connpool` crate. Types use `std::os::raw` (not
//! `std::ffi::c_int` and friends, which need Rust 1.64); `size_t` is `usize`.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::os::raw::{c_char, c_int, c_void};

pub const CONNPOOL_VERSION_MAJOR: c_int = 1;
pub const CONNPOOL_VERSION_MINOR: c_int = 2;
pub const CONNPOOL_VERSION_PATCH: c_int = 0;

// Opaque handles (the Rustonomicon's pattern: unsized-like, !Send, !Sync, !Unpin).
/// A pool of connections to one database.
#[repr(C)]
pub struct pool_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}
/// One checked-out connection.
#[repr(C)]
pub struct pool_lease_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}
/// The result of `pool_query()`.
#[repr(C)]
pub struct pool_result_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}
/// A result read in pieces (`pool_stream_open()`; since 1.2).
#[repr(C)]
pub struct pool_stream_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// Status codes (enum pool_status; functions return them as int). Append-only.
pub const POOL_OK: c_int = 0;
pub const POOL_ERROR: c_int = -1;
pub const POOL_EINVAL: c_int = -2;
pub const POOL_ENOMEM: c_int = -3;
pub const POOL_ETIMEDOUT: c_int = -4;
pub const POOL_ECONNECT: c_int = -5;
pub const POOL_EBUSY: c_int = -6;
pub const POOL_ECLOSED: c_int = -7;
pub const POOL_ESTATE: c_int = -8;
pub const POOL_ENOTSUP: c_int = -9;
pub const POOL_EFORKED: c_int = -10;
pub const POOL_ETOOMANYWAITERS: c_int = -11;
pub const POOL_ERANGE: c_int = -12;
pub const POOL_EQUERY: c_int = -13;
/// A typed getter met SQL NULL or a value of another type (since 1.2).
pub const POOL_ETYPE: c_int = -14;

// enum pool_reset_mode (the `mode` argument of pool_reset_cb).
pub const POOL_RESET_NONE: c_int = 0;
pub const POOL_RESET_ROLLBACK: c_int = 1;
pub const POOL_RESET_COMMIT: c_int = 2;
pub const POOL_RESET_DISCARD: c_int = 3;

// enum pool_log_level.
pub const POOL_LOG_OFF: c_int = 0;
pub const POOL_LOG_ERROR: c_int = 1;
pub const POOL_LOG_WARN: c_int = 2;
pub const POOL_LOG_INFO: c_int = 3;
pub const POOL_LOG_DEBUG: c_int = 4;

// enum pool_type (since 1.2): what a column holds, whatever the backend. Append-only.
pub const POOL_TYPE_UNKNOWN: c_int = 0;
pub const POOL_TYPE_BOOL: c_int = 1;
pub const POOL_TYPE_INT16: c_int = 2;
pub const POOL_TYPE_INT32: c_int = 3;
pub const POOL_TYPE_INT64: c_int = 4;
pub const POOL_TYPE_FLOAT32: c_int = 5;
pub const POOL_TYPE_FLOAT64: c_int = 6;
pub const POOL_TYPE_NUMERIC: c_int = 7;
pub const POOL_TYPE_TEXT: c_int = 8;
pub const POOL_TYPE_BYTEA: c_int = 9;
pub const POOL_TYPE_DATE: c_int = 10;
pub const POOL_TYPE_TIME: c_int = 11;
pub const POOL_TYPE_TIMESTAMP: c_int = 12;
pub const POOL_TYPE_TIMESTAMPTZ: c_int = 13;
pub const POOL_TYPE_INTERVAL: c_int = 14;
pub const POOL_TYPE_UUID: c_int = 15;
pub const POOL_TYPE_JSON: c_int = 16;
pub const POOL_TYPE_ARRAY: c_int = 17;

/// A parameter with its length and type (`pool_query_params()`, `pool_stream_open()`; since
/// 1.2).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct pool_param_t {
    /// NULL: SQL NULL.
    pub value: *const c_void,
    /// Bytes of `value`, or -1: NUL-terminated text.
    pub length: i64,
    /// A `POOL_TYPE_*`: `POOL_TYPE_BYTEA` sends the bytes as binary data, `POOL_TYPE_UNKNOWN`
    /// lets the server infer the type of the text, any other declares it.
    pub r#type: c_int,
}

// Flags of pool_query_params() and pool_stream_open().
/// Prepare the statement once per connection and reuse it.
pub const POOL_QUERY_PREPARE: c_int = 1;

/// Number of buckets of `pool_stats_t::wait_le_us`.
pub const POOL_WAIT_BUCKETS: usize = 6;
/// Upper bounds of the wait histogram's buckets, in microseconds (cumulative).
pub const POOL_WAIT_BUCKET_US: [i64; POOL_WAIT_BUCKETS] =
    [100, 1000, 10000, 100000, 1000000, 10000000];

// Custom connector callbacks. They must not unwind (no Rust panic may leave them).
pub type pool_open_cb = Option<
    unsafe extern "C" fn(
        conn_out: *mut *mut c_void,
        errbuf: *mut c_char,
        errbuf_len: usize,
        timeout_ms: i64,
        user_data: *mut c_void,
    ) -> c_int,
>;
pub type pool_close_cb = Option<unsafe extern "C" fn(conn: *mut c_void, user_data: *mut c_void)>;
pub type pool_reset_cb =
    Option<unsafe extern "C" fn(conn: *mut c_void, mode: c_int, user_data: *mut c_void) -> c_int>;
pub type pool_ping_cb =
    Option<unsafe extern "C" fn(conn: *mut c_void, user_data: *mut c_void) -> c_int>;
pub type pool_destroy_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Hooks (`pool_set_hooks()`); set `size` to `size_of::<pool_hooks_t>()`. Every member may be
/// None. They must not unwind.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct pool_hooks_t {
    pub size: i64,
    pub on_connect: Option<
        unsafe extern "C" fn(
            conn: *mut c_void,
            errbuf: *mut c_char,
            errbuf_len: usize,
            user_data: *mut c_void,
        ) -> c_int,
    >,
    pub on_checkout:
        Option<unsafe extern "C" fn(conn: *mut c_void, user_data: *mut c_void) -> c_int>,
    pub on_checkin:
        Option<unsafe extern "C" fn(conn: *mut c_void, user_data: *mut c_void) -> c_int>,
    pub on_close: Option<unsafe extern "C" fn(conn: *mut c_void, user_data: *mut c_void)>,
    pub log:
        Option<unsafe extern "C" fn(level: c_int, message: *const c_char, user_data: *mut c_void)>,
    /// A `POOL_LOG_*` level.
    pub log_level: c_int,
    pub user_data: *mut c_void,
}

impl Default for pool_hooks_t {
    fn default() -> Self {
        pool_hooks_t {
            size: std::mem::size_of::<pool_hooks_t>() as i64,
            on_connect: None,
            on_checkout: None,
            on_checkin: None,
            on_close: None,
            log: None,
            log_level: POOL_LOG_OFF,
            user_data: std::ptr::null_mut(),
        }
    }
}

/// Counters and gauges of one pool (`pool_stats_get()`). Only `i64` fields, only ever
/// appended: set `size` to `size_of::<pool_stats_t>()` before the call (`Default` does).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct pool_stats_t {
    /// in: sizeof the caller's struct; out: bytes filled
    pub size: i64,
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
    // since 1.1
    pub connect_time_total_us: i64,
    pub connect_time_max_us: i64,
    pub waits_total: i64,
    pub wait_le_us: [i64; POOL_WAIT_BUCKETS],
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

impl Default for pool_stats_t {
    /// All zero, with `size` set to `size_of::<pool_stats_t>()`.
    fn default() -> Self {
        pool_stats_t {
            size: std::mem::size_of::<pool_stats_t>() as i64,
            pool_size: 0,
            max_overflow: 0,
            checked_out: 0,
            idle: 0,
            opening: 0,
            overflow: 0,
            waiting: 0,
            opened_total: 0,
            closed_total: 0,
            connect_failures_total: 0,
            checkouts_total: 0,
            timeouts_total: 0,
            wait_total_us: 0,
            wait_max_us: 0,
            inherited_total: 0,
            connect_time_total_us: 0,
            connect_time_max_us: 0,
            waits_total: 0,
            wait_le_us: [0; POOL_WAIT_BUCKETS],
            pings_total: 0,
            dead_total: 0,
            recycled_total: 0,
            idle_closed_total: 0,
            invalidated_total: 0,
            reset_closed_total: 0,
            resets_total: 0,
            leaks_total: 0,
            fast_fails_total: 0,
            rejected_total: 0,
        }
    }
}

extern "C" {
    // ------------------------------------------------------------ lifecycle
    pub fn pool_create(
        out: *mut *mut pool_t,
        conninfo: *const c_char,
        options: *const c_char,
    ) -> c_int;
    pub fn pool_create_params(
        out: *mut *mut pool_t,
        conninfo: *const c_char,
        keys: *const *const c_char,
        values: *const *const c_char,
    ) -> c_int;
    pub fn pool_create_custom(
        out: *mut *mut pool_t,
        options: *const c_char,
        open: pool_open_cb,
        close: pool_close_cb,
        reset: pool_reset_cb,
        ping: pool_ping_cb,
        destroy: pool_destroy_cb,
        user_data: *mut c_void,
    ) -> c_int;
    pub fn pool_dispose(pool: *mut pool_t) -> c_int;

    // ------------------------------------------------------------ leases
    pub fn pool_checkout(out: *mut *mut pool_lease_t, pool: *mut pool_t, timeout_ms: i64) -> c_int;
    pub fn pool_lease_native(lease: *const pool_lease_t) -> *mut c_void;
    pub fn pool_checkin(lease: *mut pool_lease_t) -> c_int;
    pub fn pool_invalidate(lease: *mut pool_lease_t) -> c_int;
    pub fn pool_checkout_tagged(
        out: *mut *mut pool_lease_t,
        pool: *mut pool_t,
        timeout_ms: i64,
        tag: *const c_char,
    ) -> c_int;
    pub fn pool_checkout_scoped(
        out: *mut *mut pool_lease_t,
        pool: *mut pool_t,
        timeout_ms: i64,
        tag: *const c_char,
    ) -> c_int;
    pub fn pool_scope_release(pool: *mut pool_t) -> c_int;
    pub fn pool_report_error(lease: *mut pool_lease_t, sqlstate: *const c_char) -> c_int;

    // ------------------------------------------------------------ queries
    pub fn pool_query(
        out: *mut *mut pool_result_t,
        lease: *mut pool_lease_t,
        sql: *const c_char,
        nparams: c_int,
        params: *const *const c_char,
    ) -> c_int;
    pub fn pool_result_rows(result: *const pool_result_t) -> i64;
    pub fn pool_result_columns(result: *const pool_result_t) -> c_int;
    pub fn pool_result_column_name(result: *const pool_result_t, column: c_int) -> *const c_char;
    pub fn pool_result_value(
        result: *const pool_result_t,
        row: i64,
        column: c_int,
    ) -> *const c_char;
    pub fn pool_result_affected(result: *const pool_result_t) -> i64;
    pub fn pool_result_free(result: *mut pool_result_t);
    pub fn pool_last_sqlstate() -> *const c_char;

    // ------------------------------------------------------------ typed results (since 1.2)
    pub fn pool_result_column_type(
        result: *const pool_result_t,
        column: c_int,
        backend_type: *mut i64,
    ) -> c_int;
    pub fn pool_result_is_null(result: *const pool_result_t, row: i64, column: c_int) -> c_int;
    pub fn pool_result_bytes(
        result: *const pool_result_t,
        row: i64,
        column: c_int,
        len: *mut usize,
    ) -> *const c_void;
    pub fn pool_result_length(result: *const pool_result_t, row: i64, column: c_int) -> i64;
    pub fn pool_result_int64(
        result: *const pool_result_t,
        row: i64,
        column: c_int,
        out: *mut i64,
    ) -> c_int;
    pub fn pool_result_double(
        result: *const pool_result_t,
        row: i64,
        column: c_int,
        out: *mut f64,
    ) -> c_int;
    pub fn pool_result_bool(
        result: *const pool_result_t,
        row: i64,
        column: c_int,
        out: *mut c_int,
    ) -> c_int;
    pub fn pool_result_read(
        result: *const pool_result_t,
        first_row: i64,
        nrows: i64,
        buf: *mut c_void,
        buf_len: usize,
        lengths: *mut i64,
        needed: *mut usize,
    ) -> c_int;
    pub fn pool_result_memory(result: *const pool_result_t) -> usize;
    pub fn pool_query_params(
        out: *mut *mut pool_result_t,
        lease: *mut pool_lease_t,
        sql: *const c_char,
        nparams: c_int,
        params: *const pool_param_t,
        flags: c_int,
    ) -> c_int;
    pub fn pool_stream_open(
        out: *mut *mut pool_stream_t,
        lease: *mut pool_lease_t,
        sql: *const c_char,
        nparams: c_int,
        params: *const pool_param_t,
        flags: c_int,
    ) -> c_int;
    pub fn pool_stream_next(
        out: *mut *mut pool_result_t,
        stream: *mut pool_stream_t,
        max_rows: i64,
    ) -> c_int;
    pub fn pool_stream_close(stream: *mut pool_stream_t) -> c_int;

    // ------------------------------------------------------------ lifecycle and hooks
    pub fn pool_reset(pool: *mut pool_t) -> c_int;
    pub fn pool_wait_ready(pool: *mut pool_t, timeout_ms: i64) -> c_int;
    pub fn pool_set_hooks(pool: *mut pool_t, hooks: *const pool_hooks_t) -> c_int;

    // ------------------------------------------------------------ introspection
    pub fn pool_stats_get(pool: *mut pool_t, stats: *mut pool_stats_t) -> c_int;
    pub fn pool_stats_prometheus(
        buf: *mut c_char,
        buf_len: usize,
        len: *mut usize,
        pool: *mut pool_t,
        name: *const c_char,
    ) -> c_int;
    pub fn pool_version() -> c_int;
    pub fn pool_version_string() -> *const c_char;

    // ------------------------------------------------------------ errors
    pub fn pool_strerror(code: c_int) -> *const c_char;
    pub fn pool_error_name(code: c_int) -> *const c_char;
    pub fn pool_last_error() -> *const c_char;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::mem::size_of;

    // Sizes and offsets as a C compiler lays the header's structs out on LP64 (x86-64,
    // aarch64): 35 int64_t fields; hooks with one int padded to 8.
    #[test]
    fn layout_matches_the_header() {
        assert_eq!(size_of::<pool_stats_t>(), 280);
        let s = pool_stats_t::default();
        let base = &s as *const _ as usize;
        assert_eq!(&s.wait_le_us as *const _ as usize - base, 152);
        assert_eq!(&s.pings_total as *const _ as usize - base, 200);
        assert_eq!(&s.rejected_total as *const _ as usize - base, 272);
        assert_eq!(size_of::<pool_hooks_t>(), 64);
        let h = pool_hooks_t::default();
        let base = &h as *const _ as usize;
        assert_eq!(&h.log_level as *const _ as usize - base, 48);
        assert_eq!(&h.user_data as *const _ as usize - base, 56);
        // pool_param_t: a pointer, an int64_t, an int padded to 8.
        assert_eq!(size_of::<pool_param_t>(), 24);
        let p = pool_param_t {
            value: std::ptr::null(),
            length: 0,
            r#type: 0,
        };
        let base = &p as *const _ as usize;
        assert_eq!(&p.length as *const _ as usize - base, 8);
        assert_eq!(&p.r#type as *const _ as usize - base, 16);
    }

    #[test]
    fn links_to_a_library_at_least_as_new_as_these_declarations() {
        unsafe {
            assert!(
                pool_version()
                    >= CONNPOOL_VERSION_MAJOR * 10000
                        + CONNPOOL_VERSION_MINOR * 100
                        + CONNPOOL_VERSION_PATCH
            );
            let name = CStr::from_ptr(pool_error_name(POOL_EQUERY));
            assert_eq!(name.to_str().unwrap(), "POOL_EQUERY");
            let name = CStr::from_ptr(pool_error_name(POOL_ETYPE));
            assert_eq!(name.to_str().unwrap(), "POOL_ETYPE");
        }
    }

    #[test]
    fn the_library_fills_the_whole_stats_struct() {
        unsafe {
            let mut pool: *mut pool_t = std::ptr::null_mut();
            let rc = pool_create(&mut pool, b"\0".as_ptr() as *const c_char, std::ptr::null());
            assert_eq!(rc, POOL_OK);
            let mut st = pool_stats_t {
                pool_size: -1,
                ..Default::default()
            };
            assert_eq!(pool_stats_get(pool, &mut st), POOL_OK);
            // The library stores its own size: it knows every field declared here.
            assert_eq!(st.size as usize, size_of::<pool_stats_t>());
            assert_eq!(st.pool_size, 5);
            assert_eq!(pool_dispose(pool), POOL_OK);
        }
    }
}
