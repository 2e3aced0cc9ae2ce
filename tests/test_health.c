/* Health checks and lifecycle (issue 5) against a real PostgreSQL server, through libpq.
 *
 * Run under tests/with-postgres.sh, which starts a throwaway server, sets the PG* variables,
 * and sets CONNPOOL_TEST_PGCTL, a command that stops, starts or restarts that server (it
 * returns once the server is down, or accepts connections again). Every test names its
 * sessions with its own application_name (suffixed with this process's pid) and watches them
 * in pg_stat_activity from a monitor connection outside any pool. A backend leaves
 * pg_stat_activity a little after its client closed it, so counts that must drop are
 * awaited, never asserted at once. A test that stops the server starts it again in its
 * teardown, even when it failed, so the tests after it find a server.
 *
 * cmocka's assertions may only fail on the test's own thread: worker threads record what
 * went wrong in a shared report, and the test thread asserts on it after joining them. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

/* A pool of libpq connections named `app` (plus `extra` conninfo), with `options`. */
static pool_t *pq_pool_with(const char *app, const char *extra, const char *options) {
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "application_name=%s %s", app, extra ? extra : "");
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    assert_non_null(pool);
    return pool;
}

static pool_t *pq_pool(const char *app, const char *options) {
    return pq_pool_with(app, NULL, options);
}

static PGconn *native(pool_lease_t *lease) {
    PGconn *conn = pool_lease_native(lease);
    assert_non_null(conn);
    return conn;
}

/* The pid of the backend behind a lease, as the server reports it; it must agree with
 * libpq's own record. */
static int backend_pid(pool_lease_t *lease) {
    PGconn *conn = native(lease);
    int pid = (int)query_int(conn, "SELECT pg_backend_pid()");
    assert_int_equal(pid, PQbackendPID(conn));
    return pid;
}

/* Ends every session named `app` and returns how many ended (pg_terminate_backend with a
 * timeout returns once the backend has exited). The victims are chosen first, in a
 * materialized CTE: in a plain WHERE the planner may call pg_terminate_backend before it
 * filters on the name, and end every session, the monitor's own included. */
static long long terminate_named(PGconn *monitor, const char *app) {
    char sql[384];
    snprintf(sql, sizeof sql,
             "WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity "
             "WHERE application_name = '%s' AND pid <> pg_backend_pid()) "
             "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM victims",
             app);
    return query_int(monitor, sql);
}

/* Teardown of the tests that stop the server: start it again if they left it down. */
static int server_up_and_disarm(void **state) {
    if (!server_accepts(NULL)) {
        pgctl("start");
        if (!await_true(server_accepts, NULL, SERVER_WAIT_MS)) {
            fprintf(stderr, "the server could not be started again\n");
            disarm_watchdog(state);
            return -1;
        }
    }
    return disarm_watchdog(state);
}

/* ---------------------------------------------------------------- 1. restart under load */

#define LOAD_THREADS 16
#define LOAD_WARMUP_ROUNDS 20 /* per thread, on average, before the restart */
#define LOAD_AFTER_ROUNDS 200 /* per thread, once the server accepts connections again */
#define LOAD_MAX_FAILED 4096

struct load {
    pool_t *pool;
    int64_t phase;         /* atomic: 0 until the server is back, then 1 */
    int64_t stop;          /* atomic: the test thread gave up */
    int64_t rounds;        /* atomic */
    int64_t errors_before; /* atomic: failed checkouts or queries begun before phase 1 */
    struct report rep;     /* anything wrong: an error in phase 1, a dead connection reused */
    pthread_mutex_t mu;
    int failed_pids[LOAD_MAX_FAILED]; /* backends a query failed on */
    int nfailed;
};

static int load_failed_before(struct load *l, int pid) {
    pthread_mutex_lock(&l->mu);
    int seen = contains_pid(l->failed_pids, l->nfailed, pid);
    pthread_mutex_unlock(&l->mu);
    return seen;
}

static void load_note_failed(struct load *l, int pid) {
    pthread_mutex_lock(&l->mu);
    if (l->nfailed < LOAD_MAX_FAILED && !contains_pid(l->failed_pids, l->nfailed, pid))
        l->failed_pids[l->nfailed++] = pid;
    pthread_mutex_unlock(&l->mu);
}

/* checkout, SELECT 1, checkin; a failed query's connection is just checked in (the pool must
 * notice by itself that it is dead). */
static void *load_worker(void *p) {
    struct load *l = p;
    int after_rounds = 0;
    while (!atomic_get(&l->stop) && after_rounds < LOAD_AFTER_ROUNDS) {
        int after = atomic_get(&l->phase) != 0;
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, l->pool, -1);
        if (rc != POOL_OK) {
            if (after)
                report_failure(&l->rep, "checkout after the restart: %s: %s",
                               pool_error_name(rc), pool_last_error());
            else
                atomic_inc(&l->errors_before);
        } else {
            PGconn *conn = pool_lease_native(lease);
            int pid = conn ? PQbackendPID(conn) : 0;
            if (!conn)
                report_failure(&l->rep, "a checked-out lease has no connection");
            else if (load_failed_before(l, pid))
                report_failure(&l->rep, "backend %d was handed out again after a query on it "
                               "failed", pid);
            PGresult *r = conn ? PQexec(conn, "SELECT 1") : NULL;
            if (conn && PQresultStatus(r) != PGRES_TUPLES_OK) {
                load_note_failed(l, pid);
                if (after)
                    report_failure(&l->rep, "query after the restart, backend %d: %s", pid,
                                   PQerrorMessage(conn));
                else
                    atomic_inc(&l->errors_before);
            }
            PQclear(r);
            rc = pool_checkin(lease);
            if (rc != POOL_OK)
                report_failure(&l->rep, "checkin: %s: %s", pool_error_name(rc),
                               pool_last_error());
        }
        atomic_inc(&l->rounds);
        if (after) after_rounds++;
    }
    return NULL;
}

static int load_warmed_up(void *p) {
    struct load *l = p;
    return atomic_get(&l->rounds) >= LOAD_THREADS * LOAD_WARMUP_ROUNDS;
}

/* The server restarts (fast shutdown: every session ends) while 16 threads use the pool.
 * Failures are allowed only until the server accepts connections again; after that, every
 * thread does LOAD_AFTER_ROUNDS more rounds without a single failure. In every phase, a
 * backend a query failed on is never handed out again. Fail-fast is off: it would rightly
 * fail checkouts for a while after the server is back, which is the subject of another
 * test. */
static void restart_under_load(const char *base, const char *options) {
    require_pgctl();
    char app[64];
    test_app_name(app, sizeof app, base);
    struct load *l = calloc(1, sizeof *l);
    assert_non_null(l);
    report_init(&l->rep);
    pthread_mutex_init(&l->mu, NULL);
    l->pool = pq_pool_with(app, "connect_timeout=2", options);

    pthread_t threads[LOAD_THREADS];
    if (!start_threads(threads, LOAD_THREADS, load_worker, l)) {
        atomic_set(&l->stop, 1);
        fail_msg("pthread_create");
    }
    int warmed = await_true(load_warmed_up, l, SERVER_WAIT_MS);
    int64_t errors_warmup = atomic_get(&l->errors_before);
    pool_stats_t before = stats_of(l->pool);
    int restart_rc = warmed ? pgctl("restart -m fast") : -1;
    int back = restart_rc == 0 && await_true(server_accepts, NULL, SERVER_WAIT_MS);
    if (back)
        atomic_set(&l->phase, 1);
    else
        atomic_set(&l->stop, 1);
    join_threads(threads, LOAD_THREADS);

    if (!warmed) fail_msg("the threads did not get going: %s", l->rep.first);
    assert_int_equal(errors_warmup, 0);
    if (restart_rc != 0) fail_msg("$CONNPOOL_TEST_PGCTL restart -m fast: status %d", restart_rc);
    if (!back) fail_msg("the server did not come back");
    assert_no_failures(&l->rep);
    /* the restart did disturb the pool: sessions ended, connects were refused */
    if (atomic_get(&l->errors_before) == 0) fail_msg("no checkout or query failed in the restart");

    pool_stats_t st = stats_of(l->pool);
    assert_int_equal(before.dead_total, 0);
    assert_true(st.dead_total >= 1);
    assert_true(st.resets_total >= 1);
    assert_true(st.opened_total > before.opened_total);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);

    /* what the pool keeps now are sessions of the new server */
    PGconn *monitor = monitor_connect();
    await_sessions(monitor, app, st.idle);
    assert_ok(pool_dispose(l->pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void a_restart_under_load_with_pre_ping_fails_nothing_once_the_server_is_back(
    void **state) {
    (void)state;
    restart_under_load("health_restart_ping",
                       "pool_size=4 max_overflow=4 pool_timeout=5 pool_pre_ping=true "
                       "fail_fast_after=0");
    /* the harness promises the same server afterwards: port, socket directory, TLS */
    PGconn *tls = PQconnectdb("sslmode=require connect_timeout=5");
    if (PQstatus(tls) != CONNECTION_OK) fail_msg("TLS after the restart: %s", PQerrorMessage(tls));
    assert_non_null(PQsslAttribute(tls, "protocol"));
    PQfinish(tls);
    const char *sockdir = getenv("CONNPOOL_TEST_SOCKDIR");
    assert_non_null(sockdir);
    char path[512];
    snprintf(path, sizeof path, "%s/.s.PGSQL.%s", sockdir, getenv("PGPORT"));
    assert_int_equal(access(path, F_OK), 0);
}

static void a_restart_under_load_without_pre_ping_hands_each_dead_connection_out_once(
    void **state) {
    (void)state;
    restart_under_load("health_restart_noping",
                       "pool_size=4 max_overflow=4 pool_timeout=5 fail_fast_after=0");
}

/* ---------------------------------------------------------------- 2. killed while idle */

#define KILL_N 4

/* Checks out n connections at once (so the pool opens n) and gives their pids. */
static void open_n(pool_t *pool, int n, int *pids) {
    pool_lease_t *leases[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        leases[i] = checkout(pool);
        pids[i] = backend_pid(leases[i]);
    }
    for (int i = 0; i < n; i++) assert_ok(pool_checkin(leases[i]));
}

static void backends_killed_while_idle_are_replaced_unseen_with_pre_ping(void **state) {
    (void)state;
    static const char *const intervals[] = {"0.5", "0"}; /* socket check; real ping */
    PGconn *monitor = monitor_connect();
    for (size_t v = 0; v < sizeof intervals / sizeof intervals[0]; v++) {
        char app[64], options[256];
        test_app_name(app, sizeof app, v == 0 ? "health_killed_idle" : "health_killed_idle_ping");
        snprintf(options, sizeof options,
                 "pool_size=%d max_overflow=0 pool_pre_ping=true pre_ping_interval=%s",
                 KILL_N, intervals[v]);
        pool_t *pool = pq_pool(app, options);
        int old[KILL_N];
        open_n(pool, KILL_N, old);
        if (v == 1) {
            /* every checkout of an idle connection is a round trip now */
            pool_lease_t *lease = checkout(pool);
            assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
            assert_ok(pool_checkin(lease));
            assert_true(stats_of(pool).pings_total >= 1);
        }
        await_sessions(monitor, app, KILL_N);
        assert_int_equal(stats_of(pool).idle, KILL_N);

        assert_int_equal(terminate_named(monitor, app), KILL_N);

        /* every one of the next checkouts gets a live connection, at once */
        pool_lease_t *leases[KILL_N];
        int pids[KILL_N];
        for (int i = 0; i < KILL_N; i++) {
            assert_ok(pool_checkout(&leases[i], pool, SERVER_WAIT_MS));
            PGconn *conn = native(leases[i]);
            PGresult *r = PQexec(conn, "SELECT pg_backend_pid()");
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("checkout %d of %d after the kill (pre_ping_interval=%s) got a dead "
                         "connection: %s", i + 1, KILL_N, intervals[v], PQerrorMessage(conn));
            pids[i] = atoi(PQgetvalue(r, 0, 0));
            PQclear(r);
            assert_false(contains_pid(old, KILL_N, pids[i]));
        }
        for (int i = 0; i < KILL_N; i++) assert_ok(pool_checkin(leases[i]));

        pool_stats_t st = stats_of(pool);
        /* the first dead one found retires those opened before it */
        assert_true(st.dead_total >= 1);
        assert_true(st.resets_total >= 1);
        assert_int_equal(st.dead_total + st.reset_closed_total, KILL_N);
        assert_int_equal(st.closed_total, KILL_N);
        assert_int_equal(st.opened_total, 2 * KILL_N);
        assert_int_equal(st.connect_failures_total, 0);
        assert_int_equal(st.idle, KILL_N);
        assert_ok(pool_dispose(pool));
        await_sessions(monitor, app, 0);
    }
    PQfinish(monitor);
}

/* The new user's scenario of issue 13, `rounds` times: three connections checked out, used and
 * checked in; their backends terminated from another session and awaited until
 * pg_stat_activity no longer lists them; then three checkouts, each running SELECT 1. A
 * terminated backend sends its FATAL notice a moment before it closes its socket: a checkout
 * in between must not take the notice for a sign of life. Every other option at its default
 * (pre_ping_interval 0.5: the socket check, no round trip, for these recently used ones). */
#define TERMINATE_N 3
/* pool_query, its result dropped: the code it returned. */
static int run(pool_lease_t *lease, const char *sql) {
    pool_result_t *r = NULL;
    int rc = pool_query(&r, lease, sql, 0, NULL);
    pool_result_free(r);
    return rc;
}

static void terminated_idle_backends_are_never_handed_out(const char *base, const char *sslmode,
                                                          int rounds) {
    char app[64], conninfo[256];
    test_app_name(app, sizeof app, base);
    snprintf(conninfo, sizeof conninfo, "sslmode=%s application_name=%s", sslmode, app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=3 max_overflow=0 pool_pre_ping=true"));
    PGconn *monitor = monitor_connect();
    int dead_handed_out = 0, checkouts = 0;
    char first_error[512] = "";
    for (int round = 0; round < rounds; round++) {
        pool_lease_t *leases[TERMINATE_N];
        int pids[TERMINATE_N];
        for (int i = 0; i < TERMINATE_N; i++) {
            leases[i] = checkout(pool);
            assert_ok(run(leases[i], "SELECT 1"));
            pids[i] = PQbackendPID(native(leases[i]));
        }
        for (int i = 0; i < TERMINATE_N; i++) assert_ok(pool_checkin(leases[i]));
        for (int i = 0; i < TERMINATE_N; i++) {
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pids[i]);
            assert_int_equal(query_int(monitor, sql), 1);
        }
        for (int i = 0; i < TERMINATE_N; i++) await_backend_gone(monitor, pids[i]);
        for (int i = 0; i < TERMINATE_N; i++) {
            leases[i] = checkout(pool);
            checkouts++;
            if (run(leases[i], "SELECT 1") != POOL_OK) {
                if (!dead_handed_out++)
                    snprintf(first_error, sizeof first_error, "%s", pool_last_error());
            }
            assert_false(contains_pid(pids, TERMINATE_N, PQbackendPID(native(leases[i]))));
        }
        for (int i = 0; i < TERMINATE_N; i++) assert_ok(pool_checkin(leases[i]));
    }
    print_message("      sslmode=%s: %d dead connections handed out in %d checkouts\n", sslmode,
                  dead_handed_out, checkouts);
    if (dead_handed_out)
        fail_msg("%d of %d checkouts got a terminated connection (sslmode=%s); the first: %s",
                 dead_handed_out, checkouts, sslmode, first_error);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, (int64_t)TERMINATE_N * rounds);
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

#define TERMINATE_ROUNDS 200
static void terminated_backends_are_never_handed_out_with_pre_ping_plain_or_tls(void **state) {
    (void)state;
    terminated_idle_backends_are_never_handed_out("health_terminated", "disable",
                                                  TERMINATE_ROUNDS);
    terminated_idle_backends_are_never_handed_out("health_terminated_tls", "require",
                                                  TERMINATE_ROUNDS);
}

/* ---------------------------------------------------------------- 3. server down: fail fast */

struct recovery {
    pool_t *pool;
    int rc;
    char msg[512];
};

static int checkout_succeeds(void *p) {
    struct recovery *r = p;
    pool_lease_t *lease = NULL;
    r->rc = pool_checkout(&lease, r->pool, 2000);
    if (r->rc != POOL_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", pool_last_error());
        return 0;
    }
    PGresult *res = PQexec(pool_lease_native(lease), "SELECT 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) snprintf(r->msg, sizeof r->msg, "query: %s", PQerrorMessage(pool_lease_native(lease)));
    PQclear(res);
    pool_checkin(lease);
    return ok;
}

#define FAIL_FAST_ATTEMPTS 50

static void a_stopped_server_fails_checkouts_fast_and_the_pool_recovers_by_itself(void **state) {
    (void)state;
    require_pgctl();
    char app[64];
    test_app_name(app, sizeof app, "health_fail_fast");
    pool_t *pool = pq_pool_with(app, "connect_timeout=2",
                                "pool_size=2 max_overflow=0 pool_timeout=5 fail_fast_after=3 "
                                "fail_fast_backoff_max=0.2");
    /* one connection while the server is up, checked in: it dies with the server */
    pool_lease_t *lease = checkout(pool);
    assert_ok(pool_checkin(lease));

    assert_int_equal(pgctl("stop -m fast"), 0);
    assert_false(server_accepts(NULL));

    /* connects are refused; after three in a row, checkouts fail at once */
    int real = 0, fast = 0;
    int64_t slowest_fast_ms = 0;
    char first_fast[512] = "";
    pool_stats_t before = stats_of(pool);
    for (int i = 0; i < FAIL_FAST_ATTEMPTS && fast < 5; i++) {
        lease = NULL;
        int64_t t0 = now_ms();
        int rc = pool_checkout(&lease, pool, -1);
        int64_t took = now_ms() - t0;
        if (rc == POOL_OK) {
            /* the connection of before, handed out by a pool without pre-ping: the query
             * fails and the checkin drops it */
            assert_int_equal(i, 0);
            PGresult *r = PQexec(native(lease), "SELECT 1");
            assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            PQclear(r);
            assert_ok(pool_checkin(lease));
            continue;
        }
        assert_int_equal(rc, POOL_ECONNECT);
        assert_null(lease);
        const char *msg = pool_last_error();
        if (strstr(msg, "failing fast")) {
            if (real < 3) fail_msg("failing fast after %d failed connects: \"%s\"", real, msg);
            if (!fast) snprintf(first_fast, sizeof first_fast, "%s", msg);
            fast++;
            if (took > slowest_fast_ms) slowest_fast_ms = took;
        } else {
            assert_contains(msg, "Connection refused");
            real++;
        }
    }
    if (fast == 0) fail_msg("no checkout failed fast in %d attempts", FAIL_FAST_ATTEMPTS);
    assert_contains(first_fast, "Connection refused"); /* with the last connect error */
    if (slowest_fast_ms >= 100) fail_msg("a fast failure took %lld ms", (long long)slowest_fast_ms);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.fast_fails_total - before.fast_fails_total, fast);
    assert_int_equal(st.connect_failures_total - before.connect_failures_total, real);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);

    /* the server comes back: the pool finds out by itself, within its back-off (0.2 s) */
    assert_int_equal(pgctl("start"), 0);
    await_server();
    int64_t t0 = now_ms();
    struct recovery r = {pool, POOL_OK, ""};
    if (!await_true(checkout_succeeds, &r, SERVER_WAIT_MS))
        fail_msg("no checkout succeeded after the server came back: %s: %s",
                 pool_error_name(r.rc), r.msg);
    int64_t recovered_ms = now_ms() - t0;
    if (recovered_ms > 2500)
        fail_msg("the pool took %lld ms to notice the server, back-off max 0.2 s",
                 (long long)recovered_ms);
    /* and fail-fast is over: the next checkouts just work */
    for (int i = 0; i < 3; i++) {
        assert_ok(pool_checkout(&lease, pool, 2000));
        assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
        assert_ok(pool_checkin(lease));
    }
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- 4. recycle with jitter */

#define CLOCK_SLACK_MS 15 /* the pool's clock is coarse */

struct pid_changes {
    pool_t *pool;
    int pid;
};

/* One checkout and checkin: 1 once the pool hands out another backend than a->pid. */
static int handed_out_another(void *p) {
    struct pid_changes *a = p;
    pool_lease_t *lease = checkout(a->pool);
    int pid = PQbackendPID(native(lease));
    assert_ok(pool_checkin(lease));
    return pid != a->pid;
}

/* At checkout: a connection past its lifetime (pool_recycle less up to its jitter) is
 * replaced by a fresh one, unseen; not before pool_recycle - jitter. */
static void a_connection_past_pool_recycle_is_replaced_at_checkout(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "health_recycle_checkout");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool_with(app, "sslmode=disable",
                                "pool_size=1 max_overflow=0 pool_recycle=0.3 "
                                "pool_recycle_jitter=0.1");
    int64_t t0 = now_ms();
    pool_lease_t *lease = checkout(pool);
    struct pid_changes a = {pool, backend_pid(lease)};
    assert_ok(pool_checkin(lease));
    if (!await_true(handed_out_another, &a, SERVER_WAIT_MS))
        fail_msg("backend %d was still handed out %lld ms after it opened, pool_recycle 0.3",
                 a.pid, (long long)(now_ms() - t0));
    int64_t lived = now_ms() - t0;
    if (lived < 200 - CLOCK_SLACK_MS)
        fail_msg("backend %d was recycled after %lld ms, before pool_recycle - jitter (0.2 s)",
                 a.pid, (long long)lived);
    await_backend_gone(monitor, a.pid);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.recycled_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

#define RECYCLE_N 12
#define RECYCLE_MS 1000
#define RECYCLE_JITTER_MS 900
#define RECYCLE_LATE_MS 250 /* a wake-up, a close, a backend's exit: all on a loaded machine */

struct recycled {
    int pid;
    int64_t open_start, open_end; /* around the checkout that opened it */
    int64_t alive;                /* the start of the last look that found its backend */
    int64_t gone;                 /* the end of the first look that did not (0: not yet) */
};

/* The backends named app, now, into pids (at most max); returns how many. */
static int backends_named(PGconn *monitor, const char *app, int *pids, int max) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pid FROM pg_stat_activity WHERE application_name = '%s'",
             app);
    PGresult *r = PQexec(monitor, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(monitor));
    int n = PQntuples(r) < max ? PQntuples(r) : max;
    for (int i = 0; i < n; i++) pids[i] = atoi(PQgetvalue(r, i, 0));
    PQclear(r);
    return n;
}

/* Twelve connections opened together, then left idle: the maintenance thread (running for
 * idle_timeout, which is too long to matter) closes each when its own lifetime is over, a
 * random 0.1 to 1 s, with no checkout to pace it. The monitor watches their backends go,
 * which bounds each lifetime from below (still there) and above (gone). They must not all
 * expire together: one must have lived at least 100 ms longer than another. (12 lifetimes
 * uniform over 900 ms all within 100 ms plus the looks' resolution: about 1e-9.) */
static void idle_connections_expire_at_spread_out_times(void **state) {
    (void)state;
    char app[64], options[256];
    test_app_name(app, sizeof app, "health_recycle_jitter");
    snprintf(options, sizeof options,
             "pool_size=%d max_overflow=0 pool_timeout=10 pool_recycle=%g "
             "pool_recycle_jitter=%g idle_timeout=60",
             RECYCLE_N, RECYCLE_MS / 1000.0, RECYCLE_JITTER_MS / 1000.0);
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool_with(app, "sslmode=disable", options);

    struct recycled c[RECYCLE_N];
    pool_lease_t *leases[RECYCLE_N];
    memset(c, 0, sizeof c);
    for (int i = 0; i < RECYCLE_N; i++) {
        c[i].open_start = now_ms();
        leases[i] = checkout(pool);
        c[i].open_end = c[i].alive = now_ms();
        c[i].pid = PQbackendPID(native(leases[i]));
        for (int j = 0; j < i; j++) assert_int_not_equal(c[j].pid, c[i].pid);
    }
    for (int i = 0; i < RECYCLE_N; i++) assert_ok(pool_checkin(leases[i]));

    int remaining = RECYCLE_N, looks = 0;
    int64_t deadline = now_ms() + SERVER_WAIT_MS;
    while (remaining > 0 && now_ms() < deadline) {
        int pids[64];
        int64_t start = now_ms();
        int n = backends_named(monitor, app, pids, 64);
        int64_t end = now_ms();
        looks++;
        for (int j = 0; j < RECYCLE_N; j++) {
            if (c[j].gone) continue;
            if (contains_pid(pids, n, c[j].pid)) {
                c[j].alive = start;
            } else {
                c[j].gone = end;
                remaining--;
            }
        }
    }
    if (remaining) fail_msg("%d of %d idle connections were never recycled", remaining, RECYCLE_N);

    int64_t max_lower = 0, min_upper = INT64_MAX;
    for (int j = 0; j < RECYCLE_N; j++) {
        int64_t lower = c[j].alive - c[j].open_end;  /* it lived at least this long */
        int64_t upper = c[j].gone - c[j].open_start; /* and at most this long */
        if (upper < RECYCLE_MS - RECYCLE_JITTER_MS - CLOCK_SLACK_MS)
            fail_msg("backend %d was recycled after %lld ms, before pool_recycle - jitter",
                     c[j].pid, (long long)upper);
        if (lower > RECYCLE_MS + RECYCLE_LATE_MS)
            fail_msg("backend %d was still there %lld ms after it opened, pool_recycle %d ms",
                     c[j].pid, (long long)lower, RECYCLE_MS);
        if (lower > max_lower) max_lower = lower;
        if (upper < min_upper) min_upper = upper;
    }
    if (max_lower - min_upper < 100)
        fail_msg("all %d connections expired within 100 ms of each other (the longest lived "
                 "at least %lld ms, the shortest at most %lld ms; %d looks): no jitter",
                 RECYCLE_N, (long long)max_lower, (long long)min_upper, looks);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.recycled_total, RECYCLE_N);
    assert_int_equal(st.closed_total, RECYCLE_N);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.idle_closed_total, 0);
    assert_int_equal(st.checkouts_total, RECYCLE_N);
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 5. idle_timeout, min_idle */

struct idle_arg {
    pool_t *pool;
    int64_t idle, idle_closed;
};

static int idle_reached(void *p) {
    struct idle_arg *a = p;
    pool_stats_t st = stats_of(a->pool);
    return st.idle == a->idle && st.idle_closed_total == a->idle_closed;
}

static int idle_closed_beyond(void *p) {
    struct idle_arg *a = p;
    return stats_of(a->pool).idle_closed_total > a->idle_closed;
}

struct fresh_arg {
    PGconn *monitor;
    const char *app;
    const int *old;
    int nold;
    long long n;
};

/* The server has n sessions named app, none of them one of `old`. */
static int fresh_sessions(void *p) {
    struct fresh_arg *a = p;
    char sql[512];
    int len = snprintf(sql, sizeof sql,
                       "SELECT count(*) FILTER (WHERE pid NOT IN (0");
    for (int i = 0; i < a->nold; i++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ",%d", a->old[i]);
    snprintf(sql + len, sizeof sql - (size_t)len,
             ")) = %lld AND count(*) = %lld FROM pg_stat_activity WHERE application_name = '%s'",
             a->n, a->n, a->app);
    char v[8];
    query_string(a->monitor, sql, v, sizeof v);
    return strcmp(v, "t") == 0;
}

#define IDLE_SIZE 5
#define MIN_IDLE 2

static void idle_timeout_shrinks_to_min_idle_and_min_idle_refills_after_a_kill(void **state) {
    (void)state;
    char app[64], options[256];
    test_app_name(app, sizeof app, "health_min_idle");
    snprintf(options, sizeof options,
             "pool_size=%d max_overflow=0 pool_timeout=10 min_idle=%d idle_timeout=0.2",
             IDLE_SIZE, MIN_IDLE);
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool_with(app, "sslmode=disable", options);

    /* min_idle connections open in the background */
    assert_ok(pool_wait_ready(pool, SERVER_WAIT_MS));
    assert_int_equal(stats_of(pool).idle, MIN_IDLE);
    await_sessions(monitor, app, MIN_IDLE);

    /* a burst opens the rest; idle_timeout closes them again, down to min_idle */
    int old[IDLE_SIZE];
    open_n(pool, IDLE_SIZE, old);
    assert_int_equal(stats_of(pool).opened_total, IDLE_SIZE);
    await_sessions(monitor, app, MIN_IDLE);
    struct idle_arg ia = {pool, MIN_IDLE, IDLE_SIZE - MIN_IDLE};
    if (!await_true(idle_reached, &ia, SERVER_WAIT_MS))
        fail_msg("idle %lld, idle_closed_total %lld; expected %d and %d",
                 (long long)stats_of(pool).idle, (long long)stats_of(pool).idle_closed_total,
                 MIN_IDLE, IDLE_SIZE - MIN_IDLE);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, IDLE_SIZE);
    assert_int_equal(st.closed_total, IDLE_SIZE - MIN_IDLE);
    /* and no further: three idle_timeouts later, min_idle are still open */
    if (await_true(idle_closed_beyond, &ia, 600))
        fail_msg("idle_timeout closed connections below min_idle");
    assert_int_equal(sessions_named(monitor, app), MIN_IDLE);

    /* its connections killed, the pool opens min_idle new ones by itself */
    assert_int_equal(terminate_named(monitor, app), MIN_IDLE);
    struct fresh_arg fa = {monitor, app, old, IDLE_SIZE, MIN_IDLE};
    if (!await_true(fresh_sessions, &fa, SERVER_WAIT_MS))
        fail_msg("min_idle did not refill after its connections were killed: %lld sessions "
                 "named %s, stats idle %lld opened_total %lld",
                 sessions_named(monitor, app), app, (long long)stats_of(pool).idle,
                 (long long)stats_of(pool).opened_total);
    assert_ok(pool_wait_ready(pool, SERVER_WAIT_MS));
    st = stats_of(pool);
    assert_int_equal(st.idle, MIN_IDLE);
    assert_int_equal(st.opened_total, IDLE_SIZE + MIN_IDLE);

    /* and they are the ones handed out */
    pool_lease_t *a = checkout(pool), *b = checkout(pool);
    assert_false(contains_pid(old, IDLE_SIZE, backend_pid(a)));
    assert_false(contains_pid(old, IDLE_SIZE, backend_pid(b)));
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(stats_of(pool).opened_total, IDLE_SIZE + MIN_IDLE);
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 6. on_connect */

struct hook_state {
    pthread_mutex_t mu;
    int fail;
    int connects, closes;
    int last_pid;
    char set_app[128]; /* SET application_name = '...' */
    void *foreign_user_data;
};

static int on_connect_set(void *conn, char *errbuf, size_t errbuf_len, void *user_data) {
    struct hook_state *h = user_data;
    PGconn *c = conn;
    pthread_mutex_lock(&h->mu);
    h->connects++;
    h->last_pid = PQbackendPID(c);
    int fail = h->fail;
    pthread_mutex_unlock(&h->mu);
    if (fail) {
        snprintf(errbuf, errbuf_len, "on_connect says no to backend %d", PQbackendPID(c));
        return 1;
    }
    const char *sqls[] = {"SET statement_timeout = 1234", h->set_app};
    for (int i = 0; i < 2; i++) {
        PGresult *r = PQexec(c, sqls[i]);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            snprintf(errbuf, errbuf_len, "%s: %s", sqls[i], PQerrorMessage(c));
            return 1;
        }
    }
    return 0;
}

static void on_close_count(void *conn, void *user_data) {
    struct hook_state *h = user_data;
    (void)conn;
    pthread_mutex_lock(&h->mu);
    h->closes++;
    pthread_mutex_unlock(&h->mu);
}

static pool_hooks_t connect_hooks(struct hook_state *h) {
    pool_hooks_t hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.on_connect = on_connect_set;
    hooks.on_close = on_close_count;
    hooks.user_data = h;
    return hooks;
}

static void on_connect_sets_up_every_session_and_its_failure_fails_the_connect(void **state) {
    (void)state;
    char app[64], app_set[80], v[128];
    test_app_name(app, sizeof app, "health_on_connect");
    snprintf(app_set, sizeof app_set, "%s_set", app);
    static struct hook_state h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.mu, NULL);
    snprintf(h.set_app, sizeof h.set_app, "SET application_name = '%s'", app_set);
    PGconn *monitor = monitor_connect();

    pool_t *pool = pq_pool(app, "pool_size=2 max_overflow=0");
    pool_hooks_t hooks = connect_hooks(&h);
    assert_ok(pool_set_hooks(pool, &hooks));
    pool_lease_t *a = checkout(pool);
    query_string(native(a), "SHOW statement_timeout", v, sizeof v);
    assert_string_equal(v, "1234ms");
    query_string(native(a), "SHOW application_name", v, sizeof v);
    assert_string_equal(v, app_set);
    int pid = backend_pid(a);
    assert_int_equal(pool_set_hooks(pool, &hooks), POOL_ESTATE); /* in use now */
    assert_ok(pool_checkin(a));

    /* the same session again: set up once, still set up after the checkin's rollback */
    a = checkout(pool);
    assert_int_equal(backend_pid(a), pid);
    query_string(native(a), "SHOW statement_timeout", v, sizeof v);
    assert_string_equal(v, "1234ms");
    pool_lease_t *b = checkout(pool); /* a second session */
    query_string(native(b), "SHOW statement_timeout", v, sizeof v);
    assert_string_equal(v, "1234ms");
    assert_int_equal(h.connects, 2);
    assert_int_equal(sessions_named(monitor, app_set), 2);
    assert_int_equal(sessions_named(monitor, app), 0);
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(h.closes, 0);
    assert_ok(pool_dispose(pool));
    assert_int_equal(h.closes, 2);
    await_sessions(monitor, app_set, 0);

    /* a failing on_connect fails the checkout with its message; the session is closed
     * without on_close, and the slot is free for the next checkout */
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.mu, NULL);
    snprintf(h.set_app, sizeof h.set_app, "SET application_name = '%s'", app_set);
    h.fail = 1;
    pool = pq_pool(app, "pool_size=1 max_overflow=0 pool_timeout=10");
    hooks = connect_hooks(&h);
    assert_ok(pool_set_hooks(pool, &hooks));
    pool_lease_t *lease = (pool_lease_t *)&lease;
    assert_int_equal(pool_checkout(&lease, pool, -1), POOL_ECONNECT);
    assert_null(lease);
    char expected[64];
    snprintf(expected, sizeof expected, "on_connect says no to backend %d", h.last_pid);
    assert_contains(pool_last_error(), expected);
    assert_int_equal(h.connects, 1);
    assert_int_equal(h.closes, 0);
    await_backend_gone(monitor, h.last_pid);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.opening, 0);

    pthread_mutex_lock(&h.mu);
    h.fail = 0;
    pthread_mutex_unlock(&h.mu);
    lease = checkout(pool);
    query_string(native(lease), "SHOW statement_timeout", v, sizeof v);
    assert_string_equal(v, "1234ms");
    assert_ok(pool_checkin(lease));
    assert_int_equal(h.connects, 2);
    assert_ok(pool_dispose(pool));
    assert_int_equal(h.closes, 1);
    await_sessions(monitor, app_set, 0);
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
    pthread_mutex_destroy(&h.mu);
}

/* ---------------------------------------------------------------- 7. pool_report_error */

static void reporting_a_failover_sqlstate_retires_older_connections_only(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "health_report_error");
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool(app, "pool_size=5 max_overflow=0");

    /* four older connections: two idle, one held elsewhere, one that meets the error */
    pool_lease_t *idle1 = checkout(pool), *idle2 = checkout(pool);
    pool_lease_t *held = checkout(pool), *reporter = checkout(pool);
    int idle1_pid = backend_pid(idle1), idle2_pid = backend_pid(idle2);
    int held_pid = backend_pid(held), reporter_pid = backend_pid(reporter);
    assert_ok(pool_checkin(idle1));
    assert_ok(pool_checkin(idle2));

    /* SQLSTATEs that do not mean the server changed: nothing happens */
    static const char *const harmless[] = {"23505", "40001", "42P01", "57014", "XX000"};
    for (size_t i = 0; i < sizeof harmless / sizeof harmless[0]; i++)
        assert_ok(pool_report_error(reporter, harmless[i]));
    static const char *const malformed[] = {"", "2500", "250066", "08"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        assert_int_equal(pool_report_error(reporter, malformed[i]), POOL_EINVAL);
    assert_int_equal(pool_report_error(reporter, NULL), POOL_EINVAL);
    assert_int_equal(pool_report_error(NULL, "25006"), POOL_EINVAL);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.resets_total, 0);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.idle, 2);

    /* read_only_sql_transaction: the server became a standby */
    assert_ok(pool_report_error(reporter, "25006"));
    await_backend_gone(monitor, idle1_pid);
    await_backend_gone(monitor, idle2_pid);
    assert_true(backend_exists(monitor, held_pid)); /* in use: closed at its checkin */
    assert_true(backend_exists(monitor, reporter_pid));
    assert_int_equal(query_int(native(held), "SELECT 1"), 1);

    /* a connection opened after the report survives everything below */
    pool_lease_t *newer = checkout(pool);
    int newer_pid = backend_pid(newer);
    assert_false(newer_pid == idle1_pid || newer_pid == idle2_pid);
    assert_ok(pool_checkin(reporter));
    assert_ok(pool_checkin(held));
    assert_ok(pool_checkin(newer));
    await_backend_gone(monitor, reporter_pid);
    await_backend_gone(monitor, held_pid);
    assert_true(backend_exists(monitor, newer_pid));
    newer = checkout(pool);
    assert_int_equal(backend_pid(newer), newer_pid);
    assert_ok(pool_checkin(newer));

    st = stats_of(pool);
    assert_int_equal(st.resets_total, 1);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.reset_closed_total, 3);
    assert_int_equal(st.closed_total, 4);
    assert_int_equal(st.opened_total, 5);
    assert_int_equal(st.idle, 1);

    /* every code that means the server went away or changed role does the same */
    static const char *const fatal[] = {"08006", "08003", "57P01", "57P02", "57P03"};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        pool_lease_t *lease = checkout(pool);
        int pid = backend_pid(lease);
        assert_ok(pool_report_error(lease, fatal[i]));
        assert_int_equal(stats_of(pool).resets_total, (int64_t)(2 + i));
        assert_ok(pool_checkin(lease));
        await_backend_gone(monitor, pid);
    }
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 8. the log hook */

#define LOG_MAX 256

struct log_capture {
    pthread_mutex_t mu;
    int n, dropped;
    int level[LOG_MAX];
    char text[LOG_MAX][512];
};

static void capture_log(int level, const char *message, void *user_data) {
    struct log_capture *c = user_data;
    pthread_mutex_lock(&c->mu);
    if (c->n < LOG_MAX) {
        c->level[c->n] = level;
        snprintf(c->text[c->n], sizeof c->text[c->n], "%s", message ? message : "(null)");
        c->n++;
    } else {
        c->dropped++;
    }
    pthread_mutex_unlock(&c->mu);
}

static pool_t *logged_pool(const char *conninfo, const char *options, struct log_capture *c,
                           int log_level) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    pool_hooks_t hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.log = capture_log;
    hooks.log_level = log_level;
    hooks.user_data = c;
    assert_ok(pool_set_hooks(pool, &hooks));
    return pool;
}

/* No message contains `secret`, and none is above `max_level`; returns how many are at
 * `level` and contain `part` (NULL: any text). */
static int check_log(struct log_capture *c, const char *secret, int max_level, int level,
                     const char *part) {
    int matching = 0;
    assert_int_equal(c->dropped, 0);
    for (int i = 0; i < c->n; i++) {
        if (secret && strstr(c->text[i], secret))
            fail_msg("a log message shows the password: \"%s\"", c->text[i]);
        if (c->level[i] > max_level || c->level[i] < POOL_LOG_ERROR)
            fail_msg("a message at level %d with log_level %d: \"%s\"", c->level[i], max_level,
                     c->text[i]);
        if (c->level[i] == level && (!part || strstr(c->text[i], part))) matching++;
    }
    return matching;
}

static void print_log(const struct log_capture *c) {
    for (int i = 0; i < c->n; i++) print_message("log %d: %s\n", c->level[i], c->text[i]);
}

static void the_log_hook_reports_connect_failures_without_the_password(void **state) {
    (void)state;
    static struct log_capture c;
    const char *port = getenv("PGPORT");
    const char *env_password = getenv("PGPASSWORD");
    assert_non_null(port);
    assert_non_null(env_password);
    char conninfos[2][256];
    snprintf(conninfos[0], sizeof conninfos[0],
             "password=definitely_wrong_pw_42 application_name=health_log_bad");
    snprintf(conninfos[1], sizeof conninfos[1],
             "postgresql://postgres:definitely_wrong_pw_42@127.0.0.1:%s/postgres"
             "?application_name=health_log_bad_uri",
             port);
    for (int i = 0; i < 2; i++) {
        pool_t *pool = logged_pool(conninfos[i], "pool_size=1 max_overflow=0 pool_timeout=10",
                                   &c, POOL_LOG_DEBUG);
        pool_lease_t *lease = NULL;
        assert_int_equal(pool_checkout(&lease, pool, -1), POOL_ECONNECT);
        assert_lacks(pool_last_error(), "definitely_wrong_pw_42");
        assert_ok(pool_dispose(pool));
        int failures = check_log(&c, "definitely_wrong_pw_42", POOL_LOG_DEBUG, POOL_LOG_ERROR,
                                 "password authentication failed");
        if (failures < 1) {
            print_log(&c);
            fail_msg("the failed connect (%s) was not logged at POOL_LOG_ERROR",
                     i ? "URI" : "key=value");
        }
        check_log(&c, env_password, POOL_LOG_DEBUG, 0, NULL);
        pthread_mutex_destroy(&c.mu);
    }

    /* the right password, given in the string: every connect and close is logged at
     * POOL_LOG_DEBUG, and the password never */
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "password=%s application_name=health_log_good",
             env_password);
    pool_t *pool = logged_pool(conninfo, "pool_size=1 max_overflow=0", &c, POOL_LOG_DEBUG);
    pool_lease_t *lease = checkout(pool);
    assert_int_equal(query_int(native(lease), "SELECT 1"), 1);
    assert_ok(pool_invalidate(lease));
    assert_ok(pool_checkin(lease)); /* a close */
    lease = checkout(pool);         /* a second connect */
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool)); /* a second close */
    int debug = check_log(&c, env_password, POOL_LOG_DEBUG, POOL_LOG_DEBUG, NULL);
    if (debug < 2 || c.n < 4) {
        print_log(&c);
        fail_msg("%d messages (%d at POOL_LOG_DEBUG) for 2 connects and 2 closes", c.n, debug);
    }
    pthread_mutex_destroy(&c.mu);

    /* log_level filters: the same at POOL_LOG_WARN logs nothing above it */
    pool = logged_pool(conninfo, "pool_size=1 max_overflow=0", &c, POOL_LOG_WARN);
    lease = checkout(pool);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    check_log(&c, env_password, POOL_LOG_WARN, 0, NULL);
    pthread_mutex_destroy(&c.mu);
}

/* ---------------------------------------------------------------- 9. what the server says */

/* fd 2 into a temporary file, from capture_stderr() until release_stderr(), which copies what
 * was written there into buf and returns its length. */
struct captured {
    int saved;
    FILE *file;
};

static void capture_stderr(struct captured *c) {
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->file), 2) == 2);
}

static size_t release_stderr(struct captured *c, char *buf, size_t len) {
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    rewind(c->file);
    size_t n = fread(buf, 1, len - 1, c->file);
    buf[n] = '\0';
    fclose(c->file);
    return n;
}

#define NOTICE_SQL                                                                  \
    "DO $$BEGIN RAISE NOTICE 'connpool notice %', 42; RAISE WARNING 'connpool warning'; " \
    "END$$"

static void run_ok(pool_lease_t *lease, const char *sql) {
    if (run(lease, sql) != POOL_OK) fail_msg("%s: %s", sql, pool_last_error());
}


/* Notices from pool_query and from the native handle; a backend terminated while idle in the
 * pool (found by pre-ping at checkout) and while checked out (found at checkin). */
static void make_the_server_talk(pool_t *pool, PGconn *monitor) {
    pool_lease_t *lease = checkout(pool);
    run_ok(lease, NOTICE_SQL);
    PQclear(PQexec(native(lease), NOTICE_SQL));
    int pid = PQbackendPID(native(lease));
    assert_ok(pool_checkin(lease));
    terminate_backend(monitor, pid); /* its FATAL notice first */
    lease = checkout(pool); /* pre-ping finds it ended: a new connection */
    assert_int_not_equal(PQbackendPID(native(lease)), pid);
    pid = PQbackendPID(native(lease));
    terminate_backend(monitor, pid);
    assert_ok(pool_checkin(lease)); /* the checkin's check finds it ended */
    assert_int_equal(stats_of(pool).idle, 0);
}

static int notices_seen;
static char notice_text[256];
static void count_notices(void *arg, const char *message) {
    (void)arg;
    notices_seen++;
    snprintf(notice_text, sizeof notice_text, "%s", message);
}

static void libpq_never_writes_on_stderr_and_server_notices_reach_the_log_hook(void **state) {
    (void)state;
    static struct log_capture c;
    char app[64], conninfo[128], out[4096];
    test_app_name(app, sizeof app, "health_notices");
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
    PGconn *monitor = monitor_connect();
    struct captured err;

    /* no log hook: silence */
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 max_overflow=0 pool_pre_ping=true"));
    capture_stderr(&err);
    make_the_server_talk(pool, monitor);
    size_t written = release_stderr(&err, out, sizeof out);
    assert_ok(pool_dispose(pool));
    if (written) fail_msg("%zu bytes on stderr: \"%s\"", written, out);

    /* a log hook: each at its level, with its text */
    pool = logged_pool(conninfo, "pool_size=1 max_overflow=0 pool_pre_ping=true", &c,
                       POOL_LOG_DEBUG);
    capture_stderr(&err);
    make_the_server_talk(pool, monitor);

    /* the application's own notice processor on the native handle is kept */
    pool_lease_t *lease = checkout(pool);
    notices_seen = 0;
    PQsetNoticeProcessor(native(lease), count_notices, NULL);
    run_ok(lease, "DO $$BEGIN RAISE NOTICE 'for the application'; END$$");
    assert_ok(pool_checkin(lease));
    written = release_stderr(&err, out, sizeof out);
    assert_ok(pool_dispose(pool));
    if (written) fail_msg("%zu bytes on stderr: \"%s\"", written, out);
    assert_int_equal(notices_seen, 1);
    assert_non_null(strstr(notice_text, "for the application"));

    int notices = check_log(&c, NULL, POOL_LOG_DEBUG, POOL_LOG_INFO, "NOTICE: connpool notice 42");
    int warnings = check_log(&c, NULL, POOL_LOG_DEBUG, POOL_LOG_WARN, "WARNING: connpool warning");
    int ended = check_log(&c, NULL, POOL_LOG_DEBUG, POOL_LOG_ERROR, "FATAL: terminating connection");
    int ended_code = check_log(&c, NULL, POOL_LOG_DEBUG, POOL_LOG_ERROR, "SQLSTATE 57P01");
    int own = check_log(&c, NULL, POOL_LOG_DEBUG, POOL_LOG_INFO, "for the application");
    if (notices != 2 || warnings != 2 || ended != 2 || ended_code != 2 || own != 1) {
        print_log(&c);
        fail_msg("log: %d notices, %d warnings, %d terminations (%d with their SQLSTATE), %d of "
                 "the application's; expected 2, 2, 2, 2, 1",
                 notices, warnings, ended, ended_code, own);
    }
    pthread_mutex_destroy(&c.mu);
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* The cheap path stays cheap: connections used just now, with nothing to read, are handed out
 * by pre-ping without a round trip. */
static void pre_ping_makes_no_round_trip_for_a_quiet_recently_used_connection(void **state) {
    (void)state;
    char app[64], conninfo[128];
    test_app_name(app, sizeof app, "health_quiet");
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo,
                          "pool_size=1 max_overflow=0 pool_pre_ping=true pre_ping_interval=60"));
    for (int i = 0; i < 100; i++) {
        pool_lease_t *lease = checkout(pool);
        run_ok(lease, "SELECT 1");
        assert_ok(pool_checkin(lease));
    }
    assert_int_equal(stats_of(pool).pings_total, 0);
    /* a NOTIFY arrives on the idle connection: it is not vouched for, so the next checkout
     * pays a round trip */
    pool_lease_t *lease = checkout(pool);
    run_ok(lease, "LISTEN connpool_quiet");
    struct pollfd arrived = {PQsocket(native(lease)), POLLIN, 0};
    assert_ok(pool_checkin(lease));
    PGconn *monitor = monitor_connect();
    PQclear(PQexec(monitor, "NOTIFY connpool_quiet"));
    assert_int_equal(poll(&arrived, 1, SERVER_WAIT_MS), 1); /* awaited, left unread */
    lease = checkout(pool);
    assert_int_equal(stats_of(pool).pings_total, 1);
    run_ok(lease, "UNLISTEN *");
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* A checkout that may not queue (timeout 0) still gives its ping the ping_timeout: a live
 * idle connection passes its ping and is handed out, not closed as dead. */
static void a_zero_timeout_checkout_pings_in_earnest(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "health_zero_ping");
    pool_t *pool = pq_pool(app, "pool_size=1 max_overflow=0 pool_pre_ping=true "
                                "pre_ping_interval=0");
    pool_lease_t *lease = checkout(pool);
    int pid = PQbackendPID(pool_lease_native(lease));
    assert_ok(pool_checkin(lease));
    assert_ok(pool_checkout(&lease, pool, 0));
    assert_int_equal(PQbackendPID(pool_lease_native(lease)), pid);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 0);
    assert_int_equal(st.opened_total, 1);
    assert_ok(pool_dispose(pool));
}

/* A forked child uses a pool whose maintenance thread runs in the parent: the thread does
 * not exist in the child, so the child's first call starts its own, which opens min_idle
 * connections of the child's; the parent's idle sessions are never touched, and its own
 * maintenance thread goes on. Child's pool_dispose joins the child's thread. */
struct fork_min_idle {
    pool_t *pool;
    int parent_pids[MIN_IDLE];
};

static int child_uses_min_idle_pool(void *p) {
    struct fork_min_idle *a = p;
    int rc = pool_wait_ready(a->pool, SERVER_WAIT_MS);
    CHILD_REQUIRE(rc == POOL_OK, "pool_wait_ready: %s: %s", pool_error_name(rc), pool_last_error());
    pool_stats_t st = {.size = sizeof st};
    CHILD_REQUIRE(pool_stats_get(a->pool, &st) == POOL_OK, "pool_stats_get");
    CHILD_REQUIRE(st.inherited_total == MIN_IDLE, "inherited_total %lld", (long long)st.inherited_total);
    CHILD_REQUIRE(st.idle == MIN_IDLE && st.opened_total == MIN_IDLE, "idle %lld opened %lld",
                  (long long)st.idle, (long long)st.opened_total);
    pool_lease_t *lease;
    rc = pool_checkout(&lease, a->pool, SERVER_WAIT_MS);
    CHILD_REQUIRE(rc == POOL_OK, "pool_checkout: %s", pool_last_error());
    int pid = PQbackendPID(pool_lease_native(lease));
    for (int i = 0; i < MIN_IDLE; i++)
        CHILD_REQUIRE(pid != a->parent_pids[i], "the child got the parent's backend %d", pid);
    CHILD_REQUIRE(pool_checkin(lease) == POOL_OK, "pool_checkin: %s", pool_last_error());
    rc = pool_dispose(a->pool);
    CHILD_REQUIRE(rc == POOL_OK, "pool_dispose: %s", pool_last_error());
    return 0;
}

static void a_forked_child_runs_its_own_maintenance_and_leaves_the_parents_alone(void **state) {
    (void)state;
#ifdef __SANITIZE_THREAD__
    /* TSan never learns that the parent's maintenance thread is gone in the child, and glibc
     * gives the child's new thread that thread's stack, hence its id: TSan aborts the child
     * ("dup thread with used id"). A limit of the tool, not of the pool. */
    skip();
#endif
    char app[64], options[128];
    test_app_name(app, sizeof app, "health_fork_min_idle");
    snprintf(options, sizeof options, "pool_size=4 max_overflow=0 min_idle=%d idle_timeout=60",
             MIN_IDLE);
    PGconn *monitor = monitor_connect();
    pool_t *pool = pq_pool_with(app, "sslmode=require", options);
    assert_ok(pool_wait_ready(pool, SERVER_WAIT_MS));
    await_sessions(monitor, app, MIN_IDLE);
    struct fork_min_idle a = {pool, {0}};
    assert_int_equal(backends_named(monitor, app, a.parent_pids, MIN_IDLE), MIN_IDLE);

    for (int kind = VIA_FORK; kind <= VIA__FORK; kind++) {
        struct outcome o = run_child((enum fork_kind)kind, child_uses_min_idle_pool, &a, END__EXIT);
        assert_child_ok(&o, fork_name((enum fork_kind)kind));
        await_sessions(monitor, app, MIN_IDLE); /* the child's sessions are gone */
        for (int i = 0; i < MIN_IDLE; i++) assert_true(backend_exists(monitor, a.parent_pids[i]));
    }
    /* the parent's connections are the same ones, and they answer */
    pool_lease_t *leases[MIN_IDLE];
    for (int i = 0; i < MIN_IDLE; i++) {
        leases[i] = checkout(pool);
        int pid = PQbackendPID(pool_lease_native(leases[i]));
        int known = 0;
        for (int j = 0; j < MIN_IDLE; j++) known |= pid == a.parent_pids[j];
        assert_true(known);
        assert_int_equal(query_int(pool_lease_native(leases[i]), "SELECT 1"), 1);
    }
    for (int i = 0; i < MIN_IDLE; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, MIN_IDLE);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
#define T_SERVER(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, server_up_and_disarm)
    const struct CMUnitTest tests[] = {
        T_SERVER(a_restart_under_load_with_pre_ping_fails_nothing_once_the_server_is_back),
        T_SERVER(a_restart_under_load_without_pre_ping_hands_each_dead_connection_out_once),
        T(backends_killed_while_idle_are_replaced_unseen_with_pre_ping),
        T(terminated_backends_are_never_handed_out_with_pre_ping_plain_or_tls),
        T_SERVER(a_stopped_server_fails_checkouts_fast_and_the_pool_recovers_by_itself),
        T(a_connection_past_pool_recycle_is_replaced_at_checkout),
        T(idle_connections_expire_at_spread_out_times),
        T(idle_timeout_shrinks_to_min_idle_and_min_idle_refills_after_a_kill),
        T(a_forked_child_runs_its_own_maintenance_and_leaves_the_parents_alone),
        T(a_zero_timeout_checkout_pings_in_earnest),
        T(on_connect_sets_up_every_session_and_its_failure_fails_the_connect),
        T(reporting_a_failover_sqlstate_retires_older_connections_only),
        T(the_log_hook_reports_connect_failures_without_the_password),
        T(libpq_never_writes_on_stderr_and_server_notices_reach_the_log_hook),
        T(pre_ping_makes_no_round_trip_for_a_quiet_recently_used_connection),
    };
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
