//! Parameters of `pool_query_params` and `pool_stream_open`: ToParam (a Rust value as bytes
//! and a connpool type), Param, and their C form (`pool_param_t`).

use std::borrow::Cow;
use std::os::raw::{c_int, c_void};
use std::ptr;

use crate::error::Error;
use crate::sys;
use crate::value::Type;

/// One parameter as the C library takes it: its bytes (`None`: SQL NULL) and the connpool
/// type it is sent as. [`Type::Bytea`] sends the bytes as binary data (any bytes, NULs
/// included); [`Type::Unknown`] sends text and lets the server infer its type; any other
/// type declares it for the text (libpq: its OID; ODBC: its SQL type for numbers, bool,
/// date and timestamp). Text cannot hold a NUL byte (the call fails with
/// [`Error::InvalidArgument`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    value: Option<Cow<'a, [u8]>>,
    ty: Type,
}

impl<'a> Param<'a> {
    /// A value: its bytes (text, or a bytea's raw bytes) and the type to send it as.
    pub fn new(value: impl Into<Cow<'a, [u8]>>, ty: Type) -> Param<'a> {
        Param {
            value: Some(value.into()),
            ty,
        }
    }

    /// Text sent as `ty` (a date as `Param::text("2024-01-02", Type::Date)`, say).
    pub fn text(value: &'a str, ty: Type) -> Param<'a> {
        Param::new(value.as_bytes(), ty)
    }

    /// SQL NULL, declared as `ty`.
    pub fn null(ty: Type) -> Param<'a> {
        Param { value: None, ty }
    }

    /// The bytes; `None` for SQL NULL.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The type the value is sent as.
    pub fn param_type(&self) -> Type {
        self.ty
    }
}

/// A Rust value that can be a statement's parameter (rust-postgres' `ToSql`): pass them as
/// `&[&dyn ToParam]`, e.g. `&[&42i64, &"text", &None::<i32>]`.
///
/// | Rust type                  | sent as                                                  |
/// |----------------------------|----------------------------------------------------------|
/// | `bool`                     | `"t"` / `"f"`, [`Type::Bool`]                            |
/// | `i16`, `i32`, `i64`        | decimal text, [`Type::Int16`], [`Type::Int32`], [`Type::Int64`] |
/// | `f32`, `f64`               | the shortest text that reads back the same (`"Infinity"`, `"-Infinity"`, `"NaN"`), [`Type::Float32`], [`Type::Float64`] |
/// | `&str`, `String`           | the text, [`Type::Unknown`]: the server infers the type (so a string can go to a date, uuid, json or numeric column) |
/// | `&[u8]`, `Vec<u8>`         | the raw bytes, [`Type::Bytea`] (binary-safe)              |
/// | `Option<T>`                | `T`'s; `None` is SQL NULL declared as `T`'s type          |
/// | [`Param`]                  | its bytes and type, as they are                           |
pub trait ToParam {
    /// The value as the C library takes it.
    fn to_param(&self) -> Param<'_>;

    /// The type a NULL of this Rust type (a `None::<Self>`) is declared as.
    fn param_type() -> Type
    where
        Self: Sized,
    {
        Type::Unknown
    }
}

impl ToParam for Param<'_> {
    fn to_param(&self) -> Param<'_> {
        Param {
            value: self.value.as_deref().map(Cow::Borrowed),
            ty: self.ty,
        }
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        match self {
            Some(v) => v.to_param(),
            None => Param::null(T::param_type()),
        }
    }
    fn param_type() -> Type {
        T::param_type()
    }
}

impl ToParam for bool {
    fn to_param(&self) -> Param<'_> {
        Param::new(if *self { &b"t"[..] } else { &b"f"[..] }, Type::Bool)
    }
    fn param_type() -> Type {
        Type::Bool
    }
}

macro_rules! to_param_integer {
    ($($t:ty => $ty:expr),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Param<'_> {
                Param::new(self.to_string().into_bytes(), $ty)
            }
            fn param_type() -> Type {
                $ty
            }
        }
    )*};
}
to_param_integer!(i16 => Type::Int16, i32 => Type::Int32, i64 => Type::Int64);

impl ToParam for f32 {
    fn to_param(&self) -> Param<'_> {
        Param::new(
            float_text(f64::from(*self), self.to_string()),
            Type::Float32,
        )
    }
    fn param_type() -> Type {
        Type::Float32
    }
}

impl ToParam for f64 {
    fn to_param(&self) -> Param<'_> {
        Param::new(float_text(*self, self.to_string()), Type::Float64)
    }
    fn param_type() -> Type {
        Type::Float64
    }
}

/// A float as PostgreSQL reads it: `shortest` is Rust's text of the value (the shortest
/// decimal that reads back the same, no exponent), but PostgreSQL wants `Infinity`, not `inf`.
fn float_text(v: f64, shortest: String) -> Vec<u8> {
    let text = if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        shortest
    };
    text.into_bytes()
}

impl ToParam for &str {
    fn to_param(&self) -> Param<'_> {
        Param::text(self, Type::Unknown)
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::text(self, Type::Unknown)
    }
}

impl ToParam for &[u8] {
    fn to_param(&self) -> Param<'_> {
        Param::new(*self, Type::Bytea)
    }
    fn param_type() -> Type {
        Type::Bytea
    }
}

impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::new(&self[..], Type::Bytea)
    }
    fn param_type() -> Type {
        Type::Bytea
    }
}

/// Parameters converted for one C call: `raw` points into `params`, which must outlive it.
pub(crate) struct CParams<'a> {
    _params: Vec<Param<'a>>,
    raw: Vec<sys::pool_param_t>,
}

impl<'a> CParams<'a> {
    pub(crate) fn new(params: &'a [&'a dyn ToParam]) -> Result<CParams<'a>, Error> {
        c_int::try_from(params.len())
            .map_err(|_| Error::invalid(format!("too many parameters: {}", params.len())))?;
        let params: Vec<Param<'a>> = params.iter().map(|p| p.to_param()).collect();
        let mut raw = Vec::with_capacity(params.len());
        for p in &params {
            raw.push(match p.value() {
                None => sys::pool_param_t {
                    value: ptr::null(),
                    length: 0,
                    r#type: p.ty.code(),
                },
                Some(bytes) => sys::pool_param_t {
                    // An empty value still needs a pointer that is not NULL (NULL is SQL
                    // NULL): a real one rather than the dangling one of an empty slice.
                    value: if bytes.is_empty() {
                        b"\0".as_ptr() as *const c_void
                    } else {
                        bytes.as_ptr() as *const c_void
                    },
                    length: i64::try_from(bytes.len()).map_err(|_| {
                        Error::invalid(format!("a parameter of {} bytes", bytes.len()))
                    })?,
                    r#type: p.ty.code(),
                },
            });
        }
        Ok(CParams {
            _params: params,
            raw,
        })
    }

    pub(crate) fn len(&self) -> c_int {
        self.raw.len() as c_int // checked in new()
    }

    pub(crate) fn as_ptr(&self) -> *const sys::pool_param_t {
        if self.raw.is_empty() {
            ptr::null()
        } else {
            self.raw.as_ptr()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(p: &dyn ToParam) -> (Option<Vec<u8>>, Type) {
        let p = p.to_param();
        (p.value().map(<[u8]>::to_vec), p.param_type())
    }

    fn text(s: &str, ty: Type) -> (Option<Vec<u8>>, Type) {
        (Some(s.as_bytes().to_vec()), ty)
    }

    #[test]
    fn rust_values_become_bytes_and_a_type() {
        assert_eq!(sent(&true), text("t", Type::Bool));
        assert_eq!(sent(&false), text("f", Type::Bool));
        assert_eq!(sent(&i16::MIN), text("-32768", Type::Int16));
        assert_eq!(sent(&7i32), text("7", Type::Int32));
        assert_eq!(sent(&i64::MIN), text("-9223372036854775808", Type::Int64));
        assert_eq!(sent(&1.5f32), text("1.5", Type::Float32));
        assert_eq!(sent(&0.1f32), text("0.1", Type::Float32));
        assert_eq!(sent(&-2.25f64), text("-2.25", Type::Float64));
        assert_eq!(sent(&f64::INFINITY), text("Infinity", Type::Float64));
        assert_eq!(sent(&f32::NEG_INFINITY), text("-Infinity", Type::Float32));
        assert_eq!(sent(&f64::NAN), text("NaN", Type::Float64));
        assert_eq!(sent(&1e300f64).0.unwrap().len(), 301);
        assert_eq!(sent(&"héllo"), text("héllo", Type::Unknown));
        assert_eq!(sent(&String::new()), text("", Type::Unknown));
        assert_eq!(sent(&&b"a\0b"[..]), (Some(b"a\0b".to_vec()), Type::Bytea));
        assert_eq!(sent(&vec![0u8, 255]), (Some(vec![0, 255]), Type::Bytea));
        assert_eq!(sent(&Some(5i16)), text("5", Type::Int16));
        assert_eq!(sent(&None::<i64>), (None, Type::Int64));
        assert_eq!(sent(&None::<Vec<u8>>), (None, Type::Bytea));
        assert_eq!(sent(&None::<&str>), (None, Type::Unknown));
        assert_eq!(sent(&Param::null(Type::Date)), (None, Type::Date));
        assert_eq!(
            sent(&Param::text("2024-01-02", Type::Date)),
            text("2024-01-02", Type::Date)
        );
    }

    #[test]
    fn c_params_point_at_the_bytes() {
        let empty: &[u8] = b"";
        let params: [&dyn ToParam; 4] = [&"ab", &None::<i32>, &empty, &Some(3i64)];
        let c = CParams::new(&params).unwrap();
        assert_eq!(c.len(), 4);
        let raw = unsafe { std::slice::from_raw_parts(c.as_ptr(), 4) };
        assert_eq!((raw[0].length, raw[0].r#type), (2, sys::POOL_TYPE_UNKNOWN));
        let v = unsafe { std::slice::from_raw_parts(raw[0].value as *const u8, 2) };
        assert_eq!(v, b"ab");
        assert!(raw[1].value.is_null());
        assert_eq!(raw[1].r#type, sys::POOL_TYPE_INT32);
        assert!(!raw[2].value.is_null());
        assert_eq!((raw[2].length, raw[2].r#type), (0, sys::POOL_TYPE_BYTEA));
        assert_eq!((raw[3].length, raw[3].r#type), (1, sys::POOL_TYPE_INT64));
        let none: [&dyn ToParam; 0] = [];
        assert!(CParams::new(&none).unwrap().as_ptr().is_null());
    }
}
