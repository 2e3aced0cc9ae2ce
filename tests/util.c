#include "util.h"

#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void test_app_name(char *buf, size_t len, const char *base) {
    snprintf(buf, len, "%s_%d", base, (int)getpid());
}

const char *env_or_fail(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run under tests/with-postgres.sh (and the other "
                 "tests/with-*.sh that the test's file names)", name);
    return v;
}

int contains_pid(const int *pids, int n, int pid) {
    for (int i = 0; i < n; i++)
        if (pids[i] == pid) return 1;
    return 0;
}

int await_true(int (*cond)(void *), void *arg, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg)) return 1;
        if (now_ms() > deadline) return cond(arg);
        sched_yield();
    }
}

pool_stats_t stats_of(pool_t *pool) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_ok(pool_stats_get(pool, &st));
    return st;
}

struct waiting_arg {
    pool_t *pool;
    int64_t n;
};

static int has_waiting(void *p) {
    struct waiting_arg *a = p;
    return stats_of(a->pool).waiting == a->n;
}

int await_waiting(pool_t *pool, int64_t n, int64_t timeout_ms) {
    struct waiting_arg a = {pool, n};
    return await_true(has_waiting, &a, timeout_ms);
}

PGconn *monitor_connect(void) {
    PGconn *c = PQconnectdb("application_name=connpool_monitor");
    if (PQstatus(c) != CONNECTION_OK) fail_msg("monitor connect: %s", PQerrorMessage(c));
    return c;
}

long long query_int(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("query \"%s\": %s", sql, PQerrorMessage(conn));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void query_string(PGconn *conn, const char *sql, char *buf, size_t len) {
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("query \"%s\": %s", sql, PQerrorMessage(conn));
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

long long sessions_named(PGconn *monitor, const char *application_name) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
             application_name);
    return query_int(monitor, sql);
}

int backend_exists(PGconn *monitor, int pid) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
    return query_int(monitor, sql) == 1;
}

struct sessions_arg {
    PGconn *monitor;
    const char *app;
    long long n;
};

static int sessions_reach(void *p) {
    struct sessions_arg *a = p;
    return sessions_named(a->monitor, a->app) == a->n;
}

void await_sessions(PGconn *monitor, const char *application_name, long long n) {
    struct sessions_arg a = {monitor, application_name, n};
    if (!await_true(sessions_reach, &a, SERVER_WAIT_MS))
        fail_msg("sessions named %s: %lld, expected %lld", application_name,
                 sessions_named(monitor, application_name), n);
}

struct backend_arg {
    PGconn *monitor;
    int pid;
};

static int backend_gone(void *p) {
    struct backend_arg *a = p;
    return !backend_exists(a->monitor, a->pid);
}

void await_backend_gone(PGconn *monitor, int pid) {
    struct backend_arg a = {monitor, pid};
    if (!await_true(backend_gone, &a, SERVER_WAIT_MS)) fail_msg("backend %d is still there", pid);
}

void terminate_backend(PGconn *monitor, int pid) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 5000)::int", pid);
    assert_int_equal(query_int(monitor, sql), 1);
    assert_false(backend_exists(monitor, pid));
}

int backend_is_active(PGconn *monitor, int pid, const char *part) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'active'%s%s%s",
             pid, part ? " AND strpos(query, '" : "", part ? part : "", part ? "') > 0" : "");
    return query_int(monitor, sql) == 1;
}

int run_shell(const char *command) {
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int pgctl(const char *action) {
    const char *ctl = getenv("CONNPOOL_TEST_PGCTL");
    if (!ctl || !*ctl) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s", ctl, action);
    return run_shell(cmd);
}

void require_pgctl(void) {
    if (!getenv("CONNPOOL_TEST_PGCTL"))
        fail_msg("CONNPOOL_TEST_PGCTL is not set: run under tests/with-postgres.sh");
}

int server_accepts(void *unused) {
    (void)unused;
    return PQping("connect_timeout=2") == PQPING_OK;
}

void await_server(void) {
    if (!await_true(server_accepts, NULL, SERVER_WAIT_MS))
        fail_msg("the server does not accept connections");
}

void report_init(struct report *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

void report_failure(struct report *r, const char *format, ...) {
    pthread_mutex_lock(&r->mu);
    if (r->failures++ == 0) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(r->first, sizeof r->first, format, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

int report_failures(struct report *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->failures;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void assert_no_failures(struct report *r) {
    if (r->failures) fail_msg("%d failure(s) in worker threads; first: %s", r->failures, r->first);
    pthread_mutex_destroy(&r->mu);
}

/* A pool over `conninfo` that cannot connect: every checkout fails with POOL_ECONNECT, and
 * the failed connect gives its slot back (pool_size 1, no overflow: a slot kept by mistake
 * would turn the second attempt into a timeout). The first message goes to msg. */
void checkout_fails_to_connect(const char *conninfo, char *msg, size_t len) {
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 max_overflow=0 pool_timeout=10"));
    pool_lease_t *lease = (pool_lease_t *)&lease;
    assert_int_equal(pool_checkout(&lease, pool, -1), POOL_ECONNECT);
    assert_null(lease);
    snprintf(msg, len, "%s", pool_last_error());
    assert_contains(msg, "connect failed");

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.overflow, 0);
    assert_int_equal(st.opened_total, 0);
    assert_int_equal(st.checkouts_total, 0);

    assert_int_equal(pool_checkout(&lease, pool, -1), POOL_ECONNECT);
    assert_int_equal(stats_of(pool).connect_failures_total, 2);
    assert_int_equal(stats_of(pool).timeouts_total, 0);
    assert_ok(pool_dispose(pool));
}

pool_lease_t *checkout(pool_t *pool) {
    pool_lease_t *lease = NULL;
    assert_ok(pool_checkout(&lease, pool, SERVER_WAIT_MS));
    assert_non_null(lease);
    return lease;
}

int start_threads(pthread_t *threads, int n, void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    int started = 0;
    while (started < n && pthread_create(&threads[started], &attr, fn, arg) == 0) started++;
    pthread_attr_destroy(&attr);
    return started == n;
}

void join_threads(pthread_t *threads, int n) {
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
}
