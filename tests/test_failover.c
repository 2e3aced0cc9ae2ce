/* Multi-host failover through libpq's own multi-host connect: a pool over
 * "host=127.0.0.1,127.0.0.1 port=<second>,<main> target_session_attrs=read-write" opens each
 * connection on the first server that accepts writes, and with pool_pre_ping it moves to the
 * next server when the first one stops, with no error for any checkout begun after the stop.
 *
 * Run under tests/with-postgres.sh (the main server) and tests/with-second-server.sh (a
 * second, throwaway server with the same user, password and database;
 * CONNPOOL_TEST_PG2_PORT is its port, CONNPOOL_TEST_PG2CTL a command that stops or starts
 * it). Which server a lease reached is what the server says: inet_server_port(). The second
 * server is made read-only with default_transaction_read_only (ALTER SYSTEM and a reload):
 * since PostgreSQL 14 the server reports that setting to the client (ParameterStatus), so
 * libpq 14+ sees it without a query and skips the host. A test that changes the second
 * server puts it back (read-write, running) in its teardown, even when it failed.
 *
 * A lease that was out when its server stopped may fail its next statement: nothing can save
 * it, so such failures are counted and reported, not failed. A first host that accepts TCP
 * but never answers (a listening socket of this process that never accepts) must cost only
 * connect_timeout, as it does in libpq's own connect, before the next host is tried. cmocka's assertions run only on
 * the test thread: worker threads record failures in a shared report. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

static int main_port(void) { return atoi(env_or_fail("PGPORT")); }
static int second_port(void) { return atoi(env_or_fail("CONNPOOL_TEST_PG2_PORT")); }

/* A pool over both servers, the second one first, for read-write sessions only. */
static pool_t *failover_pool(const char *app, const char *options) {
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1,127.0.0.1 port=%d,%d target_session_attrs=read-write "
             "connect_timeout=2 application_name=%s",
             second_port(), main_port(), app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    return pool;
}

/* The port of the server behind a lease, or -1 (with the message in buf) if the query
 * failed. Usable on any thread. */
static int lease_port(pool_lease_t *lease, char *buf, size_t len) {
    pool_result_t *res = NULL;
    int rc = pool_query(&res, lease, "SELECT inet_server_port()", 0, NULL);
    if (rc != POOL_OK) {
        snprintf(buf, len, "%s: %s (SQLSTATE %s)", pool_error_name(rc), pool_last_error(),
                 pool_last_sqlstate());
        return -1;
    }
    int port = atoi(pool_result_value(res, 0, 0));
    pool_result_free(res);
    return port;
}

static int port_of(pool_lease_t *lease) {
    char why[512];
    int port = lease_port(lease, why, sizeof why);
    if (port < 0) fail_msg("SELECT inet_server_port(): %s", why);
    return port;
}

/* A connection straight to the second server (no pool). NULL if it does not accept. */
static PGconn *second_connect(void) {
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d connect_timeout=2 application_name=connpool_monitor",
             second_port());
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs "$CONNPOOL_TEST_PG2CTL <action>" and returns its exit status (-1 if it could not run). */
static int pg2ctl(const char *action) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null", env_or_fail("CONNPOOL_TEST_PG2CTL"), action);
    return run_shell(cmd);
}

/* 1 if a new session on the second server has default_transaction_read_only = want. */
static int second_read_only_is(const char *want) {
    PGconn *c = second_connect();
    if (!c) return 0;
    const char *v = PQparameterStatus(c, "default_transaction_read_only");
    int ok = v && strcmp(v, want) == 0;
    PQfinish(c);
    return ok;
}

static int second_is_read_only(void *unused) {
    (void)unused;
    return second_read_only_is("on");
}

static int second_is_read_write(void *unused) {
    (void)unused;
    return second_read_only_is("off");
}

/* Makes the second server read-only (or read-write again) for new sessions, and waits until
 * a new session sees it. Returns 0 on success, so a teardown can use it. */
static int set_second_read_only(int on) {
    PGconn *c = second_connect();
    if (!c) return -1;
    PGresult *r = PQexec(c, on ? "ALTER SYSTEM SET default_transaction_read_only = on"
                               : "ALTER SYSTEM RESET default_transaction_read_only");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQexec(c, "SELECT pg_reload_conf()");
    ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    PQfinish(c);
    if (!ok) return -1;
    return await_true(on ? second_is_read_only : second_is_read_write, NULL, SERVER_WAIT_MS) ? 0 : -1;
}

static int second_accepts(void *unused) {
    (void)unused;
    char conninfo[96];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d connect_timeout=2", second_port());
    return PQping(conninfo) == PQPING_OK;
}

/* Teardown: the second server running and read-write again, whatever the test did. */
static int second_restored_and_disarm(void **state) {
    int rc = 0;
    if (!second_accepts(NULL)) pg2ctl("start");
    if (!await_true(second_accepts, NULL, SERVER_WAIT_MS) || set_second_read_only(0) != 0) {
        fprintf(stderr, "the second server could not be restored\n");
        rc = -1;
    }
    return disarm_watchdog(state) || rc;
}

/* ---------------------------------------------------------------- read-only first host */

#define RO_LEASES 4

/* While the first host is read-only, every connection the pool opens is on the second host
 * in the list (the main server); once it is read-write again, new connections go to it. */
static void a_read_only_first_host_is_skipped_and_used_again_once_writable(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "failover_ro");
    if (set_second_read_only(1) != 0) fail_msg("could not make the second server read-only");
    pool_t *pool = failover_pool(app, "pool_size=4 max_overflow=0");
    pool_lease_t *leases[RO_LEASES];
    for (int i = 0; i < RO_LEASES; i++) {
        leases[i] = checkout(pool);
        assert_int_equal(port_of(leases[i]), main_port());
    }
    for (int i = 0; i < RO_LEASES; i++) assert_ok(pool_checkin(leases[i]));
    assert_int_equal(stats_of(pool).connect_failures_total, 0);

    if (set_second_read_only(0) != 0) fail_msg("could not make the second server read-write");
    assert_ok(pool_reset(pool)); /* the open ones stay where they are until retired */
    for (int i = 0; i < RO_LEASES; i++) {
        leases[i] = checkout(pool);
        assert_int_equal(port_of(leases[i]), second_port());
    }
    for (int i = 0; i < RO_LEASES; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2 * RO_LEASES);
    assert_int_equal(st.reset_closed_total, RO_LEASES);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- first host stops */

#define FO_THREADS 8
#define FO_POOL 6
#define FO_WARMUP_ROUNDS 20 /* per thread, on average, before the stop */
#define FO_AFTER_ROUNDS 100 /* per thread, after the stop returned */

struct failover {
    pool_t *pool;
    int main_port, second_port;
    int64_t phase;         /* atomic: 1 once the second server is down */
    int64_t stop;          /* atomic: the test thread gave up */
    int64_t rounds;        /* atomic */
    int64_t successes;     /* atomic: successful checkouts */
    int64_t errors_before; /* atomic: checkouts or queries begun before phase 1 that failed */
    int64_t first_main_ms; /* atomic: when a checkout first landed on the main server */
    struct report rep;     /* anything wrong after phase 1 */
};

static void *failover_worker(void *p) {
    struct failover *f = p;
    int after_rounds = 0;
    while (!atomic_get(&f->stop) && after_rounds < FO_AFTER_ROUNDS) {
        int after = atomic_get(&f->phase) != 0;
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, f->pool, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            if (after)
                report_failure(&f->rep, "checkout after the stop: %s: %s", pool_error_name(rc),
                               pool_last_error());
            else
                atomic_inc(&f->errors_before);
        } else {
            atomic_inc(&f->successes);
            char why[512];
            int port = lease_port(lease, why, sizeof why);
            if (port == f->main_port) {
                int64_t t = now_ms(), zero = 0;
                __atomic_compare_exchange_n(&f->first_main_ms, &zero, t, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE);
            }
            if (after && port != f->main_port)
                report_failure(&f->rep, "a checkout after the stop: port %d%s%s", port,
                               port < 0 ? ": " : "", port < 0 ? why : "");
            else if (!after && port != f->main_port && port != f->second_port)
                atomic_inc(&f->errors_before);
            rc = pool_checkin(lease);
            if (rc != POOL_OK)
                report_failure(&f->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
        }
        atomic_inc(&f->rounds);
        if (after) after_rounds++;
    }
    return NULL;
}

static int failover_warmed_up(void *p) {
    struct failover *f = p;
    return atomic_get(&f->rounds) >= FO_THREADS * FO_WARMUP_ROUNDS;
}

/* The first host (read-write) serves every connection; it stops (fast shutdown: its sessions
 * end) while idle connections wait in the pool, one lease is out, and 8 threads check out in
 * a loop. Every checkout begun after the stop returned succeeds on the main server: pre-ping
 * discards the dead idle connections and libpq's multi-host connect skips the stopped host.
 * The lease that was out fails its next statement, and is counted. */
static void the_pool_moves_to_the_next_host_when_the_first_stops(void **state) {
    (void)state;
    char app[64], options[128];
    test_app_name(app, sizeof app, "failover_stop");
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0 pool_pre_ping=1", FO_POOL);
    struct failover *f = calloc(1, sizeof *f);
    assert_non_null(f);
    report_init(&f->rep);
    f->main_port = main_port();
    f->second_port = second_port();
    f->pool = failover_pool(app, options);

    pool_lease_t *leases[FO_POOL];
    for (int i = 0; i < FO_POOL; i++) {
        leases[i] = checkout(f->pool);
        assert_int_equal(port_of(leases[i]), f->second_port);
    }
    for (int i = 1; i < FO_POOL; i++) assert_ok(pool_checkin(leases[i]));
    pool_lease_t *held = leases[0]; /* out across the stop */

    pthread_t threads[FO_THREADS];
    if (!start_threads(threads, FO_THREADS, failover_worker, f)) {
        atomic_set(&f->stop, 1);
        fail_msg("pthread_create");
    }
    int warmed = await_true(failover_warmed_up, f, SERVER_WAIT_MS);
    int64_t errors_warmup = atomic_get(&f->errors_before);
    int64_t t_stop = now_ms();
    int stop_rc = warmed ? pg2ctl("stop -m fast") : -1;
    int64_t t_down = now_ms();
    if (stop_rc == 0)
        atomic_set(&f->phase, 1);
    else
        atomic_set(&f->stop, 1);
    join_threads(threads, FO_THREADS);
    if (!warmed) fail_msg("the workers did not warm up");
    if (stop_rc != 0) fail_msg("%s stop -m fast: exit %d", getenv("CONNPOOL_TEST_PG2CTL"), stop_rc);

    char why[512];
    int held_port = lease_port(held, why, sizeof why);
    int held_failed = held_port < 0;
    assert_ok(pool_checkin(held));
    assert_no_failures(&f->rep);

    /* The held lease's lost connection retired every connection opened before its error
     * (pool_query's rule), the healthy ones on the main server too; whatever the pool has or
     * opens now is on the main server. */
    for (int i = 0; i < FO_POOL; i++) {
        leases[i] = checkout(f->pool);
        assert_int_equal(port_of(leases[i]), f->main_port);
    }
    for (int i = 0; i < FO_POOL; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t st = stats_of(f->pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.checkouts_total, 2 * FO_POOL + atomic_get(&f->successes));
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);
    assert_true(st.closed_total >= FO_POOL); /* every connection to the stopped server */
    int64_t first_main = atomic_get(&f->first_main_ms);
    printf("# failover: stop took %lld ms; the first checkout on the main server came %lld ms "
           "after the stop began (%lld ms after it returned); errors before the stop returned: "
           "%lld (warm-up %lld); the lease held across the stop %s; dead %lld, connect "
           "failures %lld, fast fails %lld, resets %lld, closed by a reset %lld\n",
           (long long)(t_down - t_stop), (long long)(first_main - t_stop),
           (long long)(first_main - t_down), (long long)atomic_get(&f->errors_before),
           (long long)errors_warmup, held_failed ? "failed its next query" : "still answered",
           (long long)st.dead_total, (long long)st.connect_failures_total,
           (long long)st.fast_fails_total, (long long)st.resets_total,
           (long long)st.reset_closed_total);
    if (held_failed) printf("# the held lease's error: %s\n", why);
    assert_ok(pool_dispose(f->pool));
    free(f);
}

/* ---------------------------------------------------------------- a host that never answers */

/* A listening socket that never accepts: the kernel completes the TCP handshake, so a
 * connect "succeeds" and then waits for an answer that never comes (a hung server, or a
 * network that drops its packets). Returns the socket; its port goes to *port. */
static int silent_listener(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) fail_msg("socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        fail_msg("listen: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return s;
}

#define SILENT_CONNECT_TIMEOUT_S 2
#define SILENT_SLACK_MS 1500

/* libpq applies connect_timeout to each host in turn: PQconnectdb gives up on a host that
 * does not answer within it and tries the next. The pool must do the same within its
 * checkout deadline (pool_timeout 10 s here), or a hung first host blocks the failover that
 * a stopped one does not. Measured against libpq itself first. */
static void a_first_host_that_never_answers_costs_connect_timeout_then_the_next_is_used(void **state) {
    (void)state;
    char app[64], conninfo[512];
    test_app_name(app, sizeof app, "failover_silent");
    int silent_port;
    int s = silent_listener(&silent_port);
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1,127.0.0.1 port=%d,%d connect_timeout=%d application_name=%s",
             silent_port, main_port(), SILENT_CONNECT_TIMEOUT_S, app);

    int64_t t0 = now_ms();
    PGconn *direct = PQconnectdb(conninfo);
    int64_t libpq_ms = now_ms() - t0;
    if (PQstatus(direct) != CONNECTION_OK) fail_msg("libpq itself: %s", PQerrorMessage(direct));
    assert_int_equal(atoi(PQport(direct)), main_port());
    PQfinish(direct);

    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 max_overflow=0 pool_timeout=10"));
    pool_lease_t *lease = NULL;
    t0 = now_ms();
    int rc = pool_checkout(&lease, pool, -1);
    int64_t pool_ms = now_ms() - t0;
    printf("# a silent first host: libpq connected to the next host after %lld ms; the pool's "
           "checkout: %s after %lld ms\n", (long long)libpq_ms, pool_error_name(rc),
           (long long)pool_ms);
    if (rc != POOL_OK)
        fail_msg("checkout: %s: %s (libpq itself reached the next host after %lld ms)",
                 pool_error_name(rc), pool_last_error(), (long long)libpq_ms);
    assert_int_equal(port_of(lease), main_port());
    assert_true(pool_ms < SILENT_CONNECT_TIMEOUT_S * 1000 + SILENT_SLACK_MS);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
#define T_SECOND(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, second_restored_and_disarm)
    const struct CMUnitTest tests[] = {
        T_SECOND(a_read_only_first_host_is_skipped_and_used_again_once_writable),
        T_SECOND(the_pool_moves_to_the_next_host_when_the_first_stops),
        T(a_first_host_that_never_answers_costs_connect_timeout_then_the_next_is_used),
    };
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("failover", tests, NULL, NULL);
}
