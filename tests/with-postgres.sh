#!/bin/sh
# with-postgres.sh COMMAND...: runs COMMAND against a throwaway PostgreSQL server and always
# stops and deletes it afterwards, whatever COMMAND does.
#
# Debian's pg_virtualenv creates the cluster in a temporary directory, runs it as the
# postgres user (it refuses root), picks a free port, sets PG* variables for COMMAND and drops
# the cluster on exit. We add: TCP on 127.0.0.1 only, a private unix-socket directory,
# password authentication over TCP (pg_virtualenv sets PGPASSWORD), and TLS (see below), so
# tests can use sslmode=disable, require and verify-full alike. ODBC drivers (psqlODBC,
# SQLite) are registered in a private ODBCSYSINI, never the machine's /etc/odbcinst.ini;
# CONNPOOL_TEST_ODBC_PG is an odbc: connection string to this server.
# CONNPOOL_TEST_PGCTL is a command that controls this server: append stop, start, or
# restart (with pg_ctl's options, e.g. "restart -m fast"); it waits until the server is down
# or accepts connections again. It is pg_ctlcluster for pg_virtualenv's cluster (version
# PGVERSION, named "regress", its configuration under PG_CLUSTER_CONF_ROOT: both variables
# come from pg_virtualenv), which runs pg_ctl as the cluster's owner when called as root.
# Every setting above lives in the cluster's configuration files (ssl = on in
# postgresql.auto.conf), so a restart keeps the port, the socket directory and TLS.
# pg_ctlcluster tells whether the server runs from its external_pid_file, by default
# /var/run/postgresql/15-regress.pid: one path for every pg_virtualenv cluster on the
# machine, deleted by whichever stops first (a restart would then skip the stop, and fail
# with "Cluster is already running"). Ours is private.
# TLS: a throwaway test CA (ssl/ca.crt, its key ssl/ca.key) signs the server's certificate
# (CONNPOOL_TEST_SSL_CERT), which names only the IP address 127.0.0.1 (CN and SAN): so with
# sslrootcert=$CONNPOOL_TEST_SSL_CA, sslmode=verify-full passes for host=127.0.0.1 and fails
# on the name for host=localhost, where verify-ca passes. CONNPOOL_TEST_SSL_WRONG_CA is a
# second, unrelated CA, which verifies nothing here. EC keys (P-256): generating them takes
# milliseconds. The files live only as long as the server.
# The trailing space in listen_addresses keeps pg_createcluster from writing the address
# unquoted, as if it were a number.
set -eu
work=$(mktemp -d /tmp/connpool-pg.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/sock" "$work/ssl" "$work/run" "$work/odbc" "$work/sqlite"
odbc_driver() { find /usr/lib -name "$1" 2>/dev/null | head -n 1; }
cat > "$work/odbc/odbcinst.ini" <<EOF
[PostgreSQL Unicode]
Description=psqlODBC (Debian odbc-postgresql)
Driver=$(odbc_driver psqlodbcw.so)

[SQLite3]
Description=SQLite ODBC (Debian libsqliteodbc)
Driver=$(odbc_driver libsqlite3odbc.so)
EOF
: > "$work/odbc/odbc.ini"
ssl=$work/ssl
new_ec_key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $new_ec_key -days 2 -subj "/CN=connpool test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$ssl/ca.key" -out "$ssl/ca.crt" 2>/dev/null
openssl req -x509 $new_ec_key -days 2 -subj "/CN=connpool unrelated CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$ssl/wrong-ca.key" -out "$ssl/wrong-ca.crt" 2>/dev/null
openssl req -new $new_ec_key -subj "/CN=127.0.0.1" \
    -keyout "$ssl/server.key" -out "$ssl/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "extendedKeyUsage=serverAuth" > "$ssl/server.ext"
openssl x509 -req -in "$ssl/server.csr" -CA "$ssl/ca.crt" -CAkey "$ssl/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$ssl/server.ext" \
    -out "$ssl/server.crt" 2>/dev/null
chmod 600 "$ssl/server.key" "$ssl/ca.key" "$ssl/wrong-ca.key"
chmod 644 "$ssl/ca.crt" "$ssl/wrong-ca.crt" "$ssl/server.crt"
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work/sock" "$work/ssl" "$work/run"; fi
pg_virtualenv -t \
    -o "listen_addresses=127.0.0.1 " \
    -o "unix_socket_directories=$work/sock" \
    -o "external_pid_file=$work/run/postgres.pid" \
    -o "max_connections=400" \
    -o "fsync=off" \
    -o "ssl_cert_file=$work/ssl/server.crt" \
    -o "ssl_key_file=$work/ssl/server.key" \
    env PGHOST=127.0.0.1 CONNPOOL_TEST_SOCKDIR="$work/sock" \
    CONNPOOL_TEST_SSL_CERT="$ssl/server.crt" CONNPOOL_TEST_SSL_CA="$ssl/ca.crt" \
    CONNPOOL_TEST_SSL_WRONG_CA="$ssl/wrong-ca.crt" \
    ODBCSYSINI="$work/odbc" ODBCINSTINI=odbcinst.ini ODBCINI="$work/odbc/odbc.ini" \
    CONNPOOL_TEST_SQLITE_DIR="$work/sqlite" \
    sh -c '
        # pg_createcluster turns ssl on only with the machine snakeoil certificate: turn it on
        # here, and wait until the reload has taken effect.
        psql -qAt -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
        tries=0
        until psql "sslmode=require" -qAtc "SELECT 1" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ $tries -gt 500 ]; then echo "with-postgres: TLS did not come up" >&2; exit 1; fi
        done
        CONNPOOL_TEST_ODBC_PG="odbc:Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$PGPORT;Database=$PGDATABASE;UID=$PGUSER;PWD=$PGPASSWORD"
        export CONNPOOL_TEST_ODBC_PG
        CONNPOOL_TEST_PGCTL="pg_ctlcluster $PGVERSION regress"
        export CONNPOOL_TEST_PGCTL
        exec "$@"' with-postgres "$@"
