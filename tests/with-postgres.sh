#!/bin/sh
# with-postgres.sh COMMAND...: runs COMMAND against a throwaway PostgreSQL server and always
# stops and deletes it afterwards, whatever COMMAND does.
#
# Debian's pg_virtualenv creates the cluster in a temporary directory, runs it as the
# postgres user (it refuses root), picks a free port, sets PG* variables for COMMAND and drops
# the cluster on exit. We add: TCP on 127.0.0.1 only, a private unix-socket directory, and
# password authentication over TCP (pg_virtualenv sets PGPASSWORD). The trailing space in
# listen_addresses keeps pg_createcluster from writing the address unquoted, as a number.
set -eu
sockdir=$(mktemp -d /tmp/connpool-pgsock.XXXXXX)
trap 'rm -rf "$sockdir"' EXIT INT TERM
if [ "$(id -u)" = 0 ]; then chown postgres: "$sockdir"; fi
pg_virtualenv -t \
    -o "listen_addresses=127.0.0.1 " \
    -o "unix_socket_directories=$sockdir" \
    -o "max_connections=400" \
    -o "fsync=off" \
    env PGHOST=127.0.0.1 CONNPOOL_TEST_SOCKDIR="$sockdir" "$@"
