// The typed API of bindings/rust/README.md (connpool 1.2): typed parameters and values, a
// prepared statement, a stream. Run it under tests/with-postgres.sh (it uses the PG*
// variables), with CONNPOOL_LIB_DIR and LD_LIBRARY_PATH pointing at the library:
//     cargo run --offline --example typed
use connpool::{Error, Pool, Type};

fn main() -> Result<(), Error> {
    let pool = Pool::new("application_name=typed_example", &[("pool_size", "2")])?;
    let mut lease = pool.checkout(None, None)?;

    lease.query(
        "CREATE TEMP TABLE files (id int8, name text, size int4, data bytea, note text)",
        &[],
    )?;
    let data: &[u8] = b"\x89PNG\r\n\x1a\n\0\0";
    // Parameters are &dyn ToParam: numbers and bool go as typed text, &[u8] and Vec<u8> as
    // bytea (any bytes), strings as text the server types, None as NULL.
    lease.query_params(
        "INSERT INTO files VALUES ($1, $2, $3, $4, $5)",
        &[&1i64, &"logo.png", &10i32, &data, &None::<&str>],
    )?;

    let res = lease.query_params("SELECT id, name, size, data, note FROM files", &[])?;
    assert_eq!(res.column_type(3), Some(Type::Bytea));
    for row in res.rows() {
        let id: i64 = row.try_get(0)?; // try_get: a Result, as in rust-postgres
        let name: &str = row.try_get("name")?; // by name; borrowed from the result
        let size: i64 = row.get(2); // get: panics on error, as in rust-postgres
        let bytes: &[u8] = row.get("data"); // bytea: the raw bytes
        let note: Option<String> = row.get(4); // NULL needs an Option
        println!("{} {} {} {:?} {:?}", id, name, size, &bytes[..4], note);
        // A wrong type is an error that says where and what.
        if let Err(e) = row.try_get::<_, i32>("name") {
            println!("{}", e); // POOL_ETYPE: row 0, column 1 ("name", text): a text value ...
        }
    }

    // Prepared once per connection, then only the parameters travel.
    for n in 1..=3i64 {
        let r = lease.query_prepared("SELECT $1::int8 * 2 AS twice", &[&n])?;
        assert_eq!(r.try_get::<_, i64>(0, "twice")?, n * 2);
    }

    // A big result in pieces of at most 1000 rows; the stream borrows the lease meanwhile.
    let mut sum = 0i64;
    for piece in lease.stream(
        "SELECT g FROM generate_series(1, $1) g",
        &[&100_000i64],
        1000,
    )? {
        for row in piece?.rows() {
            sum += row.get::<_, i64>(0);
        }
    }
    assert_eq!(sum, 100_000 * 100_001 / 2);
    lease.query("SELECT 1", &[])?; // the stream is closed: the lease is usable again
    Ok(())
}
