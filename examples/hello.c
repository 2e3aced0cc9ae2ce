/*
 * hello: check a connection out of a pool, run one query on it, give it back.
 *
 *   hello [CONNINFO]    CONNINFO: a libpq "key=value ..." string or postgresql:// URI;
 *                       default "": libpq's PG* environment variables
 *
 * Build: cc -std=c99 hello.c $(pkg-config --cflags --libs connpool libpq)
 */
#include <stdio.h>

#include <connpool.h>
#include <libpq-fe.h>

static int failed(const char *call, int rc) {
    fprintf(stderr, "hello: %s: %s: %s\n", call, pool_error_name(rc), pool_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *conninfo = argc > 1 ? argv[1] : "";
    pool_t *pool;
    pool_lease_t *lease;

    /* Options use SQLAlchemy's names; NULL or "" means all defaults. */
    int rc = pool_create(&pool, conninfo, "pool_size=2 pool_timeout=10");
    if (rc != POOL_OK) return failed("pool_create", rc);
    rc = pool_checkout(&lease, pool, -1); /* -1: wait up to pool_timeout */
    if (rc != POOL_OK) {
        failed("pool_checkout", rc);
        pool_dispose(pool);
        return 1;
    }

    PGconn *conn = pool_lease_native(lease); /* borrowed until pool_checkin() */
    PGresult *res = PQexec(conn, "SELECT version()");
    int status = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("%s\n", PQgetvalue(res, 0, 0));
    } else {
        fprintf(stderr, "hello: SELECT version(): %s", PQerrorMessage(conn));
        status = 1;
    }
    PQclear(res);

    if ((rc = pool_checkin(lease)) != POOL_OK) status = failed("pool_checkin", rc);
    if ((rc = pool_dispose(pool)) != POOL_OK) status = failed("pool_dispose", rc);
    return status;
}
