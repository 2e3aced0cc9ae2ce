/* Helpers shared by the tests: waiting on conditions, statistics, a monitor connection. */
#ifndef CONNPOOL_TEST_UTIL_H
#define CONNPOOL_TEST_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

/* "<base>_<pid>": a test's application_name, so that its sessions are told apart from every
 * other test's and every other run's on the shared server. */
void test_app_name(char *buf, size_t len, const char *base);
/* The value of a variable the harness sets (tests/with-postgres.sh, with-pgbouncer.sh,
 * with-second-server.sh); fails the test if it is unset or empty. */
const char *env_or_fail(const char *name);
/* 1 if pid is one of pids[0..n). */
int contains_pid(const int *pids, int n, int pid);

/* A libpq connection to the test server outside any pool (the PG* environment variables of
 * tests/with-postgres.sh); fails the test if it cannot connect. */
PGconn *monitor_connect(void);
/* Runs a query that returns one integer (first row, first column); fails the test on error. */
long long query_int(PGconn *conn, const char *sql);
/* The same for a value of any type, copied as text into buf. */
void query_string(PGconn *conn, const char *sql, char *buf, size_t len);
/* Client backends the server sees with this application_name. */
long long sessions_named(PGconn *monitor, const char *application_name);
/* 1 if a backend with this pid exists. */
int backend_exists(PGconn *monitor, int pid);

/* Upper bound for the server to catch up (a session to end, say); never reached. */
#define SERVER_WAIT_MS 10000
/* Await the server seeing `n` sessions with this application_name / a backend gone; fail the
 * test if it does not within SERVER_WAIT_MS. */
void await_sessions(PGconn *monitor, const char *application_name, long long n);
void await_backend_gone(PGconn *monitor, int pid);
/* Ends a backend with pg_terminate_backend, which awaits its exit (up to 5 s): fails the test
 * unless it ended and pg_stat_activity no longer lists it. */
void terminate_backend(PGconn *monitor, int pid);
/* 1 if the backend runs a statement now (state 'active') whose text contains `part` (NULL:
 * any statement). */
int backend_is_active(PGconn *monitor, int pid, const char *part);

/* Runs `sh -c command` and returns its exit status (-1 if it could not run). posix_spawn, not
 * fork: the pool's fork handlers have no business here. */
int run_shell(const char *command);
/* Runs "$CONNPOOL_TEST_PGCTL <action>" (stop, start, restart -m fast: tests/with-postgres.sh's
 * command, which returns once the server is down, or accepts connections again) and returns
 * its exit status; -1 if it could not run or the variable is not set. */
int pgctl(const char *action);
/* Fails the test unless CONNPOOL_TEST_PGCTL is set. */
void require_pgctl(void);
/* 1 if the test server accepts connections now; for await_true (the argument is unused). */
int server_accepts(void *unused);
/* Awaits server_accepts; fails the test if the server does not within SERVER_WAIT_MS. */
void await_server(void);

/* A checkout that may have to connect: pool_timeout also bounds the connect, and a SCRAM
 * login on a loaded machine (or under a sanitizer) can take longer than the short
 * pool_timeout a test sets to see a timeout quickly; so an explicit, generous bound. Fails
 * the test if no lease comes. */
pool_lease_t *checkout(pool_t *pool);

/* Starts n threads running fn(arg), with small stacks (the tests start hundreds); 1 if all
 * started. Usable in a forked child (it does not fail the test itself). */
int start_threads(pthread_t *threads, int n, void *(*fn)(void *), void *arg);
void join_threads(pthread_t *threads, int n);

/* A pool over `conninfo` that cannot connect: checks that every checkout fails with
 * POOL_ECONNECT and gives its slot back; the first message goes to msg. */
void checkout_fails_to_connect(const char *conninfo, char *msg, size_t len);

/* What worker threads report: the number of failures and the first one's description. */
struct report {
    pthread_mutex_t mu;
    int failures;
    char first[512];
};
void report_init(struct report *r);
void report_failure(struct report *r, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
int report_failures(struct report *r);
/* Fails the test if a worker reported anything; releases the report. */
void assert_no_failures(struct report *r);

/* Skips the test when tests/run-valgrind.sh runs it (CONNPOOL_TEST_VALGRIND is set): the fork
 * storms race threads against fork() under watchdogs, and valgrind runs one thread at a time,
 * many times slower, so they measure valgrind, not the pool. A macro: cmocka's skip() must be
 * called from the test itself. */
#define skip_under_valgrind()                      \
    do {                                           \
        if (getenv("CONNPOOL_TEST_VALGRIND")) skip(); \
    } while (0)

/* Skips a fork storm (forks while other threads of the parent allocate all the time) in an
 * ASan build. GCC 12's AddressSanitizer allocator has no fork handler: a child forked while
 * another thread holds its allocator lock hangs at its first malloc (gdb on hung children:
 * SizeClassAllocator64's lock; about 1 child in 150-500 over TLS, so the storms turned CI's
 * ASan step red at random). glibc's malloc handles fork, so the normal build and TSan (which
 * locks its allocator across fork) run every storm; ASan checks the same code through the
 * tests that fork from one thread, and the concurrent connects without forks. */
#ifdef __SANITIZE_ADDRESS__
#define skip_fork_storm_under_asan() skip()
#else
#define skip_fork_storm_under_asan() ((void)0)
#endif

/* Macros, so that a failure names the test's line. */
#define assert_contains(text, part)                                     \
    do {                                                                \
        if (!strstr((text), (part)))                                    \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (part)); \
    } while (0)

#define assert_lacks(text, part)                                        \
    do {                                                                \
        if (strstr((text), (part)))                                     \
            fail_msg("\"%s\" contains \"%s\"", (text), (part));         \
    } while (0)

#define assert_ok(expr)                                                              \
    do {                                                                             \
        int rc_ = (expr);                                                            \
        if (rc_ != POOL_OK)                                                          \
            fail_msg("%s returned %s: %s", #expr, pool_error_name(rc_), pool_last_error()); \
    } while (0)

#endif
