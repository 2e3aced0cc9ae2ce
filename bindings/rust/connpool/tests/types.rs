// Typed results, typed parameters, prepared statements and streams (connpool 1.2) through
// libpq, psqlODBC and SQLite ODBC: see common::backends(). Run under tests/with-postgres.sh.
mod common;

use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{backends, Backend, Db};
use connpool::sys;
use connpool::{Error, FromValue, Lease, Param, QueryResult, Row, ToParam, Type};

// Compile-time: results and rows can be shared between threads.
const _: () = {
    fn send_sync<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn check() {
        send_sync::<QueryResult>();
        send_sync::<Row<'static>>();
    }
};

fn exec(db: &Db, lease: &Lease<'_>, sql: &str) -> QueryResult {
    lease
        .query_params(&db.sql(sql), &[])
        .unwrap_or_else(|e| panic!("{:?}: {}: {}", db.backend, sql, e))
}

fn run(db: &Db, lease: &Lease<'_>, sql: &str, params: &[&dyn ToParam]) -> QueryResult {
    lease
        .query_params(&db.sql(sql), params)
        .unwrap_or_else(|e| panic!("{:?}: {}: {}", db.backend, sql, e))
}

/// A one-column work table `w (v decl)`, replacing the last one.
fn work_table(db: &Db, lease: &Lease<'_>, columns: &str) {
    exec(db, lease, "DROP TABLE IF EXISTS w");
    exec(db, lease, &format!("CREATE TEMP TABLE w ({})", columns));
}

/// `v` into a column declared `decl`, and back: the value read as a T and the column's type.
fn through_table<T>(db: &Db, lease: &Lease<'_>, decl: &str, v: &T) -> (T, Type)
where
    T: ToParam + for<'a> FromValue<'a>,
{
    work_table(db, lease, &format!("v {}", decl));
    let r = run(db, lease, "INSERT INTO w VALUES (?)", &[v]);
    assert_eq!(r.affected, Some(1), "{:?}", db.backend);
    let r = exec(db, lease, "SELECT v FROM w");
    assert_eq!(r.row_count(), 1);
    let got = r
        .try_get(0, 0)
        .unwrap_or_else(|e| panic!("{:?}: {}: {}", db.backend, decl, e));
    (got, r.column_type(0).unwrap())
}

/// `v` as the parameter of `SELECT ?::cast`, and back (PostgreSQL only).
fn through_cast<T>(db: &Db, lease: &Lease<'_>, cast: &str, v: &T) -> (T, Type)
where
    T: ToParam + for<'a> FromValue<'a>,
{
    let r = run(db, lease, &format!("SELECT ?::{} AS v", cast), &[v]);
    let got = r
        .try_get(0, "v")
        .unwrap_or_else(|e| panic!("{:?}: {}: {}", db.backend, cast, e));
    (got, r.column_type(0).unwrap())
}

/// One value's round trips: through `SELECT ?::pg` (PostgreSQL), and through a table column
/// declared `pg` or `lite` (None: not on SQLite). The type read back is `ty`, or `lite_ty` on
/// SQLite. `same` compares (floats: NaN is NaN).
#[allow(clippy::too_many_arguments)]
fn round_trip<T>(
    db: &Db,
    lease: &Lease<'_>,
    pg: &str,
    lite: Option<&str>,
    ty: Type,
    lite_ty: Type,
    v: T,
    same: fn(&T, &T) -> bool,
) where
    T: ToParam + for<'a> FromValue<'a> + Debug,
{
    let mut tries = Vec::new();
    if db.is_pg() {
        tries.push(("cast", through_cast(db, lease, pg, &v)));
        tries.push(("table", through_table(db, lease, pg, &v)));
    } else if let Some(lite) = lite {
        tries.push(("table", through_table(db, lease, lite, &v)));
    }
    let want_ty = if db.is_pg() { ty } else { lite_ty };
    for (how, (got, got_ty)) in tries {
        assert!(
            same(&got, &v),
            "{:?} {} {}: sent {:?}, read back {:?}",
            db.backend,
            how,
            pg,
            v,
            got
        );
        assert_eq!(got_ty, want_ty, "{:?} {} {}: {:?}", db.backend, how, pg, v);
    }
}

fn eq<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}
fn same_f64(a: &f64, b: &f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}
fn same_f32(a: &f32, b: &f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_type_round_trips() {
    use Type::*;
    for backend in backends() {
        let db = Db::new(backend, "types", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        let lease = &lease;
        let db = &db;
        let pg = db.is_pg();
        round_trip(db, lease, "bool", Some("BOOLEAN"), Bool, Bool, true, eq);
        round_trip(db, lease, "bool", Some("BOOLEAN"), Bool, Bool, false, eq);
        for v in [i16::MIN, -1, 0, i16::MAX] {
            round_trip(db, lease, "int2", Some("SMALLINT"), Int16, Int16, v, eq);
        }
        for v in [i32::MIN, 7, i32::MAX] {
            round_trip(db, lease, "int4", Some("INT"), Int32, Int64, v, eq);
        }
        for v in [i64::MIN, -9007199254740993, 0, i64::MAX] {
            round_trip(db, lease, "int8", Some("INTEGER"), Int64, Int64, v, eq);
        }
        // SQLite has no float4: an f32 goes to a REAL (double) column and reads back the same.
        for v in [1.5f32, 0.1, -3.4e38, f32::MIN_POSITIVE] {
            round_trip(
                db,
                lease,
                "float4",
                Some("REAL"),
                Float32,
                Float64,
                v,
                same_f32,
            );
        }
        for v in [-2.25f64, 0.5, 1e10, -1e-5] {
            round_trip(
                db,
                lease,
                "float8",
                Some("REAL"),
                Float64,
                Float64,
                v,
                same_f64,
            );
        }
        if pg {
            // Exact in PostgreSQL's shortest text; SQLite's driver prints 15 digits.
            for v in [0.1f64, 1.0 / 3.0, 1e300, f64::MAX, f64::MIN_POSITIVE, -0.0] {
                round_trip(db, lease, "float8", None, Float64, Float64, v, same_f64);
            }
            for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
                round_trip(db, lease, "float8", None, Float64, Float64, v, same_f64);
            }
            for v in [f32::INFINITY, f32::NAN, 1.0 / 3.0, f32::MAX] {
                round_trip(db, lease, "float4", None, Float32, Float32, v, same_f32);
            }
        }
        for v in ["héllo, 'w\"orld' ? $1 \\x00", "", "x"] {
            round_trip(
                db,
                lease,
                "text",
                Some("TEXT"),
                Text,
                Text,
                v.to_string(),
                eq,
            );
        }
        round_trip(
            db,
            lease,
            "text",
            Some("TEXT"),
            Text,
            Text,
            "ü".repeat(5000),
            eq,
        );
        for v in [
            vec![0u8, b'a', 0, 255, 1, b'\\', b'x', b'0', b'0', b'\''],
            vec![],
        ] {
            round_trip(db, lease, "bytea", Some("BLOB"), Bytea, Bytea, v, eq);
        }
        // NULL of each type, declared as that type.
        round_trip(
            db,
            lease,
            "int8",
            Some("INTEGER"),
            Int64,
            Int64,
            None::<i64>,
            eq,
        );
        round_trip(
            db,
            lease,
            "int2",
            Some("SMALLINT"),
            Int16,
            Int16,
            Some(5i16),
            eq,
        );
        round_trip(
            db,
            lease,
            "bool",
            Some("BOOLEAN"),
            Bool,
            Bool,
            None::<bool>,
            eq,
        );
        round_trip(
            db,
            lease,
            "float8",
            Some("REAL"),
            Float64,
            Float64,
            None::<f64>,
            eq,
        );
        round_trip(
            db,
            lease,
            "text",
            Some("TEXT"),
            Text,
            Text,
            None::<String>,
            eq,
        );
        round_trip(
            db,
            lease,
            "bytea",
            Some("BLOB"),
            Bytea,
            Bytea,
            None::<Vec<u8>>,
            eq,
        );

        // Borrowed forms, in and out: &str and &[u8] read in place.
        work_table(
            db,
            lease,
            db.decl("s text, b bytea, i int4", "s TEXT, b BLOB, i INTEGER"),
        );
        let bytes: &[u8] = b"\x00\xfe\x00";
        let text = String::from("owned");
        let r = run(
            db,
            lease,
            "INSERT INTO w VALUES (?, ?, ?)",
            &[&"grüße", &bytes, &Some(-3i32)],
        );
        assert_eq!(r.affected, Some(1));
        let r = exec(db, lease, "SELECT s, b, i, s AS again FROM w");
        let row = r.row(0).unwrap();
        let s: &str = row.get("s");
        let b: &[u8] = row.get(1);
        assert_eq!((s, b), ("grüße", bytes));
        assert_eq!(row.get::<_, i32>("i"), -3);
        assert_eq!(row.get::<_, f64>(2), -3.0); // an integer reads as a float
        assert_eq!(row.get::<_, Vec<u8>>(0), "grüße".as_bytes());
        assert_eq!(
            row.get::<_, String>(&text.replace("owned", "again")),
            "grüße"
        );
        assert!(r.memory() > 0);
        assert!(r.backend_type(0).is_some() && r.backend_type(4).is_none());
        if backend == Backend::Libpq {
            assert_eq!(r.backend_type(2), Some(23)); // int4's OID
        }

        // A string parameter is text whose type the server infers: a date column takes it.
        if pg {
            work_table(db, lease, "d date, n numeric, u uuid");
            let d = Param::text("2024-01-02", Type::Date);
            run(
                db,
                lease,
                "INSERT INTO w VALUES (?, ?, ?)",
                &[
                    &d,
                    &"12345678901234567890.5",
                    &"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                ],
            );
            let r = exec(db, lease, "SELECT d, n, u FROM w");
            assert_eq!(r.column_type(0), Some(Date));
            assert_eq!(r.column_type(1), Some(Numeric));
            assert_eq!(r.column_type(2), Some(Uuid));
            let row = r.row(0).unwrap();
            assert_eq!(row.get::<_, &str>(0), "2024-01-02");
            assert_eq!(row.get::<_, &str>(1), "12345678901234567890.5");
            assert_eq!(row.get::<_, f64>(1), 12345678901234567890.5);
            assert!(row.try_get::<_, i64>(1).is_err()); // a numeric is not an integer
        }
    }
}

#[test]
fn libpq_unknown_types_read_as_text_and_integers_if_they_are() {
    let db = Db::new(Backend::Libpq, "unknown", &[]);
    let lease = db.pool.checkout(None, None).unwrap();
    let r = exec(&db, &lease, "SELECT '42'::xid, '10.0.0.1'::inet, 42::oid");
    assert_eq!(r.column_type(0), Some(Type::Unknown));
    assert_eq!(r.backend_type(0), Some(28)); // xid's OID
    assert_eq!(r.column_type(2), Some(Type::Int64)); // an oid is an integer
    assert_eq!(r.try_get::<_, i64>(0, 2).unwrap(), 42);
    let row = r.row(0).unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, &str>(1), "10.0.0.1");
    let err = row.try_get::<_, i64>(1).unwrap_err();
    assert!(matches!(err, Error::Type { .. }), "{:?}", err);
    assert!(err.message().contains("i64"), "{}", err);
    assert!(row.try_get::<_, bool>(1).is_err());
}

#[test]
fn null_empty_string_and_empty_bytea_are_told_apart() {
    for backend in backends() {
        let db = Db::new(backend, "empty", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        work_table(
            &db,
            &lease,
            db.decl(
                "a text, b text, e bytea, n bytea",
                "a TEXT, b TEXT, e BLOB, n BLOB",
            ),
        );
        let empty: &[u8] = &[];
        run(
            &db,
            &lease,
            "INSERT INTO w VALUES (?, ?, ?, ?)",
            &[&None::<&str>, &"", &empty, &None::<&[u8]>],
        );
        let r = exec(&db, &lease, "SELECT a, b, e, n FROM w");
        let row = r.row(0).unwrap();
        assert_eq!(row.get::<_, Option<&str>>(0), None, "{:?}", backend);
        assert_eq!(row.get::<_, Option<&str>>(1), Some(""), "{:?}", backend);
        assert_eq!(row.get::<_, &str>(1), "");
        assert_eq!(
            row.get::<_, Option<Vec<u8>>>(2),
            Some(vec![]),
            "{:?}",
            backend
        );
        assert_eq!(row.get::<_, &[u8]>(2), b"");
        assert_eq!(row.get::<_, Option<&[u8]>>(3), None, "{:?}", backend);
        let null_err = row.try_get::<_, &str>(0).unwrap_err();
        assert!(matches!(null_err, Error::Type { .. }), "{:?}", null_err);
        let null_err = row.try_get::<_, Vec<u8>>(3).unwrap_err();
        assert!(matches!(null_err, Error::Type { .. }), "{:?}", null_err);
        assert_eq!(
            (0..4).map(|c| r.is_null(0, c)).collect::<Vec<_>>(),
            [Some(true), Some(false), Some(false), Some(true)]
        );
        assert_eq!(r.is_null(1, 0), None);
        assert_eq!(r.bytes(0, 0), None);
        assert_eq!(r.bytes(0, 1), Some(&b""[..]));
        assert_eq!(r.bytes(0, 2), Some(&b""[..]));
        // The 1.1 text form: a bytea as hex.
        assert_eq!(
            (r.get(0, 0), r.get(0, 1), r.get(0, 2), r.get(0, 3)),
            (None, Some(""), Some("\\x"), None)
        );
        assert_eq!(
            r.rows,
            vec![vec![
                None,
                Some(String::new()),
                Some("\\x".to_string()),
                None
            ]]
        );
    }
}

#[test]
fn bytea_holds_every_byte_value() {
    let all: Vec<u8> = (0..=255u8).collect();
    let spread: Vec<u8> = (0..512u32).map(|i| (i * 7) as u8).collect();
    for backend in backends() {
        let db = Db::new(backend, "bytes", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        work_table(
            &db,
            &lease,
            db.decl("id int4, v bytea", "id INTEGER, v BLOB"),
        );
        for (id, v) in [(1i32, &all), (2, &spread)] {
            run(&db, &lease, "INSERT INTO w VALUES (?, ?)", &[&id, v]);
        }
        let r = exec(&db, &lease, "SELECT id, v FROM w ORDER BY id");
        assert_eq!(r.column_type(1), Some(Type::Bytea));
        let got: Vec<(i32, Vec<u8>)> = r.rows().map(|row| (row.get(0), row.get("v"))).collect();
        assert_eq!(
            got,
            vec![(1, all.clone()), (2, spread.clone())],
            "{:?}",
            backend
        );
        // The hex text form of 1.1 still comes from get().
        let hex: String = all.iter().map(|b| format!("{:02x}", b)).collect();
        assert_eq!(r.get(0, 1), Some(format!("\\x{}", hex).as_str()));
        if db.is_pg() {
            let r = run(
                &db,
                &lease,
                "SELECT length(?::bytea), ?::bytea = decode(?, 'hex')",
                &[&all, &all, &hex],
            );
            assert_eq!(r.try_get::<_, i32>(0, 0).unwrap(), 256);
            assert!(r.try_get::<_, bool>(0, 1).unwrap());
        }
        // Several threads decode the same values in place at once.
        let r = exec(&db, &lease, "SELECT v FROM w ORDER BY id");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let first: &[u8] = r.try_get(0, 0).unwrap();
                    assert_eq!(first, &all[..]);
                    assert_eq!(r.bytes(1, 0), Some(&spread[..]));
                });
            }
        });
        // Text cannot hold a NUL: refused before anything is sent.
        let err = lease
            .query_params(&db.sql("SELECT ?"), &[&"a\0b"])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);
        assert!(err.message().contains("NUL"), "{}", err);
    }
}

#[test]
fn wrong_types_nulls_and_bad_indexes_are_errors() {
    for backend in backends() {
        let db = Db::new(backend, "getters", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        work_table(
            &db,
            &lease,
            db.decl(
                "i int8, s text, b bool, n int4, by bytea",
                "i INTEGER, s TEXT, b BOOLEAN, n INTEGER, by BLOB",
            ),
        );
        let blob: &[u8] = b"\xff\x00";
        run(
            &db,
            &lease,
            "INSERT INTO w VALUES (?, ?, ?, ?, ?)",
            &[&3_000_000_000i64, &"abc", &true, &None::<i32>, &blob],
        );
        let r = exec(&db, &lease, "SELECT i, s, b, n, by FROM w");
        let row = r.row(0).unwrap();
        let type_err = |e: Error, parts: &[&str]| {
            assert!(matches!(e, Error::Type { .. }), "{:?}: {:?}", backend, e);
            assert_eq!(e.code(), sys::POOL_ETYPE);
            assert_eq!(e.name(), "POOL_ETYPE");
            for p in parts {
                assert!(
                    e.message().contains(p),
                    "{:?}: {:?} lacks {:?}",
                    backend,
                    e,
                    p
                );
            }
        };
        // A text value as an integer: the message says where, what, and as what.
        type_err(
            row.try_get::<_, i64>(1).unwrap_err(),
            &["row 0", "column 1", "\"s\"", "text", "i64"],
        );
        type_err(row.try_get::<_, f64>("s").unwrap_err(), &["text", "f64"]);
        // Option does not widen what the type accepts.
        type_err(
            row.try_get::<_, Option<i64>>(1).unwrap_err(),
            &["Option<i64>"],
        );
        // NULL into a non-Option.
        type_err(
            row.try_get::<_, i32>("n").unwrap_err(),
            &["row 0", "column 3", "NULL", "i32", "Option<i32>"],
        );
        type_err(
            row.try_get::<_, String>(3).unwrap_err(),
            &["NULL", "String"],
        );
        assert_eq!(row.get::<_, Option<i32>>(3), None);
        // Out of the Rust type's range; in range it reads.
        type_err(
            row.try_get::<_, i32>(0).unwrap_err(),
            &["3000000000", "out of the range of i32"],
        );
        type_err(row.try_get::<_, i16>(0).unwrap_err(), &["i16"]);
        assert_eq!(row.get::<_, i64>(0), 3_000_000_000);
        assert_eq!(row.get::<_, f64>(0), 3e9);
        // bool is only bool, and bool is not a number.
        type_err(row.try_get::<_, bool>(0).unwrap_err(), &["bool"]);
        type_err(row.try_get::<_, i64>(2).unwrap_err(), &["bool", "i64"]);
        assert!(row.get::<_, bool>(2));
        // bytea is bytes, not text.
        type_err(
            row.try_get::<_, &str>(4).unwrap_err(),
            &["bytea", "&str", "&[u8]"],
        );
        type_err(row.try_get::<_, String>(4).unwrap_err(), &["bytea"]);
        assert_eq!(row.get::<_, &[u8]>(4), blob);
        // Every type reads as bytes: the text form.
        assert_eq!(row.get::<_, &[u8]>(0), b"3000000000");

        // Indexes out of range: POOL_ERANGE.
        let range_err = |e: Error, part: &str| {
            assert!(
                matches!(e, Error::Other { code, .. } if code == sys::POOL_ERANGE),
                "{:?}",
                e
            );
            assert_eq!(e.name(), "POOL_ERANGE");
            assert!(e.message().contains(part), "{:?} lacks {:?}", e, part);
        };
        range_err(row.try_get::<_, i64>(5).unwrap_err(), "column 5");
        range_err(row.try_get::<_, i64>("nope").unwrap_err(), "nope");
        range_err(r.try_get::<_, i64>(1, 0).unwrap_err(), "row 1");
        assert!(r.row(1).is_none());
        assert_eq!(
            (r.column_type(5), r.get(0, 5), r.get(1, 0)),
            (None, None, None)
        );

        // get() panics with the error.
        let panic = catch_unwind(AssertUnwindSafe(|| row.get::<_, i64>(1))).unwrap_err();
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("column 1") && text.contains("i64"),
            "{}",
            text
        );
        // The lease is fine.
        assert_eq!(
            exec(&db, &lease, "SELECT 7")
                .try_get::<_, i64>(0, 0)
                .unwrap(),
            7
        );
    }
}

#[test]
fn rows_iterate_in_order_with_names() {
    for backend in backends() {
        let db = Db::new(backend, "rows", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        work_table(
            &db,
            &lease,
            db.decl("id int8, name text", "id INTEGER, name TEXT"),
        );
        for (id, name) in [(1i64, Some("one")), (2, None), (3, Some("three"))] {
            run(&db, &lease, "INSERT INTO w VALUES (?, ?)", &[&id, &name]);
        }
        let r = exec(&db, &lease, "SELECT id, name FROM w ORDER BY id");
        assert_eq!(
            (r.row_count(), r.column_count(), r.is_empty()),
            (3, 2, false)
        );
        let mut seen = Vec::new();
        for row in &r {
            let id: i64 = row.try_get("id").unwrap();
            let name: Option<String> = row.try_get(1).unwrap();
            assert_eq!(row.len(), 2);
            assert_eq!(row.columns(), ["id", "name"]);
            seen.push((row.index(), id, name));
        }
        assert_eq!(
            seen,
            vec![
                (0, 1, Some("one".to_string())),
                (1, 2, None),
                (2, 3, Some("three".to_string()))
            ]
        );
        assert_eq!(r.rows().len(), 3);
        let last = r.rows().next_back().unwrap();
        assert_eq!(last.get::<_, &str>("name"), "three");
        // Values borrowed from a row outlive the view.
        let names: Vec<Option<&str>> = r.rows().map(|row| row.get(1)).collect();
        assert_eq!(names, [Some("one"), None, Some("three")]);
        // A clone shares the C result.
        let copy = r.clone();
        drop(r);
        assert_eq!(copy.try_get::<_, i64>(2, 0).unwrap(), 3);
        assert_eq!(copy.get(2, 1), Some("three"));
    }
}

#[test]
fn prepared_statements_run_again_with_new_parameters() {
    for backend in backends() {
        let db = Db::new(backend, "prepared", &[("pool_size", "1")]);
        let lease = db.pool.checkout(None, None).unwrap();
        let sql = db.sql(if db.is_pg() {
            "SELECT ?::int8 * 2 AS n, ?::text AS t, ?::bytea AS b"
        } else {
            "SELECT ? * 2 AS n, ? AS t, ? AS b"
        });
        for (i, t) in [(21i64, "a"), (50, ""), (-7, "third")] {
            let bytes = vec![i as u8, 0];
            let r = lease
                .query_prepared(&sql, &[&i, &t, &bytes])
                .unwrap_or_else(|e| panic!("{:?}: {}", backend, e));
            let row = r.row(0).unwrap();
            assert_eq!(row.get::<_, i64>("n"), i * 2, "{:?}", backend);
            assert_eq!(row.get::<_, &str>("t"), t);
            assert_eq!(row.get::<_, &[u8]>("b"), &bytes[..]);
        }
        if backend == Backend::Libpq {
            // Prepared once on this connection, run three times.
            let r = exec(
                &db,
                &lease,
                "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'connpool_%'",
            );
            assert_eq!(r.try_get::<_, i64>(0, 0).unwrap(), 1);
        }
        // A prepared statement that fails is an ordinary error.
        if db.is_pg() {
            let err = lease
                .query_prepared(&db.sql("SELECT 1 / ?::int"), &[&0i32])
                .unwrap_err();
            assert_eq!(err.sqlstate(), Some("22012"), "{:?}", err);
        }
        let r = lease
            .query_prepared(&sql, &[&1i64, &"x", &vec![1u8]])
            .unwrap();
        assert_eq!(r.try_get::<_, i64>(0, 0).unwrap(), 2);
    }
}

fn series_sql(db: &Db) -> String {
    db.sql(if db.is_pg() {
        "SELECT g, 'row ' || g AS label FROM generate_series(1, ?::int8) g"
    } else {
        // Not `WHERE g < ?` inside the recursive part: the SQLite ODBC driver (Debian 12's
        // libsqliteodbc) crashes in SQLExecDirect on a parameter there.
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s) \
         SELECT g, 'row ' || g AS label FROM s LIMIT ?"
    })
}

#[test]
fn a_stream_yields_every_row_in_order_in_pieces() {
    for backend in backends() {
        let db = Db::new(backend, "stream", &[("pool_size", "1")]);
        let mut lease = db.pool.checkout(None, None).unwrap();
        let sql = series_sql(&db);
        let mut seen = 0i64;
        let mut pieces = 0;
        let stream = lease.stream(&sql, &[&10_000i64], 1000).unwrap();
        assert_eq!(stream.max_rows(), 1000);
        for piece in stream {
            let piece = piece.unwrap_or_else(|e| panic!("{:?}: {}", backend, e));
            pieces += 1;
            assert_eq!(piece.columns, ["g", "label"]);
            assert!(
                (1..=1000).contains(&piece.row_count()),
                "{:?}: a piece of {} rows",
                backend,
                piece.row_count()
            );
            for row in piece.rows() {
                seen += 1;
                assert_eq!(row.get::<_, i64>(0), seen, "{:?}", backend);
                assert_eq!(row.get::<_, &str>("label"), format!("row {}", seen));
            }
        }
        assert_eq!((seen, pieces), (10_000, 10), "{:?}", backend);
        // The stream is closed (dropped): the lease works again.
        assert_eq!(
            exec(&db, &lease, "SELECT 7")
                .try_get::<_, i64>(0, 0)
                .unwrap(),
            7
        );

        // Read to the end, then closed explicitly; pieces outlive their stream.
        let mut stream = lease.stream(&sql, &[&2500i64], 1000).unwrap();
        let kept: Vec<QueryResult> = stream.by_ref().map(Result::unwrap).collect();
        assert!(stream.next().is_none(), "the end stays the end");
        stream.close().unwrap();
        let sizes: Vec<usize> = kept.iter().map(QueryResult::row_count).collect();
        assert_eq!(sizes, [1000, 1000, 500], "{:?}", backend);
        assert_eq!(kept[2].try_get::<_, i64>(499, "g").unwrap(), 2500);

        // An empty result: one piece with its columns and no rows, then the end.
        let empty = db.sql(if db.is_pg() {
            "SELECT 1 AS one WHERE false"
        } else {
            "SELECT 1 AS one WHERE 0"
        });
        let pieces: Vec<QueryResult> = lease
            .stream(&empty, &[], 10)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(pieces.len(), 1, "{:?}", backend);
        assert_eq!(
            (pieces[0].row_count(), &pieces[0].columns[..]),
            (0, &["one".to_string()][..])
        );

        // max_rows 0 is refused before anything is sent.
        let err = lease.stream(&sql, &[&1i64], 0).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{:?}", err);
        assert_eq!(
            exec(&db, &lease, "SELECT 8")
                .try_get::<_, i64>(0, 0)
                .unwrap(),
            8
        );
        drop(lease);
        let st = db.pool.stats();
        assert_eq!(
            (st.idle, st.closed_total),
            (1, 0),
            "{:?}: {:?}",
            backend,
            st
        );
    }
}

#[test]
fn a_stream_closed_early_leaves_the_lease_usable() {
    for backend in backends() {
        let db = Db::new(backend, "early", &[("pool_size", "1")]);
        let mut lease = db.pool.checkout(None, None).unwrap();
        let sql = series_sql(&db);
        for explicit in [true, false] {
            let mut stream = lease.stream(&sql, &[&200_000i64], 10).unwrap();
            let first = stream.next().unwrap().unwrap();
            assert_eq!(first.row_count(), 10);
            assert_eq!(first.try_get::<_, i64>(9, 0).unwrap(), 10);
            if explicit {
                stream.close().unwrap();
            } else {
                drop(stream);
            }
            let r = exec(&db, &lease, "SELECT 7");
            assert_eq!(r.try_get::<_, i64>(0, 0).unwrap(), 7, "{:?}", backend);
            // The piece read before the close is still whole.
            assert_eq!(first.try_get::<_, &str>(0, "label").unwrap(), "row 1");
        }
        lease.checkin().unwrap();
        let st = db.pool.stats();
        // The lease came back whole: its connection is kept.
        assert_eq!(
            (st.idle, st.closed_total),
            (1, 0),
            "{:?}: {:?}",
            backend,
            st
        );
    }
}

#[test]
fn a_failing_stream_reports_the_error_and_the_lease_recovers() {
    for backend in backends() {
        if backend == Backend::Sqlite {
            continue; // SQLite has no division error
        }
        let db = Db::new(backend, "streamfail", &[("pool_size", "1")]);
        let mut lease = db.pool.checkout(None, None).unwrap();
        let sql = "SELECT 1 / (g - 50) FROM generate_series(1, 100) g";
        match lease.stream(sql, &[], 7) {
            // libpq sends rows as they are made: the error comes from a piece.
            Ok(mut stream) => {
                let mut rows = 0;
                let mut error = None;
                for piece in stream.by_ref() {
                    match piece {
                        Ok(p) => rows += p.row_count(),
                        Err(e) => error = Some(e),
                    }
                }
                let err = error.expect("the statement fails");
                assert_eq!(err.sqlstate(), Some("22012"), "{:?}", err);
                assert!(matches!(err, Error::Query { .. }));
                assert!(rows < 50);
                assert!(stream.next().is_none(), "nothing after the error");
                stream.close().unwrap();
            }
            // psqlODBC reads the whole result when it executes.
            Err(err) => {
                assert_ne!(backend, Backend::Libpq, "{:?}", err);
                assert_eq!(err.sqlstate(), Some("22012"), "{:?}", err);
            }
        }
        assert_eq!(
            exec(&db, &lease, "SELECT 7")
                .try_get::<_, i64>(0, 0)
                .unwrap(),
            7
        );
    }
}
