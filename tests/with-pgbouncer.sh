#!/bin/sh
# with-pgbouncer.sh COMMAND...: runs COMMAND with PgBouncer in transaction mode in front of the
# test server, and always stops PgBouncer and deletes its files afterwards, whatever COMMAND
# does. Run it inside tests/with-postgres.sh (it needs that server's PG* variables).
#
# PgBouncer refuses to run as root, so as root it runs as the postgres user, like the server.
# Everything it uses (configuration, auth_file, pidfile, log, unix-socket directory) lives in a
# private temporary directory; it listens on 127.0.0.1 on a free port.
#
# Authentication is real on both sides without a password on disk: the auth_file holds the
# user's SCRAM secret copied from pg_authid, so a client logs in to PgBouncer with SCRAM, and
# PgBouncer logs in to the server with the keys that client's SCRAM exchange proved (1.14+
# "SCRAM pass-through", which needs the same secret on both: it is the same). Clients take
# the password from PGPASSWORD as usual.
#
# The server-side pool is small (default_pool_size=4), so that more client connections than
# server connections really share them. A second database name, connpool_single, reaches
# the same database over exactly one server connection: what one client leaves behind in its
# session (a SET), the next one meets, deterministically. A third, connpool_kill, is the same
# again, for a test that has PgBouncer drop every client of a database (KILL).
#
# Exports:
#   CONNPOOL_TEST_PGBOUNCER         libpq conninfo to PgBouncer (no password)
#   CONNPOOL_TEST_PGBOUNCER_SINGLE  the same for connpool_single (pool_size=1)
#   CONNPOOL_TEST_PGBOUNCER_ADMIN   the admin console (SHOW STATS, SHOW POOLS)
#   CONNPOOL_TEST_PGBOUNCER_PORT    its port (for ODBC strings)
set -eu
: "${PGPORT:?run under tests/with-postgres.sh}" "${PGUSER:?}" "${PGDATABASE:?}" "${PGPASSWORD:?}"
bouncer=/usr/sbin/pgbouncer
[ -x "$bouncer" ] || { echo "with-pgbouncer: $bouncer missing (apt-get install pgbouncer)" >&2; exit 1; }

as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work=$(mktemp -d /tmp/connpool-pgbouncer.XXXXXX)
stop_bouncer() {
    if [ -s "$work/pgbouncer.pid" ]; then
        pid=$(cat "$work/pgbouncer.pid")
        kill -TERM "$pid" 2>/dev/null || true
        # Wait (at most 10 s) until it is gone, so its port and files are released.
        timeout 10 tail --pid="$pid" -s 0.01 -f /dev/null 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_bouncer EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$work"
mkdir "$work/sock"

# A port nobody listens on (ss is in iproute2); a race with another process is caught by the
# start below, which tries again with another port.
free_port() {
    while :; do
        p=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
    done
}

# The SCRAM secret, not the password: the secret cannot be used to log in to the server
# directly (it is what the server stores), and never leaves this directory.
umask 077
psql -qAtX -c "SELECT '\"' || rolname || '\" \"' || rolpassword || '\"' FROM pg_authid
               WHERE rolname = current_user AND rolpassword LIKE 'SCRAM-SHA-256\$%'" > "$work/userlist.txt"
if ! grep -q 'SCRAM-SHA-256' "$work/userlist.txt"; then
    echo "with-pgbouncer: $PGUSER has no SCRAM secret on the server" >&2
    exit 1
fi

server="host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE"
tries=0
up=0
while :; do
    port=$(free_port)
    cat > "$work/pgbouncer.ini" <<EOF
[databases]
$PGDATABASE = $server
connpool_single = $server pool_size=1
connpool_kill = $server pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $work/sock
pidfile = $work/pgbouncer.pid
logfile = $work/pgbouncer.log
auth_type = scram-sha-256
auth_file = $work/userlist.txt
admin_users = $PGUSER
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
EOF
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work"; fi
    if as_owner "$bouncer" -q -d "$work/pgbouncer.ini"; then
        # Up once a client can log in and run a query through it (SCRAM on both legs). Each
        # attempt is a connect that fails at once until it listens: no sleep needed.
        n=0
        while [ $n -lt 500 ] && kill -0 "$(cat "$work/pgbouncer.pid" 2>/dev/null || echo 0)" 2>/dev/null; do
            if psql -qAtX "host=127.0.0.1 port=$port dbname=$PGDATABASE connect_timeout=2" \
                    -c "SELECT 1" >/dev/null 2>&1; then
                up=1
                break
            fi
            n=$((n + 1))
        done
        if [ "$up" = 1 ]; then break; fi
    fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then
        echo "with-pgbouncer: PgBouncer did not come up; its log:" >&2
        cat "$work/pgbouncer.log" >&2 2>/dev/null || true
        exit 1
    fi
    if [ -s "$work/pgbouncer.pid" ]; then kill -TERM "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true; fi
    rm -f "$work/pgbouncer.pid"
done

CONNPOOL_TEST_PGBOUNCER="host=127.0.0.1 port=$port dbname=$PGDATABASE user=$PGUSER"
CONNPOOL_TEST_PGBOUNCER_SINGLE="host=127.0.0.1 port=$port dbname=connpool_single user=$PGUSER"
CONNPOOL_TEST_PGBOUNCER_ADMIN="host=127.0.0.1 port=$port dbname=pgbouncer user=$PGUSER"
CONNPOOL_TEST_PGBOUNCER_PORT=$port
export CONNPOOL_TEST_PGBOUNCER CONNPOOL_TEST_PGBOUNCER_SINGLE CONNPOOL_TEST_PGBOUNCER_ADMIN \
    CONNPOOL_TEST_PGBOUNCER_PORT
umask 022
status=0
"$@" || status=$?
exit $status
