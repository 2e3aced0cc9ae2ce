//! Row: one row of a QueryResult, read in place, with typed getters in rust-postgres' style
//! (`get` panics, `try_get` returns a Result); RowIter; ColumnIndex (an index or a name).

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Range;

use crate::error::Error;
use crate::result::QueryResult;
use crate::value::{FromValue, Value};

mod sealed {
    pub trait Sealed {}
}

/// What picks a column: its index (`usize`, from 0) or its name (`&str`; the first column of
/// that name). Like rust-postgres' `RowIndex`; sealed.
pub trait ColumnIndex: sealed::Sealed + fmt::Display {
    #[doc(hidden)]
    fn __index(&self, columns: &[String]) -> Option<usize>;
}

impl sealed::Sealed for usize {}
impl ColumnIndex for usize {
    fn __index(&self, columns: &[String]) -> Option<usize> {
        if *self < columns.len() {
            Some(*self)
        } else {
            None
        }
    }
}

impl sealed::Sealed for str {}
impl ColumnIndex for str {
    fn __index(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

impl sealed::Sealed for String {}
impl ColumnIndex for String {
    fn __index(&self, columns: &[String]) -> Option<usize> {
        self.as_str().__index(columns)
    }
}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {}
impl<T: ColumnIndex + ?Sized> ColumnIndex for &T {
    fn __index(&self, columns: &[String]) -> Option<usize> {
        (**self).__index(columns)
    }
}

/// One row of a [`QueryResult`]: a view (the result and a row index), `Copy`, read in place.
/// Values borrowed from it (`&str`, `&[u8]`) live as long as the result, not the view.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    result: &'a QueryResult,
    row: usize,
}

impl<'a> Row<'a> {
    pub(crate) fn new(result: &'a QueryResult, row: usize) -> Row<'a> {
        Row { result, row }
    }

    /// The row's index in its result, from 0.
    pub fn index(&self) -> usize {
        self.row
    }

    /// The result the row belongs to.
    pub fn result(&self) -> &'a QueryResult {
        self.result
    }

    /// The column names.
    pub fn columns(&self) -> &'a [String] {
        self.result.column_names()
    }

    /// The number of values (columns) in the row.
    pub fn len(&self) -> usize {
        self.result.column_count()
    }

    /// Whether the row has no values (a result without columns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value in column `idx` (an index or a name), unconverted. Errors: a column not in
    /// the result is [`Error::Other`] with code `POOL_ERANGE`.
    pub fn value<I: ColumnIndex>(&self, idx: I) -> Result<Value<'a>, Error> {
        match idx.__index(self.columns()) {
            Some(column) if column < self.result.column_count() => {
                Ok(Value::new(self.result, self.row, column))
            }
            _ => Err(Error::out_of_range(format!(
                "row {}: column {} is not in the result (its columns: {:?})",
                self.row,
                idx,
                self.columns()
            ))),
        }
    }

    /// The value in column `idx` (an index or a name) as a `T` (see [`FromValue`] for the
    /// types and the column types each accepts). Errors: [`Error::Type`] for SQL NULL into a
    /// `T` that is not an `Option`, or a column type `T` does not accept (the message names
    /// the row, the column and its type, and `T`); [`Error::Other`] with code `POOL_ERANGE`
    /// for a column not in the result.
    ///
    /// ```no_run
    /// # fn demo(row: connpool::Row<'_>) -> Result<(), connpool::Error> {
    /// let id: i64 = row.try_get(0)?;
    /// let note = row.try_get::<_, Option<String>>("note")?;
    /// # Ok(()) }
    /// ```
    pub fn try_get<I: ColumnIndex, T: FromValue<'a>>(&self, idx: I) -> Result<T, Error> {
        self.value(idx)?.get()
    }

    /// [`try_get`](Row::try_get) that panics on error, like rust-postgres' `Row::get`.
    ///
    /// # Panics
    ///
    /// If the column is not in the result, or its value cannot be read as a `T`.
    #[track_caller]
    pub fn get<I: ColumnIndex, T: FromValue<'a>>(&self, idx: I) -> T {
        match self.try_get(&idx) {
            Ok(v) => v,
            Err(e) => panic!("error retrieving column {}: {}", idx, e),
        }
    }
}

impl fmt::Debug for Row<'_> {
    /// The row's index and its values as text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<Option<&str>> = (0..self.len())
            .map(|c| self.result.get(self.row, c))
            .collect();
        f.debug_struct("Row")
            .field("index", &self.row)
            .field("values", &values)
            .finish()
    }
}

/// The rows of a [`QueryResult`], in order ([`QueryResult::rows`]).
#[derive(Clone)]
pub struct RowIter<'a> {
    result: &'a QueryResult,
    range: Range<usize>,
}

impl<'a> RowIter<'a> {
    pub(crate) fn new(result: &'a QueryResult) -> RowIter<'a> {
        RowIter {
            result,
            range: 0..result.row_count(),
        }
    }
}

impl<'a> Iterator for RowIter<'a> {
    type Item = Row<'a>;
    fn next(&mut self) -> Option<Row<'a>> {
        self.range.next().map(|r| Row::new(self.result, r))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<Row<'a>> {
        self.range.nth(n).map(|r| Row::new(self.result, r))
    }
}

impl DoubleEndedIterator for RowIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.range.next_back().map(|r| Row::new(self.result, r))
    }
}

impl ExactSizeIterator for RowIter<'_> {}
impl FusedIterator for RowIter<'_> {}

impl fmt::Debug for RowIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowIter")
            .field("rows", &self.range)
            .finish()
    }
}
