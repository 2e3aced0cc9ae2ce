#!/bin/sh
# bindings/python/run-tests.sh BUILD_DIR: runs the Python binding's tests with the system
# Python (/usr/bin/python3 and Debian's python3-pytest) against BUILD_DIR/libconnpool.so.1.
# Run it under tests/with-postgres.sh, from anywhere:
#     tests/with-postgres.sh bindings/python/run-tests.sh build
# Exits 0 on success; without /usr/bin/python3 or pytest it prints "SKIPPED: ..." and exits 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
lib=$(cd "$1" && pwd)/libconnpool.so.1
if [ ! -e "$lib" ]; then
    echo "python binding: $lib not found (run make first)" >&2
    exit 1
fi
if [ ! -x "$python" ]; then
    echo "SKIPPED: Python binding tests: $python not found (apt-get install python3 python3-pytest)"
    exit 0
fi
if ! "$python" -c 'import pytest' 2>/dev/null; then
    echo "SKIPPED: Python binding tests: pytest missing for $python (apt-get install python3-pytest)"
    exit 0
fi
if [ -z "${PGPORT:-}" ] || [ -z "${CONNPOOL_TEST_SQLITE_DIR:-}" ]; then
    echo "python binding: run me under tests/with-postgres.sh (PGPORT, CONNPOOL_TEST_SQLITE_DIR)" >&2
    exit 1
fi

# A sanitizer build (make check SAN=...): the interpreter is not built with the sanitizer, so
# its runtime is preloaded, with libstdc++ (else ASan cannot intercept C++ throws in a library
# loaded later by dlopen). CPython's own allocations at exit are not leaks worth reporting.
runtime=$(ldd "$lib" 2>/dev/null | awk '/lib(asan|tsan)\.so/ { print $3; exit }')
if [ -n "$runtime" ]; then
    cxx=$(ldd "$lib" | awk '/libstdc\+\+\.so/ { print $3; exit }')
    LD_PRELOAD=$runtime${cxx:+:$cxx}${LD_PRELOAD:+:$LD_PRELOAD}
    export LD_PRELOAD
    ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    supp=$here/../../tests/sanitizers/tsan.supp
    TSAN_OPTIONS="die_after_fork=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    [ -f "$supp" ] && TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$supp"
    export ASAN_OPTIONS TSAN_OPTIONS
fi

CONNPOOL_LIBRARY=$lib PYTHONDONTWRITEBYTECODE=1 \
    exec "$python" -m pytest -q -p no:cacheprovider "$here/tests"
