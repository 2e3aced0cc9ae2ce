#!/bin/sh
# test-install.sh BUILD_DIR: installs connpool into a temporary DESTDIR, checks the files,
# builds examples/hello.c through the installed connpool.pc and runs it against the server,
# dlopen()s the installed library (tests/dlopen_smoke.c), then uninstalls and checks that
# nothing is left. Runs from the top of the tree inside tests/with-postgres.sh (which sets the
# PG* variables); SAN (address or thread) selects the same build as make's SAN, and
# BUILD_DIR is that build's directory (build or build/san-$SAN).
set -eu

build=${1:?usage: tests/test-install.sh BUILD_DIR}
san=${SAN:-}
cd "$(dirname "$0")/.."

# The sanitizer runtime must be in the programs too, or the instrumented library cannot load.
case $san in
    '') san_flags= ;;
    address) san_flags='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all' ;;
    thread) san_flags=-fsanitize=thread ;;
    *) echo "test-install: SAN must be empty, address or thread" >&2; exit 2 ;;
esac

tmp=$(mktemp -d /tmp/connpool-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
dest=$tmp/dest
bin=$tmp/bin
mkdir "$bin"
prefix=/usr/local
lib=$dest$prefix/lib
inc=$dest$prefix/include

failures=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: runs COMMAND, prints ok or FAIL.
check() {
    what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
die() {
    echo "FAIL: $*"
    exit 1
}
regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
gone() { [ ! -e "$1" ] && [ ! -L "$1" ]; }

version_part() { sed -n "s/^#define CONNPOOL_VERSION_$1  *//p" include/connpool.h; }
version=$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH)
soname=libconnpool.so.$(version_part MAJOR)
real=libconnpool.so.$version

# ---------------------------------------------------------------- install
echo "install: make install DESTDIR=$dest PREFIX=$prefix SAN=$san"
make -s install DESTDIR="$dest" PREFIX="$prefix" SAN="$san" || die "make install"

check "$prefix/include/connpool.h installed" test -f "$inc/connpool.h"
check "$prefix/lib/$real installed" regular "$lib/$real"
check "$prefix/lib/$real is the one in $build" cmp -s "$build/$real" "$lib/$real"
has_soname() { readelf -d "$lib/$real" | grep -qF "Library soname: [$soname]"; }
check "$real has soname $soname" has_soname
check "$soname -> $real" test "$(readlink "$lib/$soname" 2>/dev/null)" = "$real"
check "libconnpool.so -> $soname" test "$(readlink "$lib/libconnpool.so" 2>/dev/null)" = "$soname"
check "$prefix/lib/libconnpool.a installed" test -f "$lib/libconnpool.a"
check "$prefix/lib/pkgconfig/connpool.pc installed" test -f "$lib/pkgconfig/connpool.pc"

# ---------------------------------------------------------------- pkg-config
# The .pc names $prefix; PKG_CONFIG_SYSROOT_DIR maps it into DESTDIR. The sysroot (like
# --define-prefix) would rewrite libpq's paths too (-I$dest/usr/include/postgresql), so libpq,
# which is installed on this system and not in DESTDIR, is asked for separately.
pc() { PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config "$@"; }
pcfile=$lib/pkgconfig/connpool.pc
no_build_paths() { ! grep -qF "$PWD" "$pcfile"; }
requires_libpq() { pc --print-requires-private connpool | grep -q '^libpq'; }
check "pkg-config --validate connpool" pc --validate connpool
check "pkg-config --modversion connpool is $version" test "$(pc --modversion connpool)" = "$version"
check "connpool.pc says prefix=$prefix" grep -qx "prefix=$prefix" "$pcfile"
check "connpool.pc names no path of the build tree" no_build_paths
check "connpool.pc requires libpq privately" requires_libpq
# Relocatable: with paths relative to ${prefix}, pkgconf's --define-prefix finds DESTDIR.
relocated() { test "$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --define-prefix --variable="$1" connpool)" = "$2"; }
relocates() { relocated includedir "$inc" && relocated libdir "$lib"; }
check "connpool.pc relocates (pkg-config --define-prefix finds DESTDIR)" relocates
cflags="$(pc --cflags connpool) $(pkg-config --cflags libpq)"
libs="$(pc --libs connpool) $(pkg-config --libs libpq)"
echo "pkg-config: cflags: $cflags"
echo "pkg-config: libs:   $libs"
# has WORDS WORD: WORD is one of the space-separated WORDS. contains TEXT PART: a substring.
has() { case " $1 " in *" $2 "*) ;; *) return 1 ;; esac; }
contains() { case $1 in *"$2"*) ;; *) return 1 ;; esac; }
check "cflags have -I$inc" has "$cflags" "-I$inc"
check "libs have -L$lib -lconnpool" contains " $libs " " -L$lib -lconnpool "

# ---------------------------------------------------------------- the example, built as a user would
# shellcheck disable=SC2086 # word splitting of the flags is intended
check "examples/hello.c builds with the pkg-config flags" \
    cc -std=c99 -Wall -Wextra -Werror $san_flags $cflags -o "$bin/hello" examples/hello.c $libs
if [ -x "$bin/hello" ]; then
    loads_installed() { LD_LIBRARY_PATH=$lib ldd "$bin/hello" | grep -qF "=> $lib/$soname "; }
    check "hello loads $soname from DESTDIR" loads_installed
    out=$(LD_LIBRARY_PATH=$lib "$bin/hello" 2>&1) && rc=0 || rc=$?
    echo "hello: $out"
    check "hello exits 0" test "$rc" = 0
    check "hello prints \"PostgreSQL\"" contains "$out" PostgreSQL
fi

# ---------------------------------------------------------------- dlopen, as ctypes and koffi do
# shellcheck disable=SC2086
check "tests/dlopen_smoke.c builds (libdl only)" \
    cc -std=c99 -pedantic -Wall -Wextra -Werror $san_flags -I"$inc" -o "$bin/dlopen_smoke" \
    tests/dlopen_smoke.c -ldl
if [ -x "$bin/dlopen_smoke" ]; then
    check "dlopen smoke test of $prefix/lib/$soname" "$bin/dlopen_smoke" "$lib/$soname"
fi
# A second copy beside a linked one (a binding's own copy inside a program that links
# connpool): the copy's calls between its own exported functions must stay in the copy.
# shellcheck disable=SC2086
check "tests/dlopen_smoke.c builds linked with the library as well" \
    cc -std=c99 -pedantic -Wall -Wextra -Werror $san_flags -I"$inc" \
    -o "$bin/dlopen_smoke_linked" tests/dlopen_smoke.c -Wl,--no-as-needed $libs -ldl
if [ -x "$bin/dlopen_smoke_linked" ]; then
    cp "$lib/$real" "$bin/libconnpool-copy.so.1"
    check "a second copy of the library, dlopen()ed beside the linked one, works" \
        env LD_LIBRARY_PATH="$lib" "$bin/dlopen_smoke_linked" "$bin/libconnpool-copy.so.1"
fi

# ---------------------------------------------------------------- uninstall
echo "uninstall: make uninstall DESTDIR=$dest PREFIX=$prefix"
make -s uninstall DESTDIR="$dest" PREFIX="$prefix" SAN="$san" || die "make uninstall"
for f in "$inc/connpool.h" "$lib/$real" "$lib/$soname" "$lib/libconnpool.so" \
    "$lib/libconnpool.a" "$lib/pkgconfig/connpool.pc"; do
    check "${f#"$dest"} removed" gone "$f"
done
left=$(find "$dest" ! -type d)
check "nothing else left in DESTDIR${left:+: $left}" test -z "$left"

if [ "$failures" -ne 0 ]; then
    echo "test-install: $failures check(s) failed"
    exit 1
fi
echo "test-install: all checks passed"
