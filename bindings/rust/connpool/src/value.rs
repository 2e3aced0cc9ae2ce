//! Column types (`pool_type`), one value of a result ([`Value`]), and its conversion to Rust
//! types ([`FromValue`]).

use std::fmt;
use std::os::raw::c_int;

use crate::error::Error;
use crate::result::QueryResult;
use crate::sys;

/// What a column holds, whatever the backend (`enum pool_type`). Every value also has a text
/// form (the one PostgreSQL prints), which is what [`Type::Unknown`] columns offer.
///
/// The C enum is append-only: a code this binding does not know yet is [`Type::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Type {
    /// `POOL_TYPE_UNKNOWN`: anything else; use the text form.
    Unknown,
    /// `POOL_TYPE_BOOL`: `"t"` or `"f"`.
    Bool,
    /// `POOL_TYPE_INT16`.
    Int16,
    /// `POOL_TYPE_INT32`.
    Int32,
    /// `POOL_TYPE_INT64`.
    Int64,
    /// `POOL_TYPE_FLOAT32`: text as PostgreSQL prints it (`"1.5"`, `"Infinity"`, `"NaN"`).
    Float32,
    /// `POOL_TYPE_FLOAT64`.
    Float64,
    /// `POOL_TYPE_NUMERIC`: exact decimal text, or `"NaN"`.
    Numeric,
    /// `POOL_TYPE_TEXT`: text, varchar, char, name.
    Text,
    /// `POOL_TYPE_BYTEA`: binary; its bytes are raw, its text form is hex (`"\x..."`).
    Bytea,
    /// `POOL_TYPE_DATE`.
    Date,
    /// `POOL_TYPE_TIME`: time and timetz.
    Time,
    /// `POOL_TYPE_TIMESTAMP`.
    Timestamp,
    /// `POOL_TYPE_TIMESTAMPTZ`.
    TimestampTz,
    /// `POOL_TYPE_INTERVAL`.
    Interval,
    /// `POOL_TYPE_UUID`.
    Uuid,
    /// `POOL_TYPE_JSON`: json and jsonb, as text.
    Json,
    /// `POOL_TYPE_ARRAY`: any array, as PostgreSQL's array literal text.
    Array,
    /// A `pool_type` code added to the C library after this binding was written.
    Other(i32),
}

impl Type {
    /// The type of a `pool_type` code.
    pub fn from_code(code: c_int) -> Type {
        match code {
            sys::POOL_TYPE_UNKNOWN => Type::Unknown,
            sys::POOL_TYPE_BOOL => Type::Bool,
            sys::POOL_TYPE_INT16 => Type::Int16,
            sys::POOL_TYPE_INT32 => Type::Int32,
            sys::POOL_TYPE_INT64 => Type::Int64,
            sys::POOL_TYPE_FLOAT32 => Type::Float32,
            sys::POOL_TYPE_FLOAT64 => Type::Float64,
            sys::POOL_TYPE_NUMERIC => Type::Numeric,
            sys::POOL_TYPE_TEXT => Type::Text,
            sys::POOL_TYPE_BYTEA => Type::Bytea,
            sys::POOL_TYPE_DATE => Type::Date,
            sys::POOL_TYPE_TIME => Type::Time,
            sys::POOL_TYPE_TIMESTAMP => Type::Timestamp,
            sys::POOL_TYPE_TIMESTAMPTZ => Type::TimestampTz,
            sys::POOL_TYPE_INTERVAL => Type::Interval,
            sys::POOL_TYPE_UUID => Type::Uuid,
            sys::POOL_TYPE_JSON => Type::Json,
            sys::POOL_TYPE_ARRAY => Type::Array,
            other => Type::Other(other),
        }
    }

    /// The `pool_type` code (`POOL_TYPE_INT64` is 4, ...).
    pub fn code(self) -> c_int {
        match self {
            Type::Unknown => sys::POOL_TYPE_UNKNOWN,
            Type::Bool => sys::POOL_TYPE_BOOL,
            Type::Int16 => sys::POOL_TYPE_INT16,
            Type::Int32 => sys::POOL_TYPE_INT32,
            Type::Int64 => sys::POOL_TYPE_INT64,
            Type::Float32 => sys::POOL_TYPE_FLOAT32,
            Type::Float64 => sys::POOL_TYPE_FLOAT64,
            Type::Numeric => sys::POOL_TYPE_NUMERIC,
            Type::Text => sys::POOL_TYPE_TEXT,
            Type::Bytea => sys::POOL_TYPE_BYTEA,
            Type::Date => sys::POOL_TYPE_DATE,
            Type::Time => sys::POOL_TYPE_TIME,
            Type::Timestamp => sys::POOL_TYPE_TIMESTAMP,
            Type::TimestampTz => sys::POOL_TYPE_TIMESTAMPTZ,
            Type::Interval => sys::POOL_TYPE_INTERVAL,
            Type::Uuid => sys::POOL_TYPE_UUID,
            Type::Json => sys::POOL_TYPE_JSON,
            Type::Array => sys::POOL_TYPE_ARRAY,
            Type::Other(code) => code,
        }
    }

    /// Whether the type is an integer (`Int16`, `Int32` or `Int64`).
    pub fn is_integer(self) -> bool {
        matches!(self, Type::Int16 | Type::Int32 | Type::Int64)
    }

    /// Whether the type is a number: an integer, a float or a numeric.
    pub fn is_number(self) -> bool {
        self.is_integer() || matches!(self, Type::Float32 | Type::Float64 | Type::Numeric)
    }
}

impl fmt::Display for Type {
    /// The name the C library uses in its messages: `int64`, `text`, `bytea`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Type::Unknown => "unknown",
            Type::Bool => "bool",
            Type::Int16 => "int16",
            Type::Int32 => "int32",
            Type::Int64 => "int64",
            Type::Float32 => "float32",
            Type::Float64 => "float64",
            Type::Numeric => "numeric",
            Type::Text => "text",
            Type::Bytea => "bytea",
            Type::Date => "date",
            Type::Time => "time",
            Type::Timestamp => "timestamp",
            Type::TimestampTz => "timestamptz",
            Type::Interval => "interval",
            Type::Uuid => "uuid",
            Type::Json => "json",
            Type::Array => "array",
            Type::Other(code) => return write!(f, "pool_type {}", code),
        };
        f.write_str(name)
    }
}

/// One value of a [`QueryResult`]: a cell known to be in range, read in place. What
/// [`FromValue`] implementations convert; [`Row::value`](crate::Row::value) gives it too.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    result: &'a QueryResult,
    row: usize,
    column: usize,
}

impl<'a> Value<'a> {
    /// `row` and `column` must be in range (the callers check).
    pub(crate) fn new(result: &'a QueryResult, row: usize, column: usize) -> Value<'a> {
        debug_assert!(row < result.row_count() && column < result.column_count());
        Value {
            result,
            row,
            column,
        }
    }

    // In range, so they fit: the C library counts rows in int64_t and columns in int.
    fn c_row(&self) -> i64 {
        self.row as i64
    }
    fn c_column(&self) -> c_int {
        self.column as c_int
    }

    /// The row's index, from 0.
    pub fn row(&self) -> usize {
        self.row
    }

    /// The column's index, from 0.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The column's name.
    pub fn column_name(&self) -> &'a str {
        self.result.column_name(self.column).unwrap_or("")
    }

    /// The column's type.
    pub fn column_type(&self) -> Type {
        self.result
            .column_type(self.column)
            .unwrap_or(Type::Unknown)
    }

    /// The backend's own type id of the column: the PostgreSQL type OID (libpq), the ODBC SQL
    /// data type (ODBC).
    pub fn backend_type(&self) -> i64 {
        self.result.backend_type(self.column).unwrap_or(0)
    }

    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        unsafe {
            sys::pool_result_is_null(self.result.as_ptr(), self.c_row(), self.c_column()) == 1
        }
    }

    /// The value's bytes (`pool_result_bytes`): a bytea's raw bytes, the text form of any
    /// other type; `None` for SQL NULL.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        let mut len = 0usize;
        let p = unsafe {
            sys::pool_result_bytes(
                self.result.as_ptr(),
                self.c_row(),
                self.c_column(),
                &mut len,
            )
        };
        if p.is_null() {
            None
        } else {
            // Owned by the result, which `self.result` keeps alive for 'a; never changed.
            Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
        }
    }

    /// Converts the value to `T`: the column's type must be one `T` accepts
    /// ([`FromValue::accepts`]), and SQL NULL needs a `T` that takes it (`Option<_>`).
    pub fn get<T: FromValue<'a>>(self) -> Result<T, Error> {
        if !T::accepts(self.column_type()) {
            return Err(self.wrong_type::<T>());
        }
        if self.is_null() {
            T::from_null(self)
        } else {
            T::from_value(self)
        }
    }

    /// `row 0, column 2 ("name", text)`: where the value is, for messages.
    pub fn location(&self) -> String {
        format!(
            "row {}, column {} ({:?}, {})",
            self.row,
            self.column,
            self.column_name(),
            self.column_type()
        )
    }

    /// An [`Error::Type`] about this value: its location, then `what`.
    pub fn error(&self, what: impl fmt::Display) -> Error {
        Error::type_error(format!("{}: {}", self.location(), what))
    }

    /// The error of a column whose type `T` does not accept.
    pub fn wrong_type<T: ?Sized>(&self) -> Error {
        let ty = self.column_type();
        let hint = if ty == Type::Bytea {
            " (read bytea as &[u8] or Vec<u8>)"
        } else {
            ""
        };
        self.error(format_args!(
            "a {} value cannot be read as {}{}",
            ty,
            rust_type_name::<T>(),
            hint
        ))
    }

    /// The error of SQL NULL read as a `T` that cannot hold it.
    pub fn null_error<T: ?Sized>(&self) -> Error {
        let name = rust_type_name::<T>();
        self.error(format_args!(
            "SQL NULL cannot be read as {} (read it as Option<{}>)",
            name, name
        ))
    }

    /// The bytes of a value that is not NULL (from_value is only called for those).
    fn non_null_bytes<T: ?Sized>(&self) -> Result<&'a [u8], Error> {
        self.bytes().ok_or_else(|| self.null_error::<T>())
    }

    /// The error a C getter just returned, with this value's location and the Rust type.
    fn c_error<T: ?Sized>(&self, rc: c_int) -> Error {
        match Error::from_last_call(rc) {
            Error::Type { message } => self.error(format_args!(
                "cannot be read as {}: {}",
                rust_type_name::<T>(),
                message
            )),
            other => other,
        }
    }

    fn int64<T: ?Sized>(&self) -> Result<i64, Error> {
        let mut out = 0i64;
        let rc = unsafe {
            sys::pool_result_int64(
                self.result.as_ptr(),
                self.c_row(),
                self.c_column(),
                &mut out,
            )
        };
        if rc == sys::POOL_OK {
            Ok(out)
        } else {
            Err(self.c_error::<T>(rc))
        }
    }

    fn double<T: ?Sized>(&self) -> Result<f64, Error> {
        let mut out = 0f64;
        let rc = unsafe {
            sys::pool_result_double(
                self.result.as_ptr(),
                self.c_row(),
                self.c_column(),
                &mut out,
            )
        };
        if rc == sys::POOL_OK {
            Ok(out)
        } else {
            Err(self.c_error::<T>(rc))
        }
    }

    fn str<T: ?Sized>(&self) -> Result<&'a str, Error> {
        let bytes = self.non_null_bytes::<T>()?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.error(format_args!(
                "is not valid UTF-8 ({}), so cannot be read as {}",
                e,
                rust_type_name::<T>()
            ))
        })
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("row", &self.row)
            .field("column", &self.column)
            .field("type", &self.column_type())
            .field(
                "bytes",
                &self
                    .bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
            )
            .finish()
    }
}

/// `std::any::type_name` without the paths: `Option<String>`, `&str`, `Vec<u8>`.
pub(crate) fn rust_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment = 0; // where the identifier being copied starts in `out`
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment); // a path segment: drop it
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            segment = out.len();
        }
    }
    out
}

/// A Rust type a value can be read as: what [`Row::try_get`](crate::Row::try_get) and
/// [`Row::get`](crate::Row::get) return (rust-postgres' `FromSql`). `'a` is the result's
/// lifetime: `&'a str` and `&'a [u8]` borrow the value in place.
///
/// | Rust type            | column types accepted (`Type`)                                  |
/// |----------------------|-----------------------------------------------------------------|
/// | `bool`               | `Bool`                                                          |
/// | `i16`, `i32`, `i64`  | `Int16`, `Int32`, `Int64` (a value out of the Rust type's range is an error), `Unknown` (if its text is an integer) |
/// | `f32`, `f64`         | `Float32`, `Float64`, `Numeric`, `Int16`, `Int32`, `Int64` (`f32` from a wider type: an error if a finite value overflows) |
/// | `&str`, `String`     | every type but `Bytea` (the value's text form; it must be UTF-8) |
/// | `&[u8]`, `Vec<u8>`   | every type (a bytea's raw bytes, the text form of the others)   |
/// | `Option<T>`          | what `T` accepts; SQL NULL is `None`                            |
///
/// SQL NULL read as anything but an `Option` is an [`Error::Type`], and so is a column type
/// the Rust type does not accept (whether the value is NULL or not).
///
/// Implement it for types of your own (a date type, say) from [`Value::bytes`], the text
/// form.
pub trait FromValue<'a>: Sized {
    /// Whether a column of type `ty` can be read as `Self`.
    fn accepts(ty: Type) -> bool;

    /// Converts a value that is not SQL NULL, from a column `Self` accepts.
    fn from_value(value: Value<'a>) -> Result<Self, Error>;

    /// Converts SQL NULL: an [`Error::Type`] unless `Self` can hold it.
    fn from_null(value: Value<'a>) -> Result<Self, Error> {
        Err(value.null_error::<Self>())
    }
}

impl<'a, T: FromValue<'a>> FromValue<'a> for Option<T> {
    fn accepts(ty: Type) -> bool {
        T::accepts(ty)
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        T::from_value(value).map(Some)
    }
    fn from_null(_: Value<'a>) -> Result<Self, Error> {
        Ok(None)
    }
}

impl<'a> FromValue<'a> for bool {
    fn accepts(ty: Type) -> bool {
        ty == Type::Bool
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        let mut out: c_int = 0;
        let rc = unsafe {
            sys::pool_result_bool(
                value.result.as_ptr(),
                value.c_row(),
                value.c_column(),
                &mut out,
            )
        };
        if rc == sys::POOL_OK {
            Ok(out != 0)
        } else {
            Err(value.c_error::<Self>(rc))
        }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl<'a> FromValue<'a> for $t {
            fn accepts(ty: Type) -> bool {
                ty.is_integer() || ty == Type::Unknown
            }
            fn from_value(value: Value<'a>) -> Result<Self, Error> {
                let n = value.int64::<Self>()?;
                <$t>::try_from(n).map_err(|_| {
                    value.error(format_args!(
                        "{} is out of the range of {}",
                        n,
                        stringify!($t)
                    ))
                })
            }
        }
    )*};
}
from_integer!(i16, i32, i64);

impl<'a> FromValue<'a> for f64 {
    fn accepts(ty: Type) -> bool {
        ty.is_number()
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        value.double::<Self>()
    }
}

impl<'a> FromValue<'a> for f32 {
    fn accepts(ty: Type) -> bool {
        ty.is_number()
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        if value.column_type() == Type::Float32 {
            // Parsed as f32 directly: through f64 a float4's shortest text could round twice.
            if let Ok(v) = value.str::<Self>()?.parse::<f32>() {
                return Ok(v);
            }
        }
        let v = value.double::<Self>()?;
        let narrow = v as f32;
        if narrow.is_infinite() && v.is_finite() {
            return Err(value.error(format_args!("{} is out of the range of f32", v)));
        }
        Ok(narrow)
    }
}

impl<'a> FromValue<'a> for &'a str {
    fn accepts(ty: Type) -> bool {
        ty != Type::Bytea
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        value.str::<Self>()
    }
}

impl<'a> FromValue<'a> for String {
    fn accepts(ty: Type) -> bool {
        ty != Type::Bytea
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        value.str::<Self>().map(str::to_owned)
    }
}

impl<'a> FromValue<'a> for &'a [u8] {
    fn accepts(_: Type) -> bool {
        true
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        value.non_null_bytes::<Self>()
    }
}

impl<'a> FromValue<'a> for Vec<u8> {
    fn accepts(_: Type) -> bool {
        true
    }
    fn from_value(value: Value<'a>) -> Result<Self, Error> {
        value.non_null_bytes::<Self>().map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_type_and_back() {
        for code in 0..=17 {
            let t = Type::from_code(code);
            assert!(!matches!(t, Type::Other(_)), "{}", code);
            assert_eq!(t.code(), code);
        }
        assert_eq!(Type::from_code(18), Type::Other(18));
        assert_eq!(Type::Other(18).code(), 18);
        assert_eq!(Type::Int64.to_string(), "int64");
        assert_eq!(Type::TimestampTz.to_string(), "timestamptz");
        assert_eq!(Type::Other(99).to_string(), "pool_type 99");
        assert!(Type::Int16.is_integer() && !Type::Numeric.is_integer());
        assert!(Type::Numeric.is_number() && !Type::Text.is_number());
    }

    #[test]
    fn rust_type_names_lose_their_paths() {
        assert_eq!(rust_type_name::<i64>(), "i64");
        assert_eq!(rust_type_name::<String>(), "String");
        assert_eq!(rust_type_name::<&str>(), "&str");
        assert_eq!(rust_type_name::<Vec<u8>>(), "Vec<u8>");
        assert_eq!(rust_type_name::<&[u8]>(), "&[u8]");
        assert_eq!(
            rust_type_name::<Option<Option<String>>>(),
            "Option<Option<String>>"
        );
        assert_eq!(
            rust_type_name::<std::collections::HashMap<String, u8>>(),
            "HashMap<String, u8>"
        );
    }

    #[test]
    fn accepted_types() {
        assert!(i32::accepts(Type::Int64) && i32::accepts(Type::Int16));
        assert!(!i32::accepts(Type::Float64) && !i32::accepts(Type::Text));
        assert!(!i64::accepts(Type::Bool) && !i64::accepts(Type::Numeric));
        assert!(f64::accepts(Type::Numeric) && f64::accepts(Type::Int32));
        assert!(!f64::accepts(Type::Text));
        assert!(bool::accepts(Type::Bool) && !bool::accepts(Type::Int32));
        assert!(<&str>::accepts(Type::Json) && !<&str>::accepts(Type::Bytea));
        assert!(<&[u8]>::accepts(Type::Bytea) && Vec::<u8>::accepts(Type::Text));
        assert!(Option::<i16>::accepts(Type::Int16) && !Option::<i16>::accepts(Type::Text));
    }
}
