use std::ffi::CStr;
use std::fmt;
use std::os::raw::{c_char, c_int};

use connpool_sys as sys;

/// A failed connpool call: the C status code as a variant, with this thread's detail message
/// (`pool_last_error()`) and, for a failed statement, its SQLSTATE (`pool_last_sqlstate()`),
/// both copied right after the failing call.
///
/// Codes are only ever added to the C API, so the enum is `#[non_exhaustive]`; a code this
/// binding does not know becomes [`Error::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `POOL_ERROR`: internal failure.
    Internal { message: String },
    /// `POOL_EINVAL`: bad argument (unknown option key, bad value, a string with a NUL byte).
    InvalidArgument { message: String },
    /// `POOL_ENOMEM`.
    OutOfMemory { message: String },
    /// `POOL_ETIMEDOUT`: no connection became free in time; the message names the longest
    /// holders by their tags.
    Timeout { message: String },
    /// `POOL_ECONNECT`: the driver could not open a connection (its message, no password).
    Connect { message: String },
    /// `POOL_EBUSY`.
    Busy { message: String },
    /// `POOL_ECLOSED`: the pool is disposed or being disposed.
    Closed { message: String },
    /// `POOL_ESTATE`: the lease is not checked out.
    State { message: String },
    /// `POOL_ENOTSUP`: no such connector, or not supported by it (pool_query on a custom one).
    NotSupported { message: String },
    /// `POOL_EFORKED`: the lease's connection was inherited across `fork()`.
    Forked { message: String },
    /// `POOL_ETOOMANYWAITERS`: `max_waiting` threads wait already; the checkout was not queued.
    TooManyWaiters { message: String },
    /// `POOL_EQUERY`: the statement failed. `sqlstate` is five characters, or empty if the
    /// driver gave none.
    Query { message: String, sqlstate: String },
    /// `POOL_ETYPE`: a typed getter met SQL NULL, or a value of another type or out of the
    /// Rust type's range. The message names the row, the column (index, name and type) and
    /// the type asked for. Since 1.2.
    Type { message: String },
    /// Any other code (one added after this binding was written, or `POOL_ERANGE`: a row or
    /// column index out of range, from the typed getters).
    Other { code: i32, message: String },
}

impl Error {
    /// The error of the connpool call that just returned `code` (a negative `POOL_E*`) on this
    /// thread: call it right after that call, before any other connpool call on this thread,
    /// which would overwrite the message.
    pub fn from_last_call(code: c_int) -> Error {
        // Copy both strings first: they live only until this thread's next connpool call.
        let message = unsafe { copy_cstr(sys::pool_last_error()) };
        let sqlstate = if code == sys::POOL_EQUERY {
            unsafe { copy_cstr(sys::pool_last_sqlstate()) }
        } else {
            String::new()
        };
        Error::from_parts(code, message, sqlstate)
    }

    fn from_parts(code: c_int, message: String, sqlstate: String) -> Error {
        match code {
            sys::POOL_ERROR => Error::Internal { message },
            sys::POOL_EINVAL => Error::InvalidArgument { message },
            sys::POOL_ENOMEM => Error::OutOfMemory { message },
            sys::POOL_ETIMEDOUT => Error::Timeout { message },
            sys::POOL_ECONNECT => Error::Connect { message },
            sys::POOL_EBUSY => Error::Busy { message },
            sys::POOL_ECLOSED => Error::Closed { message },
            sys::POOL_ESTATE => Error::State { message },
            sys::POOL_ENOTSUP => Error::NotSupported { message },
            sys::POOL_EFORKED => Error::Forked { message },
            sys::POOL_ETOOMANYWAITERS => Error::TooManyWaiters { message },
            sys::POOL_EQUERY => Error::Query { message, sqlstate },
            sys::POOL_ETYPE => Error::Type { message },
            code => Error::Other { code, message },
        }
    }

    /// An argument this binding refuses before calling C (a string with a NUL byte).
    pub(crate) fn invalid(message: String) -> Error {
        Error::InvalidArgument { message }
    }

    /// A value this binding cannot convert (POOL_ETYPE).
    pub(crate) fn type_error(message: String) -> Error {
        Error::Type { message }
    }

    /// A row or column that is not in the result (POOL_ERANGE, as the C getters say).
    pub(crate) fn out_of_range(message: String) -> Error {
        Error::Other {
            code: sys::POOL_ERANGE,
            message,
        }
    }

    /// The C status code (`POOL_ETIMEDOUT` is -4, ...).
    pub fn code(&self) -> i32 {
        match self {
            Error::Internal { .. } => sys::POOL_ERROR,
            Error::InvalidArgument { .. } => sys::POOL_EINVAL,
            Error::OutOfMemory { .. } => sys::POOL_ENOMEM,
            Error::Timeout { .. } => sys::POOL_ETIMEDOUT,
            Error::Connect { .. } => sys::POOL_ECONNECT,
            Error::Busy { .. } => sys::POOL_EBUSY,
            Error::Closed { .. } => sys::POOL_ECLOSED,
            Error::State { .. } => sys::POOL_ESTATE,
            Error::NotSupported { .. } => sys::POOL_ENOTSUP,
            Error::Forked { .. } => sys::POOL_EFORKED,
            Error::TooManyWaiters { .. } => sys::POOL_ETOOMANYWAITERS,
            Error::Query { .. } => sys::POOL_EQUERY,
            Error::Type { .. } => sys::POOL_ETYPE,
            Error::Other { code, .. } => *code,
        }
    }

    /// The code's name from the library (`"POOL_ETIMEDOUT"`).
    pub fn name(&self) -> &'static str {
        // pool_error_name() returns a static string, never NULL.
        unsafe { CStr::from_ptr(sys::pool_error_name(self.code())) }
            .to_str()
            .unwrap_or("POOL_UNKNOWN")
    }

    /// The detail message (`pool_last_error()` at the time of the failure).
    pub fn message(&self) -> &str {
        match self {
            Error::Internal { message }
            | Error::InvalidArgument { message }
            | Error::OutOfMemory { message }
            | Error::Timeout { message }
            | Error::Connect { message }
            | Error::Busy { message }
            | Error::Closed { message }
            | Error::State { message }
            | Error::NotSupported { message }
            | Error::Forked { message }
            | Error::TooManyWaiters { message }
            | Error::Query { message, .. }
            | Error::Type { message }
            | Error::Other { message, .. } => message,
        }
    }

    /// The SQLSTATE of a failed statement (`"42P01"`), if the driver gave one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Query { sqlstate, .. } if !sqlstate.is_empty() => Some(sqlstate),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    /// `POOL_EQUERY: ERROR:  relation "x" does not exist ... (SQLSTATE 42P01)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        f.write_str(": ")?;
        if self.message().is_empty() {
            let text = unsafe { CStr::from_ptr(sys::pool_strerror(self.code())) };
            f.write_str(&text.to_string_lossy())?;
        } else {
            f.write_str(self.message().trim_end())?;
        }
        if let Some(state) = self.sqlstate() {
            write!(f, " (SQLSTATE {})", state)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Ok(()) for POOL_OK, else the error of the call that just returned `rc`.
pub(crate) fn check(rc: c_int) -> Result<(), Error> {
    if rc == sys::POOL_OK {
        Ok(())
    } else {
        Err(Error::from_last_call(rc))
    }
}

/// An owned copy of a C string owned by the library ("" for NULL).
pub(crate) unsafe fn copy_cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_variant_and_back() {
        for code in -14..=-1 {
            let e = Error::from_parts(code, "m".into(), String::new());
            assert_eq!(e.code(), code);
            let name = e.name();
            assert!(name.starts_with("POOL_E"), "{}", name);
            assert_eq!(e.message(), "m");
        }
        assert!(matches!(
            Error::from_parts(-12, String::new(), String::new()),
            Error::Other { code: -12, .. }
        ));
        assert!(matches!(
            Error::from_parts(-99, String::new(), String::new()),
            Error::Other { code: -99, .. }
        ));
        assert_eq!(
            Error::from_parts(-99, String::new(), String::new()).name(),
            "POOL_UNKNOWN"
        );
        let e = Error::from_parts(sys::POOL_ETYPE, "m".into(), String::new());
        assert!(matches!(e, Error::Type { .. }));
        assert_eq!(e.name(), "POOL_ETYPE");
        let e = Error::out_of_range("row 3".into());
        assert_eq!((e.code(), e.name()), (sys::POOL_ERANGE, "POOL_ERANGE"));
    }

    #[test]
    fn display_names_the_code_and_the_sqlstate() {
        let e = Error::from_parts(sys::POOL_EQUERY, "ERROR:  boom\n".into(), "42P01".into());
        assert_eq!(e.to_string(), "POOL_EQUERY: ERROR:  boom (SQLSTATE 42P01)");
        assert_eq!(e.sqlstate(), Some("42P01"));
        let e = Error::from_parts(sys::POOL_ETIMEDOUT, String::new(), String::new());
        assert!(e.to_string().starts_with("POOL_ETIMEDOUT: "));
        assert!(e.to_string().len() > "POOL_ETIMEDOUT: ".len());
        assert_eq!(e.sqlstate(), None);
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert!(boxed.to_string().contains("POOL_ETIMEDOUT"));
    }
}
