/* pool_timeout=0 and timeout_ms=0 against a real PostgreSQL server, through libpq. In
 * SQLAlchemy, pool_timeout=0 means "do not wait for another thread's connection"; it does not
 * mean "talk to the server in no time". A checkout that opens or pings a connection of its
 * own bounds that I/O by pool_timeout, or by 30 seconds when pool_timeout is 0 (libpq's
 * connect_timeout, when shorter, still applies); a checkout that would have to queue fails
 * at once with SQLAlchemy's QueuePool message.
 *
 * Run under tests/with-postgres.sh (PG* variables). Each test names its sessions with its
 * own application_name and awaits them gone from a monitor connection at the end. Upper
 * bounds on how long a call takes are its bound plus a generous SLACK_MS: they catch a hang
 * or a wait that should not be, they are not speed targets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "faultproxy.h"
#include "util.h"

/* Room for a loaded machine and the sanitizers; far below pool_timeout's default 30 s. */
#define SLACK_MS 2000

static pool_t *named_pool(const char *app, const char *extra, const char *options) {
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "application_name=%s %s", app, extra ? extra : "");
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    return pool;
}

static void select_1(pool_lease_t *lease) {
    pool_result_t *res = NULL;
    assert_ok(pool_query(&res, lease, "SELECT 1", 0, NULL));
    assert_string_equal(pool_result_value(res, 0, 0), "1");
    pool_result_free(res);
}

static void dispose_and_await_sessions_gone(pool_t *pool, const char *app) {
    assert_ok(pool_dispose(pool));
    PGconn *monitor = monitor_connect();
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* A checkout that must fail with `want` and the message prefix `prefix`, lend nothing, and
 * return within bound_ms + SLACK_MS; how long it took. A macro, so that a failure names the
 * test's line. */
static int64_t checkout_fails_at(pool_t *pool, int64_t timeout_ms, int want, const char *prefix,
                                 int64_t bound_ms, int line) {
    pool_lease_t *lease = (pool_lease_t *)&lease;
    int64_t start = now_ms();
    int rc = pool_checkout(&lease, pool, timeout_ms);
    int64_t took = now_ms() - start;
    if (rc != want)
        fail_msg("line %d: checkout(%lld): %s: %s (want %s)", line, (long long)timeout_ms,
                 pool_error_name(rc), pool_last_error(), pool_error_name(want));
    if (lease) fail_msg("line %d: a failed checkout lent a lease", line);
    if (strncmp(pool_last_error(), prefix, strlen(prefix)) != 0)
        fail_msg("line %d: \"%s\" does not start with \"%s\"", line, pool_last_error(), prefix);
    if (took > bound_ms + SLACK_MS)
        fail_msg("line %d: checkout(%lld) took %lld ms, bound %lld ms", line,
                 (long long)timeout_ms, (long long)took, (long long)bound_ms);
    return took;
}
#define checkout_fails(pool, timeout_ms, want, prefix, bound_ms) \
    checkout_fails_at((pool), (timeout_ms), (want), (prefix), (bound_ms), __LINE__)

/* ---------------------------------------------------------------- tests */

/* pool_timeout=0: both checkouts open a connection of their own (timeout -1 and 0 alike), and
 * a pre-ping round trip on a reused one gets its ping_timeout; nothing fails, nothing is
 * counted as a failure or a timeout. */
static void pool_timeout_0_connects_and_pings(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "ptimeout_connects");
    pool_t *pool = named_pool(app, NULL,
                              "pool_size=2 pool_timeout=0 pool_pre_ping=true pre_ping_interval=0");
    pool_lease_t *a = NULL, *b = NULL;
    int rc = pool_checkout(&a, pool, -1);
    if (rc != POOL_OK) fail_msg("pool_checkout(-1): %s: %s", pool_error_name(rc), pool_last_error());
    rc = pool_checkout(&b, pool, 0);
    if (rc != POOL_OK) fail_msg("pool_checkout(0): %s: %s", pool_error_name(rc), pool_last_error());
    select_1(a);
    select_1(b);
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    /* reused: pre-pinged (pre_ping_interval=0: a round trip every time) */
    for (int i = 0; i < 2; i++) {
        rc = pool_checkout(&a, pool, i ? 0 : -1);
        if (rc != POOL_OK)
            fail_msg("pre-pinged checkout(%d): %s: %s", i ? 0 : -1, pool_error_name(rc),
                     pool_last_error());
        select_1(a);
        assert_ok(pool_checkin(a));
    }
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.pings_total, 2);
    assert_int_equal(st.dead_total, 0);
    dispose_and_await_sessions_gone(pool, app);
}

/* A full pool with pool_timeout=0 fails at once, with SQLAlchemy's QueuePool message and
 * "timeout 0.00", for timeout -1 (the pool's) and 0 alike; nobody queued. */
static void a_full_pool_with_pool_timeout_0_fails_at_once(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "ptimeout_full");
    pool_t *pool = named_pool(app, NULL, "pool_size=1 max_overflow=0 pool_timeout=0");
    pool_lease_t *held = checkout(pool);
    const char *expected = "QueuePool limit of size 1 overflow 0 reached, connection timed out, "
                           "timeout 0.00 (checked out 1, idle 0, waiting 0)";
    checkout_fails(pool, -1, POOL_ETIMEDOUT, expected, 0);
    checkout_fails(pool, 0, POOL_ETIMEDOUT, expected, 0);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 2);
    assert_int_equal(st.waits_total, 0);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.opened_total, 1);
    select_1(held); /* the holder is not disturbed */
    assert_ok(pool_checkin(held));
    dispose_and_await_sessions_gone(pool, app);
}

/* timeout_ms=0 on a full pool fails at once whatever pool_timeout is (30 by default); with
 * room, it connects (bounded by pool_timeout). */
static void timeout_0_on_a_full_pool_fails_at_once(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "ptimeout_zero");
    pool_t *pool = named_pool(app, NULL, "pool_size=1 max_overflow=0");
    pool_lease_t *held = NULL;
    int rc = pool_checkout(&held, pool, 0);
    if (rc != POOL_OK) fail_msg("pool_checkout(0): %s: %s", pool_error_name(rc), pool_last_error());
    checkout_fails(pool, 0, POOL_ETIMEDOUT,
                   "QueuePool limit of size 1 overflow 0 reached, connection timed out, "
                   "timeout 0.00 (checked out 1, idle 0, waiting 0)",
                   0);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 1);
    assert_int_equal(st.waits_total, 0);
    assert_ok(pool_checkin(held));
    dispose_and_await_sessions_gone(pool, app);
}

/* With pool_timeout=0, a connect that gets no answer is bounded by libpq's connect_timeout
 * (2 s here, through a black-holing proxy): it fails after about that long, with libpq's
 * message, not at once with "timed out after 0.00 s". */
static void with_pool_timeout_0_connect_timeout_bounds_the_connect(void **state) {
    (void)state;
    faultproxy_t *proxy = NULL;
    if (fp_start(&proxy, "127.0.0.1", atoi(env_or_fail("PGPORT"))) != 0)
        fail_msg("fp_start: %s", strerror(errno));
    fp_set_mode(proxy, FP_BLACKHOLE, 0);
    char app[64], extra[128];
    test_app_name(app, sizeof app, "ptimeout_hole");
    snprintf(extra, sizeof extra, "host=127.0.0.1 port=%d connect_timeout=2", fp_port(proxy));
    pool_t *pool = named_pool(app, extra, "pool_size=1 max_overflow=0 pool_timeout=0");
    int64_t took = checkout_fails(pool, -1, POOL_ECONNECT, "connect failed: timed out after 2.", 2000);
    if (took < 1900) fail_msg("the connect gave up after %lld ms, before connect_timeout", (long long)took);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opening, 0);
    assert_ok(pool_dispose(pool));
    fp_stop(proxy);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
    const struct CMUnitTest tests[] = {
        T(pool_timeout_0_connects_and_pings),
        T(a_full_pool_with_pool_timeout_0_fails_at_once),
        T(timeout_0_on_a_full_pool_fails_at_once),
        T(with_pool_timeout_0_connect_timeout_bounds_the_connect),
    };
    return cmocka_run_group_tests_name("pool_timeout", tests, NULL, NULL);
}
