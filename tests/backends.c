/* The query tests' backends and statements: backends.h. */
#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct backend libpq = {LIBPQ, "pq"};
struct backend psqlodbc = {PSQLODBC, "odbcpg"};
struct backend sqlite = {SQLITE, "lite"};

void ctx_init(struct ctx *c, void **state, const char *base) {
    memset(c, 0, sizeof *c);
    c->b = *state;
    snprintf(c->name, sizeof c->name, "%s_%s_%d", base, c->b->label, (int)getpid());
    switch (c->b->kind) {
    case LIBPQ:
        snprintf(c->conninfo, sizeof c->conninfo, "application_name=%s", c->name);
        c->monitor = monitor_connect();
        break;
    case PSQLODBC:
        snprintf(c->conninfo, sizeof c->conninfo, "%s;Pqopt={application_name=%s}",
                 env_or_fail("CONNPOOL_TEST_ODBC_PG"), c->name);
        c->monitor = monitor_connect();
        break;
    case SQLITE:
        snprintf(c->db, sizeof c->db, "%s/%s.db", env_or_fail("CONNPOOL_TEST_SQLITE_DIR"),
                 c->name);
        unlink(c->db);
        snprintf(c->conninfo, sizeof c->conninfo, "odbc:Driver=SQLite3;Database=%s", c->db);
        break;
    }
}

/* After pool_dispose(): no session of the test is left on the server. */
void ctx_done(struct ctx *c) {
    if (c->monitor) {
        await_sessions(c->monitor, c->name, 0);
        PQfinish(c->monitor);
    }
    if (c->db[0]) unlink(c->db);
}

int is_pg(const struct ctx *c) { return c->b->kind != SQLITE; }

pool_t *make_pool(struct ctx *c, const char *options) {
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, c->conninfo, options));
    assert_non_null(pool);
    return pool;
}

/* ---------------------------------------------------------------- statements */

/* sql in the backend's dialect: for libpq every ? becomes $1, $2, ... (the statements here
 * have no ? inside literals). */
const char *dialect(struct ctx *c, const char *sql) {
    if (c->b->kind != LIBPQ) {
        snprintf(c->sql, sizeof c->sql, "%s", sql);
        return c->sql;
    }
    size_t used = 0;
    int n = 0;
    for (const char *p = sql; *p && used + 8 < sizeof c->sql; p++) {
        if (*p == '?')
            used += (size_t)snprintf(c->sql + used, sizeof c->sql - used, "$%d", ++n);
        else
            c->sql[used++] = *p;
    }
    c->sql[used] = 0;
    return c->sql;
}

/* Runs a statement that must succeed; a success leaves no error and no SQLSTATE behind. */
pool_result_t *run(struct ctx *c, pool_lease_t *lease, const char *sql, int nparams,
                          const char *const *params) {
    pool_result_t *res = NULL;
    int rc = pool_query(&res, lease, dialect(c, sql), nparams, params);
    if (rc != POOL_OK)
        fail_msg("\"%s\": %s: %s (SQLSTATE \"%s\")", c->sql, pool_error_name(rc),
                 pool_last_error(), pool_last_sqlstate());
    assert_non_null(res);
    assert_string_equal(pool_last_sqlstate(), "");
    assert_string_equal(pool_last_error(), "");
    return res;
}

void exec_ok(struct ctx *c, pool_lease_t *lease, const char *sql) {
    pool_result_free(run(c, lease, sql, 0, NULL));
}

/* Runs a statement that returns no rows and gives the rows it affected. */
int64_t affected(struct ctx *c, pool_lease_t *lease, const char *sql, int nparams,
                        const char *const *params) {
    pool_result_t *res = run(c, lease, sql, nparams, params);
    assert_int_equal(pool_result_columns(res), 0);
    assert_int_equal(pool_result_rows(res), 0);
    assert_null(pool_result_column_name(res, 0));
    int64_t n = pool_result_affected(res);
    pool_result_free(res);
    return n;
}

/* The one value of a one-row, one-column result (not NULL), copied into out. */
void scalar(struct ctx *c, pool_lease_t *lease, const char *sql, char *out, size_t len) {
    pool_result_t *res = run(c, lease, sql, 0, NULL);
    if (pool_result_rows(res) != 1 || pool_result_columns(res) != 1)
        fail_msg("\"%s\": %lld rows of %d columns, expected one value", c->sql,
                 (long long)pool_result_rows(res), pool_result_columns(res));
    const char *v = pool_result_value(res, 0, 0);
    if (!v) fail_msg("\"%s\" returned NULL", c->sql);
    snprintf(out, len, "%s", v);
    pool_result_free(res);
}

long long scalar_int(struct ctx *c, pool_lease_t *lease, const char *sql) {
    char v[64];
    scalar(c, lease, sql, v, sizeof v);
    return strtoll(v, NULL, 10);
}

/* Runs a statement that must fail with POOL_EQUERY, a five-character SQLSTATE and a message. */
void run_fails(struct ctx *c, pool_lease_t *lease, const char *sql, struct failure *f) {
    pool_result_t *res = (pool_result_t *)&res; /* must come back NULL */
    int rc = pool_query(&res, lease, dialect(c, sql), 0, NULL);
    snprintf(f->sqlstate, sizeof f->sqlstate, "%s", pool_last_sqlstate());
    snprintf(f->message, sizeof f->message, "%s", pool_last_error());
    if (rc == POOL_OK) {
        pool_result_free(res);
        fail_msg("\"%s\" succeeded", c->sql);
    }
    if (rc != POOL_EQUERY)
        fail_msg("\"%s\": %s (%s), expected POOL_EQUERY", c->sql, pool_error_name(rc), f->message);
    assert_null(res);
    if (strlen(f->sqlstate) != 5)
        fail_msg("\"%s\": SQLSTATE \"%s\" is not five characters (%s)", c->sql, f->sqlstate,
                 f->message);
    assert_true(f->message[0] != 0);
}

