/* The pool against a real PostgreSQL server, through the libpq connector.
 *
 * Run under tests/with-postgres.sh, which starts a throwaway server and sets the PG*
 * variables. Every test names its sessions with its own application_name (suffixed with this
 * process's pid, so repeated runs against one server never see each other's sessions) and
 * counts them in pg_stat_activity from a monitor connection outside any pool. A backend
 * leaves pg_stat_activity a little after its client closed it, so counts that must drop are
 * awaited, never asserted at once.
 *
 * cmocka's assertions may only fail on the test's own thread: worker threads record what
 * went wrong in a shared report, and the test thread asserts on it after joining them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>

#include "child.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */


/* "<base>_<pid>": this test's application_name. */
static void app_name(char *buf, size_t len, const char *base) {
    snprintf(buf, len, "%s_%d", base, (int)getpid());
}

/* A pool of libpq connections named `app`, with `options`. */
static pool_t *pq_pool(const char *app, const char *options) {
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
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

static void exec_ok(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("\"%s\": %s", sql, PQerrorMessage(conn));
    PQclear(r);
}

/* The pid of the backend behind a lease, as the server reports it; it must agree with
 * libpq's own record. */
static int backend_pid(pool_lease_t *lease) {
    PGconn *conn = native(lease);
    int pid = (int)query_int(conn, "SELECT pg_backend_pid()");
    assert_int_equal(pid, PQbackendPID(conn));
    return pid;
}





/* One round of work on a lease from a worker thread: the server's pid for the session must be
 * libpq's, and a short server-side pause keeps the connection busy. */
static int work_on(PGconn *conn, struct report *rep) {
    PGresult *r = PQexec(conn, "SELECT pg_backend_pid(), pg_sleep(0.001)");
    int pid = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        report_failure(rep, "query failed: %s", PQerrorMessage(conn));
    else if ((pid = atoi(PQgetvalue(r, 0, 0))) != PQbackendPID(conn))
        report_failure(rep, "server says pid %d, libpq says %d", pid, PQbackendPID(conn));
    PQclear(r);
    return pid;
}

/* ---------------------------------------------------------------- 1. many threads, few connections */

#define SHARE_THREADS 300
#define SHARE_ROUNDS 5

struct share {
    pool_t *pool;
    struct report rep;
    pthread_barrier_t start;
    /* the monitor */
    PGconn *monitor;
    const char *app;
    pthread_mutex_t mu;
    int done;
    long long samples, max_seen, min_seen;
    char monitor_error[256];
};

static void *share_worker(void *p) {
    struct share *s = p;
    pthread_barrier_wait(&s->start);
    for (int round = 0; round < SHARE_ROUNDS; round++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, s->pool, -1);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            continue;
        }
        work_on(pool_lease_native(lease), &s->rep);
        rc = pool_checkin(lease);
        if (rc != POOL_OK)
            report_failure(&s->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
    }
    return NULL;
}

/* Samples the server's count of this test's client backends until told to stop. */
static int share_sample(struct share *s) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND backend_type = 'client backend'",
             s->app);
    PGresult *r = PQexec(s->monitor, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    long long n = ok ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    pthread_mutex_lock(&s->mu);
    if (!ok) {
        snprintf(s->monitor_error, sizeof s->monitor_error, "%s", PQerrorMessage(s->monitor));
    } else {
        s->samples++;
        if (n > s->max_seen) s->max_seen = n;
        if (n < s->min_seen) s->min_seen = n;
    }
    int done = s->done;
    pthread_mutex_unlock(&s->mu);
    return ok && !done;
}

static void *share_monitor(void *p) {
    struct share *s = p;
    while (share_sample(s)) {
    }
    return NULL;
}

static int share_monitor_started(void *p) {
    struct share *s = p;
    pthread_mutex_lock(&s->mu);
    int started = s->samples > 0 || s->monitor_error[0];
    pthread_mutex_unlock(&s->mu);
    return started;
}

static void three_hundred_threads_share_fifteen_connections(void **state) {
    (void)state;
    static struct share s; /* large; and the threads only ever see this one */
    static pthread_t workers[SHARE_THREADS];
    char app[64];
    app_name(app, sizeof app, "pq_share");
    memset(&s, 0, sizeof s);
    report_init(&s.rep);
    pthread_mutex_init(&s.mu, NULL);
    s.pool = pq_pool(app, "pool_size=5 max_overflow=10 pool_timeout=20");
    s.monitor = monitor_connect();
    s.app = app;
    s.min_seen = 1000000;

    pthread_t monitor;
    if (pthread_create(&monitor, NULL, share_monitor, &s) != 0) fail_msg("pthread_create");
    assert_true(await_true(share_monitor_started, &s, SERVER_WAIT_MS));
    pthread_barrier_init(&s.start, NULL, SHARE_THREADS);
    if (!start_threads(workers, SHARE_THREADS, share_worker, &s)) fail_msg("pthread_create");
    join_threads(workers, SHARE_THREADS);
    pthread_barrier_destroy(&s.start);
    pthread_mutex_lock(&s.mu);
    s.done = 1;
    pthread_mutex_unlock(&s.mu);
    pthread_join(monitor, NULL);
    share_sample(&s); /* one last look: the pool's idle connections are still open */

    assert_no_failures(&s.rep);
    if (s.monitor_error[0]) fail_msg("monitor: %s", s.monitor_error);
    if (s.max_seen > 15)
        fail_msg("the server saw %lld sessions of a pool limited to 15", s.max_seen);
    assert_true(s.max_seen >= 1);
    assert_true(s.samples >= 2);

    pool_stats_t st = stats_of(s.pool);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.checkouts_total, SHARE_THREADS * SHARE_ROUNDS);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.overflow, 0);
    assert_true(st.idle >= 1 && st.idle <= 5);
    assert_true(st.opened_total >= st.idle && st.opened_total <= st.checkouts_total);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);
    assert_true(st.wait_max_us >= 0 && st.wait_total_us >= st.wait_max_us);
    /* what the pool keeps is what the server has */
    await_sessions(s.monitor, app, st.idle);

    assert_ok(pool_dispose(s.pool));
    await_sessions(s.monitor, app, 0);
    PQfinish(s.monitor);
    pthread_mutex_destroy(&s.mu);
}

/* ---------------------------------------------------------------- 2. exclusive leases */

#define EXCL_THREADS 16
#define EXCL_ROUNDS 150
#define EXCL_LIMIT 5 /* pool_size 3 + max_overflow 2 */

struct exclusive {
    pool_t *pool;
    struct report rep;
    pthread_barrier_t start;
    pthread_mutex_t mu;
    PGconn *held_conn[EXCL_THREADS];
    int held_pid[EXCL_THREADS];
    int held, max_held;
};

/* Marks the connection held, failing if another thread holds it or its backend. */
static void exclusive_take(struct exclusive *x, PGconn *conn) {
    int pid = PQbackendPID(conn);
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < x->held; i++) {
        if (x->held_conn[i] == conn)
            report_failure(&x->rep, "PGconn %p handed to two threads at once", (void *)conn);
        if (x->held_pid[i] == pid)
            report_failure(&x->rep, "backend %d handed to two threads at once", pid);
    }
    if (x->held == EXCL_THREADS) {
        report_failure(&x->rep, "more leases than threads");
    } else {
        x->held_conn[x->held] = conn;
        x->held_pid[x->held] = pid;
        x->held++;
        if (x->held > x->max_held) x->max_held = x->held;
    }
    pthread_mutex_unlock(&x->mu);
}

static void exclusive_release(struct exclusive *x, PGconn *conn) {
    pthread_mutex_lock(&x->mu);
    int i = 0;
    while (i < x->held && x->held_conn[i] != conn) i++;
    if (i == x->held) {
        report_failure(&x->rep, "PGconn %p was no longer marked held", (void *)conn);
    } else {
        x->held--;
        x->held_conn[i] = x->held_conn[x->held];
        x->held_pid[i] = x->held_pid[x->held];
    }
    pthread_mutex_unlock(&x->mu);
}

static void *exclusive_worker(void *p) {
    struct exclusive *x = p;
    pthread_barrier_wait(&x->start);
    for (int round = 0; round < EXCL_ROUNDS; round++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, x->pool, -1);
        if (rc != POOL_OK) {
            report_failure(&x->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            continue;
        }
        PGconn *conn = pool_lease_native(lease);
        if (!conn) {
            report_failure(&x->rep, "a checked-out lease has no connection");
            pool_checkin(lease);
            continue;
        }
        exclusive_take(x, conn);
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            report_failure(&x->rep, "handed out a connection in transaction status %d",
                           (int)PQtransactionStatus(conn));
        int pid = work_on(conn, &x->rep);
        if (pid != PQbackendPID(conn))
            report_failure(&x->rep, "backend pid changed under the lease");
        exclusive_release(x, conn);
        rc = pool_checkin(lease);
        if (rc != POOL_OK)
            report_failure(&x->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
    }
    return NULL;
}

static void no_two_threads_ever_hold_the_same_connection(void **state) {
    (void)state;
    static struct exclusive x;
    pthread_t workers[EXCL_THREADS];
    char app[64];
    app_name(app, sizeof app, "pq_exclusive");
    memset(&x, 0, sizeof x);
    report_init(&x.rep);
    pthread_mutex_init(&x.mu, NULL);
    x.pool = pq_pool(app, "pool_size=3 max_overflow=2 pool_timeout=20");

    pthread_barrier_init(&x.start, NULL, EXCL_THREADS);
    if (!start_threads(workers, EXCL_THREADS, exclusive_worker, &x)) fail_msg("pthread_create");
    join_threads(workers, EXCL_THREADS);
    pthread_barrier_destroy(&x.start);

    assert_no_failures(&x.rep);
    assert_int_equal(x.held, 0);
    assert_true(x.max_held >= 1 && x.max_held <= EXCL_LIMIT);
    pool_stats_t st = stats_of(x.pool);
    assert_int_equal(st.checkouts_total, EXCL_THREADS * EXCL_ROUNDS);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.checked_out, 0);
    assert_true(st.idle >= 1 && st.idle <= 3);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);
    assert_ok(pool_dispose(x.pool));
    pthread_mutex_destroy(&x.mu);
}

/* ---------------------------------------------------------------- 3. timeout */

static void a_full_pool_times_out_with_sqlalchemys_message(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_timeout");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0 pool_timeout=0.05");
    pool_lease_t *held = checkout(pool);

    pool_lease_t *second = (pool_lease_t *)&second; /* must be overwritten with NULL */
    assert_int_equal(pool_checkout(&second, pool, -1), POOL_ETIMEDOUT);
    assert_null(second);
    const char *expected =
        "QueuePool limit of size 1 overflow 0 reached, connection timed out, timeout 0.05";
    if (strncmp(pool_last_error(), expected, strlen(expected)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", pool_last_error(), expected);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 1);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.checkouts_total, 1);
    assert_int_equal(st.opened_total, 1);
    assert_true(st.wait_max_us >= 40000); /* it did wait for its timeout (50 ms) */

    /* the held connection is untouched, and once back it serves the next checkout */
    exec_ok(native(held), "SELECT 1");
    int pid = backend_pid(held);
    assert_ok(pool_checkin(held));
    pool_lease_t *again = checkout(pool);
    assert_int_equal(backend_pid(again), pid);
    assert_ok(pool_checkin(again));
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- 4. overflow */

static void overflow_connections_are_closed_at_checkin(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_overflow");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=2 max_overflow=3");
    pool_lease_t *leases[5];
    for (int i = 0; i < 5; i++) leases[i] = checkout(pool);
    await_sessions(monitor, app, 5);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 5);
    assert_int_equal(st.overflow, 3);
    assert_int_equal(st.opened_total, 5);
    pool_lease_t *sixth = NULL;
    assert_int_equal(pool_checkout(&sixth, pool, 0), POOL_ETIMEDOUT);

    for (int i = 0; i < 5; i++) assert_ok(pool_checkin(leases[i]));
    await_sessions(monitor, app, 2);
    st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.overflow, 0);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.opened_total, 5);

    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 5. LIFO and FIFO */

/* Checks out three connections, returns them in order A, B, C, and gives the pids. */
static void return_three_in_order(pool_t *pool, int pids[3]) {
    pool_lease_t *leases[3];
    for (int i = 0; i < 3; i++) {
        leases[i] = checkout(pool);
        pids[i] = backend_pid(leases[i]);
    }
    assert_int_not_equal(pids[0], pids[1]);
    assert_int_not_equal(pids[1], pids[2]);
    assert_int_not_equal(pids[0], pids[2]);
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(leases[i]));
}

static void fifo_reuses_the_oldest_return_and_lifo_the_newest(void **state) {
    (void)state;
    char app[64];
    int pids[3];

    app_name(app, sizeof app, "pq_fifo");
    pool_t *fifo = pq_pool(app, "pool_size=3 max_overflow=0 pool_use_lifo=false");
    return_three_in_order(fifo, pids);
    pool_lease_t *first = checkout(fifo);
    assert_int_equal(backend_pid(first), pids[0]);
    pool_lease_t *second = checkout(fifo);
    assert_int_equal(backend_pid(second), pids[1]);
    assert_ok(pool_checkin(first));
    assert_ok(pool_checkin(second));
    assert_ok(pool_dispose(fifo));

    app_name(app, sizeof app, "pq_lifo");
    pool_t *lifo = pq_pool(app, "pool_size=3 max_overflow=0 pool_use_lifo=true");
    return_three_in_order(lifo, pids);
    first = checkout(lifo);
    assert_int_equal(backend_pid(first), pids[2]);
    second = checkout(lifo);
    assert_int_equal(backend_pid(second), pids[1]);
    assert_ok(pool_checkin(first));
    assert_ok(pool_checkin(second));
    assert_int_equal(stats_of(lifo).opened_total, 3);
    assert_ok(pool_dispose(lifo));
}

/* ---------------------------------------------------------------- 6. reset on return */

static void make_table(PGconn *monitor, const char *table) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; DROP TABLE IF EXISTS %s; CREATE TABLE %s (x int)",
             table, table);
    exec_ok(monitor, sql);
}

static void drop_table(PGconn *monitor, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    exec_ok(monitor, sql);
}

static long long rows_in(PGconn *conn, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return query_int(conn, sql);
}

static void an_uncommitted_insert_is_rolled_back_at_checkin(void **state) {
    (void)state;
    char app[64], table[64], sql[128];
    app_name(app, sizeof app, "pq_rollback");
    app_name(table, sizeof table, "pq_rollback_rows");
    PGconn *monitor = monitor_connect();
    make_table(monitor, table);
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    exec_ok(native(lease), "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    exec_ok(native(lease), sql);
    assert_int_equal(rows_in(native(lease), table), 1); /* visible inside its transaction */
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_INTRANS);
    assert_ok(pool_checkin(lease)); /* no COMMIT */

    lease = checkout(pool);
    assert_int_equal(backend_pid(lease), pid); /* the same session, reset */
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
    assert_int_equal(rows_in(native(lease), table), 0);
    assert_int_equal(rows_in(monitor, table), 0);
    assert_ok(pool_checkin(lease));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    drop_table(monitor, table);
    PQfinish(monitor);
}

static void a_failed_transaction_comes_back_usable(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_failed_tx");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    PGconn *conn = native(lease);
    exec_ok(conn, "BEGIN");
    PGresult *r = PQexec(conn, "SELECT 1/0");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_int_equal(PQtransactionStatus(conn), PQTRANS_INERROR);
    assert_ok(pool_checkin(lease));

    lease = checkout(pool);
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
    assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
    assert_int_equal(backend_pid(lease), pid);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
}

static void reset_on_return_none_leaves_the_transaction_open(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_reset_none");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0 reset_on_return=none");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    exec_ok(native(lease), "BEGIN");
    assert_ok(pool_checkin(lease));

    lease = checkout(pool);
    assert_int_equal(backend_pid(lease), pid);
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_INTRANS);
    exec_ok(native(lease), "ROLLBACK");
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).closed_total, 0);
    assert_ok(pool_dispose(pool));
}

static void reset_on_return_commit_keeps_the_insert(void **state) {
    (void)state;
    char app[64], table[64], sql[128];
    app_name(app, sizeof app, "pq_reset_commit");
    app_name(table, sizeof table, "pq_commit_rows");
    PGconn *monitor = monitor_connect();
    make_table(monitor, table);
    pool_t *pool =
        pq_pool(app, "pool_size=1 max_overflow=0 reset_on_return=commit");

    pool_lease_t *lease = checkout(pool);
    exec_ok(native(lease), "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    exec_ok(native(lease), sql);
    assert_int_equal(rows_in(monitor, table), 0); /* not committed yet */
    assert_ok(pool_checkin(lease));
    assert_int_equal(rows_in(monitor, table), 1); /* committed by the checkin */

    lease = checkout(pool);
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    drop_table(monitor, table);
    PQfinish(monitor);
}

static void reset_on_return_commit_rolls_back_a_failed_transaction(void **state) {
    (void)state;
    char app[64], table[64], sql[128];
    app_name(app, sizeof app, "pq_commit_failed");
    app_name(table, sizeof table, "pq_commit_failed_rows");
    PGconn *monitor = monitor_connect();
    make_table(monitor, table);
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0 reset_on_return=commit");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    PGconn *conn = native(lease);
    exec_ok(conn, "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    exec_ok(conn, sql);
    PQclear(PQexec(conn, "SELECT 1/0"));
    assert_int_equal(PQtransactionStatus(conn), PQTRANS_INERROR);
    assert_ok(pool_checkin(lease));
    assert_int_equal(rows_in(monitor, table), 0);

    lease = checkout(pool);
    assert_int_equal(backend_pid(lease), pid); /* reused, not closed */
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).closed_total, 0);
    assert_ok(pool_dispose(pool));
    drop_table(monitor, table);
    PQfinish(monitor);
}

/* A lease given back with a query's results still unread cannot be reset: it is closed. */
static void a_connection_with_a_query_in_flight_is_closed_at_checkin(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_in_flight");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    assert_int_equal(PQsendQuery(native(lease), "SELECT 1"), 1);
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_ACTIVE);
    assert_ok(pool_checkin(lease));
    await_backend_gone(monitor, pid);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);

    lease = checkout(pool);
    assert_int_not_equal(backend_pid(lease), pid);
    assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 7, 8. broken connections */

static void an_invalidated_connection_is_closed_on_the_server(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_invalidate");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    assert_ok(pool_invalidate(lease));
    assert_true(backend_exists(monitor, pid)); /* invalidate alone closes nothing */
    assert_ok(pool_checkin(lease));
    await_backend_gone(monitor, pid);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);

    lease = checkout(pool);
    assert_int_not_equal(backend_pid(lease), pid);
    assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 2);
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}


static void a_backend_killed_while_checked_out_is_not_handed_out_again(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_killed_out");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    terminate_backend(monitor, pid);
    assert_ok(pool_checkin(lease)); /* the dead connection is seen here, without a query */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);

    lease = checkout(pool);
    int new_pid = backend_pid(lease);
    assert_int_not_equal(new_pid, pid);
    assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* Without a pre-ping the pool may hand out a connection whose backend died while idle; the
 * user's query then fails, and the checkin must drop it. With a pre-ping the pool replaces it
 * before handing it out. Either way, no more than one checkout meets the dead backend. */
static void a_backend_killed_while_idle_is_replaced_after_at_most_one_failure(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_killed_idle");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).idle, 1);
    terminate_backend(monitor, pid);

    lease = checkout(pool);
    PGresult *r = PQexec(native(lease), "SELECT 1");
    int failed = PQresultStatus(r) != PGRES_TUPLES_OK;
    PQclear(r);
    if (failed) {
        assert_int_equal(PQstatus(native(lease)), CONNECTION_BAD); /* it was the dead one */
        assert_ok(pool_checkin(lease));
        assert_int_equal(stats_of(pool).idle, 0);
        lease = checkout(pool);
    }
    assert_int_not_equal(backend_pid(lease), pid);
    assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 9. clear errors */

static void a_wrong_password_fails_at_checkout_without_showing_it(void **state) {
    (void)state;
    char msg[512];
    checkout_fails_to_connect("password=definitely_wrong_pw_42 application_name=pq_bad_password",
                              msg, sizeof msg);
    assert_contains(msg, "password authentication failed");
    assert_lacks(msg, "definitely_wrong_pw_42");
}

static void a_wrong_password_in_a_uri_fails_without_showing_it(void **state) {
    (void)state;
    const char *port = getenv("PGPORT");
    assert_non_null(port);
    char uri[256], msg[512];
    snprintf(uri, sizeof uri,
             "postgresql://postgres:definitely_wrong_pw_42@127.0.0.1:%s/postgres"
             "?application_name=pq_bad_uri",
             port);
    checkout_fails_to_connect(uri, msg, sizeof msg);
    assert_contains(msg, "password authentication failed");
    assert_lacks(msg, "definitely_wrong_pw_42");
}

static void a_closed_port_fails_with_connection_refused(void **state) {
    (void)state;
    char msg[512];
    checkout_fails_to_connect("host=127.0.0.1 port=1 application_name=pq_closed_port", msg,
                              sizeof msg);
    if (!strstr(msg, "Connection refused") && !strstr(msg, "port 1"))
        fail_msg("\"%s\" mentions neither \"Connection refused\" nor \"port 1\"", msg);
    /* PGPASSWORD from the environment is a secret too */
    const char *env_password = getenv("PGPASSWORD");
    if (env_password && *env_password) assert_lacks(msg, env_password);
}

/* A TCP listener that accepts connections (the kernel completes the handshake) and never
 * says a word: libpq's first request waits forever for an answer. */
struct silent_checkout {
    pool_t *pool;
    pthread_mutex_t mu;
    int done, rc;
    char msg[512];
};

static void *silent_checkout_run(void *p) {
    struct silent_checkout *c = p;
    pool_lease_t *lease = NULL;
    int rc = pool_checkout(&lease, c->pool, -1);
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    snprintf(c->msg, sizeof c->msg, "%s", pool_last_error());
    c->done = 1;
    pthread_mutex_unlock(&c->mu);
    if (rc == POOL_OK) pool_checkin(lease);
    return NULL;
}

static int silent_checkout_done(void *p) {
    struct silent_checkout *c = p;
    pthread_mutex_lock(&c->mu);
    int done = c->done;
    pthread_mutex_unlock(&c->mu);
    return done;
}

static void a_server_that_never_answers_fails_the_checkout_at_pool_timeout(void **state) {
    (void)state;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(listener >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    assert_int_equal(bind(listener, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(listener, 8), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&addr, &len), 0);

    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d application_name=pq_silent",
             (int)ntohs(addr.sin_port));
    static struct silent_checkout c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    assert_ok(pool_create(&c.pool, conninfo, "pool_size=1 max_overflow=0 pool_timeout=0.1"));

    pthread_t thread;
    if (pthread_create(&thread, NULL, silent_checkout_run, &c) != 0) fail_msg("pthread_create");
    int returned = await_true(silent_checkout_done, &c, SERVER_WAIT_MS);
    close(listener); /* ends the connect if the timeout did not */
    pthread_join(thread, NULL);
    if (!returned) fail_msg("the checkout ignored pool_timeout=0.1 against a silent server");
    assert_int_equal(c.rc, POOL_ECONNECT);
    assert_contains(c.msg, "timed out");

    pool_stats_t st = stats_of(c.pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 0);
    assert_ok(pool_dispose(c.pool));
    pthread_mutex_destroy(&c.mu);
}

static void a_bad_option_fails_at_create_naming_key_and_value(void **state) {
    (void)state;
    pool_t *pool = (pool_t *)&pool;
    assert_int_equal(pool_create(&pool, "application_name=pq_bad_option", "pool_size=abc"),
                     POOL_EINVAL);
    assert_null(pool);
    assert_contains(pool_last_error(), "pool_size");
    assert_contains(pool_last_error(), "abc");
}

static void an_unparsable_conninfo_fails_at_create_without_showing_the_password(void **state) {
    (void)state;
    pool_t *pool = (pool_t *)&pool;
    assert_int_equal(pool_create(&pool, "host=127.0.0.1 password='hunter2_unclosed_pw", NULL),
                     POOL_EINVAL);
    assert_null(pool);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pool_last_error());
    assert_contains(msg, "unterminated quoted string"); /* libpq's reason */
    assert_lacks(msg, "hunter2");

    /* libpq quotes a whole URI it cannot parse: its password must be masked */
    pool = (pool_t *)&pool;
    assert_int_equal(pool_create(&pool, "postgresql://postgres:hunter2_uri_pw@[::1/postgres", NULL),
                     POOL_EINVAL);
    assert_null(pool);
    snprintf(msg, sizeof msg, "%s", pool_last_error());
    assert_contains(msg, "IPv6 host address");
    assert_lacks(msg, "hunter2");
}

/* libpq quotes just the token it cannot decode, here the password itself, with no
 * "password=" or "://" around it for a pattern to find. */
static void a_badly_percent_encoded_uri_password_is_not_shown(void **state) {
    (void)state;
    static const char *const uris[] = {
        "postgresql://postgres:hunter2%zz_pw@127.0.0.1/postgres", /* invalid token */
        "postgresql://postgres:hunter2%00_pw@127.0.0.1/postgres", /* forbidden %00 */
        "postgresql://postgres@127.0.0.1/postgres?password=hunter2%zz_pw",
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        pool_t *pool = (pool_t *)&pool;
        assert_int_equal(pool_create(&pool, uris[i], NULL), POOL_EINVAL);
        assert_null(pool);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pool_last_error());
        assert_contains(msg, "percent-encoded");
        if (strstr(msg, "hunter2"))
            fail_msg("pool_create(\"%s\") shows the password: \"%s\"", uris[i], msg);
    }
}

/* ---------------------------------------------------------------- 10. misuse */

static void dispose_with_a_lease_out_is_busy_and_the_lease_still_works(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_dispose_busy");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=2 max_overflow=0");
    pool_lease_t *kept = checkout(pool);
    pool_lease_t *returned = checkout(pool);
    int kept_pid = backend_pid(kept);
    int returned_pid = backend_pid(returned);
    assert_ok(pool_checkin(returned));
    await_sessions(monitor, app, 2);

    assert_int_equal(pool_dispose(pool), POOL_EBUSY);
    assert_contains(pool_last_error(), "1 lease");
    /* the idle connection is closed now, the lease's is not */
    await_backend_gone(monitor, returned_pid);
    assert_true(backend_exists(monitor, kept_pid));
    assert_int_equal(query_int(native(kept), "SELECT 1"), 1);
    assert_int_equal(backend_pid(kept), kept_pid);

    assert_ok(pool_checkin(kept)); /* closes the session and releases the pool */
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

struct waiter_arg {
    pool_t *pool;
    int rc;
    pool_lease_t *lease;
};

static void *wait_for_checkout(void *p) {
    struct waiter_arg *w = p;
    w->rc = pool_checkout(&w->lease, w->pool, 5000); /* ended by the dispose, long before */
    return NULL;
}

static void dispose_wakes_a_waiting_checkout_with_closed(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_dispose_waiter");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);

    struct waiter_arg w = {pool, POOL_OK, NULL};
    pthread_t thread;
    if (pthread_create(&thread, NULL, wait_for_checkout, &w) != 0) fail_msg("pthread_create");
    if (!await_waiting(pool, 1, SERVER_WAIT_MS)) fail_msg("the checkout never waited");
    assert_int_equal(pool_dispose(pool), POOL_EBUSY);
    pthread_join(thread, NULL);
    assert_int_equal(w.rc, POOL_ECLOSED);
    assert_null(w.lease);

    assert_int_equal(query_int(native(held), "SELECT 1"), 1);
    assert_ok(pool_checkin(held));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

static void a_second_checkin_is_refused(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_double_checkin");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    assert_ok(pool_checkin(lease));
    assert_int_equal(pool_checkin(lease), POOL_ESTATE);
    assert_true(strlen(pool_last_error()) > 0);
    assert_int_equal(pool_invalidate(lease), POOL_ESTATE);
    assert_null(pool_lease_native(lease));

    /* the stale handle must not reach the record's next lease either */
    pool_lease_t *next = checkout(pool);
    assert_int_equal(backend_pid(next), pid);
    assert_int_equal(pool_checkin(lease), POOL_ESTATE);
    assert_int_equal(query_int(native(next), "SELECT 1"), 1);
    assert_ok(pool_checkin(next));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- defaults and null pool */

static void an_empty_conninfo_uses_the_environment_and_names_sessions_connpool(void **state) {
    (void)state;
    if (getenv("PGAPPNAME")) skip();
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, "", NULL));
    pool_lease_t *lease = checkout(pool);
    PGresult *r = PQexec(native(lease), "SELECT current_setting('application_name')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "connpool");
    PQclear(r);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- issue 14: libpq */

struct backend_state {
    PGconn *monitor;
    int pid;
};

/* The backend runs no statement: it is idle, or gone. */
static int backend_not_active(void *p) {
    struct backend_state *b = p;
    return !backend_is_active(b->monitor, b->pid, NULL);
}

/* query_timeout: the statement that ran too long is cancelled on the server, so it stops
 * running and the lock it held is free at once, while the lease is still out (its connection
 * is abandoned, closed at checkin). */
static void a_query_past_query_timeout_is_cancelled_on_the_server(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_cancel");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0 query_timeout=0.3");
    PGconn *monitor = monitor_connect();
    pool_lease_t *lease = checkout(pool);
    struct backend_state b = {monitor, backend_pid(lease)};
    pool_result_t *res = NULL;
    int rc = pool_query(&res, lease, "SELECT pg_advisory_xact_lock(914914), pg_sleep(60)", 0, NULL);
    assert_int_equal(rc, POOL_ETIMEDOUT);
    assert_contains(pool_last_error(), "the server was asked to cancel it");
    if (!await_true(backend_not_active, &b, SERVER_WAIT_MS))
        fail_msg("backend %d still runs the statement after the timeout", b.pid);
    assert_int_equal(query_int(monitor, "SELECT pg_try_advisory_lock(914914)::int"), 1);
    exec_ok(monitor, "SELECT pg_advisory_unlock(914914)");
    assert_ok(pool_checkin(lease));
    await_backend_gone(monitor, b.pid);
    assert_int_equal(stats_of(pool).invalidated_total, 1);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* What one borrower leaves in a session, and what the next one finds of it. */
static void leave_session_state(PGconn *conn) {
    exec_ok(conn, "SET work_mem = '7MB'");
    exec_ok(conn, "PREPARE connpool_left AS SELECT 1");
    exec_ok(conn, "CREATE TEMP TABLE connpool_left (x int)");
    exec_ok(conn, "SELECT pg_advisory_lock(915915)");
    exec_ok(conn, "LISTEN connpool_left");
    exec_ok(conn, "BEGIN");
    exec_ok(conn, "SET LOCAL statement_timeout = '1h'");
}

static int session_state_left(PGconn *conn, PGconn *monitor) {
    char work_mem[32];
    query_string(conn, "SHOW work_mem", work_mem, sizeof work_mem);
    int left = strcmp(work_mem, "7MB") == 0;
    left += (int)query_int(conn, "SELECT count(*) FROM pg_prepared_statements");
    left += (int)query_int(conn, "SELECT (to_regclass('pg_temp.connpool_left') IS NOT NULL)::int");
    left += (int)query_int(conn, "SELECT count(*) FROM pg_listening_channels()");
    left += (int)query_int(monitor, "SELECT 1 - pg_try_advisory_lock(915915)::int");
    exec_ok(monitor, "SELECT pg_advisory_unlock_all()");
    return left;
}

/* reset_on_return=discard: the next borrower (same backend) finds a clean session; with
 * rollback (the default) the same state is still there, which is why discard exists. */
static void reset_on_return_discard_leaves_no_session_state_behind(void **state) {
    (void)state;
    PGconn *monitor = monitor_connect();
    static const char *const modes[] = {"rollback", "discard"};
    for (int m = 0; m < 2; m++) {
        char app[64], options[96];
        app_name(app, sizeof app, "pq_discard");
        snprintf(options, sizeof options, "pool_size=1 max_overflow=0 reset_on_return=%s", modes[m]);
        pool_t *pool = pq_pool(app, options);
        pool_lease_t *lease = checkout(pool);
        int pid = backend_pid(lease);
        leave_session_state(native(lease));
        assert_ok(pool_checkin(lease));
        lease = checkout(pool);
        assert_int_equal(backend_pid(lease), pid);
        assert_int_equal(PQtransactionStatus(native(lease)), PQTRANS_IDLE);
        int left = session_state_left(native(lease), monitor);
        if (m == 0) assert_int_equal(left, 5);
        else if (left) fail_msg("reset_on_return=discard left %d kinds of session state", left);
        exec_ok(native(lease), "DISCARD ALL");
        assert_ok(pool_checkin(lease));
        assert_int_equal(stats_of(pool).closed_total, 0);
        assert_ok(pool_dispose(pool));
    }
    PQfinish(monitor);
}

/* In the child: the lease the forking thread held comes back; its connection is dropped
 * without a byte to the server. */
static int check_in_inherited(void *p) {
    CHILD_REQUIRE(pool_checkin(p) == POOL_OK, "%s", pool_last_error());
    return 0;
}

/* An application reconnects a lent connection with PQreset (a new socket number, the old one
 * taken by some other file), then forks: the child must neutralise the socket the connection
 * has now, so that dropping it sends nothing on the parent's session. */
static void a_pqreset_before_fork_leaves_the_parents_session_alone(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_reset_fork");
    int hole = open("/dev/null", O_RDONLY | O_CLOEXEC); /* a low number, freed below */
    assert_true(hole >= 0);
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    int before = PQsocket(native(lease));
    close(hole);
    PQreset(native(lease));
    assert_int_equal(PQstatus(native(lease)), CONNECTION_OK);
    int after = PQsocket(native(lease));
    assert_int_not_equal(after, before);
    int other = open("/dev/null", O_RDONLY | O_CLOEXEC); /* takes the old number, if free */
    int pid = backend_pid(lease);

    struct outcome o = run_child(VIA_FORK, check_in_inherited, lease, END__EXIT);
    assert_child_ok(&o, "checkin of the inherited lease");

    /* the parent's session is untouched: same backend, still answering */
    PGresult *r = PQexec(native(lease), "SELECT pg_backend_pid()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("the parent's session broke after the child dropped its copy: %s",
                 PQerrorMessage(native(lease)));
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pid);
    PQclear(r);
    if (other >= 0) close(other);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static void a_null_pool_opens_and_closes_a_session_per_checkout(void **state) {
    (void)state;
    char app[64];
    app_name(app, sizeof app, "pq_null_pool");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "poolclass=null");
    pool_lease_t *lease = checkout(pool);
    int pid = backend_pid(lease);
    assert_ok(pool_checkin(lease));
    await_backend_gone(monitor, pid);
    assert_int_equal(stats_of(pool).idle, 0);

    lease = checkout(pool);
    assert_int_not_equal(backend_pid(lease), pid);
    assert_ok(pool_checkin(lease));
    await_sessions(monitor, app, 0);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 2);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_hundred_threads_share_fifteen_connections),
        cmocka_unit_test(no_two_threads_ever_hold_the_same_connection),
        cmocka_unit_test(a_full_pool_times_out_with_sqlalchemys_message),
        cmocka_unit_test(overflow_connections_are_closed_at_checkin),
        cmocka_unit_test(fifo_reuses_the_oldest_return_and_lifo_the_newest),
        cmocka_unit_test(an_uncommitted_insert_is_rolled_back_at_checkin),
        cmocka_unit_test(a_failed_transaction_comes_back_usable),
        cmocka_unit_test(reset_on_return_none_leaves_the_transaction_open),
        cmocka_unit_test(reset_on_return_commit_keeps_the_insert),
        cmocka_unit_test(reset_on_return_commit_rolls_back_a_failed_transaction),
        cmocka_unit_test(a_connection_with_a_query_in_flight_is_closed_at_checkin),
        cmocka_unit_test(an_invalidated_connection_is_closed_on_the_server),
        cmocka_unit_test(a_backend_killed_while_checked_out_is_not_handed_out_again),
        cmocka_unit_test(a_backend_killed_while_idle_is_replaced_after_at_most_one_failure),
        cmocka_unit_test(a_wrong_password_fails_at_checkout_without_showing_it),
        cmocka_unit_test(a_wrong_password_in_a_uri_fails_without_showing_it),
        cmocka_unit_test(a_closed_port_fails_with_connection_refused),
        cmocka_unit_test(a_server_that_never_answers_fails_the_checkout_at_pool_timeout),
        cmocka_unit_test(a_bad_option_fails_at_create_naming_key_and_value),
        cmocka_unit_test(an_unparsable_conninfo_fails_at_create_without_showing_the_password),
        cmocka_unit_test(a_badly_percent_encoded_uri_password_is_not_shown),
        cmocka_unit_test(dispose_with_a_lease_out_is_busy_and_the_lease_still_works),
        cmocka_unit_test(dispose_wakes_a_waiting_checkout_with_closed),
        cmocka_unit_test(a_second_checkin_is_refused),
        cmocka_unit_test(an_empty_conninfo_uses_the_environment_and_names_sessions_connpool),
        cmocka_unit_test(a_null_pool_opens_and_closes_a_session_per_checkout),
        cmocka_unit_test(a_query_past_query_timeout_is_cancelled_on_the_server),
        cmocka_unit_test(reset_on_return_discard_leaves_no_session_state_behind),
        cmocka_unit_test(a_pqreset_before_fork_leaves_the_parents_session_alone),
    };
    return cmocka_run_group_tests_name("pq", tests, NULL, NULL);
}
