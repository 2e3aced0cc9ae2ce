/* Helpers shared by the tests: waiting on conditions, statistics, a monitor connection. */
#ifndef CONNPOOL_TEST_UTIL_H
#define CONNPOOL_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "connpool.h"

/* Polls cond(arg) (yielding the CPU in between) until it is true or timeout_ms passes;
 * returns the last result. This awaits a condition: it is not a sleep. */
int await_true(int (*cond)(void *), void *arg, int64_t timeout_ms);

/* One statistics snapshot; fails the test if it cannot be read. */
pool_stats_t stats_of(pool_t *pool);

/* Waits until the pool has `n` threads waiting in checkout. */
int await_waiting(pool_t *pool, int64_t n, int64_t timeout_ms);

/* Monotonic milliseconds. */
int64_t now_ms(void);

/* A libpq connection to the test server outside any pool (the PG* environment variables of
 * tests/with-postgres.sh); fails the test if it cannot connect. */
PGconn *monitor_connect(void);
/* Runs a query that returns one integer (first row, first column); fails the test on error. */
long long query_int(PGconn *conn, const char *sql);
/* Client backends the server sees with this application_name. */
long long sessions_named(PGconn *monitor, const char *application_name);
/* 1 if a backend with this pid exists. */
int backend_exists(PGconn *monitor, int pid);

#define assert_ok(expr)                                                              \
    do {                                                                             \
        int rc_ = (expr);                                                            \
        if (rc_ != POOL_OK)                                                          \
            fail_msg("%s returned %s: %s", #expr, pool_error_name(rc_), pool_last_error()); \
    } while (0)

#endif
