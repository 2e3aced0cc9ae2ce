//! Stream: a result read in pieces (`pool_stream_open`, `pool_stream_next`,
//! `pool_stream_close`), holding its lease while open.

use std::ffi::CString;
use std::fmt;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::error::{check, Error};
use crate::param::CParams;
use crate::result::QueryResult;
use crate::sys;

/// A statement's result read in pieces of at most `max_rows` rows ([`Lease::stream`]), for
/// results too big to hold: an iterator of [`QueryResult`] pieces, each with the statement's
/// columns. The first piece always comes, and may have no rows (an empty result, or a
/// statement that returns none: its columns and affected count are there); later pieces have
/// at least one row. The iterator ends after the last piece, or after an error (a statement
/// that fails midway is [`Error::Query`] with its SQLSTATE).
///
/// Closed on `Drop`: rows not read are discarded (libpq: the statement is cancelled on the
/// server) and the lease is usable again; [`close`](Stream::close) does the same and tells
/// the outcome. While the stream is open it borrows its lease mutably, so the lease cannot
/// run anything else, nor be checked in:
///
/// ```compile_fail,E0502
/// # fn demo(mut lease: connpool::Lease<'_>) -> Result<(), connpool::Error> {
/// let mut stream = lease.stream("SELECT g FROM generate_series(1, 10) g", &[], 5)?;
/// lease.query("SELECT 1", &[])?; // the stream still borrows the lease
/// stream.next();
/// # Ok(()) }
/// ```
///
/// Pieces are results of their own: they may outlive the stream.
///
/// [`Lease::stream`]: crate::Lease::stream
pub struct Stream<'lease> {
    raw: NonNull<sys::pool_stream_t>,
    max_rows: i64,
    done: bool,
    _lease: PhantomData<&'lease mut ()>,
}

// The C API: a stream is used on its lease's thread; it may move with the lease (which it
// borrows mutably: nothing else can use the lease meanwhile). Not Sync (NonNull is !Sync).
unsafe impl Send for Stream<'_> {}

impl<'lease> Stream<'lease> {
    /// Sends the statement on `lease` (pool_stream_open).
    pub(crate) fn open(
        lease: *mut sys::pool_lease_t,
        sql: &CString,
        params: &CParams<'_>,
        max_rows: usize,
    ) -> Result<Stream<'lease>, Error> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        if max_rows < 1 {
            return Err(Error::invalid(
                "max_rows is 0: a stream's pieces need at least one row".into(),
            ));
        }
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::pool_stream_open(
                &mut raw,
                lease,
                sql.as_ptr(),
                params.len(),
                params.as_ptr(),
                0,
            )
        })?;
        match NonNull::new(raw) {
            Some(raw) => Ok(Stream {
                raw,
                max_rows,
                done: false,
                _lease: PhantomData,
            }),
            None => Err(Error::Internal {
                message: "pool_stream_open returned no stream".into(),
            }),
        }
    }

    /// The most rows a piece holds.
    pub fn max_rows(&self) -> usize {
        self.max_rows as usize
    }

    /// The next piece (`pool_stream_next`), `Ok(None)` at the end; what `next()` gives,
    /// without the `Option` around it. After the end or an error, `Ok(None)`.
    pub fn next_piece(&mut self) -> Result<Option<QueryResult>, Error> {
        if self.done {
            return Ok(None);
        }
        let mut out = ptr::null_mut();
        let rc = unsafe { sys::pool_stream_next(&mut out, self.raw.as_ptr(), self.max_rows) };
        if rc != sys::POOL_OK {
            self.done = true;
            return Err(Error::from_last_call(rc));
        }
        if out.is_null() {
            self.done = true;
            return Ok(None);
        }
        QueryResult::from_raw(out, "pool_stream_next").map(Some)
    }

    /// Ends the stream now (`pool_stream_close`) and tells the outcome; dropping it does the
    /// same and ignores errors. Rows not read are discarded and the lease is usable again,
    /// unless the connection was lost (then the pool has invalidated it).
    pub fn close(self) -> Result<(), Error> {
        let raw = self.raw;
        std::mem::forget(self);
        check(unsafe { sys::pool_stream_close(raw.as_ptr()) })
    }

    /// The `pool_stream_t *`, for calls through [`sys`](crate::sys). Do not close it yourself.
    pub fn as_ptr(&self) -> *mut sys::pool_stream_t {
        self.raw.as_ptr()
    }
}

impl Iterator for Stream<'_> {
    type Item = Result<QueryResult, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_piece().transpose()
    }
}

impl FusedIterator for Stream<'_> {}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        unsafe {
            sys::pool_stream_close(self.raw.as_ptr());
        }
    }
}

impl fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("raw", &self.raw)
            .field("max_rows", &self.max_rows)
            .field("done", &self.done)
            .finish()
    }
}
