//! QueryResult: a statement's result, kept in the C library's form (`pool_result_t`) and read
//! in place; TextRows, the 1.1 text copy of its rows, made only when asked for.

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::fmt;
use std::ops::Deref;
use std::os::raw::c_int;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Once};

use crate::error::{copy_cstr, Error};
use crate::row::{ColumnIndex, Row, RowIter};
use crate::sys;
use crate::value::{FromValue, Type, Value};

/// Owns a pool_result_t and frees it on Drop.
pub(crate) struct RawResult(NonNull<sys::pool_result_t>);

// The C API: a result is immutable once made, and its reads ("pool_result_* are const") may
// run on any number of threads at once; the values it decodes on first access are made under
// its own lock and stay where they are until it is freed.
unsafe impl Send for RawResult {}
unsafe impl Sync for RawResult {}

impl Drop for RawResult {
    fn drop(&mut self) {
        unsafe { sys::pool_result_free(self.0.as_ptr()) }
    }
}

/// The rows of a statement (`pool_result_t`), read in place: nothing is copied but the
/// column names. `Send + Sync` (it is read-only); cloning shares the C result.
///
/// Read values as Rust types through [`rows`](QueryResult::rows) and [`Row::try_get`], or
/// as text with [`get`](QueryResult::get):
///
/// ```no_run
/// # fn demo(lease: &connpool::Lease<'_>) -> Result<(), connpool::Error> {
/// let res = lease.query_params("SELECT id, name FROM items WHERE id > $1", &[&10i64])?;
/// for row in res.rows() {
///     let id: i64 = row.try_get(0)?;
///     let name: Option<&str> = row.try_get("name")?;
///     println!("{} {:?}", id, name);
/// }
/// # Ok(()) }
/// ```
pub struct QueryResult {
    raw: Option<Arc<RawResult>>,
    nrows: usize,
    ncols: usize,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows as text, as in 1.1: one entry per row, one value per column, `None` for SQL
    /// NULL (a bytea as its hex text). A copy of every value, made on first access (it
    /// dereferences to `Vec<Vec<Option<String>>>`); prefer [`rows()`](QueryResult::rows),
    /// which reads in place.
    pub rows: TextRows,
    /// Rows inserted, updated or deleted; `None` for other statements or when the driver
    /// does not say.
    pub affected: Option<u64>,
}

impl QueryResult {
    /// Takes over a result the C library returned (NULL: an internal error).
    pub(crate) fn from_raw(raw: *mut sys::pool_result_t, what: &str) -> Result<Self, Error> {
        let raw = NonNull::new(raw).ok_or_else(|| Error::Internal {
            message: format!("{} returned no result", what),
        })?;
        let raw = Arc::new(RawResult(raw));
        let r = raw.0.as_ptr() as *const sys::pool_result_t;
        let (nrows, ncols, columns, affected) = unsafe {
            let nrows = sys::pool_result_rows(r).max(0);
            let ncols = sys::pool_result_columns(r).max(0);
            let columns = (0..ncols)
                .map(|c| copy_cstr(sys::pool_result_column_name(r, c)))
                .collect();
            (
                nrows,
                ncols,
                columns,
                u64::try_from(sys::pool_result_affected(r)).ok(),
            )
        };
        Ok(QueryResult {
            rows: TextRows::new(Some(Arc::clone(&raw))),
            raw: Some(raw),
            nrows: usize::try_from(nrows).unwrap_or(usize::MAX),
            ncols: ncols as usize,
            columns,
            affected,
        })
    }

    /// The `pool_result_t *` (NULL for `QueryResult::default()`), for calls through
    /// [`sys`](crate::sys). It stays owned by this result: do not free it.
    pub fn as_ptr(&self) -> *const sys::pool_result_t {
        self.raw
            .as_ref()
            .map_or(ptr::null(), |r| r.0.as_ptr() as *const _)
    }

    /// Rows in the result (0 for a statement that returns none).
    pub fn row_count(&self) -> usize {
        self.nrows
    }

    /// Columns in the result.
    pub fn column_count(&self) -> usize {
        self.ncols
    }

    /// Whether the result has no rows.
    pub fn is_empty(&self) -> bool {
        self.nrows == 0
    }

    /// The index of the column named `name` (the first, if several have that name).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.column_names().iter().position(|c| c == name)
    }

    /// The name of column `column`, or `None` if out of range.
    pub fn column_name(&self, column: usize) -> Option<&str> {
        self.column_names().get(column).map(String::as_str)
    }

    /// The connpool type of column `column` (`pool_result_column_type`), or `None` if out of
    /// range.
    pub fn column_type(&self, column: usize) -> Option<Type> {
        let c = self.c_column(column)?;
        let t = unsafe { sys::pool_result_column_type(self.as_ptr(), c, ptr::null_mut()) };
        if t < 0 {
            None
        } else {
            Some(Type::from_code(t))
        }
    }

    /// The backend's own type id of column `column`: the PostgreSQL type OID for libpq, the
    /// ODBC SQL data type (`SQL_INTEGER`...) for ODBC; `None` if out of range.
    pub fn backend_type(&self, column: usize) -> Option<i64> {
        let c = self.c_column(column)?;
        let mut backend = 0i64;
        let t = unsafe { sys::pool_result_column_type(self.as_ptr(), c, &mut backend) };
        if t < 0 {
            None
        } else {
            Some(backend)
        }
    }

    /// The value at (row, column) as text, the form PostgreSQL prints (`pool_result_value`;
    /// a bytea as `"\x..."` hex); `None` for SQL NULL or out of range. Read in place.
    pub fn get(&self, row: usize, column: usize) -> Option<&str> {
        let (r, c) = self.c_cell(row, column)?;
        let p = unsafe { sys::pool_result_value(self.as_ptr(), r, c) };
        if p.is_null() {
            return None;
        }
        // Owned by the result, unchanged until it is freed.
        let text = unsafe { CStr::from_ptr(p) }.to_bytes();
        match std::str::from_utf8(text) {
            Ok(s) => Some(s),
            // Not UTF-8 (a driver's bytes): the text copy has it with U+FFFD, as 1.1 did.
            Err(_) => self.rows.get(row)?.get(column)?.as_deref(),
        }
    }

    /// Whether the value at (row, column) is SQL NULL (`pool_result_is_null`); `None` if out
    /// of range.
    pub fn is_null(&self, row: usize, column: usize) -> Option<bool> {
        let (r, c) = self.c_cell(row, column)?;
        Some(unsafe { sys::pool_result_is_null(self.as_ptr(), r, c) } == 1)
    }

    /// The value at (row, column), binary-exact (`pool_result_bytes`): a bytea's raw bytes,
    /// the text form of any other type; `None` for SQL NULL or out of range.
    pub fn bytes(&self, row: usize, column: usize) -> Option<&[u8]> {
        self.c_cell(row, column)?;
        Value::new(self, row, column).bytes()
    }

    /// The value at (row, column) as a `T` ([`FromValue`]); `column` is an index or a name.
    /// Errors: [`Error::Type`] (SQL NULL into a `T` that is not an `Option`, or a column
    /// type `T` does not accept), and an out-of-range row or column:
    /// [`Error::Other`] with code `POOL_ERANGE`.
    pub fn try_get<'a, I: ColumnIndex, T: FromValue<'a>>(
        &'a self,
        row: usize,
        column: I,
    ) -> Result<T, Error> {
        match self.row(row) {
            Some(r) => r.try_get(column),
            None => Err(Error::out_of_range(format!(
                "row {} is out of range (the result has {} rows)",
                row, self.nrows
            ))),
        }
    }

    /// Row `row`, or `None` if out of range.
    pub fn row(&self, row: usize) -> Option<Row<'_>> {
        if row < self.nrows {
            Some(Row::new(self, row))
        } else {
            None
        }
    }

    /// The rows, in order, as [`Row`] views of this result.
    pub fn rows(&self) -> RowIter<'_> {
        RowIter::new(self)
    }

    /// Bytes of memory the C result holds (`pool_result_memory`).
    pub fn memory(&self) -> usize {
        unsafe { sys::pool_result_memory(self.as_ptr()) }
    }

    /// The column names the C result has (not `self.columns`, which the caller may change).
    pub(crate) fn column_names(&self) -> &[String] {
        &self.columns[..self.ncols.min(self.columns.len())]
    }

    fn c_column(&self, column: usize) -> Option<c_int> {
        if column < self.ncols {
            c_int::try_from(column).ok()
        } else {
            None
        }
    }

    fn c_cell(&self, row: usize, column: usize) -> Option<(i64, c_int)> {
        if row < self.nrows {
            Some((i64::try_from(row).ok()?, self.c_column(column)?))
        } else {
            None
        }
    }
}

impl<'a> IntoIterator for &'a QueryResult {
    type Item = Row<'a>;
    type IntoIter = RowIter<'a>;
    fn into_iter(self) -> RowIter<'a> {
        self.rows()
    }
}

impl Default for QueryResult {
    /// A result of no rows and no columns, holding no C result.
    fn default() -> Self {
        QueryResult {
            raw: None,
            nrows: 0,
            ncols: 0,
            columns: Vec::new(),
            rows: TextRows::new(None),
            affected: None,
        }
    }
}

impl Clone for QueryResult {
    /// Shares the C result; the text copy is made again if asked for.
    fn clone(&self) -> Self {
        QueryResult {
            raw: self.raw.clone(),
            nrows: self.nrows,
            ncols: self.ncols,
            columns: self.columns.clone(),
            rows: self.rows.clone(),
            affected: self.affected,
        }
    }
}

impl PartialEq for QueryResult {
    /// Same columns, same values as text, same affected count (as in 1.1).
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns && self.affected == other.affected && self.rows == other.rows
    }
}

impl Eq for QueryResult {}

impl fmt::Debug for QueryResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<Type> = (0..self.ncols)
            .map(|c| self.column_type(c).unwrap_or(Type::Unknown))
            .collect();
        f.debug_struct("QueryResult")
            .field("columns", &self.columns)
            .field("types", &types)
            .field("rows", &self.rows)
            .field("affected", &self.affected)
            .finish()
    }
}

/// The rows of a [`QueryResult`] as text (the 1.1 `rows` field): dereferences to
/// `Vec<Vec<Option<String>>>`, copied from the C result on first access (once, whichever
/// thread asks first).
pub struct TextRows {
    raw: Option<Arc<RawResult>>,
    once: Once,
    copy: UnsafeCell<Vec<Vec<Option<String>>>>,
}

// `copy` is written once, inside `once.call_once`, before any reference to it is handed out;
// `call_once` makes that write visible to every thread that returns from it.
unsafe impl Sync for TextRows {}

impl TextRows {
    fn new(raw: Option<Arc<RawResult>>) -> TextRows {
        TextRows {
            raw,
            once: Once::new(),
            copy: UnsafeCell::new(Vec::new()),
        }
    }

    fn read(raw: &RawResult) -> Vec<Vec<Option<String>>> {
        let r = raw.0.as_ptr() as *const sys::pool_result_t;
        unsafe {
            let ncols = sys::pool_result_columns(r).max(0);
            let nrows = sys::pool_result_rows(r).max(0);
            (0..nrows)
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
                .collect()
        }
    }
}

impl Deref for TextRows {
    type Target = Vec<Vec<Option<String>>>;
    fn deref(&self) -> &Self::Target {
        self.once.call_once(|| {
            if let Some(raw) = &self.raw {
                let rows = TextRows::read(raw);
                // No reference to `copy` exists yet: none is handed out before call_once ends.
                unsafe { *self.copy.get() = rows };
            }
        });
        unsafe { &*self.copy.get() }
    }
}

impl Clone for TextRows {
    fn clone(&self) -> Self {
        TextRows::new(self.raw.clone())
    }
}

impl PartialEq for TextRows {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for TextRows {}

impl PartialEq<Vec<Vec<Option<String>>>> for TextRows {
    fn eq(&self, other: &Vec<Vec<Option<String>>>) -> bool {
        **self == *other
    }
}

impl fmt::Debug for TextRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a> IntoIterator for &'a TextRows {
    type Item = &'a Vec<Option<String>>;
    type IntoIter = std::slice::Iter<'a, Vec<Option<String>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
