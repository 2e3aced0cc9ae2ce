/* The three backends the query tests run against (libpq, psqlODBC to the test server, an
 * SQLite file through the SQLite ODBC driver), and the statements they run through
 * pool_query(): shared by test_query.c and test_types.c.
 *
 * Run under tests/with-postgres.sh: libpq uses its PG* variables; psqlODBC uses
 * CONNPOOL_TEST_ODBC_PG; SQLite gets a database file of its own in CONNPOOL_TEST_SQLITE_DIR.
 * Statements are written with ? placeholders and turned into $1, $2... for libpq.
 * PostgreSQL sessions carry the test's application_name (suffixed with this process's pid)
 * so that a libpq monitor outside any pool can find them. */
#ifndef CONNPOOL_TESTS_BACKENDS_H
#define CONNPOOL_TESTS_BACKENDS_H

#include "util.h"

enum kind { LIBPQ, PSQLODBC, SQLITE };

struct backend {
    enum kind kind;
    const char *label; /* part of every name the test gives the server or the disk */
};

extern struct backend libpq, psqlodbc, sqlite;

/* One test's setting: its backend, its name, its pool's connection string. */
struct ctx {
    const struct backend *b;
    char name[64];      /* PostgreSQL: the application_name; SQLite: the file's name */
    char conninfo[768];
    char db[512];       /* SQLite: the database file */
    PGconn *monitor;    /* PostgreSQL: a libpq connection outside any pool */
    char sql[1024];     /* the last statement in the backend's dialect */
};

/* state: the cmocka state, the test's struct backend. */
void ctx_init(struct ctx *c, void **state, const char *base);
/* After pool_dispose(): no session of the test is left on the server. */
void ctx_done(struct ctx *c);
int is_pg(const struct ctx *c);
pool_t *make_pool(struct ctx *c, const char *options);

/* sql in the backend's dialect: for libpq every ? becomes $1, $2, ... (the statements here
 * have no ? inside literals). Kept in c->sql. */
const char *dialect(struct ctx *c, const char *sql);
/* Runs a statement that must succeed; a success leaves no error and no SQLSTATE behind. */
pool_result_t *run(struct ctx *c, pool_lease_t *lease, const char *sql, int nparams,
                   const char *const *params);
void exec_ok(struct ctx *c, pool_lease_t *lease, const char *sql);
/* Runs a statement that returns no rows and gives the rows it affected. */
int64_t affected(struct ctx *c, pool_lease_t *lease, const char *sql, int nparams,
                 const char *const *params);
/* The one value of a one-row, one-column result (not NULL), copied into out. */
void scalar(struct ctx *c, pool_lease_t *lease, const char *sql, char *out, size_t len);
long long scalar_int(struct ctx *c, pool_lease_t *lease, const char *sql);

/* What a failed statement left: pool_last_sqlstate() and pool_last_error(), copied at once. */
struct failure {
    char sqlstate[16];
    char message[512];
};
/* Runs a statement that must fail with POOL_EQUERY, a five-character SQLSTATE and a message. */
void run_fails(struct ctx *c, pool_lease_t *lease, const char *sql, struct failure *f);

/* cmocka cases: one per backend. */
#define CASE(be, fn) \
    { #be ": " #fn, fn, arm_watchdog, disarm_watchdog, &be }
#define ALL(fn) CASE(libpq, fn), CASE(psqlodbc, fn), CASE(sqlite, fn)
#define PG(fn) CASE(libpq, fn), CASE(psqlodbc, fn)
#define ANY(fn) \
    { #fn, fn, arm_watchdog, disarm_watchdog, NULL }

#endif
