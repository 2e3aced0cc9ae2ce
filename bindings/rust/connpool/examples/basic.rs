// The example of bindings/rust/README.md. Run it under tests/with-postgres.sh (it uses the
// PG* variables), with CONNPOOL_LIB_DIR and LD_LIBRARY_PATH pointing at the library:
//     cargo run --offline --example basic
use connpool::{Error, Pool};
use std::time::Duration;

fn main() -> Result<(), Error> {
    // libpq: a URI, a key=value string, or "" for the PG* variables; "odbc:..." for ODBC.
    let pool = Pool::new(
        "application_name=example",
        &[("pool_size", "4"), ("max_overflow", "0")],
    )?;

    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                // None: wait up to pool_timeout; Some(Duration::ZERO): do not wait.
                let lease = pool
                    .checkout(Some(Duration::from_secs(5)), Some("worker"))
                    .expect("checkout");
                let res = lease
                    .query(
                        "SELECT $1::int + 1 AS n, $2::text AS t",
                        &[Some("41"), None],
                    )
                    .expect("query");
                assert_eq!(res.columns, ["n", "t"]);
                assert_eq!(res.rows[0], [Some("42".to_string()), None]);
            }); // the lease is checked in when it goes out of scope
        }
    });

    let lease = pool.checkout(None, None)?;
    match lease.query("SELECT * FROM missing", &[]) {
        Err(Error::Query { sqlstate, .. }) if sqlstate == "42P01" => println!("no such table"),
        other => println!("{:?}", other),
    }
    drop(lease);

    let st = pool.stats();
    println!(
        "{} checkouts, {} connections opened",
        st.checkouts_total, st.opened_total
    );
    Ok(())
}
