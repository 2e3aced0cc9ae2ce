#!/bin/sh
# bindings/node/run-tests.sh BUILD_DIR: runs the Node binding's tests (node --test) against
# BUILD_DIR/libconnpool.so.1. Run it under tests/with-postgres.sh, from anywhere:
#     tests/with-postgres.sh bindings/node/run-tests.sh build
# Installs the dependencies (koffi, from the npm registry, as package-lock.json pins it) with
# `npm ci` when node_modules lacks them. Exits 0 on success; without node (18 or later) or
# npm it prints "SKIPPED: node binding: ..." and exits 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
lib=$(cd "$1" && pwd)/libconnpool.so.1
if [ ! -e "$lib" ]; then
    echo "node binding: $lib not found (run make first)" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "SKIPPED: node binding: node not found (apt-get install nodejs npm)"
    exit 0
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 18 ]; then
    echo "SKIPPED: node binding: node $(node --version 2>/dev/null) is older than 18 (node --test)"
    exit 0
fi
# A sanitizer build (make check SAN=...): koffi runs every C call on a stack of its own, which
# the sanitizer runtime misreads (ASan reports a stack-buffer-overflow at each C++ throw inside
# the library), so such a build is not tested through Node.
if ldd "$lib" 2>/dev/null | grep -Eq 'lib(asan|tsan)\.so'; then
    echo "SKIPPED: node binding: $lib is a sanitizer build (koffi's own call stacks confuse the sanitizer)"
    exit 0
fi
if [ -z "${PGPORT:-}" ]; then
    echo "node binding: run me under tests/with-postgres.sh (PGPORT is not set)" >&2
    exit 1
fi
cd "$here" || exit 1
if ! node -e 'require("koffi")' >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "SKIPPED: node binding: npm not found to install koffi (apt-get install npm)"
        exit 0
    fi
    npm ci --no-audit --no-fund || { echo "node binding: npm ci failed" >&2; exit 1; }
fi

CONNPOOL_LIBRARY=$lib exec node --test
