#!/bin/sh
# Installs, by name, the Debian packages that the build and the tests need and that are
# missing (prometheus only for promtool, which lints the metrics text; python3-pytest for the
# Python binding's tests; pgbouncer for the tests through it; valgrind for make check-valgrind;
# clang and its runtime libraries, libFuzzer among them, for make fuzz). Does nothing when
# all are there (so `make check` can always call it).
set -eu
packages="g++ make gawk pkg-config openssl libpq-dev libcmocka-dev postgresql postgresql-common unixodbc unixodbc-dev odbc-postgresql libsqliteodbc prometheus python3 python3-pytest pgbouncer iproute2 valgrind clang libclang-rt-14-dev"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Toolchains for the bindings, by command: a machine may have them from elsewhere (NodeSource's
# nodejs, rustup's cargo), and Debian's packages would conflict with those.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
command -v cargo >/dev/null 2>&1 || missing="$missing cargo"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages:$missing (run 'make deps' as root)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
