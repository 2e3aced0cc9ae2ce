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
# Under ASan (make check SAN=address) the example runs without LeakSanitizer: its dlclose
# unloads libconnpool with libpq, OpenSSL, unixODBC and the SQLite driver, after which LSan's
# tracer once crashed at exit (SIGSEGV, "Tracer caught signal 11", in CI), and the drivers'
# never-freed globals (about 1 KiB) show up as leaks in "<unknown module>", which no
# suppression can name. Leaks across dlclose stay checked by test_dlclose_fork, and every other
# suite checks them with the libraries loaded.
expect "" detect_leaks=0
expect "odbc:Driver=SQLite3;Database=$CONNPOOL_TEST_SQLITE_DIR/examples.db" detect_leaks=0
# The event-loop example: 200 requests at once on a pool of 5, 3 rounds each, all served.
out=$("$dir/examples/epoll_server" "" 200 5 3)
case $out in
    "epoll loop, 1 thread: 600 requests (200 at once, pool of 5) in "*) echo "ok: epoll_server: $out" ;;
    *) echo "test-examples: epoll_server said: $out"; exit 1 ;;
esac
