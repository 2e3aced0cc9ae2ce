#!/bin/sh
# bindings/rust/run-tests.sh BUILD_DIR: runs the Rust binding's tests (cargo test --offline)
# against BUILD_DIR/libconnpool.so.1. Run it under tests/with-postgres.sh, from anywhere:
#     tests/with-postgres.sh bindings/rust/run-tests.sh build
# Cargo: $CARGO if set, else Debian's /usr/bin/cargo (what CI uses: rustc 1.63), else cargo
# from PATH; rustc and rustdoc are taken from next to that cargo unless RUSTC/RUSTDOC say
# otherwise (cargo alone would run the first rustc in PATH, maybe a newer rustup one).
# Builds go to bindings/rust/target. No crate comes from a registry (--offline).
# Exits 0 on success; without cargo it prints "SKIPPED: rust binding: ..." and exits 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
if [ ! -d "$1" ]; then
    echo "rust binding: $1 is not a directory (run make first)" >&2
    exit 1
fi
libdir=$(cd "$1" && pwd)
if [ ! -e "$libdir/libconnpool.so.1" ]; then
    echo "rust binding: $libdir/libconnpool.so.1 not found (run make first)" >&2
    exit 1
fi

cargo=${CARGO:-}
if [ -z "$cargo" ]; then
    if [ -x /usr/bin/cargo ]; then
        cargo=/usr/bin/cargo
    else
        cargo=$(command -v cargo 2>/dev/null || true)
    fi
fi
if [ -z "$cargo" ] || ! command -v "$cargo" >/dev/null 2>&1; then
    echo "SKIPPED: rust binding: cargo not found (apt-get install cargo); the Rust tests did NOT run"
    exit 0
fi
bindir=$(dirname "$(command -v "$cargo")")
if [ -z "${RUSTC:-}" ] && [ -x "$bindir/rustc" ]; then RUSTC=$bindir/rustc; fi
if [ -z "${RUSTDOC:-}" ] && [ -x "$bindir/rustdoc" ]; then RUSTDOC=$bindir/rustdoc; fi
RUSTC=${RUSTC:-rustc}
if ! "$RUSTC" --version >/dev/null 2>&1; then
    echo "SKIPPED: rust binding: $cargo found but no working rustc (apt-get install cargo); the Rust tests did NOT run"
    exit 0
fi
export RUSTC
[ -n "${RUSTDOC:-}" ] && export RUSTDOC

if [ -z "${PGPORT:-}" ] || [ -z "${CONNPOOL_TEST_SQLITE_DIR:-}" ]; then
    echo "rust binding: run me under tests/with-postgres.sh (PGPORT, CONNPOOL_TEST_SQLITE_DIR)" >&2
    exit 1
fi

CONNPOOL_LIB_DIR=$libdir
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
CARGO_TARGET_DIR=$here/target
export CONNPOOL_LIB_DIR LD_LIBRARY_PATH CARGO_TARGET_DIR

# A sanitizer build (make check SAN=...): stable Rust cannot build the test programs with the
# sanitizer, and preloading its runtime into an uninstrumented program does not work: seen on
# Debian 12, a program linked to libpq (psql too) with libasan or libtsan preloaded hangs at
# exit in a library destructor (libp11-kit's freelocale, on glibc's locale lock). Skip, loudly.
runtime=$(ldd "$libdir/libconnpool.so.1" 2>/dev/null | awk '/lib(asan|tsan|ubsan)\.so/ { print $3; exit }')
if [ -n "$runtime" ]; then
    echo "SKIPPED: rust binding: $libdir is a sanitizer build ($(basename "$runtime")); the Rust tests did NOT run"
    exit 0
fi

echo "rust binding: $("$cargo" --version), $("$RUSTC" --version), libconnpool from $libdir"
cd "$here" && exec "$cargo" test --offline
