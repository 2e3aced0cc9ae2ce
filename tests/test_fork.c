/* Fork safety against a real PostgreSQL server, through the libpq connector
 * (../shared/fork-safety.md, section E; connpool.h, convention 8).
 *
 * Run under tests/with-postgres.sh. The whole suite runs twice, once with sslmode=disable and
 * once with sslmode=require: without TLS a child that uses an inherited socket silently steals
 * the parent's results; with TLS it breaks the session. Either way the parent must not notice
 * that a child ever existed.
 *
 * How a child is run and judged:
 *  - every child resets the signals cmocka catches (so a crash ends it instead of running the
 *    rest of the suite in it) and arms an alarm() watchdog: a hang ends as SIGALRM, never as a
 *    stuck test run;
 *  - children never call cmocka: a failed check writes "line N: what" into a pipe to the
 *    parent and ends the child with its own exit code (1 + N % 250); the parent waitpid()s and
 *    fails the test with the child's message unless the child exited with status 0;
 *  - children that must exercise static destructors end with exit(), some with _exit().
 *
 * How harm to the parent is detected (assert_unharmed), for each of its connections, recorded
 * before the fork: the pool hands out exactly those backends again (PQbackendPID, and
 * SELECT pg_backend_pid() agrees), each answers SELECT 1, each is still in pg_stat_activity and
 * idle, seen from a separate monitor connection, and the number of sessions with the test's
 * application_name is what the parent has (the children's own sessions go away with them).
 * Queries in flight at the fork must return their own result ('tag'), neither cancelled nor
 * broken.
 *
 * cmocka's assertions may only fail on the test's own thread: worker threads record what went
 * wrong in a report that the test thread checks after joining them. No sleeps: every wait is
 * for a condition (await_true), and server-side pg_sleep is only ever the workload. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-events.h>
#include <sched.h>

#include "child.h"
#include "util.h"

extern char **environ;

/* ---------------------------------------------------------------- settings */

#define STORM_WATCHDOG_S 5
#define MAX_CONNS 8

static const char *sslmode; /* "disable" or "require": one run of the suite each */

static int want_ssl(void) { return strcmp(sslmode, "require") == 0; }



/* ---------------------------------------------------------------- fds at start */

/* The fds this process inherited without close-on-exec (from the shell or the harness): an
 * exec'd program inherits them whatever the pool does, so they are allowed in its listing. */
static int inheritable_at_start[64];
static int n_inheritable_at_start;

static int was_inheritable_at_start(int fd) {
    for (int i = 0; i < n_inheritable_at_start; i++)
        if (inheritable_at_start[i] == fd) return 1;
    return 0;
}

/* Calls visit(fd, target, arg) for every open fd >= 3 (but not the directory's own); stops at
 * and returns the first nonzero result. */
static int for_each_fd(int (*visit)(int, const char *, void *), void *arg) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int result = 0;
    struct dirent *e;
    while (!result && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd < 3 || fd == dirfd(dir)) continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        result = visit(fd, target, arg);
    }
    closedir(dir);
    return result;
}

static int note_inheritable(int fd, const char *target, void *arg) {
    (void)target;
    (void)arg;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC) &&
        n_inheritable_at_start < (int)(sizeof inheritable_at_start / sizeof(int)))
        inheritable_at_start[n_inheritable_at_start++] = fd;
    return 0;
}

/* An fd that an exec'd program would inherit and that was not there at start: written to
 * why; 1 if one was found. */
struct leak {
    char *why;
    size_t len;
};

static int find_new_inheritable(int fd, const char *target, void *arg) {
    struct leak *l = arg;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC) || was_inheritable_at_start(fd)) return 0;
    snprintf(l->why, l->len, "fd %d -> %s has no FD_CLOEXEC", fd, target);
    return 1;
}

/* ---------------------------------------------------------------- children */


/* ---------------------------------------------------------------- the parent's connections */

/* "<base>_<sslmode>_<pid>": this test's application_name (at most 63 bytes are kept). */
static void app_name(char *buf, size_t len, const char *base) {
    snprintf(buf, len, "%s_%s_%d", base, sslmode, (int)getpid());
}

static void pool_conninfo(char *buf, size_t len, const char *app) {
    snprintf(buf, len, "application_name=%s sslmode=%s", app, sslmode);
}

static pool_t *fork_pool(const char *app, const char *options) {
    char conninfo[256];
    pool_conninfo(conninfo, sizeof conninfo, app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    assert_non_null(pool);
    return pool;
}

static PGconn *native(pool_lease_t *lease) {
    PGconn *conn = pool_lease_native(lease);
    assert_non_null(conn);
    return conn;
}

/* The server's pid for the lease's session, which must be libpq's, over TLS or not as asked. */
static int backend_pid(pool_lease_t *lease) {
    PGconn *conn = native(lease);
    int pid = (int)query_int(conn, "SELECT pg_backend_pid()");
    assert_int_equal(pid, PQbackendPID(conn));
    if (!!PQsslInUse(conn) != want_ssl())
        fail_msg("sslmode=%s but PQsslInUse() = %d", sslmode, PQsslInUse(conn));
    return pid;
}

/* Backend pids of the parent's connections, recorded before a fork. */
struct conns {
    int n;
    int pids[MAX_CONNS];
};

static int has_pid(const struct conns *c, int pid) {
    for (int i = 0; i < c->n; i++)
        if (c->pids[i] == pid) return 1;
    return 0;
}

static void add_pid(struct conns *c, int pid) {
    assert_true(c->n < MAX_CONNS);
    assert_false(has_pid(c, pid));
    c->pids[c->n++] = pid;
}

/* Opens n connections in the pool and leaves them idle there; records their pids. */
static void open_idle(pool_t *pool, int n, struct conns *c) {
    pool_lease_t *leases[MAX_CONNS];
    assert_true(n <= MAX_CONNS);
    for (int i = 0; i < n; i++) {
        leases[i] = checkout(pool);
        add_pid(c, backend_pid(leases[i]));
    }
    for (int i = 0; i < n; i++) assert_ok(pool_checkin(leases[i]));
}

/* The first value of a query's first row, or "" if there is no row. */
static void query_text(PGconn *conn, const char *sql, char *out, size_t len) {
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("query \"%s\": %s", sql, PQerrorMessage(conn));
    snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}


/* §E's check that no child harmed the parent. All of the parent's connections in `pool` (the
 * pids in c) are idle in the pool now, and the pool has no others. */
static void assert_unharmed(PGconn *monitor, pool_t *pool, const char *app, const struct conns *c) {
    /* the session count is the parent's again once the children's own sessions are gone */
    await_sessions(monitor, app, c->n);
    for (int i = 0; i < c->n; i++) {
        char sql[160], state[64];
        snprintf(sql, sizeof sql, "SELECT coalesce(state, '?') FROM pg_stat_activity WHERE pid = %d",
                 c->pids[i]);
        query_text(monitor, sql, state, sizeof state);
        if (strcmp(state, "idle") != 0)
            fail_msg("the parent's backend %d is %s", c->pids[i], state[0] ? state : "gone");
    }
    pool_stats_t before = stats_of(pool);
    assert_int_equal(before.idle, c->n);
    assert_int_equal(before.checked_out, 0);
    assert_int_equal(before.inherited_total, 0);

    pool_lease_t *leases[MAX_CONNS];
    struct conns seen = {0, {0}};
    for (int i = 0; i < c->n; i++) {
        assert_ok(pool_checkout(&leases[i], pool, 0)); /* idle ones: no connect */
        PGconn *conn = native(leases[i]);
        int pid = PQbackendPID(conn);
        if (!has_pid(c, pid)) fail_msg("the parent's pool hands out backend %d, not its own", pid);
        if (has_pid(&seen, pid)) fail_msg("backend %d handed out twice", pid);
        seen.pids[seen.n++] = pid;
        if (PQstatus(conn) != CONNECTION_OK) fail_msg("backend %d: %s", pid, PQerrorMessage(conn));
        assert_int_equal(backend_pid(leases[i]), pid);
        assert_int_equal(query_int(conn, "SELECT 1"), 1);
    }
    for (int i = 0; i < c->n; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t after = stats_of(pool);
    assert_int_equal(after.opened_total, before.opened_total);
    assert_int_equal(after.closed_total, before.closed_total);
    assert_int_equal(after.idle, c->n);
}

/* The end of most tests: the parent is unharmed, its pool closes all its sessions, and the
 * monitor goes. */
static void end_unharmed(PGconn *monitor, pool_t *pool, const char *app, const struct conns *c) {
    assert_unharmed(monitor, pool, app, c);
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- checks inside a child */

static pool_stats_t child_stats(pool_t *pool) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = pool_stats_get(pool, &st);
    CHILD_REQUIRE(rc == POOL_OK, "%s: %s", pool_error_name(rc), pool_last_error());
    return st;
}

/* The child's pool before it is used: the parent's history is gone, and the connections it
 * inherited (idle and lent) are counted as dropped. */
static void child_expect_fresh(pool_t *pool, int64_t inherited) {
    pool_stats_t st = child_stats(pool);
    CHILD_REQUIRE(st.checked_out == 0 && st.idle == 0 && st.opening == 0 && st.overflow == 0 &&
                      st.waiting == 0,
                  "gauges in the child: checked_out %lld idle %lld opening %lld overflow %lld "
                  "waiting %lld\n",
                  (long long)st.checked_out, (long long)st.idle, (long long)st.opening,
                  (long long)st.overflow, (long long)st.waiting);
    CHILD_REQUIRE(st.opened_total == 0 && st.closed_total == 0 && st.connect_failures_total == 0 &&
                      st.checkouts_total == 0 && st.timeouts_total == 0 && st.wait_total_us == 0 &&
                      st.wait_max_us == 0,
                  "counters in the child: opened %lld closed %lld connect_failures %lld "
                  "checkouts %lld timeouts %lld wait_total_us %lld wait_max_us %lld\n",
                  (long long)st.opened_total, (long long)st.closed_total,
                  (long long)st.connect_failures_total, (long long)st.checkouts_total,
                  (long long)st.timeouts_total, (long long)st.wait_total_us,
                  (long long)st.wait_max_us);
    CHILD_REQUIRE(st.inherited_total == inherited, "inherited_total %lld, expected %lld\n",
                  (long long)st.inherited_total, (long long)inherited);
}

static PGconn *child_checkout(pool_t *pool, pool_lease_t **lease, int64_t timeout_ms) {
    int rc = pool_checkout(lease, pool, timeout_ms);
    CHILD_REQUIRE(rc == POOL_OK, "pool_checkout: %s: %s\n", pool_error_name(rc), pool_last_error());
    PGconn *conn = pool_lease_native(*lease);
    CHILD_REQUIRE(conn != NULL, "a lease checked out in the child has no connection\n");
    return conn;
}

static void child_query(PGconn *conn, const char *sql, const char *expected) {
    PGresult *r = PQexec(conn, sql);
    CHILD_REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "\"%s\": %s\n", sql,
                  PQerrorMessage(conn));
    CHILD_REQUIRE(strcmp(PQgetvalue(r, 0, 0), expected) == 0, "\"%s\" returned \"%s\", not \"%s\"\n",
                  sql, PQgetvalue(r, 0, 0), expected);
    PQclear(r);
}

/* The child's own session: the server agrees with libpq, TLS is as asked, it answers, and it
 * is none of the parent's. */
static int child_new_backend(PGconn *conn, const struct conns *parent) {
    int pid = PQbackendPID(conn);
    char expected[32];
    snprintf(expected, sizeof expected, "%d", pid);
    child_query(conn, "SELECT pg_backend_pid()", expected);
    CHILD_REQUIRE(!parent || !has_pid(parent, pid), "the child was handed the parent's backend %d\n",
                  pid);
    CHILD_REQUIRE(!!PQsslInUse(conn) == want_ssl(), "sslmode=%s, PQsslInUse() = %d\n", sslmode,
                  PQsslInUse(conn));
    child_query(conn, "SELECT 1", "1");
    return pid;
}

/* A lease lent before the fork is dead in the child: no connection, cannot be invalidated. */
static void child_expect_dead_lease(pool_lease_t *inherited) {
    CHILD_REQUIRE(pool_lease_native(inherited) == NULL,
                  "pool_lease_native() of an inherited lease is the parent's connection\n");
    int rc = pool_invalidate(inherited);
    CHILD_REQUIRE(rc == POOL_EFORKED, "pool_invalidate() of an inherited lease: %s\n",
                  pool_error_name(rc));
}

/* Checks in a lease lent before the fork: accepted once, refused the second time. */
static void child_return_dead_lease(pool_lease_t *inherited) {
    int rc = pool_checkin(inherited);
    CHILD_REQUIRE(rc == POOL_OK, "checkin of an inherited lease: %s: %s\n", pool_error_name(rc),
                  pool_last_error());
    rc = pool_checkin(inherited);
    CHILD_REQUIRE(rc == POOL_ESTATE, "second checkin of an inherited lease: %s\n",
                  pool_error_name(rc));
}

/* ---------------------------------------------------------------- threads */



/* A query that runs while the test forks, on one connection: it waits for an advisory lock
 * the monitor holds, so it is still running when the child is done, however slow the child
 * (a sanitizer build, a busy machine), and ends when the test releases the lock. */
struct slow_query {
    PGconn *conn;
    const char *sql;
    pthread_t thread;
    int64_t done; /* atomic */
    char value[64];
    char error[512];
};

static void *slow_query_run(void *p) {
    struct slow_query *q = p;
    PGresult *r = PQexec(q->conn, q->sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 2)
        snprintf(q->value, sizeof q->value, "%s", PQgetvalue(r, 0, 1));
    else
        snprintf(q->error, sizeof q->error, "%s", PQerrorMessage(q->conn));
    PQclear(r);
    atomic_set(&q->done, 1);
    return NULL;
}

struct active_arg {
    PGconn *monitor;
    int pid;
};

static int query_is_active(void *p) {
    struct active_arg *a = p;
    return backend_is_active(a->monitor, a->pid, "pg_advisory_xact_lock");
}

/* Starts the query and returns once the server runs it. */
static void start_slow_query(struct slow_query *q, PGconn *monitor, PGconn *conn, const char *sql) {
    memset(q, 0, sizeof *q);
    q->conn = conn;
    q->sql = sql;
    if (pthread_create(&q->thread, NULL, slow_query_run, q) != 0) fail_msg("pthread_create");
    struct active_arg a = {monitor, PQbackendPID(conn)};
    if (!await_true(query_is_active, &a, SERVER_WAIT_MS)) fail_msg("the query never started");
    if (atomic_get(&q->done)) fail_msg("the query ended already: \"%s\"", q->error);
}

/* The query returned its own result: not cancelled, not broken, not someone else's. */
static void assert_slow_query_answered(struct slow_query *q) {
    pthread_join(q->thread, NULL);
    if (q->error[0]) fail_msg("the parent's query in flight at the fork failed: %s", q->error);
    assert_string_equal(q->value, "tag");
    assert_int_equal(PQstatus(q->conn), CONNECTION_OK);
    assert_int_equal(PQtransactionStatus(q->conn), PQTRANS_IDLE);
}

/* ================================================================ 1. idle connections */

struct idle_fork {
    pool_t *pool;
    struct conns parent;
};

static int child_does_nothing(void *arg) {
    (void)arg;
    return 0;
}

static int child_disposes(void *arg) {
    struct idle_fork *f = arg;
    int rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_OK, "pool_dispose: %s: %s\n", pool_error_name(rc), pool_last_error());
    return 0;
}

static int child_checks_out(void *arg) {
    struct idle_fork *f = arg;
    child_expect_fresh(f->pool, f->parent.n);
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    child_new_backend(conn, &f->parent);
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.opened_total == 1 && st.checked_out == 1,
                  "opened_total %lld checked_out %lld\n", (long long)st.opened_total,
                  (long long)st.checked_out);
    return 0; /* with the lease out and the pool alive */
}

/* The parent holds three idle connections and forks; the child does `body`, ending with `end`. */
static void idle_connections_survive(const char *base, int (*body)(void *), enum child_end end) {
    char app[64];
    app_name(app, sizeof app, base);
    PGconn *monitor = monitor_connect();
    struct idle_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=3 max_overflow=0");
    open_idle(f.pool, 3, &f.parent);
    await_sessions(monitor, app, 3);

    struct outcome o = run_child(VIA_FORK, body, &f, end);
    assert_child_ok(&o, base);
    assert_unharmed(monitor, f.pool, app, &f.parent);
    assert_int_equal(stats_of(f.pool).opened_total, 3);

    assert_ok(pool_dispose(f.pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

static void a_child_that_exits_leaves_the_parents_idle_connections_alone(void **state) {
    (void)state;
    idle_connections_survive("fk_idle_exit", child_does_nothing, END_EXIT);
}

static void a_child_that_calls__exit_leaves_the_parents_idle_connections_alone(void **state) {
    (void)state;
    idle_connections_survive("fk_idle__exit", child_does_nothing, END__EXIT);
}

static void a_child_that_disposes_the_pool_leaves_the_parents_idle_connections_alone(void **state) {
    (void)state;
    idle_connections_survive("fk_idle_dispose", child_disposes, END_EXIT);
}

static void a_child_that_checks_out_gets_a_new_backend_and_leaves_the_parents_alone(void **state) {
    (void)state;
    idle_connections_survive("fk_idle_checkout", child_checks_out, END_EXIT);
}

/* ================================================================ 2, 15. a lease out at fork */

struct busy_fork {
    pool_t *pool;
    struct conns parent; /* every backend of the parent's pool, the lent one included */
    pool_lease_t *busy;  /* lent at the fork (in some tests its query is running) */
    int inherited;       /* connections the child inherits: idle and lent */
};

static int child_returns_the_busy_lease(void *arg) {
    struct busy_fork *f = arg;
    child_expect_dead_lease(f->busy);
    child_expect_fresh(f->pool, f->inherited);
    child_return_dead_lease(f->busy);
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.checked_out == 0 && st.closed_total == 0 && st.inherited_total == f->inherited,
                  "after the checkin: checked_out %lld closed_total %lld inherited_total %lld\n",
                  (long long)st.checked_out, (long long)st.closed_total,
                  (long long)st.inherited_total);
    return 0;
}

static int child_disposes_under_the_busy_lease(void *arg) {
    struct busy_fork *f = arg;
    int rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_EBUSY, "pool_dispose with an inherited lease out: %s: %s\n",
                  pool_error_name(rc), pool_last_error());
    CHILD_REQUIRE(strstr(pool_last_error(), "1 lease") != NULL, "message: \"%s\"\n",
                  pool_last_error());
    return 0; /* the inherited lease stays out */
}

static int child_disposes_then_returns_the_busy_lease(void *arg) {
    struct busy_fork *f = arg;
    CHILD_REQUIRE(pool_lease_native(f->busy) == NULL, "the inherited lease has a connection\n");
    int rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_EBUSY, "pool_dispose with an inherited lease out: %s: %s\n",
                  pool_error_name(rc), pool_last_error());
    rc = pool_checkin(f->busy); /* the last lease: releases the pool */
    CHILD_REQUIRE(rc == POOL_OK, "checkin after dispose: %s: %s\n", pool_error_name(rc),
                  pool_last_error());
    return 0;
}

/* Three connections; one of them runs a query held by an advisory lock in a parent thread
 * while the test thread forks. The child does `body`. The query must return 'tag'. */
static void a_query_in_flight_survives(const char *base, int (*body)(void *), int must_overlap) {
    char app[64];
    app_name(app, sizeof app, base);
    PGconn *monitor = monitor_connect();
    struct busy_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=3 max_overflow=0");
    open_idle(f.pool, 3, &f.parent);
    f.busy = checkout(f.pool);
    f.inherited = 3;

    struct slow_query q;
    PQclear(PQexec(monitor, "SELECT pg_advisory_lock(4242)"));
    start_slow_query(&q, monitor, native(f.busy), "SELECT pg_advisory_xact_lock(4242), 'tag'");
    struct outcome o = run_child(VIA_FORK, body, &f, END_EXIT);
    int overlapped = !atomic_get(&q.done);
    PQclear(PQexec(monitor, "SELECT pg_advisory_unlock(4242)"));
    assert_child_ok(&o, base);
    assert_slow_query_answered(&q);
    /* the child acted while the query ran: else this test proved nothing */
    if (must_overlap && !overlapped) fail_msg("the child ended after the parent's query");

    assert_ok(pool_checkin(f.busy));
    end_unharmed(monitor, f.pool, app, &f.parent);
}

static void a_lease_out_at_fork_is_dead_in_the_child_and_its_checkin_harms_nothing(void **state) {
    (void)state;
    a_query_in_flight_survives("fk_busy_checkin", child_returns_the_busy_lease, 0);
}

static void a_child_disposing_the_pool_under_a_running_query_harms_nothing(void **state) {
    (void)state;
    a_query_in_flight_survives("fk_busy_dispose", child_disposes_under_the_busy_lease, 0);
}

/* 15: destroying the pool, and the last checkin that releases it, send no cancel request. */
static void a_child_disposing_the_pool_never_cancels_the_parents_query(void **state) {
    (void)state;
    a_query_in_flight_survives("fk_cancel_guard", child_disposes_then_returns_the_busy_lease, 1);
}

/* ================================================================ 3. the child uses the pool */

static int child_uses_the_pool(void *arg) {
    struct busy_fork *f = arg;
    child_expect_fresh(f->pool, f->inherited); /* three idle, one lent */
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    int pid = child_new_backend(conn, &f->parent);
    child_say("newpid=%d\n", pid);
    PGresult *r = PQexec(conn, "CREATE TEMP TABLE fork_rows (x int); "
                               "INSERT INTO fork_rows SELECT generate_series(1, 10)");
    CHILD_REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK, "%s\n", PQerrorMessage(conn));
    PQclear(r);
    child_query(conn, "SELECT sum(x) FROM fork_rows", "55");
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.opened_total == 1 && st.checkouts_total == 1 && st.checked_out == 1 &&
                      st.idle == 0 && st.closed_total == 0 && st.inherited_total == f->inherited,
                  "while out: opened %lld checkouts %lld checked_out %lld idle %lld closed %lld "
                  "inherited %lld\n",
                  (long long)st.opened_total, (long long)st.checkouts_total,
                  (long long)st.checked_out, (long long)st.idle, (long long)st.closed_total,
                  (long long)st.inherited_total);
    int rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    st = child_stats(f->pool);
    CHILD_REQUIRE(st.idle == 1 && st.checked_out == 0 && st.closed_total == 0,
                  "after checkin: idle %lld checked_out %lld closed %lld\n", (long long)st.idle,
                  (long long)st.checked_out, (long long)st.closed_total);

    /* the child's connection is pooled in the child */
    conn = child_checkout(f->pool, &lease, 0);
    CHILD_REQUIRE(PQbackendPID(conn) == pid, "the child's second checkout got backend %d, not %d\n",
                  PQbackendPID(conn), pid);
    child_query(conn, "SELECT count(*) FROM fork_rows", "10");
    rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));

    child_expect_dead_lease(f->busy);
    child_return_dead_lease(f->busy);
    rc = pool_dispose(f->pool); /* closes the child's own connection only */
    CHILD_REQUIRE(rc == POOL_OK, "pool_dispose: %s: %s\n", pool_error_name(rc), pool_last_error());
    return 0;
}

static void a_child_opens_its_own_connections_and_counts_the_inherited_ones(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "fk_child_uses");
    PGconn *monitor = monitor_connect();
    struct busy_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=4 max_overflow=0");
    open_idle(f.pool, 4, &f.parent);
    f.busy = checkout(f.pool); /* lent, not in use */
    f.inherited = 4;
    int busy_pid = backend_pid(f.busy);

    struct outcome o = run_child(VIA_FORK, child_uses_the_pool, &f, END_EXIT);
    assert_child_ok(&o, "child uses the pool");
    int child_pid = (int)child_said(&o, "newpid");
    assert_false(has_pid(&f.parent, child_pid));
    /* the child's dispose closed its own session; the parent's pool is untouched */
    await_backend_gone(monitor, child_pid);
    pool_stats_t st = stats_of(f.pool);
    assert_int_equal(st.inherited_total, 0);
    assert_int_equal(st.opened_total, 4);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(backend_pid(f.busy), busy_pid);
    assert_ok(pool_checkin(f.busy));

    end_unharmed(monitor, f.pool, app, &f.parent);
}

/* ================================================================ 4. concurrent hammer */

#define HAMMER_THREADS 2
#define HAMMER_MS 1000

struct hammer {
    pool_t *pool;
    char side; /* 'P' parent, 'C' child */
    const struct conns *parent;
    int64_t stop;        /* atomic: the parent's threads run until told */
    int64_t until_ms;    /* the child's threads run until then */
    int64_t next_thread; /* atomic */
    int64_t queries;     /* atomic */
    int64_t wrong;       /* atomic: a reply that was not this query's */
    struct report rep;
};

static void *hammer_worker(void *p) {
    struct hammer *h = p;
    int me = (int)__atomic_fetch_add(&h->next_thread, 1, __ATOMIC_ACQ_REL);
    for (long n = 0;; n++) {
        if (h->side == 'P' ? atomic_get(&h->stop) != 0 : now_ms() >= h->until_ms) break;
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, h->pool, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            report_failure(&h->rep, "%c: checkout: %s: %s", h->side, pool_error_name(rc),
                           pool_last_error());
            break;
        }
        PGconn *conn = pool_lease_native(lease);
        int pid = conn ? PQbackendPID(conn) : 0;
        if (!conn)
            report_failure(&h->rep, "%c: a lease without a connection", h->side);
        else if ((h->side == 'P') != has_pid(h->parent, pid))
            report_failure(&h->rep, "%c: got backend %d, %s the parent's", h->side, pid,
                           h->side == 'P' ? "not one of" : "one of");
        if (conn) {
            char tag[64], sql[96];
            snprintf(tag, sizeof tag, "%c%d_%ld", h->side, me, n);
            snprintf(sql, sizeof sql, "SELECT '%s'::text", tag);
            PGresult *r = PQexec(conn, sql);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
                report_failure(&h->rep, "%c: \"%s\": %s", h->side, sql, PQerrorMessage(conn));
                pool_invalidate(lease);
            } else if (strcmp(PQgetvalue(r, 0, 0), tag) != 0) {
                atomic_inc(&h->wrong);
                report_failure(&h->rep, "%c: sent %s, got %s", h->side, tag, PQgetvalue(r, 0, 0));
            }
            PQclear(r);
            atomic_inc(&h->queries);
        }
        rc = pool_checkin(lease);
        if (rc != POOL_OK)
            report_failure(&h->rep, "%c: checkin: %s: %s", h->side, pool_error_name(rc),
                           pool_last_error());
    }
    return NULL;
}

static int child_hammers(void *arg) {
    const struct hammer *parent_side = arg;
    struct hammer h; /* the parent's may have been locked at the fork: a fresh one */
    memset(&h, 0, sizeof h);
    report_init(&h.rep);
    h.pool = parent_side->pool;
    h.side = 'C';
    h.parent = parent_side->parent;
    h.until_ms = now_ms() + HAMMER_MS;
#ifdef __SANITIZE_THREAD__
    /* TSan cannot start threads in a child of a multi-threaded process (it reuses the
     * vanished threads' ids and dies): there the child hammers from its one thread. */
    hammer_worker(&h);
#else
    pthread_t threads[HAMMER_THREADS];
    CHILD_REQUIRE(start_threads(threads, HAMMER_THREADS, hammer_worker, &h), "pthread_create\n");
    join_threads(threads, HAMMER_THREADS);
#endif
    child_say("child_queries=%lld\n", (long long)h.queries);
    CHILD_REQUIRE(h.rep.failures == 0, "%d failure(s), %lld wrong result(s); first: %s\n",
                  h.rep.failures, (long long)h.wrong, h.rep.first);
    CHILD_REQUIRE(h.queries > 0, "the child ran no query\n");
    pool_stats_t st = child_stats(h.pool);
    CHILD_REQUIRE(st.inherited_total == 2 && st.opened_total >= 1 && st.opened_total <= 2 &&
                      st.checked_out == 0,
                  "inherited %lld opened %lld checked_out %lld\n", (long long)st.inherited_total,
                  (long long)st.opened_total, (long long)st.checked_out);
    return 0;
}

static int parent_ran_queries(void *p) {
    struct hammer *h = p;
    return atomic_get(&h->queries) >= 20 || report_failures(&h->rep) > 0;
}

static void parent_and_child_hammering_one_pool_never_see_each_others_results(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "fk_hammer");
    PGconn *monitor = monitor_connect();
    static struct hammer h;
    memset(&h, 0, sizeof h);
    report_init(&h.rep);
    struct conns parent = {0, {0}};
    h.pool = fork_pool(app, "pool_size=2 max_overflow=0");
    open_idle(h.pool, 2, &parent);
    h.side = 'P';
    h.parent = &parent;

    pthread_t threads[HAMMER_THREADS];
    if (!start_threads(threads, HAMMER_THREADS, hammer_worker, &h)) fail_msg("pthread_create");
    await_true(parent_ran_queries, &h, SERVER_WAIT_MS);
    int64_t at_fork = atomic_get(&h.queries);
    /* the child runs for HAMMER_MS, and the parent's threads all that time */
    struct outcome o = run_child(VIA_FORK, child_hammers, &h, END_EXIT);
    int64_t during_child = atomic_get(&h.queries) - at_fork;
    atomic_set(&h.stop, 1);
    join_threads(threads, HAMMER_THREADS);

    assert_child_ok(&o, "the child's hammer");
    if (h.rep.failures)
        fail_msg("parent: %d failure(s), %lld wrong result(s); first: %s", h.rep.failures,
                 (long long)h.wrong, h.rep.first);
    assert_int_equal(h.wrong, 0);
    assert_true(during_child > 20);
    print_message("      parent %lld queries, child %lld, all with their own results\n",
                  (long long)h.queries, child_said(&o, "child_queries"));
    assert_no_failures(&h.rep);
    assert_int_equal(stats_of(h.pool).opened_total, 2);
    end_unharmed(monitor, h.pool, app, &parent);
}

/* ================================================================ 5. a waiting checkout */

struct waiter {
    pool_t *pool;
    int rc;
    int pid;
    pool_lease_t *lease;
};

static void *wait_for_checkout(void *p) {
    struct waiter *w = p;
    w->rc = pool_checkout(&w->lease, w->pool, 20000);
    if (w->rc == POOL_OK && pool_lease_native(w->lease))
        w->pid = PQbackendPID(pool_lease_native(w->lease));
    return NULL;
}

struct exhausted_fork {
    pool_t *pool;
    struct conns parent;
    pool_lease_t *held;
};

static int child_uses_an_exhausted_pool(void *arg) {
    struct exhausted_fork *f = arg;
    child_expect_fresh(f->pool, 1); /* waiting 0 among them: the waiter is the parent's */
    pool_lease_t *lease, *again;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    int pid = child_new_backend(conn, &f->parent);
    /* pool_size=1 holds in the child too */
    pool_lease_t *extra = NULL;
    int rc = pool_checkout(&extra, f->pool, 0);
    CHILD_REQUIRE(rc == POOL_ETIMEDOUT, "a second checkout of a full pool: %s\n", pool_error_name(rc));
    rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    conn = child_checkout(f->pool, &again, 0);
    CHILD_REQUIRE(PQbackendPID(conn) == pid, "not the child's pooled backend\n");
    child_query(conn, "SELECT 1", "1");
    rc = pool_checkin(again);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    child_expect_dead_lease(f->held);
    child_return_dead_lease(f->held);
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.waiting == 0 && st.idle == 1 && st.opened_total == 1 &&
                      st.checkouts_total == 2 && st.timeouts_total == 1,
                  "waiting %lld idle %lld opened %lld checkouts %lld timeouts %lld\n",
                  (long long)st.waiting, (long long)st.idle, (long long)st.opened_total,
                  (long long)st.checkouts_total, (long long)st.timeouts_total);
    return 0;
}

static void a_fork_during_a_waiting_checkout_leaves_both_sides_working(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "fk_waiter");
    PGconn *monitor = monitor_connect();
    struct exhausted_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=1 max_overflow=0");
    open_idle(f.pool, 1, &f.parent);
    f.held = checkout(f.pool);

    struct waiter w = {f.pool, POOL_ERROR, 0, NULL};
    pthread_t thread;
    if (pthread_create(&thread, NULL, wait_for_checkout, &w) != 0) fail_msg("pthread_create");
    if (!await_waiting(f.pool, 1, SERVER_WAIT_MS)) fail_msg("the checkout never waited");

    struct outcome o = run_child(VIA_FORK, child_uses_an_exhausted_pool, &f, END_EXIT);
    pool_stats_t st = stats_of(f.pool);
    assert_int_equal(st.waiting, 1); /* still waiting: the child changed nothing here */
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(backend_pid(f.held), f.parent.pids[0]);
    assert_ok(pool_checkin(f.held)); /* handed to the waiter */
    pthread_join(thread, NULL);
    assert_child_ok(&o, "child of an exhausted pool");
    assert_int_equal(w.rc, POOL_OK);
    assert_int_equal(w.pid, f.parent.pids[0]);
    assert_int_equal(query_int(native(w.lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(w.lease));
    end_unharmed(monitor, f.pool, app, &f.parent);
}

/* ================================================================ 6. busy locks */

#define LOCK_THREADS 4
#define LOCK_FORKS 50

struct lock_hammer {
    pool_t *pool;
    const char *conninfo; /* for the create/dispose thread */
    struct conns parent;
    int64_t stop;
    int64_t rounds, creates;
    struct report rep;
};

static void *lock_worker(void *p) {
    struct lock_hammer *h = p;
    while (!atomic_get(&h->stop)) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, h->pool, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            report_failure(&h->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            break;
        }
        if (!pool_lease_native(lease)) report_failure(&h->rep, "a lease without a connection");
        rc = pool_checkin(lease);
        if (rc != POOL_OK) report_failure(&h->rep, "checkin: %s", pool_error_name(rc));
        atomic_inc(&h->rounds);
    }
    return NULL;
}

static void *create_dispose_worker(void *p) {
    struct lock_hammer *h = p;
    while (!atomic_get(&h->stop)) {
        pool_t *pool = NULL;
        int rc = pool_create(&pool, h->conninfo, "pool_size=2");
        if (rc != POOL_OK) {
            report_failure(&h->rep, "pool_create: %s: %s", pool_error_name(rc), pool_last_error());
            break;
        }
        pool_stats_t st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        if (pool_stats_get(pool, &st) != POOL_OK) report_failure(&h->rep, "pool_stats_get");
        rc = pool_dispose(pool);
        if (rc != POOL_OK) report_failure(&h->rep, "pool_dispose: %s", pool_error_name(rc));
        atomic_inc(&h->creates);
    }
    return NULL;
}

static int child_of_busy_locks(void *arg) {
    struct lock_hammer *h = arg;
    pool_lease_t *lease;
    PGconn *conn = child_checkout(h->pool, &lease, 5000);
    child_new_backend(conn, &h->parent);
    pool_stats_t st = child_stats(h->pool);
    CHILD_REQUIRE(st.opened_total == 1, "opened %lld\n", (long long)st.opened_total);
    child_say("inherited=%lld\n", (long long)st.inherited_total); /* judged by the parent */
    return 0;
}

/* Under ASan the test is skipped (skip_fork_storm_under_asan, util.h); the create/dispose
 * thread, which allocates all the time, is left out of that build too. */
#ifdef __SANITIZE_ADDRESS__
#define CREATE_DISPOSE_THREADS 0
#else
#define CREATE_DISPOSE_THREADS 1
#endif

static int lock_progress(void *p) {
    struct lock_hammer *h = p;
    return (atomic_get(&h->rounds) > 100 &&
            (CREATE_DISPOSE_THREADS == 0 || atomic_get(&h->creates) > 10)) ||
           report_failures(&h->rep) > 0;
}

static void forks_while_threads_hammer_the_pool_lock_and_create_pools_never_hang(void **state) {
    (void)state;
    skip_under_valgrind();
    skip_fork_storm_under_asan();
    char app[64], conninfo[256];
    app_name(app, sizeof app, "fk_locks");
    pool_conninfo(conninfo, sizeof conninfo, app);
    PGconn *monitor = monitor_connect();
    static struct lock_hammer h;
    memset(&h, 0, sizeof h);
    report_init(&h.rep);
    h.conninfo = conninfo;
    h.pool = fork_pool(app, "pool_size=4 max_overflow=0");
    open_idle(h.pool, LOCK_THREADS, &h.parent); /* every worker always finds one idle */

    pthread_t threads[LOCK_THREADS + 1];
    if (!start_threads(threads, LOCK_THREADS, lock_worker, &h)) fail_msg("pthread_create");
    if (CREATE_DISPOSE_THREADS &&
        pthread_create(&threads[LOCK_THREADS], NULL, create_dispose_worker, &h) != 0)
        fail_msg("pthread_create");
    await_true(lock_progress, &h, SERVER_WAIT_MS);

    int64_t start = now_ms();
    int failed = 0;
    struct outcome first;
    int forks = 0, miscounted = 0;
    long long first_count = 0;
    while (forks < LOCK_FORKS && failed < 3) { /* a broken library fails fast */
        struct outcome o = run_child(VIA_FORK, child_of_busy_locks, &h, END_EXIT);
        forks++;
        if (!child_ok(&o)) {
            if (failed++ == 0) first = o;
        } else if (child_said(&o, "inherited") != LOCK_THREADS && miscounted++ == 0) {
            first_count = child_said(&o, "inherited");
        }
    }
    int64_t took = now_ms() - start;
    atomic_set(&h.stop, 1);
    join_threads(threads, LOCK_THREADS + CREATE_DISPOSE_THREADS);

    if (failed) {
        char d[96];
        fail_msg("%d of %d children failed; the first %s: %s", failed, forks,
                 describe(&first, d, sizeof d), first.out);
    }
    print_message("      %d forks in %lld ms, %lld checkouts and %lld creates meanwhile\n",
                  LOCK_FORKS, (long long)took, (long long)h.rounds, (long long)h.creates);
    assert_no_failures(&h.rep);
    assert_int_equal(stats_of(h.pool).opened_total, LOCK_THREADS);
    assert_unharmed(monitor, h.pool, app, &h.parent);
    /* every child inherited all four connections, whatever their threads were doing */
    if (miscounted)
        fail_msg("inherited_total was not %d in %d of %d children (the first said %lld)",
                 LOCK_THREADS, miscounted, forks, first_count);
    assert_ok(pool_dispose(h.pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ================================================================ 7. fork storm */

#define STORM_FORKS 200
#define STORM_THREADS 4
#define STORM_IN_FLIGHT 4 /* children alive at once */

struct storm {
    pool_t *churn; /* connects and closes all the time */
    pool_t *still; /* three idle connections all along: every child inherits them */
    struct conns still_pids;
    int64_t stop, rounds, wrong, invalidated;
    struct report rep;
    int64_t next_thread;
};

static void *storm_worker(void *p) {
    struct storm *s = p;
    int me = (int)__atomic_fetch_add(&s->next_thread, 1, __ATOMIC_ACQ_REL);
    for (long n = 0; !atomic_get(&s->stop); n++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, s->churn, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            break;
        }
        PGconn *conn = pool_lease_native(lease);
        if (!conn) {
            report_failure(&s->rep, "a lease without a connection");
        } else {
            char tag[64], sql[96];
            snprintf(tag, sizeof tag, "T%d_%ld", me, n);
            snprintf(sql, sizeof sql, "SELECT '%s'::text", tag);
            PGresult *r = PQexec(conn, sql);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
                report_failure(&s->rep, "\"%s\" on backend %d: %s", sql, PQbackendPID(conn),
                               PQerrorMessage(conn));
            } else if (strcmp(PQgetvalue(r, 0, 0), tag) != 0) {
                atomic_inc(&s->wrong);
                report_failure(&s->rep, "sent %s, got %s", tag, PQgetvalue(r, 0, 0));
            }
            PQclear(r);
        }
        /* some connections are dropped, so that connects keep happening */
        if (n % 3 == 0) {
            pool_invalidate(lease);
            atomic_inc(&s->invalidated);
        }
        rc = pool_checkin(lease);
        if (rc != POOL_OK) report_failure(&s->rep, "checkin: %s", pool_error_name(rc));
        atomic_inc(&s->rounds);
    }
    return NULL;
}

static int child_of_the_storm(void *arg) {
    struct storm *s = arg;
    /* the still pool drops its three inherited connections here: that must not reach them */
    pool_stats_t st = child_stats(s->still);
    CHILD_REQUIRE(st.inherited_total == 3 && st.idle == 0, "still pool: inherited %lld idle %lld\n",
                  (long long)st.inherited_total, (long long)st.idle);
    pool_lease_t *lease;
    PGconn *conn = child_checkout(s->churn, &lease, 4000);
    child_new_backend(conn, &s->still_pids);
    st = child_stats(s->churn);
    CHILD_REQUIRE(st.opened_total == 1 && st.checkouts_total == 1,
                  "opened %lld checkouts %lld: not a new connection\n", (long long)st.opened_total,
                  (long long)st.checkouts_total);
    return 0;
}

static int storm_progress(void *p) {
    struct storm *s = p;
    return atomic_get(&s->rounds) >= 20 || report_failures(&s->rep) > 0;
}

static void a_storm_of_forks_during_connects_has_no_hang_no_failure_and_no_harm(void **state) {
    (void)state;
    skip_under_valgrind();
    skip_fork_storm_under_asan();
    char churn_app[64], still_app[64];
    app_name(churn_app, sizeof churn_app, "fk_storm");
    app_name(still_app, sizeof still_app, "fk_still");
    PGconn *monitor = monitor_connect();
    static struct storm s;
    memset(&s, 0, sizeof s);
    report_init(&s.rep);
    s.churn = fork_pool(churn_app, "pool_size=2 max_overflow=6");
    s.still = fork_pool(still_app, "pool_size=3 max_overflow=0");
    open_idle(s.still, 3, &s.still_pids);

    pthread_t threads[STORM_THREADS];
    if (!start_threads(threads, STORM_THREADS, storm_worker, &s)) fail_msg("pthread_create");
    await_true(storm_progress, &s, SERVER_WAIT_MS);

    int64_t start = now_ms();
    int hangs = 0, failures = 0;
    struct outcome first;
    int64_t connects_before = stats_of(s.churn).opened_total;
    /* a few children at a time, oldest reaped first: the storm stays short */
    struct child live[STORM_IN_FLIGHT];
    int forks = 0;
    for (int i = 0; i < forks + STORM_IN_FLIGHT; i++) {
        struct child *slot = &live[i % STORM_IN_FLIGHT];
        if (i >= STORM_IN_FLIGHT) {
            struct outcome o = finish_child(*slot);
            if (!child_ok(&o)) {
                if (child_hung(&o)) hangs++;
                else failures++;
                if (hangs + failures == 1) first = o;
            }
        }
        if (i == forks && forks < STORM_FORKS && hangs + failures < 3) { /* fail fast */
            *slot = start_child(VIA_FORK, STORM_WATCHDOG_S, child_of_the_storm, &s, END_EXIT);
            forks++;
        }
    }
    int64_t took = now_ms() - start;
    int64_t connects = stats_of(s.churn).opened_total - connects_before;
    atomic_set(&s.stop, 1);
    join_threads(threads, STORM_THREADS);

    print_message("      %d forks in %lld ms; meanwhile the parent did %lld rounds, %lld connects "
                  "and %lld invalidations; %d children hung, %d failed\n",
                  forks, (long long)took, (long long)s.rounds, (long long)connects,
                  (long long)s.invalidated, hangs, failures);
    if (hangs || failures) {
        char d[96];
        fail_msg("%d children hung and %d failed; the first %s: %s", hangs, failures,
                 describe(&first, d, sizeof d), first.out);
    }
    assert_int_equal(s.wrong, 0);
    assert_no_failures(&s.rep);
    assert_true(connects > 0); /* the forks did meet connects */

    /* the parent's sessions: the three that every child inherited, and whatever the churning
     * pool keeps idle now */
    assert_unharmed(monitor, s.still, still_app, &s.still_pids);
    struct conns kept = {0, {0}};
    pool_stats_t st = stats_of(s.churn);
    assert_int_equal(st.checked_out, 0);
    pool_lease_t *leases[MAX_CONNS];
    for (int i = 0; i < st.idle; i++) {
        assert_ok(pool_checkout(&leases[i], s.churn, 0));
        add_pid(&kept, PQbackendPID(native(leases[i])));
    }
    for (int i = 0; i < st.idle; i++) assert_ok(pool_checkin(leases[i]));
    assert_unharmed(monitor, s.churn, churn_app, &kept);

    assert_ok(pool_dispose(s.churn));
    assert_ok(pool_dispose(s.still));
    await_sessions(monitor, churn_app, 0);
    await_sessions(monitor, still_app, 0);
    PQfinish(monitor);
}

/* ================================================================ 8. exit with pools alive */

struct alive_fork {
    pool_t *idle_pool, *full_pool;
    struct conns idle_pids, full_pids;
};

static int child_exits_with_everything_open(void *arg) {
    struct alive_fork *f = arg;
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->idle_pool, &lease, SERVER_WAIT_MS);
    child_new_backend(conn, &f->idle_pids);
    /* nothing checked in, nothing disposed; the full pool is never touched */
    return 0;
}

static void a_child_exiting_with_pools_alive_neither_hangs_nor_harms(void **state) {
    (void)state;
    char idle_app[64], full_app[64];
    app_name(idle_app, sizeof idle_app, "fk_alive_idle");
    app_name(full_app, sizeof full_app, "fk_alive_full");
    PGconn *monitor = monitor_connect();
    struct alive_fork f;
    memset(&f, 0, sizeof f);
    f.idle_pool = fork_pool(idle_app, "pool_size=2 max_overflow=0");
    open_idle(f.idle_pool, 2, &f.idle_pids);
    f.full_pool = fork_pool(full_app, "pool_size=1 max_overflow=0");
    open_idle(f.full_pool, 1, &f.full_pids);
    pool_lease_t *held = checkout(f.full_pool);
    /* a waiter at fork: its condition variable is in the child too */
    struct waiter w = {f.full_pool, POOL_ERROR, 0, NULL};
    pthread_t thread;
    if (pthread_create(&thread, NULL, wait_for_checkout, &w) != 0) fail_msg("pthread_create");
    if (!await_waiting(f.full_pool, 1, SERVER_WAIT_MS)) fail_msg("the checkout never waited");

    struct outcome exit_o = run_child(VIA_FORK, child_exits_with_everything_open, &f, END_EXIT);
    struct outcome idle_o = run_child(VIA_FORK, child_does_nothing, &f, END_EXIT);
    assert_ok(pool_checkin(held));
    pthread_join(thread, NULL);
    assert_child_ok(&exit_o, "a child using a pool and exiting");
    assert_child_ok(&idle_o, "a child exiting at once");
    assert_int_equal(w.rc, POOL_OK);
    assert_int_equal(w.pid, f.full_pids.pids[0]);
    assert_ok(pool_checkin(w.lease));

    assert_unharmed(monitor, f.idle_pool, idle_app, &f.idle_pids);
    assert_unharmed(monitor, f.full_pool, full_app, &f.full_pids);
    assert_ok(pool_dispose(f.idle_pool));
    assert_ok(pool_dispose(f.full_pool));
    await_sessions(monitor, idle_app, 0);
    await_sessions(monitor, full_app, 0);
    PQfinish(monitor);
}

/* ================================================================ 9. raw forks */

static int child_of_raw_fork_looks_at_the_lease_first(void *arg) {
    struct busy_fork *f = arg;
    /* the first thing the child does: no pool call has seen the fork yet */
    child_expect_dead_lease(f->busy);
    child_expect_fresh(f->pool, f->inherited);
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    child_new_backend(conn, &f->parent);
    int rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    child_return_dead_lease(f->busy);
    return 0;
}

static int child_of_raw_fork_checks_out_first(void *arg) {
    struct busy_fork *f = arg;
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    child_new_backend(conn, &f->parent);
    child_expect_dead_lease(f->busy);
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.opened_total == 1 && st.checked_out == 1 && st.inherited_total == f->inherited,
                  "opened %lld checked_out %lld inherited %lld\n", (long long)st.opened_total,
                  (long long)st.checked_out, (long long)st.inherited_total);
    child_return_dead_lease(f->busy);
    return 0; /* the child's own lease stays out */
}

/* From a single-threaded parent: no atfork handler runs, so the child's first call into the
 * library has to notice the new process. */
static void a_raw_fork_is_detected_at_the_childs_first_call(enum fork_kind kind) {
    char app[64];
    app_name(app, sizeof app, kind == VIA__FORK ? "fk_raw__Fork" : "fk_raw_sysfork");
    PGconn *monitor = monitor_connect();
    struct busy_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=3 max_overflow=0");
    open_idle(f.pool, 3, &f.parent);
    f.busy = checkout(f.pool);
    f.inherited = 3;
    int busy_pid = backend_pid(f.busy);

    static const struct {
        int (*body)(void *);
        const char *what;
    } children[] = {
        {child_of_raw_fork_looks_at_the_lease_first, "looking at the inherited lease first"},
        {child_of_raw_fork_checks_out_first, "checking out first"},
    };
    for (size_t i = 0; i < sizeof children / sizeof children[0]; i++) {
        struct outcome o = run_child(kind, children[i].body, &f, END_EXIT);
        char what[128];
        snprintf(what, sizeof what, "%s, %s", fork_name(kind), children[i].what);
        assert_child_ok(&o, what);
    }
    assert_int_equal(backend_pid(f.busy), busy_pid);
    assert_ok(pool_checkin(f.busy));
    end_unharmed(monitor, f.pool, app, &f.parent);
}

static void a_child_of__Fork_finds_its_inherited_lease_dead_and_opens_its_own(void **state) {
    (void)state;
    a_raw_fork_is_detected_at_the_childs_first_call(VIA__FORK);
}

static void a_child_of_a_raw_fork_syscall_finds_its_inherited_lease_dead_and_opens_its_own(
    void **state) {
    (void)state;
    a_raw_fork_is_detected_at_the_childs_first_call(VIA_SYS_FORK);
}

/* ================================================================ 10. exec'd children */

/* Runs `ls -l /proc/self/fd` in an exec'd program, through posix_spawn of /bin/sh or through
 * system(), and checks its fds: no socket, and nothing at 3 or above but what this process
 * inherited itself and ls's own directory. Returns 0, or 1 with the reason in why. Uses no
 * cmocka: children call it too. */
static int spawned_program_inherits_nothing(int use_system, char *why, size_t len) {
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, len, "pipe: %s", strerror(errno));
        return 1;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    int rc;
    if (use_system) {
        /* the shell opens the pipe by name (dash redirects only fds 0-9): nothing of ours is
         * inherited on purpose */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "ls -l /proc/self/fd > /proc/%d/fd/%d", (int)getpid(), fds[1]);
        rc = system(cmd);
    } else {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        char *argv[] = {"sh", "-c", "ls -l /proc/self/fd", NULL};
        pid_t pid;
        rc = posix_spawn(&pid, "/bin/sh", &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc == 0) {
            int status;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            rc = status;
        }
    }
    close(fds[1]);
    char out[8192];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof out - 1 && (n = read(fds[0], out + used, sizeof out - 1 - used)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        used += (size_t)n;
    }
    out[used] = 0;
    close(fds[0]);
    if (rc != 0) {
        snprintf(why, len, "%s of ls failed (%d): %.200s", use_system ? "system()" : "posix_spawn", rc,
                 out);
        return 1;
    }
    int listed = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char *arrow = strstr(line, " -> ");
        if (!arrow) continue;
        const char *target = arrow + 4;
        char *p = arrow;
        while (p > line && p[-1] != ' ') p--;
        int fd = atoi(p);
        listed++;
        if (strncmp(target, "socket:", 7) == 0) {
            snprintf(why, len, "the exec'd program inherited a socket: fd %d -> %s", fd, target);
            return 1;
        }
        if (fd >= 3 && !was_inheritable_at_start(fd) && strncmp(target, "/proc/", 6) != 0) {
            snprintf(why, len, "the exec'd program inherited fd %d -> %s", fd, target);
            return 1;
        }
    }
    if (listed < 3) {
        snprintf(why, len, "ls listed only %d fds", listed);
        return 1;
    }
    return 0;
}

static int socket_is_cloexec(PGconn *conn) {
    int flags = fcntl(PQsocket(conn), F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

static int child_spawns_programs(void *arg) {
    struct busy_fork *f = arg;
    char why[512];
    (void)child_stats(f->pool); /* the first pool call: the inherited sockets are /dev/null now */
    struct leak l = {why, sizeof why};
    CHILD_REQUIRE(for_each_fd(find_new_inheritable, &l) == 0, "%s\n", why);
    pool_lease_t *lease;
    PGconn *conn = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    CHILD_REQUIRE(socket_is_cloexec(conn), "the child's new socket has no FD_CLOEXEC\n");
    CHILD_REQUIRE(spawned_program_inherits_nothing(1, why, sizeof why) == 0, "system(): %s\n", why);
    CHILD_REQUIRE(spawned_program_inherits_nothing(0, why, sizeof why) == 0, "posix_spawn: %s\n",
                  why);
    return 0;
}

static void pool_sockets_are_close_on_exec_and_spawned_programs_inherit_none(void **state) {
    (void)state;
    /* valgrind's own log file is open in every process it runs, without close-on-exec. */
    skip_under_valgrind();
    char app[64], why[512];
    app_name(app, sizeof app, "fk_exec");
    PGconn *monitor = monitor_connect();
    struct busy_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=3 max_overflow=0");
    open_idle(f.pool, 3, &f.parent);
    pool_lease_t *leases[3];
    for (int i = 0; i < 3; i++) {
        leases[i] = checkout(f.pool);
        if (!socket_is_cloexec(native(leases[i])))
            fail_msg("backend %d: socket fd %d has no FD_CLOEXEC", PQbackendPID(native(leases[i])),
                     PQsocket(native(leases[i])));
    }
    assert_ok(pool_checkin(leases[1]));
    assert_ok(pool_checkin(leases[2]));
    f.busy = leases[0];

    struct leak l = {why, sizeof why};
    if (for_each_fd(find_new_inheritable, &l) != 0) fail_msg("%s", why);
    if (spawned_program_inherits_nothing(0, why, sizeof why)) fail_msg("posix_spawn: %s", why);
    if (spawned_program_inherits_nothing(1, why, sizeof why)) fail_msg("system(): %s", why);

    /* and in a forked child, whose inherited sockets now point at /dev/null */
    struct outcome o = run_child(VIA_FORK, child_spawns_programs, &f, END_EXIT);
    assert_child_ok(&o, "a child that spawns programs");

    assert_ok(pool_checkin(f.busy));
    end_unharmed(monitor, f.pool, app, &f.parent);
}

/* ---------------------------------------------------------------- main */

/* ================================================================ 17. leases of vanished threads */

/* Issue 14, item 2: a lease that a thread other than the forking one held at the fork can
 * never come back in the child (its holder does not exist there), so it must not keep the
 * child's pool alive. One held by the forking thread still can, and still does. */

struct holder {
    pool_t *pool;
    pthread_t thread;
    pool_lease_t *lease;
    int64_t holding; /* atomic: the lease is out */
    int64_t release; /* atomic: check it in now */
    int rc;
};

static void *hold_a_lease(void *p) {
    struct holder *h = p;
    h->rc = pool_checkout(&h->lease, h->pool, SERVER_WAIT_MS);
    atomic_set(&h->holding, 1);
    while (!atomic_get(&h->release)) sched_yield();
    if (h->rc == POOL_OK) h->rc = pool_checkin(h->lease);
    return NULL;
}

static int is_holding(void *p) { return (int)atomic_get(&((struct holder *)p)->holding); }

struct vanished_fork {
    pool_t *pool;
    pool_lease_t *mine; /* held by the forking thread, or NULL */
};

/* The pool is released: its handle is refused like any released pool's. */
static void child_expect_released(pool_t *pool) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = pool_stats_get(pool, &st);
    CHILD_REQUIRE(rc == POOL_EINVAL, "the pool is still there (pool_stats_get: %s; checked_out "
                  "%lld)\n", pool_error_name(rc), (long long)st.checked_out);
}

static int child_disposes_past_a_vanished_holder(void *arg) {
    struct vanished_fork *f = arg;
    int rc = pool_dispose(f->pool);
    if (!f->mine) {
        CHILD_REQUIRE(rc == POOL_OK, "pool_dispose with only a vanished thread's lease out: "
                      "%s: %s\n", pool_error_name(rc), pool_last_error());
        child_expect_released(f->pool);
        return 0;
    }
    /* the forking thread's own lease still holds the pool, and its checkin releases it */
    CHILD_REQUIRE(rc == POOL_EBUSY, "pool_dispose with the forking thread's lease out: %s: %s\n",
                  pool_error_name(rc), pool_last_error());
    CHILD_REQUIRE(strstr(pool_last_error(), "with 1 lease(s) still out (1 of them inherited") != NULL,
                  "message: \"%s\"\n", pool_last_error());
    child_expect_dead_lease(f->mine);
    child_return_dead_lease(f->mine);
    child_expect_released(f->pool);
    return 0;
}

static void a_child_releases_its_pool_past_leases_of_threads_it_lacks(void **state) {
    (void)state;
    for (int with_mine = 0; with_mine <= 1; with_mine++) {
        char app[64];
        app_name(app, sizeof app, with_mine ? "fk_vanished_mine" : "fk_vanished");
        PGconn *monitor = monitor_connect();
        struct conns parent = {0, {0}};
        struct vanished_fork f = {fork_pool(app, "pool_size=3 max_overflow=0"), NULL};
        open_idle(f.pool, 3, &parent);
        struct holder h;
        memset(&h, 0, sizeof h);
        h.pool = f.pool;
        if (pthread_create(&h.thread, NULL, hold_a_lease, &h) != 0) fail_msg("pthread_create");
        if (!await_true(is_holding, &h, SERVER_WAIT_MS)) fail_msg("the thread never checked out");
        if (h.rc != POOL_OK) fail_msg("the thread's checkout: %s", pool_error_name(h.rc));
        if (with_mine) f.mine = checkout(f.pool);

        struct outcome o = run_child(VIA_FORK, child_disposes_past_a_vanished_holder, &f, END_EXIT);
        atomic_set(&h.release, 1);
        pthread_join(h.thread, NULL);
        assert_child_ok(&o, with_mine ? "child with the forking thread's lease" : "child");
        assert_int_equal(h.rc, POOL_OK); /* the parent's lease came back as usual */
        if (f.mine) assert_ok(pool_checkin(f.mine));
        end_unharmed(monitor, f.pool, app, &parent);
    }
}

/* ================================================================ 18. no driver call under the lock */

/* Issue 14, item 3: the child discards the connections it inherited (PQfinish on a socket
 * turned to /dev/null) outside the pool lock, like every other driver call. A libpq event
 * procedure, registered on each connection by on_connect, sees PQfinish run: in the child it
 * asks another thread to take the pool lock (pool_stats_get) and gives it a second. */

static pool_t *watched_pool; /* the child sets it: the event procedure checks in the child only */
static int64_t finishes_seen, finishes_under_lock; /* atomic */

struct lock_probe {
    int64_t done; /* atomic */
};

static void *take_the_pool_lock(void *p) {
    struct lock_probe *probe = p;
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    pool_stats_get(watched_pool, &st);
    atomic_set(&probe->done, 1);
    return NULL; /* the probe is leaked if this ran late: the child is about to end */
}

static int probe_done(void *p) { return (int)atomic_get(&((struct lock_probe *)p)->done); }

static int watch_finish(PGEventId id, void *info, void *pass) {
    (void)info;
    (void)pass;
    if (id != PGEVT_CONNDESTROY || !watched_pool) return 1;
    atomic_inc(&finishes_seen);
    struct lock_probe *probe = calloc(1, sizeof *probe);
    pthread_t t;
    if (!probe || pthread_create(&t, NULL, take_the_pool_lock, probe) != 0) {
        atomic_inc(&finishes_under_lock); /* counted as a failure: the check could not run */
        return 1;
    }
    if (await_true(probe_done, probe, 1000)) {
        pthread_join(t, NULL);
        free(probe);
    } else {
        atomic_inc(&finishes_under_lock);
        pthread_detach(t);
    }
    return 1;
}

static int register_watch(void *conn, char *errbuf, size_t len, void *ud) {
    (void)ud;
    if (PQregisterEventProc(conn, watch_finish, "connpool-test-watch", NULL)) return 0;
    snprintf(errbuf, len, "PQregisterEventProc failed");
    return 1;
}

static int child_adopts_with_the_lock_free(void *arg) {
    struct idle_fork *f = arg;
    watched_pool = f->pool;
    child_expect_fresh(f->pool, f->parent.n); /* pool_stats_get: the adoption runs here */
    CHILD_REQUIRE(atomic_get(&finishes_seen) == f->parent.n, "%lld PQfinish seen, expected %d\n",
                  (long long)atomic_get(&finishes_seen), f->parent.n);
    CHILD_REQUIRE(atomic_get(&finishes_under_lock) == 0,
                  "%lld of %lld PQfinish ran with the pool lock held\n",
                  (long long)atomic_get(&finishes_under_lock), (long long)atomic_get(&finishes_seen));
    return 0;
}

static void a_child_discards_inherited_connections_outside_the_pool_lock(void **state) {
    (void)state;
#ifdef __SANITIZE_THREAD__
    /* The probe is a thread started in the child, and TSan's model of a child's locks keeps
     * the owner the prepare handler gave them (the forking thread): the probe's lock is
     * reported as a double lock. Runs in the plain and ASan builds. */
    skip();
#endif
    char app[64];
    app_name(app, sizeof app, "fk_unlocked_discard");
    PGconn *monitor = monitor_connect();
    struct idle_fork f;
    memset(&f, 0, sizeof f);
    f.pool = fork_pool(app, "pool_size=2 max_overflow=0");
    pool_hooks_t hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.on_connect = register_watch;
    assert_ok(pool_set_hooks(f.pool, &hooks));
    open_idle(f.pool, 2, &f.parent);
    struct outcome o = run_child(VIA_FORK, child_adopts_with_the_lock_free, &f, END_EXIT);
    assert_child_ok(&o, "child discarding its inherited connections");
    end_unharmed(monitor, f.pool, app, &f.parent);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for_each_fd(note_inheritable, NULL);
    install_parent_watchdog();

#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
    const struct CMUnitTest tests[] = {
        T(a_child_that_exits_leaves_the_parents_idle_connections_alone),
        T(a_child_that_calls__exit_leaves_the_parents_idle_connections_alone),
        T(a_child_that_disposes_the_pool_leaves_the_parents_idle_connections_alone),
        T(a_child_that_checks_out_gets_a_new_backend_and_leaves_the_parents_alone),
        T(a_lease_out_at_fork_is_dead_in_the_child_and_its_checkin_harms_nothing),
        T(a_child_disposing_the_pool_under_a_running_query_harms_nothing),
        T(a_child_opens_its_own_connections_and_counts_the_inherited_ones),
        T(parent_and_child_hammering_one_pool_never_see_each_others_results),
        T(a_fork_during_a_waiting_checkout_leaves_both_sides_working),
        T(forks_while_threads_hammer_the_pool_lock_and_create_pools_never_hang),
        T(a_storm_of_forks_during_connects_has_no_hang_no_failure_and_no_harm),
        T(a_child_exiting_with_pools_alive_neither_hangs_nor_harms),
        T(a_child_of__Fork_finds_its_inherited_lease_dead_and_opens_its_own),
        T(a_child_of_a_raw_fork_syscall_finds_its_inherited_lease_dead_and_opens_its_own),
        T(pool_sockets_are_close_on_exec_and_spawned_programs_inherit_none),
        T(a_child_disposing_the_pool_never_cancels_the_parents_query),
        T(a_child_releases_its_pool_past_leases_of_threads_it_lacks),
        T(a_child_discards_inherited_connections_outside_the_pool_lock),
    };
#undef T
    /* CONNPOOL_TEST_FILTER=*storm* runs only the tests whose name matches */
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    static const char *const modes[] = {"disable", "require"};
    int failed = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        sslmode = modes[i];
        printf("=== fork, sslmode=%s\n", sslmode);
        failed += cmocka_run_group_tests_name("fork", tests, NULL, NULL);
    }
    return failed;
}
