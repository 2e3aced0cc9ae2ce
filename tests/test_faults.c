/* Network and server faults (issue: fault-injecting proxy) against a real PostgreSQL server,
 * through libpq: a black-holed server, connections reset mid-query, a server at
 * max_connections, and slow connects.
 *
 * Run under tests/with-postgres.sh (PG* variables, and CONNPOOL_TEST_PGCTL to restart the
 * server). Most tests put tests/faultproxy.c between the pool and the server: the pool's
 * conninfo is host=127.0.0.1 port=<the proxy's port>, and user, database and password come
 * from the PG* environment. The proxy then black-holes, delays or resets on command. Every
 * test names its sessions with its own application_name (suffixed with this process's pid)
 * and watches them from a monitor connection outside any pool; counts that must drop on the
 * server or in the proxy are awaited, never asserted at once. Upper bounds on how long a
 * failing call takes are its deadline plus a generous SLACK_MS: they catch a hang, they are
 * not speed targets. cmocka's assertions run only on the test thread: worker threads record
 * what they saw, and the test thread checks it after joining them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "faultproxy.h"
#include "util.h"

/* Added to a deadline in the upper bound of a failing call: room for a loaded machine and
 * the sanitizers, far below anything that would count as hanging. */
#define SLACK_MS 2000
/* The checkout deadline in the black-hole tests. */
#define HOLE_DEADLINE_MS 500

/* ---------------------------------------------------------------- helpers */

static faultproxy_t *start_proxy(void) {
    faultproxy_t *proxy = NULL;
    if (fp_start(&proxy, "127.0.0.1", atoi(env_or_fail("PGPORT"))) != 0)
        fail_msg("fp_start: %s", strerror(errno));
    return proxy;
}

/* What a test here works with: the proxy in front of the server, a monitor connection
 * outside any pool, and the test's application_name. */
struct scene {
    faultproxy_t *proxy;
    PGconn *monitor;
    char app[64];
};

static void scene_begin(struct scene *s, const char *base) {
    s->proxy = start_proxy();
    s->monitor = monitor_connect();
    test_app_name(s->app, sizeof s->app, base);
}

/* A pool of libpq connections through the proxy, named after the test, plus `extra`
 * conninfo. */
static pool_t *proxied_pool(const struct scene *s, const char *extra, const char *options) {
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d application_name=%s %s",
             fp_port(s->proxy), s->app, extra ? extra : "");
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    return pool;
}

/* The backend pid behind a lease, asked of the server through pool_query. */
static int lease_pid(pool_lease_t *lease) {
    pool_result_t *res = NULL;
    assert_ok(pool_query(&res, lease, "SELECT pg_backend_pid()", 0, NULL));
    int pid = atoi(pool_result_value(res, 0, 0));
    pool_result_free(res);
    assert_true(pid > 0);
    return pid;
}

/* Opens the pool's one connection and leaves it idle; its backend's pid. */
static int one_idle_backend(pool_t *pool) {
    pool_lease_t *lease = checkout(pool);
    int pid = lease_pid(lease);
    assert_ok(pool_checkin(lease));
    return pid;
}

struct proxy_count {
    faultproxy_t *proxy;
    long n;
};

static int proxy_connections_are(void *arg) {
    struct proxy_count *c = arg;
    return fp_connections(c->proxy) == c->n;
}

static int proxy_accepted_reaches(void *arg) {
    struct proxy_count *c = arg;
    return (long)fp_accepted(c->proxy) >= c->n;
}

/* Await the proxy holding `n` client connections: the pool's sockets, as the proxy sees them.
 * A connection the pool closed leaves the proxy once both sides have hung up. (Macros, so
 * that a failure names the test's line.) */
static void await_proxy_connections_at(faultproxy_t *proxy, long n, int line) {
    struct proxy_count c = {proxy, n};
    if (!await_true(proxy_connections_are, &c, SERVER_WAIT_MS))
        fail_msg("line %d: the proxy holds %d client connection(s), expected %ld", line,
                 fp_connections(proxy), n);
}
#define await_proxy_connections(proxy, n) await_proxy_connections_at((proxy), (n), __LINE__)

static void await_proxy_accepted_at(faultproxy_t *proxy, long n, int line) {
    struct proxy_count c = {proxy, n};
    if (!await_true(proxy_accepted_reaches, &c, SERVER_WAIT_MS))
        fail_msg("line %d: the proxy accepted %lu connection(s), expected %ld", line,
                 fp_accepted(proxy), n);
}
#define await_proxy_accepted(proxy, n) await_proxy_accepted_at((proxy), (n), __LINE__)

/* A checkout with timeout_ms that must fail with `want` (0: POOL_ETIMEDOUT or POOL_ECONNECT),
 * lend nothing, and return within bound_ms + SLACK_MS (bound_ms < 0: no bound), so that a
 * hang shows; `what` names it in a failure, and its message goes to msg. checkout_fails is a
 * macro, so that a failure names the test's line. */
static void checkout_fails_at(pool_t *pool, int64_t timeout_ms, int want, int64_t bound_ms,
                              const char *what, char *msg, size_t len, int line) {
    pool_lease_t *lease = (pool_lease_t *)&lease;
    int64_t start = now_ms();
    int rc = pool_checkout(&lease, pool, timeout_ms);
    int64_t took = now_ms() - start;
    snprintf(msg, len, "%s", pool_last_error());
    if (want ? rc != want : rc != POOL_ETIMEDOUT && rc != POOL_ECONNECT)
        fail_msg("line %d: %s: %s: %s", line, what, pool_error_name(rc), msg);
    if (lease) fail_msg("line %d: %s: a failed checkout lent a lease", line, what);
    if (bound_ms >= 0 && took > bound_ms + SLACK_MS)
        fail_msg("line %d: %s took %lld ms, bound %lld ms", line, what, (long long)took,
                 (long long)bound_ms);
}
#define checkout_fails(pool, timeout_ms, want, bound_ms, what, msg) \
    checkout_fails_at((pool), (timeout_ms), (want), (bound_ms), (what), (msg), sizeof(msg), __LINE__)

/* The network heals: the next checkout gets a working connection, on a backend other than
 * old_pid (0: any backend). */
static void heal_and_check_out_another_backend(struct scene *s, pool_t *pool, int old_pid) {
    fp_set_mode(s->proxy, FP_PASS, 0);
    pool_lease_t *lease = checkout(pool);
    assert_int_not_equal(lease_pid(lease), old_pid);
    assert_ok(pool_checkin(lease));
}

/* The end of a test: the pool disposed, no session by the test's name left on the server and
 * no connection left in the proxy (awaited), then the proxy and the monitor closed. */
static void scene_end(struct scene *s, pool_t *pool) {
    assert_ok(pool_dispose(pool));
    await_sessions(s->monitor, s->app, 0);
    await_proxy_connections(s->proxy, 0);
    fp_stop(s->proxy);
    PQfinish(s->monitor);
}

struct stat_arg {
    pool_t *pool;
    int64_t n;
};

static int opening_is(void *arg) {
    struct stat_arg *a = arg;
    return stats_of(a->pool).opening == a->n;
}

static void await_opening(pool_t *pool, int64_t n) {
    struct stat_arg a = {pool, n};
    if (!await_true(opening_is, &a, SERVER_WAIT_MS))
        fail_msg("connects in progress: %lld, expected %lld", (long long)stats_of(pool).opening,
                 (long long)n);
}

/* A checkout on its own thread; the test thread reads the outcome once `done` is set. */
struct bg_checkout {
    pool_t *pool;
    int64_t timeout_ms;
    int rc;
    char msg[512];
    pool_lease_t *lease;
    int64_t done; /* atomic */
};

static void *checkout_in_background(void *arg) {
    struct bg_checkout *b = arg;
    b->rc = pool_checkout(&b->lease, b->pool, b->timeout_ms);
    snprintf(b->msg, sizeof b->msg, "%s", pool_last_error());
    atomic_set(&b->done, 1);
    return NULL;
}

static void start_background_checkout(pthread_t *thread, struct bg_checkout *b) {
    if (pthread_create(thread, NULL, checkout_in_background, b) != 0) fail_msg("pthread_create");
}

/* ---------------------------------------------------------------- 1. black hole */

/* An idle connection whose server went silent (nothing closed, nothing reset: the proxy
 * swallows every byte) is found dead by the pre-ping within the checkout's deadline; the
 * checkout then fails (it has no time left to connect) instead of hanging, and every count
 * stays exact: the dead connection is closed and counted once, no connect is left counted.
 * Once the network heals, the next checkout opens a new session. */
static void a_black_hole_fails_a_pre_ping_checkout_within_its_deadline_and_the_pool_recovers(
    void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_ping");
    pool_t *pool = proxied_pool(&s, NULL,
                                "pool_size=1 max_overflow=0 pool_pre_ping=true "
                                "pre_ping_interval=0 fail_fast_after=0");
    int old_pid = one_idle_backend(pool);
    await_sessions(s.monitor, s.app, 1);

    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    char msg[512];
    checkout_fails(pool, HOLE_DEADLINE_MS, 0, HOLE_DEADLINE_MS, "checkout into a black hole", msg);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.connect_failures_total + st.timeouts_total, 1); /* this checkout */
    assert_int_equal(st.checkouts_total, 1);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.overflow, 0);
    /* the pool let go of the silent connection (and of any connect it tried): nothing is
       left open through the proxy, and the server's backend ends */
    await_proxy_connections(s.proxy, 0);
    await_sessions(s.monitor, s.app, 0);

    heal_and_check_out_another_backend(&s, pool, old_pid);
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.checkouts_total, 2);

    scene_end(&s, pool);
}

/* The same with nothing to spare: the ping uses up the whole deadline. The checkout then
 * fails as the timeout it is, POOL_ETIMEDOUT, and starts no connect it has no time for (one
 * would fail at once as "connect failed: timed out after 0.00 s", count as a connect
 * failure, which feeds fail-fast, and open a TCP connection for nothing: what
 * lib/checkout.cc did before it learnt to stop after a dead ping past the deadline). */
static void a_pre_ping_that_uses_up_the_deadline_times_out_without_a_doomed_connect(
    void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_ping_strict");
    pool_t *pool = proxied_pool(&s, NULL,
                                "pool_size=1 max_overflow=0 pool_pre_ping=true "
                                "pre_ping_interval=0 ping_timeout=30 fail_fast_after=0");
    one_idle_backend(pool);

    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    char msg[512];
    checkout_fails(pool, HOLE_DEADLINE_MS, POOL_ETIMEDOUT, -1,
                   "a checkout whose ping used up its deadline", msg);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.timeouts_total, 1);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.opening, 0);
    scene_end(&s, pool);
}

/* A connect into a black hole (the TCP connect succeeds, the server never answers) fails
 * with POOL_ECONNECT within the checkout's deadline, and gives its slot back: with one slot,
 * a kept slot would turn the second checkout into a wait and a POOL_ETIMEDOUT. libpq's
 * connect_timeout bounds it the same way when the checkout's own deadline is far away. */
static void a_connect_into_a_black_hole_fails_within_its_deadline_and_frees_its_slot(
    void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_connect");
    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    pool_t *pool = proxied_pool(&s, NULL, "pool_size=1 max_overflow=0 fail_fast_after=0");
    char msg[512];
    for (int i = 1; i <= 2; i++) {
        char what[64];
        snprintf(what, sizeof what, "connect %d into a black hole", i);
        checkout_fails(pool, HOLE_DEADLINE_MS, POOL_ECONNECT, HOLE_DEADLINE_MS, what, msg);
        assert_contains(msg, "timed out");
    }
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 2);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.opened_total, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.overflow, 0);
    /* both reached the proxy (a black hole, not a refused connect), and both were closed */
    await_proxy_accepted(s.proxy, 2);
    await_proxy_connections(s.proxy, 0);

    /* connect_timeout=2 (libpq's minimum) against pool_timeout=30 */
    pool_t *bounded = proxied_pool(&s, "connect_timeout=2",
                                   "pool_size=1 max_overflow=0 pool_timeout=30");
    checkout_fails(bounded, -1, POOL_ECONNECT, 2000, "connect with connect_timeout=2", msg);
    assert_int_equal(stats_of(bounded).opening, 0);
    assert_ok(pool_dispose(bounded));
    await_proxy_connections(s.proxy, 0);

    heal_and_check_out_another_backend(&s, pool, 0);
    assert_int_equal(stats_of(pool).opened_total, 1);
    scene_end(&s, pool);
}

/* A statement sent into a black hole: with query_timeout, pool_query gives up with
 * POOL_ETIMEDOUT, the lease refuses further statements, and checkin closes its connection
 * (counted as invalidated) rather than keep a connection whose protocol state nobody knows.
 * The cancel request it sends goes into the black hole too: it is awaited ping_timeout. */
static void a_query_into_a_black_hole_times_out_and_its_connection_is_closed(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_query");
    pool_t *pool =
        proxied_pool(&s, NULL, "pool_size=1 max_overflow=0 query_timeout=1 ping_timeout=0.3");
    pool_lease_t *lease = checkout(pool);
    int old_pid = lease_pid(lease);

    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    pool_result_t *res = (pool_result_t *)&res;
    int64_t start = now_ms();
    int rc = pool_query(&res, lease, "SELECT 1", 0, NULL);
    int64_t took = now_ms() - start;
    if (rc != POOL_ETIMEDOUT)
        fail_msg("query into a black hole: %s: %s", pool_error_name(rc), pool_last_error());
    assert_null(res);
    if (took > 1000 + 300 + SLACK_MS)
        fail_msg("query_timeout=1 ping_timeout=0.3 let the query take %lld ms", (long long)took);
    assert_contains(pool_last_error(), "the cancel request went unanswered");
    /* the lease refuses further statements at once: the connection's state is unknown */
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_null(res);
    assert_ok(pool_checkin(lease));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);
    await_proxy_connections(s.proxy, 0);
    await_sessions(s.monitor, s.app, 0);

    heal_and_check_out_another_backend(&s, pool, old_pid);
    scene_end(&s, pool);
}

/* A lease left in a transaction when the server stops answering: the rollback at checkin is
 * bounded by ping_timeout, so pool_checkin returns (it used to wait forever, found by
 * make soak), and the connection is closed as dead, never lent again. */
static void a_checkin_whose_rollback_gets_no_answer_returns_and_closes_the_connection(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_checkin");
    pool_t *pool = proxied_pool(&s, NULL, "pool_size=1 max_overflow=0 ping_timeout=0.3");
    pool_lease_t *lease = checkout(pool);
    int old_pid = lease_pid(lease);
    pool_result_t *res = NULL;
    assert_ok(pool_query(&res, lease, "BEGIN", 0, NULL));
    pool_result_free(res);

    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    int64_t start = now_ms();
    assert_ok(pool_checkin(lease));
    int64_t took = now_ms() - start;
    if (took > 300 + SLACK_MS)
        fail_msg("ping_timeout=0.3 let the rollback at checkin take %lld ms", (long long)took);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);
    await_proxy_connections(s.proxy, 0);
    await_sessions(s.monitor, s.app, 0);

    heal_and_check_out_another_backend(&s, pool, old_pid);
    scene_end(&s, pool);
}

/* ---------------------------------------------------------------- 2. refused, reset */

#define BULK_BYTES 4000000 /* far more than the proxy queues in one direction */

/* The length of a BULK_BYTES-character text the server sends through the lease; -1 on error. */
static long bulk_length(pool_lease_t *lease) {
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT repeat('x', %d)", BULK_BYTES);
    pool_result_t *res = NULL;
    if (pool_query(&res, lease, sql, 0, NULL) != POOL_OK) return -1;
    const char *v = pool_result_value(res, 0, 0);
    long n = v ? (long)strspn(v, "x") : -1;
    if (v && v[n] != '\0') n = -1;
    pool_result_free(res);
    return n;
}

/* New connections are refused (accepted, then reset at once: a server that drops every
 * newcomer) while an open one goes on working, bulk results included (they pass the proxy's
 * back-pressure intact); the failed connect gives its slot back, and the next connect after
 * the network heals succeeds. */
static void refused_connects_fail_at_once_while_open_connections_keep_working(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_refuse");
    pool_t *pool = proxied_pool(&s, NULL, "pool_size=2 max_overflow=0 fail_fast_after=0");
    pool_lease_t *open = checkout(pool);
    int open_pid = lease_pid(open);

    fp_set_mode(s.proxy, FP_REFUSE, 0);
    pool_lease_t *lease = (pool_lease_t *)&lease;
    int rc = pool_checkout(&lease, pool, SERVER_WAIT_MS);
    if (rc != POOL_ECONNECT)
        fail_msg("a refused connect: %s: %s", pool_error_name(rc), pool_last_error());
    assert_contains(pool_last_error(), "connect failed");
    assert_null(lease);
    assert_int_equal(lease_pid(open), open_pid);
    assert_int_equal(bulk_length(open), BULK_BYTES);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 1);
    await_proxy_accepted(s.proxy, 2);
    assert_int_equal(fp_connections(s.proxy), 1); /* the refused one never counted as open */

    fp_set_delays(s.proxy, 0, 5); /* every chunk held: a bulk result crosses as many chunks */
    lease = checkout(pool);
    assert_int_equal(bulk_length(lease), BULK_BYTES);
    assert_int_not_equal(lease_pid(lease), open_pid);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_checkin(open));
    assert_int_equal(stats_of(pool).opened_total, 2);
    scene_end(&s, pool);
}

#define RESET_N 4

struct sleeper {
    pool_t *pool;
    struct report *rep;
    int pid;
    int rc; /* of the long query */
    char sqlstate[8];
    char msg[512];
};

/* Checks out, notes its backend, and runs a long query that the proxy's reset cuts short. */
static void *sleep_on_a_lease(void *arg) {
    struct sleeper *s = arg;
    pool_lease_t *lease = NULL;
    int rc = pool_checkout(&lease, s->pool, SERVER_WAIT_MS);
    if (rc != POOL_OK) {
        report_failure(s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
        return NULL;
    }
    pool_result_t *res = NULL;
    rc = pool_query(&res, lease, "SELECT pg_backend_pid()", 0, NULL);
    if (rc == POOL_OK) {
        s->pid = atoi(pool_result_value(res, 0, 0));
        pool_result_free(res);
        res = NULL;
        s->rc = pool_query(&res, lease, "SELECT pg_sleep(10)", 0, NULL);
        snprintf(s->sqlstate, sizeof s->sqlstate, "%s", pool_last_sqlstate());
        snprintf(s->msg, sizeof s->msg, "%s", pool_last_error());
        pool_result_free(res);
    } else {
        report_failure(s->rep, "pg_backend_pid(): %s: %s", pool_error_name(rc), pool_last_error());
    }
    rc = pool_checkin(lease);
    if (rc != POOL_OK)
        report_failure(s->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
    return NULL;
}

struct sleeping_arg {
    PGconn *monitor;
    const char *app;
};

static int all_asleep(void *arg) {
    struct sleeping_arg *a = arg;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND state = 'active' AND query = 'SELECT pg_sleep(10)'",
             a->app);
    return query_int(a->monitor, sql) == RESET_N;
}

/* Leases busy in a long query on several threads; every connection is reset (RST) under
 * them. Each caller gets POOL_EQUERY with a class 08 SQLSTATE and a message saying the
 * connection is lost; checkin closes every one of those connections (counted as
 * invalidated, not reused), the counts come out exact, and the next checkouts get new
 * backends, never one of the reset ones. The backends notice the reset through
 * client_connection_check_interval, so they end instead of sleeping on. */
static void connections_reset_mid_query_fail_clearly_and_are_never_handed_out_again(
    void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_reset");
    char options[64];
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0 fail_fast_after=0", RESET_N);
    pool_t *pool = proxied_pool(&s, "options='-c client_connection_check_interval=100'",
                                options);
    struct report rep;
    report_init(&rep);
    struct sleeper sleepers[RESET_N];
    pthread_t threads[RESET_N];
    memset(sleepers, 0, sizeof sleepers);
    int started = 0;
    for (; started < RESET_N; started++) {
        sleepers[started].pool = pool;
        sleepers[started].rep = &rep;
        if (pthread_create(&threads[started], NULL, sleep_on_a_lease, &sleepers[started]) != 0)
            break;
    }
    struct sleeping_arg asleep = {s.monitor, s.app};
    int all_in_query = started == RESET_N && await_true(all_asleep, &asleep, SERVER_WAIT_MS);
    assert_int_equal(fp_connections(s.proxy), RESET_N);
    fp_reset_all(s.proxy); /* also when not all got there: the threads must end before a fail */
    int after_reset = fp_connections(s.proxy);
    join_threads(threads, started);
    if (started != RESET_N) fail_msg("pthread_create");
    assert_no_failures(&rep);
    if (!all_in_query) fail_msg("the %d queries did not all start on the server", RESET_N);
    assert_int_equal(after_reset, 0); /* fp_reset_all returns once they are closed */

    int old[RESET_N];
    for (int i = 0; i < RESET_N; i++) {
        struct sleeper *s = &sleepers[i];
        if (s->rc != POOL_EQUERY)
            fail_msg("query %d cut by a reset: %s: %s", i, pool_error_name(s->rc), s->msg);
        if (strncmp(s->sqlstate, "08", 2) != 0)
            fail_msg("query %d: SQLSTATE \"%s\", not class 08: %s", i, s->sqlstate, s->msg);
        assert_contains(s->msg, "the connection is lost");
        old[i] = s->pid;
    }

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, RESET_N);
    assert_int_equal(st.closed_total, RESET_N);
    assert_int_equal(st.invalidated_total, RESET_N);
    assert_int_equal(st.dead_total, 0);
    assert_int_equal(st.reset_closed_total, 0);
    assert_int_equal(st.resets_total, 1); /* the first error retires everything older */
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.opening, 0);
    for (int i = 0; i < RESET_N; i++) await_backend_gone(s.monitor, old[i]);

    pool_lease_t *leases[RESET_N];
    for (int i = 0; i < RESET_N; i++) {
        leases[i] = checkout(pool);
        int pid = lease_pid(leases[i]);
        if (contains_pid(old, RESET_N, pid)) fail_msg("backend %d was reset, and handed out again", pid);
    }
    for (int i = 0; i < RESET_N; i++) assert_ok(pool_checkin(leases[i]));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 2 * RESET_N);
    assert_int_equal(st.idle, RESET_N);
    scene_end(&s, pool);
}

/* ---------------------------------------------------------------- 3. max_connections */

#define SMALL_MAX_CONNECTIONS 8

/* Runs statements that return no rows; 0 if all succeeded. */
static int run_statements(PGconn *conn, const char *const *sql, int n) {
    for (int i = 0; i < n; i++) {
        PGresult *r = PQexec(conn, sql[i]);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) return -1;
    }
    return 0;
}

static const char *const restore_sql[] = {"ALTER SYSTEM RESET max_connections",
                                          "ALTER SYSTEM RESET superuser_reserved_connections"};

static int shrunk_server; /* the test may have changed the server's settings */
static char original_max_connections[16];

/* Teardown: the server runs with the small limit until a restart; the test has already
 * restored the configuration file, unless it failed before; then restore it too (a second
 * restart). Two restarts in all when the test passes. */
static int restore_max_connections(void **state) {
    int rc = 0;
    if (shrunk_server) {
        shrunk_server = 0;
        if (pgctl("restart -m fast") != 0 || !await_true(server_accepts, NULL, SERVER_WAIT_MS)) {
            fprintf(stderr, "the server did not come back after the restart\n");
            rc = -1;
        } else {
            PGconn *conn = PQconnectdb("connect_timeout=5");
            PGresult *r = PQexec(conn, "SHOW max_connections");
            int restored = PQresultStatus(r) == PGRES_TUPLES_OK &&
                           strcmp(PQgetvalue(r, 0, 0), original_max_connections) == 0;
            PQclear(r);
            if (!restored &&
                (run_statements(conn, restore_sql, 2) != 0 || pgctl("restart -m fast") != 0 ||
                 !await_true(server_accepts, NULL, SERVER_WAIT_MS))) {
                fprintf(stderr, "max_connections could not be restored\n");
                rc = -1;
            }
            PQfinish(conn);
        }
    }
    return disarm_watchdog(state) == 0 ? rc : -1;
}

/* The text after "FATAL:" in a failed connect's message, without the line end. */
static void server_text(const char *message, char *out, size_t len) {
    const char *fatal = strstr(message, "FATAL:");
    if (!fatal) fail_msg("no FATAL in \"%s\"", message);
    fatal += strlen("FATAL:");
    while (*fatal == ' ') fatal++;
    snprintf(out, len, "%s", fatal);
    out[strcspn(out, "\n")] = '\0';
}

/* The server at max_connections: the pool's checkout fails with POOL_ECONNECT and the
 * server's own message, the leases out keep working, the counts stay exact, and the failed
 * connect's slot is given back: with pool_size equal to what the server can take and no
 * overflow, a slot kept by mistake would make the later checkout time out. */
static void a_full_server_fails_the_connect_with_its_message_and_the_slot_comes_back(
    void **state) {
    (void)state;
    require_pgctl();
    char app[64], filler_app[80];
    test_app_name(app, sizeof app, "faults_full");
    snprintf(filler_app, sizeof filler_app, "%s_filler", app);

    PGconn *monitor = monitor_connect();
    PGresult *r = PQexec(monitor, "SHOW max_connections");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(original_max_connections, sizeof original_max_connections, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    char set_max[96];
    snprintf(set_max, sizeof set_max, "ALTER SYSTEM SET max_connections = %d",
             SMALL_MAX_CONNECTIONS);
    const char *const shrink_sql[] = {set_max,
                                      "ALTER SYSTEM SET superuser_reserved_connections = 0"};
    shrunk_server = 1;
    assert_int_equal(run_statements(monitor, shrink_sql, 2), 0);
    PQfinish(monitor);
    assert_int_equal(pgctl("restart -m fast"), 0);
    await_server();
    monitor = monitor_connect();
    /* the file is back to normal now; the running server keeps the small limit until the
       teardown's restart */
    assert_int_equal(run_statements(monitor, restore_sql, 2), 0);
    assert_int_equal(query_int(monitor, "SELECT current_setting('max_connections')::int"),
                     SMALL_MAX_CONNECTIONS);

    long long free_slots = query_int(monitor,
                                     "SELECT current_setting('max_connections')::int - count(*) "
                                     "FROM pg_stat_activity WHERE backend_type = 'client backend'");
    assert_true(free_slots >= 3);
    char filler_info[128];
    snprintf(filler_info, sizeof filler_info, "application_name=%s", filler_app);
    PGconn *filler = PQconnectdb(filler_info);
    if (PQstatus(filler) != CONNECTION_OK) fail_msg("filler: %s", PQerrorMessage(filler));
    int filler_pid = PQbackendPID(filler);

    /* the pool could hold one more than the server has left */
    int n = (int)free_slots - 1;
    char conninfo[128], options[96];
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0 fail_fast_after=0", n + 1);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    pool_lease_t *leases[SMALL_MAX_CONNECTIONS + 1];
    for (int i = 0; i < n; i++) leases[i] = checkout(pool);

    pool_lease_t *lease = (pool_lease_t *)&lease;
    int rc = pool_checkout(&lease, pool, SERVER_WAIT_MS);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pool_last_error());
    if (rc != POOL_ECONNECT)
        fail_msg("checkout from a full server: %s: %s", pool_error_name(rc), msg);
    assert_null(lease);
    /* the server's own words, as a direct connect hears them now */
    PGconn *probe = PQconnectdb("connect_timeout=5");
    assert_int_equal(PQstatus(probe), CONNECTION_BAD);
    char said[256];
    server_text(PQerrorMessage(probe), said, sizeof said);
    PQfinish(probe);
    if (!strstr(said, "too many clients") && !strstr(said, "reserved"))
        fail_msg("the server refused for another reason: %s", said);
    assert_contains(msg, said);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opened_total, n);
    assert_int_equal(st.checked_out, n);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.overflow, 0);
    assert_int_equal(st.timeouts_total, 0);
    for (int i = 0; i < n; i++) assert_true(lease_pid(leases[i]) > 0); /* still working */

    /* a server slot frees: the pool's next checkout gets it. The backend leaves
       pg_stat_activity a moment before its slot is free, so a connect may still be refused
       in between; each such refusal must be the same POOL_ECONNECT, never a timeout */
    PQfinish(filler);
    await_backend_gone(monitor, filler_pid);
    int refused = 0;
    int64_t give_up = now_ms() + SERVER_WAIT_MS;
    for (;;) {
        rc = pool_checkout(&leases[n], pool, SERVER_WAIT_MS);
        if (rc == POOL_OK || rc != POOL_ECONNECT || now_ms() > give_up) break;
        refused++;
    }
    if (rc != POOL_OK)
        fail_msg("checkout once a slot freed: %s: %s", pool_error_name(rc), pool_last_error());
    assert_true(lease_pid(leases[n]) > 0);
    st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1 + refused);
    assert_int_equal(st.opened_total, n + 1);
    assert_int_equal(st.checked_out, n + 1);
    assert_int_equal(st.opening, 0);
    for (int i = 0; i <= n; i++) assert_ok(pool_checkin(leases[i]));
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* ---------------------------------------------------------------- 4. slow connects */

#define SLOW_CONNECT_MS 1500
#define IDLE_ROUNDS 20

/* A connect held up for seconds (the proxy waits before it even reaches the server) does
 * not stall checkouts that an idle connection can serve: the pool holds no lock across the
 * connect. While thread A is still connecting, the test thread checks the idle connection
 * out and in again IDLE_ROUNDS times, with timeout 0 (no waiting allowed), querying it each
 * time; A is asserted to be still connecting afterwards (a condition, not a timing). */
static void a_slow_connect_does_not_stall_checkouts_served_by_idle_connections(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_slow_idle");
    pool_t *pool = proxied_pool(&s, NULL, "pool_size=2 max_overflow=0 fail_fast_after=0");
    pool_lease_t *held = checkout(pool);
    int idle_pid = lease_pid(held);

    fp_set_delays(s.proxy, SLOW_CONNECT_MS, 0);
    struct bg_checkout a = {pool, SERVER_WAIT_MS, 0, "", NULL, 0};
    pthread_t thread;
    start_background_checkout(&thread, &a);
    await_opening(pool, 1);
    assert_ok(pool_checkin(held)); /* idle now, and A is not waiting for it: it connects */

    int served = 0;
    for (int i = 0; i < IDLE_ROUNDS; i++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, pool, 0);
        if (rc != POOL_OK) break;
        if (lease_pid(lease) == idle_pid) served++;
        assert_ok(pool_checkin(lease));
    }
    int a_done = (int)atomic_get(&a.done);
    int64_t opening = stats_of(pool).opening;
    pthread_join(thread, NULL);
    assert_int_equal(served, IDLE_ROUNDS);
    if (a_done || opening != 1)
        fail_msg("the slow connect ended (done %d, opening %lld) before %d checkouts of the "
                 "idle connection did", a_done, (long long)opening, IDLE_ROUNDS);
    if (a.rc != POOL_OK) fail_msg("the slow checkout: %s: %s", pool_error_name(a.rc), a.msg);
    assert_int_not_equal(lease_pid(a.lease), idle_pid);
    assert_ok(pool_checkin(a.lease));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.checkouts_total, 1 + IDLE_ROUNDS + 1);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.idle, 2);
    scene_end(&s, pool);
}

/* A requester that gives up on a slow connect: the pool abandons that connect at the
 * requester's deadline (it does not finish it in the background for someone else), so
 * nothing is orphaned: the socket is closed (the proxy sees it go), no session appears on
 * the server, and no connection is counted. A thread that was waiting for the slot gets it
 * and opens a connection of its own, within its own deadline. */
static void a_connect_whose_requester_gave_up_is_closed_and_its_slot_passes_on(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_slow_giveup");
    pool_t *pool = proxied_pool(&s, NULL, "pool_size=1 max_overflow=0 fail_fast_after=0");
    fp_set_delays(s.proxy, SLOW_CONNECT_MS, 0);

    /* alone: the requester's deadline ends the connect */
    char msg[512];
    checkout_fails(pool, 300, POOL_ECONNECT, 300, "a checkout giving up on a slow connect", msg);
    assert_contains(msg, "timed out");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.opened_total, 0);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.overflow, 0);
    await_proxy_connections(s.proxy, 0); /* its socket is closed, after the delay has passed */
    await_sessions(s.monitor, s.app, 0);

    /* with a waiter: A gives up, B (queued behind A's connect) gets the slot */
    struct bg_checkout a = {pool, 500, 0, "", NULL, 0};
    struct bg_checkout b = {pool, SERVER_WAIT_MS, 0, "", NULL, 0};
    pthread_t ta, tb;
    start_background_checkout(&ta, &a);
    await_opening(pool, 1);
    start_background_checkout(&tb, &b);
    int queued = await_waiting(pool, 1, SERVER_WAIT_MS);
    int a_was_connecting = !atomic_get(&a.done);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (!queued || !a_was_connecting)
        fail_msg("B did not queue behind A's connect (queued %d, A still connecting %d)", queued,
                 a_was_connecting);
    if (a.rc != POOL_ECONNECT)
        fail_msg("A, giving up on a slow connect: %s: %s", pool_error_name(a.rc), a.msg);
    if (b.rc != POOL_OK) fail_msg("B, the waiter: %s: %s", pool_error_name(b.rc), b.msg);
    assert_true(lease_pid(b.lease) > 0);
    st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 2);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(fp_accepted(s.proxy), 3); /* A's connect was not handed to B: B made its own */
    await_proxy_connections(s.proxy, 1);       /* and A's is closed */
    await_sessions(s.monitor, s.app, 1);
    assert_ok(pool_checkin(b.lease));
    scene_end(&s, pool);
}

/* Issue 14, item 4: pool_dispose() never blocks on the network, not even while the
 * maintenance thread's min_idle refill is connecting into a black hole (a connect that can
 * last pool_timeout). Dispose returns at once; the refill ends at its own deadline, closes its
 * connection, and the pool is released then. */
#define REFILL_TIMEOUT_S 3

static void dispose_returns_at_once_while_a_refill_connects_into_a_black_hole(void **state) {
    (void)state;
    struct scene s;
    scene_begin(&s, "faults_hole_refill");
    fp_set_mode(s.proxy, FP_BLACKHOLE, 0);
    char options[128];
    snprintf(options, sizeof options, "pool_size=2 min_idle=1 fail_fast_after=0 pool_timeout=%d",
             REFILL_TIMEOUT_S);
    pool_t *pool = proxied_pool(&s, NULL, options);
    assert_int_equal(pool_wait_ready(pool, 0), POOL_ETIMEDOUT); /* starts the maintenance */
    await_opening(pool, 1);
    await_proxy_accepted(s.proxy, 1); /* the refill's connect hangs in the black hole */
    await_proxy_connections(s.proxy, 1);

    int64_t start = now_ms();
    assert_ok(pool_dispose(pool));
    int64_t took = now_ms() - start;
    if (took > 250)
        fail_msg("pool_dispose took %lld ms with a refill connect hanging (its deadline: %d s)",
                 (long long)took, REFILL_TIMEOUT_S);
    /* the refill gives up at its deadline and closes its socket: the proxy sees it go */
    await_proxy_connections(s.proxy, 0);
    assert_true(now_ms() - start < REFILL_TIMEOUT_S * 1000 + SLACK_MS);
    assert_int_equal(fp_accepted(s.proxy), 1); /* and nothing connected after the dispose */
    fp_stop(s.proxy);
    PQfinish(s.monitor);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
    const struct CMUnitTest tests[] = {
        T(a_black_hole_fails_a_pre_ping_checkout_within_its_deadline_and_the_pool_recovers),
        T(a_pre_ping_that_uses_up_the_deadline_times_out_without_a_doomed_connect),
        T(a_connect_into_a_black_hole_fails_within_its_deadline_and_frees_its_slot),
        T(a_query_into_a_black_hole_times_out_and_its_connection_is_closed),
        T(a_checkin_whose_rollback_gets_no_answer_returns_and_closes_the_connection),
        T(refused_connects_fail_at_once_while_open_connections_keep_working),
        T(connections_reset_mid_query_fail_clearly_and_are_never_handed_out_again),
        T(a_slow_connect_does_not_stall_checkouts_served_by_idle_connections),
        T(a_connect_whose_requester_gave_up_is_closed_and_its_slot_passes_on),
        T(dispose_returns_at_once_while_a_refill_connects_into_a_black_hole),
        cmocka_unit_test_setup_teardown(
            a_full_server_fails_the_connect_with_its_message_and_the_slot_comes_back,
            arm_watchdog, restore_max_connections),
    };
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
