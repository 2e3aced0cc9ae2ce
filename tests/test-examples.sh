#!/bin/sh
# test-examples.sh BUILD_DIR: the dlopen-only example runs a parameterised query through the C
# ABI's query API, over libpq and over the SQLite ODBC driver (under tests/with-postgres.sh).
set -eu
dir=$1
lib=$(cd "$dir" && pwd)/libconnpool.so.1
expect() {
    out=$(ASAN_OPTIONS="${2:-}${ASAN_OPTIONS:+:$ASAN_OPTIONS}" "$dir/examples/dlopen_query" "$lib" "$1")
    for line in "greeting = hello through dlopen" "missing = NULL"; do
        if ! printf '%s\n' "$out" | grep -qx "$line"; then
            echo "test-examples: '$1': missing \"$line\" in:"; printf '%s\n' "$out"; exit 1
        fi
    done
    echo "ok: dlopen_query over ${1:-libpq (PG* variables)}"
}
expect ""
# Under ASan (make check SAN=address): the example's dlclose unloads unixODBC and the SQLite
# driver with libconnpool, and the global state they never free (about 1 KiB) shows up as
# leaks in "<unknown module>", which no suppression can name. Leaks stay checked on the libpq
# leg above, and the ODBC suites check them with the driver loaded.
expect "odbc:Driver=SQLite3;Database=$CONNPOOL_TEST_SQLITE_DIR/examples.db" detect_leaks=0
