#!/bin/sh
# run-demo.sh DEMO [CONNINFO]: runs the demo program (`make demo` calls this).
#
# With CONNINFO, the demo runs against that database and this script changes nothing: an
# odbc: string then resolves its DSN or driver through your own ODBC configuration.
#
# Without CONNINFO, the demo makes a fresh SQLite file in a new temporary directory and opens
# it through the SQLite ODBC driver (Debian libsqliteodbc) with "odbc:Driver=SQLite3;...".
# This script registers that driver name in a private ODBCSYSINI, like tests/with-postgres.sh:
# an odbcinst.ini holding [SQLite3] Driver=<libsqlite3odbc.so found under /usr/lib>, removed
# afterwards. Why not "Driver=/full/path/libsqlite3odbc.so" in the connection string instead?
# unixODBC would still read the machine's /etc/odbcinst.ini for its [ODBC] section, and connpool
# refuses to work if that turns on unixODBC's own pooling (Pooling=Yes: unsafe across fork).
# A private ODBCSYSINI (and an empty ODBCINI) keeps the machine's ODBC configuration out of the
# demo entirely, and never touches /etc/odbcinst.ini.
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: run-demo.sh DEMO [CONNINFO]" >&2
    exit 2
fi
demo=$1
shift
if [ $# -eq 1 ]; then
    exec "$demo" "$1"
fi

driver=$(find /usr/lib -name libsqlite3odbc.so 2>/dev/null | head -n 1)
if [ -z "$driver" ]; then
    echo "run-demo: libsqlite3odbc.so not found under /usr/lib: install libsqliteodbc (make deps)" >&2
    exit 1
fi
odbc=$(mktemp -d /tmp/connpool-demo-odbc.XXXXXX)
trap 'rm -rf "$odbc"' EXIT INT TERM
cat > "$odbc/odbcinst.ini" <<EOF
[SQLite3]
Description=SQLite ODBC (Debian libsqliteodbc)
Driver=$driver
EOF
: > "$odbc/odbc.ini"
status=0
ODBCSYSINI=$odbc ODBCINSTINI=odbcinst.ini ODBCINI=$odbc/odbc.ini "$demo" || status=$?
exit $status
