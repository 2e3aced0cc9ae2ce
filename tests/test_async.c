/* Asynchronous requests (pool_checkout_start, pool_query_start): the blocking API's rules
 * through calls that never block, one queue for both kinds of waiter, cancellation that loses
 * nothing, fork. Pool logic through the test connector; statements and cancels against the
 * real server. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "child.h"
#include "fake_connector.h"
#include "faultproxy.h"
#include "util.h"

/* Upper bound for a request that must end (never reached when the pool works). */
#define REQUEST_WAIT_MS 10000

/* 1 if the request's fd is readable within timeout_ms (0: now). */
static int fd_ready(pool_request_t *r, int timeout_ms) {
    int fd = pool_request_fd(r);
    assert_true(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    return n == 1 && (p.revents & POLLIN);
}

/* Awaits the request through its fd, checking that done agrees. */
static void await_request(pool_request_t *r) {
    if (!fd_ready(r, REQUEST_WAIT_MS)) fail_msg("the request did not end within %d ms", REQUEST_WAIT_MS);
    assert_int_equal(pool_request_done(r), 1);
}

static pool_request_t *start_checkout(pool_t *pool, int64_t timeout_ms, const char *tag) {
    pool_request_t *r = NULL;
    assert_ok(pool_checkout_start(&r, pool, timeout_ms, tag));
    assert_non_null(r);
    return r;
}

/* Awaits a checkout request and returns its lease; fails the test on an error. */
static pool_lease_t *lease_of(pool_request_t *r) {
    await_request(r);
    pool_lease_t *lease = NULL;
    int rc = pool_request_lease(&lease, r);
    if (rc != POOL_OK) fail_msg("checkout request: %s: %s", pool_error_name(rc), pool_last_error());
    assert_non_null(lease);
    return lease;
}

/* Awaits a checkout request that must fail with `code`; its message goes to msg. */
static void checkout_fails_with(pool_request_t *r, int code, char *msg, size_t len) {
    await_request(r);
    pool_lease_t *lease = (pool_lease_t *)1;
    assert_int_equal(pool_request_lease(&lease, r), code);
    assert_null(lease);
    snprintf(msg, len, "%s", pool_last_error());
}

/* ---------------------------------------------------------------- checkout: pool logic */

static void an_idle_connection_is_handed_out_at_once(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_request_t *r = start_checkout(pool, 1000, "first");
    pool_lease_t *first = lease_of(r);  /* opened on an I/O thread */
    int id = conn_id(first);
    assert_ok(pool_checkin(first));

    r = start_checkout(pool, 1000, "again");
    assert_int_equal(pool_request_done(r), 1);  /* no wait, no thread involved */
    assert_true(fd_ready(r, 0));
    pool_lease_t *again = lease_of(r);
    assert_int_equal(conn_id(again), id);
    assert_ok(pool_checkin(again));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_ok(pool_dispose(pool));
}

static void a_full_pool_queues_the_request_until_a_checkin_hands_it_the_connection(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    pool_request_t *r = start_checkout(pool, 5000, "queued");
    assert_int_equal(pool_request_done(r), 0);
    assert_false(fd_ready(r, 0));
    assert_int_equal(stats_of(pool).waiting, 1);
    pool_lease_t *out = NULL;
    assert_int_equal(pool_request_lease(&out, r), POOL_ESTATE);  /* pending: not ended */
    assert_contains(pool_last_error(), "still pending");

    int id = conn_id(held);
    assert_ok(pool_checkin(held));
    pool_lease_t *got = lease_of(r);
    assert_int_equal(conn_id(got), id);
    assert_int_equal(stats_of(pool).waiting, 0);
    assert_ok(pool_checkin(got));
    assert_ok(pool_dispose(pool));
}

static void a_request_times_out_with_the_blocking_checkouts_message(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    char msg[512];
    pool_request_t *r = start_checkout(pool, 30, "late");
    checkout_fails_with(r, POOL_ETIMEDOUT, msg, sizeof msg);
    assert_contains(msg, "QueuePool limit of size 1 overflow 0 reached, connection timed out, "
                         "timeout 0.03");
    /* timeout 0 on a full pool: done at once, the same failure */
    r = start_checkout(pool, 0, NULL);
    assert_int_equal(pool_request_done(r), 1);
    checkout_fails_with(r, POOL_ETIMEDOUT, msg, sizeof msg);
    assert_contains(msg, "QueuePool limit of size 1 overflow 0 reached");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 2);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.checked_out, 1);
    assert_ok(pool_checkin(held));
    assert_ok(pool_dispose(pool));
}

/* A blocking checkout in a thread, for the queue's order. */
struct blocking_taker {
    pthread_t thread;
    pool_t *pool;
    int64_t got;  /* 1 once it holds a lease */
    int64_t release;  /* set by the test: check it in */
    int rc;
};

static void *take_blocking(void *arg) {
    struct blocking_taker *t = arg;
    pool_lease_t *lease = NULL;
    t->rc = pool_checkout(&lease, t->pool, 5000);
    atomic_set(&t->got, 1);
    while (!atomic_get(&t->release)) sched_yield();
    if (lease) pool_checkin(lease);
    return NULL;
}

static int taker_got(void *arg) { return atomic_get(&((struct blocking_taker *)arg)->got) != 0; }

static void async_and_blocking_waiters_are_served_in_one_fifo(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    pool_request_t *first = start_checkout(pool, 5000, "first");
    struct blocking_taker t = {.pool = pool};
    assert_int_equal(pthread_create(&t.thread, NULL, take_blocking, &t), 0);
    assert_true(await_waiting(pool, 2, REQUEST_WAIT_MS));
    pool_request_t *third = start_checkout(pool, 5000, "third");
    assert_int_equal(stats_of(pool).waiting, 3);

    assert_ok(pool_checkin(held));
    pool_lease_t *lease = lease_of(first);       /* the oldest waiter: the request */
    assert_false(taker_got(&t));
    assert_false(fd_ready(third, 0));
    assert_ok(pool_checkin(lease));
    assert_true(await_true(taker_got, &t, REQUEST_WAIT_MS));  /* then the thread */
    assert_int_equal(t.rc, POOL_OK);
    assert_false(fd_ready(third, 0));
    atomic_set(&t.release, 1);
    pthread_join(t.thread, NULL);
    lease = lease_of(third);                     /* then the newest */
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
}

static void cancelling_a_waiting_request_serves_the_next_one(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    pool_request_t *first = start_checkout(pool, 5000, "first");
    pool_request_t *second = start_checkout(pool, 5000, "second");
    assert_int_equal(stats_of(pool).waiting, 2);
    assert_ok(pool_request_cancel(first));
    assert_true(await_waiting(pool, 1, REQUEST_WAIT_MS));
    assert_ok(pool_checkin(held));
    pool_lease_t *lease = lease_of(second);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.timeouts_total, 0);  /* a cancel is no timeout */
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static void cancelling_a_request_that_was_handed_a_connection_passes_it_on(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    pool_request_t *first = start_checkout(pool, 5000, "first");
    pool_request_t *second = start_checkout(pool, 5000, "second");
    assert_ok(pool_checkin(held));
    await_request(first);                        /* it holds the connection now */
    assert_false(fd_ready(second, 0));
    assert_ok(pool_request_cancel(first));       /* ... and gives it to the next waiter */
    pool_lease_t *lease = lease_of(second);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static int idle_is_1(void *pool) { return stats_of(pool).idle == 1; }

static void cancelling_a_request_whose_connect_is_in_flight_keeps_the_connection(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    set_blocking(1);
    pool_request_t *r = start_checkout(pool, 5000, "connecting");
    assert_true(await_true(one_open_in_progress, NULL, REQUEST_WAIT_MS));
    assert_int_equal(pool_request_done(r), 0);
    assert_ok(pool_request_cancel(r));
    set_blocking(0);
    assert_true(await_true(idle_is_1, pool, REQUEST_WAIT_MS));  /* kept, idle */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    pool_lease_t *lease = checkout(pool);  /* and it is the one lent next */
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static void a_failed_connect_ends_the_request_with_the_connectors_error(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0 fail_fast_after=0");
    F.fail_opens = 1;
    char msg[512];
    checkout_fails_with(start_checkout(pool, 1000, NULL), POOL_ECONNECT, msg, sizeof msg);
    assert_contains(msg, "fake server refused (test)");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.opening, 0);
    pool_lease_t *lease = lease_of(start_checkout(pool, 1000, NULL));  /* the slot is free */
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static void dispose_ends_waiting_requests_with_eclosed(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    pool_request_t *r = start_checkout(pool, 5000, NULL);
    assert_int_equal(pool_dispose(pool), POOL_EBUSY);  /* a lease is out */
    char msg[256];
    checkout_fails_with(r, POOL_ECLOSED, msg, sizeof msg);
    assert_contains(msg, "disposed");
    assert_ok(pool_checkin(held));  /* releases the pool */
    assert_int_equal(F.destroyed, 1);
}

static void misuse_is_an_error(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1");
    pool_request_t *r = NULL;
    assert_int_equal(pool_checkout_start(NULL, pool, 0, NULL), POOL_EINVAL);
    assert_int_equal(pool_checkout_start(&r, NULL, 0, NULL), POOL_EINVAL);
    assert_null(r);
    assert_int_equal(pool_request_done(NULL), -1);
    assert_int_equal(pool_request_fd(NULL), -1);
    assert_ok(pool_request_cancel(NULL));
    pool_lease_t *lease = NULL;
    assert_int_equal(pool_request_lease(&lease, NULL), POOL_EINVAL);
    pool_result_t *res = NULL;
    r = start_checkout(pool, 1000, NULL);
    await_request(r);
    assert_int_equal(pool_request_result(&res, r), POOL_EINVAL);  /* a checkout request */
    assert_contains(pool_last_error(), "not a statement request");
    assert_int_equal(pool_request_lease(NULL, r), POOL_EINVAL);
    lease = lease_of(r);
    /* a statement request on a lease of a connector that runs none: its own error */
    assert_ok(pool_query_start(&r, lease, "SELECT 1", 0, NULL));
    await_request(r);
    assert_int_equal(pool_request_result(&res, r), POOL_ENOTSUP);
    assert_null(res);
    assert_int_equal(pool_query_start(&r, NULL, "SELECT 1", 0, NULL), POOL_EINVAL);
    assert_int_equal(pool_query_start(&r, lease, NULL, 0, NULL), POOL_EINVAL);
    assert_ok(pool_checkin(lease));
    assert_int_equal(pool_query_start(&r, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
}

static int any_done(void *arg) {
    pool_request_t **pending = arg;
    for (int i = 0; i < 16; i++)
        if (pending[i] && pool_request_done(pending[i]) == 1) return 1;
    return 0;
}

/* 10,000 random cancels against requests waiting and requests holding a connection:
 * afterwards every count is exact, nothing leaked, no healthy connection closed. */
static void a_cancellation_storm_loses_nothing(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=3 max_overflow=0 pool_timeout=10");
    enum { PENDING = 16, CANCELS = 10000 };
    pool_request_t *pending[PENDING] = {0};
    pool_lease_t *held[3] = {0};
    unsigned seed = 12345;
    int cancelled = 0, cancelled_done = 0, served = 0;
    while (cancelled < CANCELS) {
        for (int i = 0; i < PENDING; i++)
            if (!pending[i]) pending[i] = start_checkout(pool, 10000, NULL);
        for (int h = 0; h < 3; h++) {  /* handed to waiters on the pool's threads... */
            if (held[h]) assert_ok(pool_checkin(held[h]));
            held[h] = NULL;
        }
        await_true(any_done, pending, REQUEST_WAIT_MS);
        for (int i = 0; i < PENDING; i++) {  /* ... while the cancels come */
            int choice = rand_r(&seed) % 3;
            int done = pool_request_done(pending[i]);
            if (choice == 0 || (choice == 1 && done && held[served % 3])) {
                if (done) cancelled_done++;
                assert_ok(pool_request_cancel(pending[i]));
                pending[i] = NULL;
                cancelled++;
            } else if (choice == 1 && done) {
                held[served++ % 3] = lease_of(pending[i]);
                pending[i] = NULL;
            }
        }
    }
    for (int i = 0; i < PENDING; i++) assert_ok(pool_request_cancel(pending[i]));
    for (int h = 0; h < 3; h++)
        if (held[h]) assert_ok(pool_checkin(held[h]));
    /* every path was taken many times: cancels of waiting requests and of requests holding
       a connection, and connections handed out */
    print_message("cancelled %d (%d of them done), served %d\n", cancelled, cancelled_done, served);
    assert_true(cancelled - cancelled_done > 1000);
    assert_true(cancelled_done > 1000);
    assert_true(served > 1000);
    /* Cancelled requests end on the pool's threads: await the counts settling. */
    assert_true(await_waiting(pool, 0, REQUEST_WAIT_MS));
    for (int64_t until = now_ms() + REQUEST_WAIT_MS;
         stats_of(pool).checked_out != 0 && now_ms() < until;)
        sched_yield();
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.closed_total, 0);  /* none closed: all healthy */
    assert_int_equal(st.opened_total, st.idle);
    assert_true(st.idle <= 3);
    assert_int_equal(pool_dispose(pool), POOL_OK);
    assert_int_equal(F.closed, F.opened);
}

static uint64_t read_token(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, REQUEST_WAIT_MS) != 1) fail_msg("no token within %d ms", REQUEST_WAIT_MS);
    uint64_t token = 0;
    assert_int_equal(read(fd, &token, sizeof token), (ssize_t)sizeof token);
    return token;
}

static void one_pipe_tells_which_requests_ended(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pool_lease_t *held = checkout(pool);
    pool_request_t *a = start_checkout(pool, 5000, "a");
    pool_request_t *b = start_checkout(pool, 5000, "b");
    assert_ok(pool_request_notify(a, fds[1], 0xa));
    assert_ok(pool_request_notify(b, fds[1], 0xb));
    assert_int_equal(pool_request_notify(b, fds[1], 0xb), POOL_ESTATE);  /* once */
    assert_int_equal(pool_request_notify(NULL, fds[1], 1), POOL_EINVAL);
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);  /* nothing ended yet */
    assert_ok(pool_checkin(held));
    assert_int_equal(read_token(fds[0]), 0xa);
    assert_ok(pool_checkin(lease_of(a)));
    assert_int_equal(read_token(fds[0]), 0xb);
    pool_lease_t *lease = lease_of(b);
    /* a request done already writes its token at once */
    pool_request_t *c = start_checkout(pool, 0, "c");
    assert_ok(pool_request_notify(c, fds[1], 0xc));
    assert_int_equal(read_token(fds[0]), 0xc);
    char msg[256];
    checkout_fails_with(c, POOL_ETIMEDOUT, msg, sizeof msg);
    assert_ok(pool_checkin(lease));
    close(fds[0]);
    close(fds[1]);
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- fork */

struct forked_request {
    pool_t *pool;
    pool_request_t *request;
};

static int child_sees_the_request_forked(void *arg) {
    struct forked_request *f = arg;
    CHILD_REQUIRE(pool_request_done(f->request) == 1, "done: %d", pool_request_done(f->request));
    CHILD_REQUIRE(fd_ready(f->request, 1000), "the fd is not readable in the child");
    pool_lease_t *lease = NULL;
    int rc = pool_request_lease(&lease, f->request);
    CHILD_REQUIRE(rc == POOL_EFORKED, "%s", pool_error_name(rc));
    /* and the child's own requests work */
    pool_request_t *mine = NULL;
    CHILD_REQUIRE(pool_checkout_start(&mine, f->pool, 2000, "child") == POOL_OK, "start");
    struct pollfd p = {.fd = pool_request_fd(mine), .events = POLLIN};
    CHILD_REQUIRE(poll(&p, 1, 5000) == 1, "the child's request did not end");
    rc = pool_request_lease(&lease, mine);
    CHILD_REQUIRE(rc == POOL_OK, "%s: %s", pool_error_name(rc), pool_last_error());
    CHILD_REQUIRE(pool_checkin(lease) == POOL_OK, "checkin");
    return 0;
}

static void a_request_pending_at_fork_ends_with_eforked_in_the_child(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held = checkout(pool);
    struct forked_request f = {pool, start_checkout(pool, 5000, "parent")};
    struct outcome o = run_child(VIA_FORK, child_sees_the_request_forked, &f, END__EXIT);
    if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) fail_msg("child: %s", o.out);
    /* the parent's request is untouched */
    assert_false(fd_ready(f.request, 0));
    assert_ok(pool_checkin(held));
    assert_ok(pool_checkin(lease_of(f.request)));
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- statements (PostgreSQL) */

static pool_t *pg_pool(const char *app, const char *options) {
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
    pool_t *pool;
    assert_ok(pool_create(&pool, conninfo, options));
    return pool;
}

static pool_result_t *result_of(pool_request_t *r) {
    await_request(r);
    pool_result_t *res = NULL;
    int rc = pool_request_result(&res, r);
    if (rc != POOL_OK) fail_msg("query request: %s: %s", pool_error_name(rc), pool_last_error());
    return res;
}

static void a_statement_request_returns_what_pool_query_returns(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_query");
    pool_t *pool = pg_pool(app, "pool_size=1");
    pool_lease_t *lease = lease_of(start_checkout(pool, 5000, NULL));
    const char *params[] = {"41", NULL};
    pool_request_t *r = NULL;
    assert_ok(pool_query_start(&r, lease, "SELECT $1::int + 1, $2::text IS NULL", 2, params));
    pool_result_t *res = result_of(r);
    assert_string_equal(pool_result_value(res, 0, 0), "42");
    assert_string_equal(pool_result_value(res, 0, 1), "t");
    pool_result_free(res);

    pool_param_t bytes = {"\0\1\2", 3, POOL_TYPE_BYTEA};
    assert_ok(pool_query_params_start(&r, lease, "SELECT length($1)", 1, &bytes, POOL_QUERY_PREPARE));
    res = result_of(r);
    assert_string_equal(pool_result_value(res, 0, 0), "3");
    pool_result_free(res);

    /* the statement's failure, as pool_query gives it */
    pool_result_t *blocking = NULL;
    assert_int_equal(pool_query(&blocking, lease, "SELECT * FROM no_such_table", 0, NULL),
                     POOL_EQUERY);
    char expected[512];
    snprintf(expected, sizeof expected, "%s", pool_last_error());
    assert_ok(pool_query_start(&r, lease, "SELECT * FROM no_such_table", 0, NULL));
    await_request(r);
    assert_int_equal(pool_request_result(&res, r), POOL_EQUERY);
    assert_string_equal(pool_last_error(), expected);
    assert_string_equal(pool_last_sqlstate(), "42P01");
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

/* ODBC has no asynchronous mode here: its statements run on the I/O threads all the same. */
static void requests_work_the_same_through_odbc(void **state) {
    (void)state;
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "odbc:Driver=SQLite3;Database=%s/async.db",
             env_or_fail("CONNPOOL_TEST_SQLITE_DIR"));
    pool_t *pool;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 max_overflow=0"));
    pool_lease_t *lease = lease_of(start_checkout(pool, 5000, NULL));
    pool_request_t *queued = start_checkout(pool, 5000, NULL);  /* waits for the one lease */
    const char *params[] = {"20"};
    pool_request_t *r = NULL;
    assert_ok(pool_query_start(&r, lease, "SELECT ? + 22", 1, params));
    pool_result_t *res = result_of(r);
    assert_string_equal(pool_result_value(res, 0, 0), "42");
    pool_result_free(res);
    assert_ok(pool_query_start(&r, lease, "SELECT * FROM no_such_table", 0, NULL));
    await_request(r);
    assert_int_equal(pool_request_result(&res, r), POOL_EQUERY);
    assert_contains(pool_last_error(), "no_such_table");
    assert_false(fd_ready(queued, 0));
    assert_ok(pool_checkin(lease));
    lease = lease_of(queued);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
}

static void a_lease_running_a_request_refuses_other_work(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_busy");
    pool_t *pool = pg_pool(app, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_request_t *r = NULL, *other = NULL;
    assert_ok(pool_query_start(&r, lease, "SELECT pg_sleep(0.2), 7", 0, NULL));
    pool_result_t *res = NULL;
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_contains(pool_last_error(), "a request is running on this lease");
    assert_int_equal(pool_query_start(&other, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_int_equal(pool_checkin(lease), POOL_ESTATE);
    res = result_of(r);
    assert_string_equal(pool_result_value(res, 0, 1), "7");
    pool_result_free(res);
    assert_ok(pool_query(&res, lease, "SELECT 1", 0, NULL));  /* the holder's again */
    pool_result_free(res);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static long long backend_pid_of(pool_lease_t *lease) {
    pool_result_t *res = NULL;
    assert_ok(pool_query(&res, lease, "SELECT pg_backend_pid()", 0, NULL));
    long long pid = atoll(pool_result_value(res, 0, 0));
    pool_result_free(res);
    return pid;
}

struct active_probe {
    PGconn *monitor;
    int pid;
};

static int sleeping(void *arg) {
    struct active_probe *p = arg;
    return backend_is_active(p->monitor, p->pid, "pg_sleep");
}

static void cancelling_a_statement_cancels_it_on_the_server_and_the_lease_stays_usable(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_cancel");
    pool_t *pool = pg_pool(app, "pool_size=1");
    PGconn *monitor = monitor_connect();
    pool_lease_t *lease = checkout(pool);
    struct active_probe probe = {monitor, (int)backend_pid_of(lease)};
    pool_request_t *r = NULL;
    assert_ok(pool_query_start(&r, lease, "SELECT pg_sleep(60)", 0, NULL));
    assert_true(await_true(sleeping, &probe, REQUEST_WAIT_MS));
    assert_ok(pool_request_cancel(r));
    /* pool_query waits for the cancelled statement to end, then runs: same session */
    assert_int_equal(backend_pid_of(lease), probe.pid);
    assert_false(sleeping(&probe));

    /* cancel, then check in at once: carried out when the statement has ended */
    assert_ok(pool_query_start(&r, lease, "SELECT pg_sleep(60)", 0, NULL));
    assert_true(await_true(sleeping, &probe, REQUEST_WAIT_MS));
    assert_ok(pool_request_cancel(r));
    assert_ok(pool_checkin(lease));
    assert_true(await_true(idle_is_1, pool, REQUEST_WAIT_MS));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.closed_total, 0);  /* a cancelled statement leaves a healthy session */
    lease = checkout(pool);
    assert_int_equal(backend_pid_of(lease), probe.pid);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

/* query_timeout bounds a request's statement as it bounds pool_query's, with the same error. */
static void a_statement_past_query_timeout_fails_as_pool_query_does(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_qtimeout");
    pool_t *pool = pg_pool(app, "pool_size=1 query_timeout=0.1");
    pool_lease_t *lease = checkout(pool);
    pool_request_t *r = NULL;
    int64_t t0 = now_ms();
    assert_ok(pool_query_start(&r, lease, "SELECT pg_sleep(30)", 0, NULL));
    await_request(r);
    pool_result_t *res = NULL;
    assert_int_equal(pool_request_result(&res, r), POOL_ETIMEDOUT);
    assert_contains(pool_last_error(), "query did not finish within 0.10 s (query_timeout)");
    assert_true(now_ms() - t0 < 5000);
    /* abandoned, as after pool_query's timeout */
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_contains(pool_last_error(), "timed out");
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).invalidated_total, 1);
    assert_ok(pool_dispose(pool));
}

/* The server ends the session under a running request: SQLSTATE 08, the lease invalidated. */
static void a_session_lost_under_a_request_invalidates_the_lease(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_lost");
    pool_t *pool = pg_pool(app, "pool_size=1");
    PGconn *monitor = monitor_connect();
    pool_lease_t *lease = checkout(pool);
    struct active_probe probe = {monitor, (int)backend_pid_of(lease)};
    pool_request_t *r = NULL;
    assert_ok(pool_query_start(&r, lease, "SELECT pg_sleep(30)", 0, NULL));
    assert_true(await_true(sleeping, &probe, REQUEST_WAIT_MS));
    terminate_backend(monitor, probe.pid);
    await_request(r);
    pool_result_t *res = NULL;
    assert_int_equal(pool_request_result(&res, r), POOL_EQUERY);
    assert_int_equal(strncmp(pool_last_sqlstate(), "57P01", 5) == 0 ||
                         strncmp(pool_last_sqlstate(), "08", 2) == 0, 1);
    assert_contains(pool_last_error(), "check the lease in");
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);
    lease = checkout(pool);  /* a new session */
    assert_true(backend_pid_of(lease) != probe.pid);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

struct forked_statement {
    pool_request_t *request;
};

static int child_sees_the_statement_forked(void *arg) {
    struct forked_statement *f = arg;
    CHILD_REQUIRE(pool_request_done(f->request) == 1, "done");
    pool_result_t *res = NULL;
    int rc = pool_request_result(&res, f->request);
    CHILD_REQUIRE(rc == POOL_EFORKED, "%s", pool_error_name(rc));
    return 0;
}

static void a_statement_pending_at_fork_ends_with_eforked_in_the_child(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_forkq");
    pool_t *pool = pg_pool(app, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    struct forked_statement f = {NULL};
    assert_ok(pool_query_start(&f.request, lease, "SELECT pg_sleep(0.3), 5", 0, NULL));
    struct outcome o = run_child(VIA_FORK, child_sees_the_statement_forked, &f, END__EXIT);
    if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) fail_msg("child: %s", o.out);
    pool_result_t *res = result_of(f.request);  /* the parent's statement went on untouched */
    assert_string_equal(pool_result_value(res, 0, 1), "5");
    pool_result_free(res);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

static int threads_of_this_process(void) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* One thread, one epoll loop: 1,000 requests (checkout, statement, checkin) at once on a pool
 * of 10; every one served, and the waiting ones hold no thread. */
static void a_thousand_requests_on_a_pool_of_ten_from_one_epoll_loop(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "async_epoll");
    pool_t *pool = pg_pool(app, "pool_size=10 max_overflow=0 pool_timeout=60");
    enum { N = 1000 };
    struct job {
        pool_request_t *request;
        pool_lease_t *lease;
    } *jobs = calloc(N, sizeof *jobs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    for (int i = 0; i < N; i++) {
        jobs[i].request = start_checkout(pool, 60000, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, pool_request_fd(jobs[i].request), &ev), 0);
    }
    assert_true(stats_of(pool).waiting >= N - 10);
    int most_threads = threads_of_this_process();
    int finished = 0;
    while (finished < N) {
        struct epoll_event events[64];
        int n = epoll_wait(ep, events, 64, REQUEST_WAIT_MS);
        if (n <= 0) fail_msg("epoll_wait: %d after %d requests finished", n, finished);
        for (int k = 0; k < n; k++) {
            struct job *j = &jobs[events[k].data.u32];
            epoll_ctl(ep, EPOLL_CTL_DEL, pool_request_fd(j->request), NULL);
            if (!j->lease) {  /* the checkout ended: run the statement */
                j->lease = lease_of(j->request);
                assert_ok(pool_query_start(&j->request, j->lease, "SELECT 1", 0, NULL));
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[k].data.u32};
                assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, pool_request_fd(j->request), &ev), 0);
            } else {
                pool_result_t *res = result_of(j->request);
                assert_string_equal(pool_result_value(res, 0, 0), "1");
                pool_result_free(res);
                assert_ok(pool_checkin(j->lease));
                finished++;
            }
        }
        int threads = threads_of_this_process();
        if (threads > most_threads) most_threads = threads;
    }
    close(ep);
    free(jobs);
    /* the test's thread, the dispatcher, the maintenance thread, I/O threads (one per
       statement or connect in flight: at most 10) */
    assert_true(most_threads <= 14);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checkouts_total, N);
    assert_int_equal(st.opened_total, 10);
    assert_int_equal(st.timeouts_total, 0);
    assert_ok(pool_dispose(pool));
}

/* A black-holed server: the start returns at once, and the request ends by its deadline. */
static void a_start_against_a_black_hole_returns_at_once_and_ends_by_its_deadline(void **state) {
    (void)state;
    faultproxy_t *proxy;
    if (fp_start(&proxy, "127.0.0.1", atoi(env_or_fail("PGPORT"))) != 0)
        fail_msg("fp_start: %s", strerror(errno));
    fp_set_mode(proxy, FP_BLACKHOLE, 0);
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d", fp_port(proxy));
    pool_t *pool;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 fail_fast_after=0"));
    int64_t t0 = now_ms();
    pool_request_t *r = start_checkout(pool, 300, NULL);
    int64_t started = now_ms() - t0;
    assert_true(started < 250);  /* no connect on the caller's thread */
    char msg[512];
    await_request(r);
    int64_t ended = now_ms() - t0;
    pool_lease_t *lease = NULL;
    int rc = pool_request_lease(&lease, r);
    assert_true(rc == POOL_ECONNECT || rc == POOL_ETIMEDOUT);
    snprintf(msg, sizeof msg, "%s", pool_last_error());
    assert_contains(msg, "timed out");
    assert_true(ended >= 250 && ended < 5000);
    assert_ok(pool_dispose(pool));
    fp_stop(proxy);
}

#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)

int main(void) {
    install_parent_watchdog();
    const struct CMUnitTest tests[] = {
        T(an_idle_connection_is_handed_out_at_once),
        T(a_full_pool_queues_the_request_until_a_checkin_hands_it_the_connection),
        T(a_request_times_out_with_the_blocking_checkouts_message),
        T(async_and_blocking_waiters_are_served_in_one_fifo),
        T(cancelling_a_waiting_request_serves_the_next_one),
        T(cancelling_a_request_that_was_handed_a_connection_passes_it_on),
        T(cancelling_a_request_whose_connect_is_in_flight_keeps_the_connection),
        T(a_failed_connect_ends_the_request_with_the_connectors_error),
        T(dispose_ends_waiting_requests_with_eclosed),
        T(misuse_is_an_error),
        T(a_cancellation_storm_loses_nothing),
        T(one_pipe_tells_which_requests_ended),
        T(a_request_pending_at_fork_ends_with_eforked_in_the_child),
        T(a_statement_request_returns_what_pool_query_returns),
        T(requests_work_the_same_through_odbc),
        T(a_lease_running_a_request_refuses_other_work),
        T(cancelling_a_statement_cancels_it_on_the_server_and_the_lease_stays_usable),
        T(a_statement_past_query_timeout_fails_as_pool_query_does),
        T(a_session_lost_under_a_request_invalidates_the_lease),
        T(a_statement_pending_at_fork_ends_with_eforked_in_the_child),
        T(a_thousand_requests_on_a_pool_of_ten_from_one_epoll_loop),
        T(a_start_against_a_black_hole_returns_at_once_and_ends_by_its_deadline),
    };
    return cmocka_run_group_tests_name("async", tests, NULL, NULL);
}
