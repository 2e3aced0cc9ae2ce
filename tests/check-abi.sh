#!/bin/sh
# check-abi.sh LIB EXPORTS HEADER: the library exports exactly the functions of the export
# list, all named pool_*, under a version node; it never calls exit or abort; and the header
# declares exactly the exported functions.
set -eu
lib=$1 exports=$2 header=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -Ev '^[[:space:]]*(#|$|\[)' "$exports" | sort > "$tmp/listed"
nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort > "$tmp/exported"
sed -n 's/^CONNPOOL_API [^(]*[ *]\(pool_[a-z0-9_]*\)(.*/\1/p' "$header" | sort > "$tmp/declared"
status=0
if ! diff -u "$tmp/listed" "$tmp/exported"; then
    echo "check-abi: exported symbols differ from $exports" >&2; status=1
fi
if ! diff -u "$tmp/listed" "$tmp/declared"; then
    echo "check-abi: CONNPOOL_API declarations in $header differ from $exports" >&2; status=1
fi
if grep -v '^pool_' "$tmp/exported"; then
    echo "check-abi: exported symbols without the pool_ prefix" >&2; status=1
fi
if nm -D --defined-only "$lib" | awk '$2 != "A"' | grep -v '@@CONNPOOL_'; then
    echo "check-abi: exported symbols outside a CONNPOOL_ version node" >&2; status=1
fi
if nm -D --undefined-only "$lib" | grep -Ew '(exit|_exit|abort)(@.*)?$'; then
    echo "check-abi: the library references exit/abort" >&2; status=1
fi
[ $status = 0 ] && echo "check-abi: $(wc -l < "$tmp/exported") symbols, all listed, declared and versioned"
exit $status
