#!/bin/sh
# test-examples.sh BUILD_DIR: the dlopen-only example runs a parameterised query through the C
# ABI's query API, over libpq and over the SQLite ODBC driver (under tests/with-postgres.sh).
set -eu
dir=$1
lib=$(cd "$dir" && pwd)/libconnpool.so.1
expect() {
    out=$("$dir/examples/dlopen_query" "$lib" "$1")
    for line in "greeting = hello through dlopen" "missing = NULL"; do
        if ! printf '%s\n' "$out" | grep -qx "$line"; then
            echo "test-examples: '$1': missing \"$line\" in:"; printf '%s\n' "$out"; exit 1
        fi
    done
    echo "ok: dlopen_query over ${1:-libpq (PG* variables)}"
}
expect ""
expect "odbc:Driver=SQLite3;Database=$CONNPOOL_TEST_SQLITE_DIR/examples.db"
