#!/bin/sh
# with-second-server.sh COMMAND...: runs COMMAND with a second, throwaway PostgreSQL 15 server
# beside the test server, and always stops and deletes it afterwards, whatever COMMAND does.
# Run it inside tests/with-postgres.sh: the second server gets the same user, password and
# database as the first (PGUSER, PGPASSWORD, PGDATABASE), so one connection string with two
# hosts can log in to either (multi-host failover tests).
#
# It is built for speed: initdb -N (no fsync), fsync off, small shared_buffers, no TLS. As
# root it runs as the postgres user (PostgreSQL refuses root). It listens on 127.0.0.1 on a
# free port, with its unix socket in a private directory (trust: only root and postgres can
# reach it); TCP logins use scram-sha-256, with the password set from PGPASSWORD through
# psql's standard input, never a file or a command line.
#
# Exports:
#   CONNPOOL_TEST_PG2_PORT  its port (same host, 127.0.0.1)
#   CONNPOOL_TEST_PG2CTL    a command that controls it: append stop, start or restart, with
#                           pg_ctl's options (e.g. "stop -m fast"); it waits until the server
#                           is down, or accepts connections again
#   CONNPOOL_TEST_PG2_SOCKDIR  its unix-socket directory
set -eu
: "${PGUSER:?run under tests/with-postgres.sh}" "${PGDATABASE:?}" "${PGPASSWORD:?}"
bin=/usr/lib/postgresql/15/bin
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work=$(mktemp -d /tmp/connpool-pg2.XXXXXX)
ctl="$bin/pg_ctl -D $work/data -l $work/server.log -w -t 30"
stop_server() {
    if [ -f "$work/data/postmaster.pid" ]; then as_owner $ctl stop -m immediate >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$work"
mkdir -m 700 "$work/sock"
if [ "$(id -u)" = 0 ]; then chown postgres: "$work" "$work/sock"; fi

as_owner "$bin/initdb" -N --auth-local=trust --auth-host=scram-sha-256 -U "$PGUSER" \
    -D "$work/data" >"$work/initdb.log" 2>&1 || {
    cat "$work/initdb.log" >&2
    exit 1
}

# A port nobody listens on (ss is in iproute2); a race with another process is caught by the
# start below, which tries again with another port.
free_port() {
    while :; do
        p=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
    done
}

tries=0
while :; do
    port=$(free_port)
    # postgresql.auto.conf, not the command line: a plain "start" from a test keeps them.
    cat > "$work/data/postgresql.auto.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
EOF
    if [ "$(id -u)" = 0 ]; then chown postgres: "$work/data/postgresql.auto.conf"; fi
    if as_owner $ctl start >/dev/null 2>&1; then break; fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then
        echo "with-second-server: the server did not start; its log:" >&2
        cat "$work/server.log" >&2 || true
        exit 1
    fi
done

# The password from the environment (psql's \getenv), never a file or a command line.
psql -qAtX -h "$work/sock" -p "$port" -U "$PGUSER" -d postgres >/dev/null <<'EOF'
\getenv password PGPASSWORD
ALTER ROLE CURRENT_USER PASSWORD :'password';
EOF
if [ "$PGDATABASE" != postgres ] && [ "$PGDATABASE" != template1 ]; then
    as_owner "$bin/createdb" -h "$work/sock" -p "$port" -U "$PGUSER" "$PGDATABASE"
fi

CONNPOOL_TEST_PG2_PORT=$port
CONNPOOL_TEST_PG2_SOCKDIR=$work/sock
if [ "$(id -u)" = 0 ]; then
    CONNPOOL_TEST_PG2CTL="runuser -u postgres -- $ctl"
else
    CONNPOOL_TEST_PG2CTL=$ctl
fi
export CONNPOOL_TEST_PG2_PORT CONNPOOL_TEST_PG2_SOCKDIR CONNPOOL_TEST_PG2CTL
status=0
"$@" || status=$?
exit $status
