/* Pool logic, driven deterministically by a connector written here: fairness, limits,
 * overflow, failures, dispose and misuse. No database is involved. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_connector.h"
#include "util.h"


/* A thread that checks out with a timeout and records what it got. */
struct taker {
    pthread_t thread;
    pool_t *pool;
    int64_t timeout_ms;
    int rc;
    int id;
    int order;        /* when it got its connection, among all takers */
    int checkin_now;  /* give the connection back at once */
    pool_lease_t *lease; /* else kept here */
    char message[256];
};

static atomic_int served;

static void *take(void *p) {
    struct taker *t = p;
    pool_lease_t *lease;
    t->rc = pool_checkout(&lease, t->pool, t->timeout_ms);
    snprintf(t->message, sizeof t->message, "%s", pool_last_error());
    if (t->rc == POOL_OK) {
        t->order = ++served;
        t->id = ((struct fake_conn *)pool_lease_native(lease))->id;
        if (t->checkin_now) t->rc = pool_checkin(lease);
        else t->lease = lease;
    }
    return NULL;
}

static void start_taker(struct taker *t, pool_t *pool, int64_t timeout_ms, int checkin_now) {
    memset(t, 0, sizeof *t);
    t->pool = pool;
    t->timeout_ms = timeout_ms;
    t->checkin_now = checkin_now;
    assert_int_equal(pthread_create(&t->thread, NULL, take, t), 0);
}

/* ---------------------------------------------------------------- tests */

static void idle_connection_is_reused(void **state) {
    (void)state;
    pool_t *pool = fake_pool(NULL);
    pool_lease_t *a, *b;
    assert_ok(pool_checkout(&a, pool, -1));
    int id = conn_id(a);
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkout(&b, pool, -1));
    assert_int_equal(conn_id(b), id);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_int_equal(F.last_reset_mode, POOL_RESET_ROLLBACK);
    assert_ok(pool_checkin(b));
    assert_ok(pool_dispose(pool));
    assert_int_equal(F.closed, 1);
    assert_int_equal(F.destroyed, 1);
}

static void lifo_by_default_fifo_when_asked(void **state) {
    (void)state;
    for (int lifo = 0; lifo <= 1; lifo++) {
        pool_t *pool = fake_pool(lifo ? "pool_size=3" : "pool_size=3 pool_use_lifo=false");
        pool_lease_t *l[3];
        int ids[3];
        for (int i = 0; i < 3; i++) {
            assert_ok(pool_checkout(&l[i], pool, -1));
            ids[i] = conn_id(l[i]);
        }
        for (int i = 0; i < 3; i++) assert_ok(pool_checkin(l[i]));
        pool_lease_t *next;
        assert_ok(pool_checkout(&next, pool, -1));
        assert_int_equal(conn_id(next), lifo ? ids[2] : ids[0]);
        assert_ok(pool_checkin(next));
        assert_ok(pool_dispose(pool));
    }
}

/* A connection checked in while nobody waits is parked for the thread that returned it (no
 * lock on its next checkout), and stays an idle connection for every other rule: another
 * thread gets it without a connect, statistics count it idle, pool_reset() and dispose
 * close it, and a second lease of the same thread keeps LIFO order. */
static void a_parked_connection_is_idle_to_every_thread_and_every_rule(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2 max_overflow=0");
    pool_lease_t *a;
    assert_ok(pool_checkout(&a, pool, -1));
    int first = conn_id(a);
    assert_ok(pool_checkin(a));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.checked_out, 0);
    assert_ok(pool_checkout(&a, pool, -1)); /* taken back by its thread */
    assert_int_equal(conn_id(a), first);
    st = stats_of(pool);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_ok(pool_checkin(a));

    struct taker t; /* another thread: served from the parked connection, no connect */
    start_taker(&t, pool, 1000, 1);
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    assert_int_equal(t.id, first);
    assert_int_equal(F.opened, 1);

    assert_ok(pool_checkout(&a, pool, -1)); /* the other thread parked it: still found */
    assert_int_equal(conn_id(a), first);
    assert_ok(pool_checkin(a));
    assert_ok(pool_reset(pool)); /* closes it though it is parked */
    assert_int_equal(F.closed, 1);
    assert_int_equal(stats_of(pool).idle, 0);
    assert_ok(pool_checkout(&a, pool, -1));
    assert_int_not_equal(conn_id(a), first);
    assert_int_equal(F.opened, 2);

    pool_lease_t *b; /* two leases of one thread: the one returned last comes back first */
    assert_ok(pool_checkout(&b, pool, -1));
    int second = conn_id(b);
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(stats_of(pool).idle, 2);
    assert_ok(pool_checkout(&b, pool, -1));
    assert_int_equal(conn_id(b), second);
    assert_ok(pool_checkin(b));
    st = stats_of(pool);
    assert_int_equal(st.checkouts_total, 7);
    assert_int_equal(st.checked_out, 0);
    assert_ok(pool_dispose(pool)); /* closes the parked one and the idle one at once */
    assert_int_equal(F.closed, 3);
    assert_int_equal(F.destroyed, 1);
}

static void exhausted_pool_times_out_with_exact_message(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0 pool_timeout=0.02");
    pool_lease_t *held, *second = (pool_lease_t *)0x1;
    assert_ok(pool_checkout(&held, pool, -1));
    int64_t start = now_ms();
    assert_int_equal(pool_checkout(&second, pool, -1), POOL_ETIMEDOUT);
    assert_true(now_ms() - start >= 20); /* it did wait the pool_timeout */
    assert_null(second);
    const char *expected = "QueuePool limit of size 1 overflow 0 reached, connection timed out, "
                           "timeout 0.02 (checked out 1, idle 0, waiting 0); longest held: "
                           "'(untagged)' ";
    if (strncmp(pool_last_error(), expected, strlen(expected)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", pool_last_error(), expected);
    /* 0 means do not wait; an explicit timeout overrides pool_timeout */
    assert_int_equal(pool_checkout(&second, pool, 0), POOL_ETIMEDOUT);
    assert_non_null(strstr(pool_last_error(), "timeout 0.00"));
    assert_int_equal(pool_checkout(&second, pool, 5), POOL_ETIMEDOUT);
    assert_non_null(strstr(pool_last_error(), "timeout 0.01"));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 3);
    assert_int_equal(st.waiting, 0);
    assert_true(st.wait_total_us >= 20000);
    assert_true(st.wait_max_us >= 20000);
    assert_ok(pool_checkin(held));
    assert_ok(pool_dispose(pool));
}

/* timeout 0 means "do not queue", not "connect in no time": a checkout that can open a
 * connection gives the connect pool_timeout, so it succeeds and no failure is counted. */
static void a_zero_timeout_checkout_may_still_connect(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0 pool_timeout=3");
    pool_lease_t *lease;
    assert_ok(pool_checkout(&lease, pool, 0));
    assert_true(F.last_open_timeout_ms > 1000 && F.last_open_timeout_ms <= 3000);
    pool_lease_t *second;
    assert_int_equal(pool_checkout(&second, pool, 0), POOL_ETIMEDOUT); /* full: no waiting */
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
}

/* pool_timeout=0 is "never wait for another thread's connection" too: a connect of the
 * checkout's own is then bounded by 30 s (documented in connpool.h), for timeout -1 and 0. */
static void with_pool_timeout_0_a_connect_gets_30_seconds(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2 max_overflow=0 pool_timeout=0");
    pool_lease_t *a, *b;
    for (int i = 0; i < 2; i++) {
        F.last_open_timeout_ms = -1;
        assert_ok(pool_checkout(i ? &b : &a, pool, i ? 0 : -1));
        if (F.last_open_timeout_ms <= 29000 || F.last_open_timeout_ms > 30000)
            fail_msg("checkout(%d): the connect got %lld ms", i ? 0 : -1,
                     (long long)F.last_open_timeout_ms);
    }
    pool_lease_t *third;
    assert_int_equal(pool_checkout(&third, pool, -1), POOL_ETIMEDOUT); /* full: no waiting */
    assert_non_null(strstr(pool_last_error(), "timeout 0.00"));
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(stats_of(pool).connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
}

static void waiters_are_served_first_come_first_served(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held;
    assert_ok(pool_checkout(&held, pool, -1));
    int id = conn_id(held);
    struct taker t[4];
    served = 0;
    for (int i = 0; i < 4; i++) {
        start_taker(&t[i], pool, 5000, 1);
        assert_true(await_waiting(pool, i + 1, 5000)); /* queued in this order */
    }
    assert_ok(pool_checkin(held));
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i].thread, NULL);
        assert_int_equal(t[i].rc, POOL_OK);
        assert_int_equal(t[i].order, i + 1);
        assert_int_equal(t[i].id, id); /* handed on, never reopened */
    }
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
}

/* One body for the hand-off rule (wait_queue.hh): a connection checked in while a waiter waits
 * goes to that waiter, not to a newcomer, once the waiter has waited pool_handoff_after (at
 * once with 0). */
static void a_due_waiter_is_handed_the_connection(const char *options, double due_s) {
    pool_t *pool = fake_pool(options);
    pool_lease_t *held, *newcomer = NULL;
    assert_ok(pool_checkout(&held, pool, -1));
    struct taker t;
    start_taker(&t, pool, 5000, 0);
    assert_true(await_waiting(pool, 1, 5000));
    int64_t queued_by = now_ms(); /* it is in the queue since then at the latest */
    while (now_ms() - queued_by <= (int64_t)(due_s * 1000) + 1) sched_yield(); /* it comes due */
    assert_ok(pool_checkin(held));
    /* the waiter owns it now, even if it has not run yet: no barging */
    assert_int_equal(pool_checkout(&newcomer, pool, 0), POOL_ETIMEDOUT);
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.idle, 0);
    assert_ok(pool_checkin(t.lease));
    assert_ok(pool_dispose(pool));
}

static void with_handoff_after_0_checkin_hands_off_to_a_waiter_not_a_newcomer(void **state) {
    (void)state;
    a_due_waiter_is_handed_the_connection("pool_size=1 max_overflow=0 pool_handoff_after=0", 0);
}

static void a_waiter_that_came_due_is_served_before_a_newcomer(void **state) {
    (void)state;
    a_due_waiter_is_handed_the_connection("pool_size=1 max_overflow=0 pool_handoff_after=0.02",
                                          0.02);
}

/* Before the waiter comes due, the thread that checks a connection in may take it again (what
 * spares both threads a context switch); the waiter gets it once it is due, not before, and
 * without a further checkin. */
static void before_a_waiter_comes_due_a_newcomer_may_take_the_connection(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0 pool_handoff_after=1");
    pool_lease_t *held, *again;
    assert_ok(pool_checkout(&held, pool, -1));
    int id = conn_id(held);
    struct taker t;
    start_taker(&t, pool, 10000, 0);
    assert_true(await_waiting(pool, 1, 5000));
    assert_ok(pool_checkin(held));
    assert_ok(pool_checkout(&again, pool, 0)); /* not due yet: taken back at once */
    assert_int_equal(conn_id(again), id);
    assert_ok(pool_checkin(again)); /* idle now, while the waiter sleeps until it is due */
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    assert_int_equal(t.id, id);
    pool_stats_t st = stats_of(pool);
    if (st.wait_max_us < 1000000) fail_msg("served after %lld us, before it came due", (long long)st.wait_max_us);
    assert_int_equal(st.opened_total, 1);
    assert_ok(pool_checkin(t.lease));
    assert_ok(pool_dispose(pool));
}

static void overflow_connections_close_at_checkin(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2 max_overflow=2");
    pool_lease_t *l[5];
    for (int i = 0; i < 4; i++) assert_ok(pool_checkout(&l[i], pool, -1));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.overflow, 2);
    assert_int_equal(pool_checkout(&l[4], pool, 0), POOL_ETIMEDOUT);
    for (int i = 0; i < 4; i++) assert_ok(pool_checkin(l[i]));
    st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.overflow, 0);
    assert_int_equal(st.closed_total, 2);
    assert_int_equal(F.closed, 2);
    assert_ok(pool_dispose(pool));
    assert_int_equal(F.closed, 4);
}

/* pool_overflow_after: a checkout that could open an overflow connection first waits that
 * long for one to come back; with 0 it opens at once (SQLAlchemy's rule). */
static void an_overflow_connect_waits_for_a_connection_to_come_back_first(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=1 pool_overflow_after=0.2");
    pool_lease_t *held;
    assert_ok(pool_checkout(&held, pool, -1));
    int first = conn_id(held);
    struct taker t;
    start_taker(&t, pool, 5000, 1);
    assert_true(await_waiting(pool, 1, 5000)); /* waits instead of opening */
    assert_ok(pool_checkin(held));
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    assert_int_equal(t.id, first); /* served by the connection that came back */
    assert_int_equal(F.opened, 1);

    assert_ok(pool_checkout(&held, pool, -1));
    start_taker(&t, pool, 5000, 1); /* nothing comes back: it opens after 0.2 s */
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    assert_int_not_equal(t.id, first);
    assert_int_equal(F.opened, 2);
    assert_true(stats_of(pool).wait_max_us >= 200000);
    assert_ok(pool_checkin(held));
    assert_ok(pool_dispose(pool));

    /* a checkout whose own timeout ends first opens at once instead of timing out */
    pool = fake_pool("pool_size=1 max_overflow=1 pool_overflow_after=10");
    assert_ok(pool_checkout(&held, pool, -1));
    pool_lease_t *quick;
    assert_ok(pool_checkout(&quick, pool, 50));
    assert_int_equal(F.opened, 2);
    assert_ok(pool_checkin(quick));
    assert_ok(pool_checkin(held));
    assert_ok(pool_dispose(pool));

    pool = fake_pool("pool_size=1 max_overflow=1 pool_overflow_after=0");
    assert_ok(pool_checkout(&held, pool, -1));
    start_taker(&t, pool, 5000, 1);
    pthread_join(t.thread, NULL); /* with 0: opened at once, never waited */
    assert_int_equal(t.rc, POOL_OK);
    assert_int_equal(F.opened, 2);
    assert_int_equal(stats_of(pool).waits_total, 0);
    assert_ok(pool_checkin(held));
    assert_ok(pool_dispose(pool));
}

static void unlimited_overflow_never_waits(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=-1");
    pool_lease_t *l[20];
    for (int i = 0; i < 20; i++) assert_ok(pool_checkout(&l[i], pool, 0));
    assert_int_equal(stats_of(pool).overflow, 19);
    for (int i = 0; i < 20; i++) assert_ok(pool_checkin(l[i]));
    assert_int_equal(stats_of(pool).idle, 1);
    assert_ok(pool_dispose(pool));
}

static void failed_open_reports_and_frees_the_slot(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    F.fail_opens = 1;
    pool_lease_t *l = (pool_lease_t *)0x1;
    assert_int_equal(pool_checkout(&l, pool, -1), POOL_ECONNECT);
    assert_null(l);
    assert_string_equal(pool_last_error(), "connect failed: fake server refused (test)");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.connect_failures_total, 1);
    assert_ok(pool_checkout(&l, pool, 0)); /* the slot is free again */
    assert_ok(pool_checkin(l));
    assert_ok(pool_dispose(pool));
}

static void a_freed_slot_goes_to_the_first_waiter(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held;
    assert_ok(pool_checkout(&held, pool, -1));
    int old = conn_id(held);
    struct taker t;
    start_taker(&t, pool, 5000, 1);
    assert_true(await_waiting(pool, 1, 5000));
    assert_ok(pool_invalidate(held));
    assert_ok(pool_checkin(held)); /* closed, and the waiter may open a new one */
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_OK);
    assert_int_not_equal(t.id, old);

    /* the waiter's own open fails: it gets the connect error, not a timeout */
    assert_ok(pool_checkout(&held, pool, -1));
    start_taker(&t, pool, 5000, 1);
    assert_true(await_waiting(pool, 1, 5000));
    F.fail_opens = 1;
    assert_ok(pool_invalidate(held));
    assert_ok(pool_checkin(held));
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_ECONNECT);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opening + st.checked_out + st.idle + st.waiting, 0);
    assert_ok(pool_dispose(pool));
}

static void a_slow_connect_does_not_stall_checkouts_served_from_idle(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2 max_overflow=0");
    pool_lease_t *first, *again;
    assert_ok(pool_checkout(&first, pool, -1));
    set_blocking(1);
    struct taker slow;
    start_taker(&slow, pool, 5000, 1); /* needs a second connection: blocks in open */
    assert_true(await_true(one_open_in_progress, NULL, 5000));
    assert_ok(pool_checkin(first));
    assert_ok(pool_checkout(&again, pool, 0)); /* served at once, the connect still pending */
    assert_int_equal(stats_of(pool).opening, 1);
    /* what remains of the 5 s deadline (lower bound loose: a busy machine delays the thread) */
    assert_true(F.last_open_timeout_ms > 1000 && F.last_open_timeout_ms <= 5000);
    set_blocking(0);
    pthread_join(slow.thread, NULL);
    assert_int_equal(slow.rc, POOL_OK);
    assert_ok(pool_checkin(again));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.opened_total, 2);
    assert_ok(pool_dispose(pool));
}

static void broken_or_invalidated_connections_are_closed(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2 reset_on_return=commit");
    pool_lease_t *l;
    assert_ok(pool_checkout(&l, pool, -1));
    int first = conn_id(l);
    F.reset_fails = 1;
    assert_ok(pool_checkin(l));
    assert_int_equal(F.last_reset_mode, POOL_RESET_COMMIT);
    assert_int_equal(F.closed, 1);
    F.reset_fails = 0;
    assert_ok(pool_checkout(&l, pool, -1));
    assert_int_not_equal(conn_id(l), first);
    assert_ok(pool_invalidate(l));
    assert_ok(pool_checkin(l));
    assert_int_equal(F.closed, 2);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.closed_total, 2);
    assert_ok(pool_dispose(pool));
}

static void null_pool_opens_and_closes_every_time(void **state) {
    (void)state;
    pool_t *pool = fake_pool("poolclass=null pool_size=1 max_overflow=0");
    pool_lease_t *a, *b;
    assert_ok(pool_checkout(&a, pool, 0));
    assert_ok(pool_checkout(&b, pool, 0)); /* no limit */
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(F.opened, 2);
    assert_int_equal(F.closed, 2);
    assert_int_equal(F.last_reset_mode, -1); /* no reset for a connection about to close */
    assert_int_equal(stats_of(pool).idle, 0);
    assert_ok(pool_dispose(pool));
}

static void dispose_wakes_waiters_and_waits_for_leases(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *held;
    assert_ok(pool_checkout(&held, pool, -1));
    struct taker t;
    start_taker(&t, pool, 5000, 1);
    assert_true(await_waiting(pool, 1, 5000));
    assert_int_equal(pool_dispose(pool), POOL_EBUSY);
    assert_non_null(strstr(pool_last_error(), "1 lease(s) still out"));
    pthread_join(t.thread, NULL);
    assert_int_equal(t.rc, POOL_ECLOSED);
    assert_int_equal(pool_dispose(pool), POOL_ECLOSED); /* still alive: a lease is out */
    assert_non_null(pool_lease_native(held)); /* the lease keeps working */
    assert_int_equal(F.destroyed, 0);
    assert_ok(pool_checkin(held)); /* closes it and releases the pool */
    assert_int_equal(F.closed, 1);
    assert_int_equal(F.destroyed, 1);
    assert_int_equal(pool_dispose(NULL), POOL_OK);
}

static void dispose_closes_idle_connections_at_once(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=3");
    pool_lease_t *l[3];
    for (int i = 0; i < 3; i++) assert_ok(pool_checkout(&l[i], pool, -1));
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(l[i]));
    assert_int_equal(F.closed, 0);
    assert_ok(pool_dispose(pool));
    assert_int_equal(F.closed, 3);
    assert_int_equal(F.destroyed, 1);
}

static void misuse_is_an_error_and_keeps_counts_exact(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=2");
    pool_lease_t *a, *b;
    assert_int_equal(pool_checkout(NULL, pool, 0), POOL_EINVAL);
    assert_int_equal(pool_checkout(&a, NULL, 0), POOL_EINVAL);
    assert_int_equal(pool_checkin(NULL), POOL_EINVAL);
    assert_int_equal(pool_invalidate(NULL), POOL_EINVAL);
    assert_null(pool_lease_native(NULL));

    assert_ok(pool_checkout(&a, pool, -1));
    assert_ok(pool_checkin(a));
    assert_int_equal(pool_checkin(a), POOL_ESTATE); /* twice */
    assert_non_null(strstr(pool_last_error(), "checked in twice"));
    assert_int_equal(pool_invalidate(a), POOL_ESTATE);
    assert_null(pool_lease_native(a));

    /* the same record lent again: the stale handle still cannot touch the new lease */
    assert_ok(pool_checkout(&b, pool, -1));
    assert_ptr_equal(pool_lease_native(b) != NULL, 1);
    assert_int_equal(pool_checkin(a), POOL_ESTATE);
    assert_null(pool_lease_native(a));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.idle, 0);
    assert_ok(pool_checkin(b));
    st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_ok(pool_dispose(pool));
}

/* Every call that takes a lease refuses `lease` with POOL_ESTATE, and every call that takes a
 * pool refuses `pool` with POOL_EINVAL; the line of a failure is the caller's. */
#define REFUSED(call, want)                                                                \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != (want))                                                                 \
            fail_msg("line %d: handle 0x%llx: %s: %s (%s)", line, (unsigned long long)value, \
                     #call, pool_error_name(rc_), pool_last_error());                      \
    } while (0)
static void refused_at(pool_lease_t *lease, pool_t *pool, uint64_t value, int line) {
    pool_result_t *r = (pool_result_t *)&r;
    pool_lease_t *l = (pool_lease_t *)&l;
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    REFUSED(pool_checkin(lease), POOL_ESTATE);
    REFUSED(pool_invalidate(lease), POOL_ESTATE);
    REFUSED(pool_report_error(lease, "08006"), POOL_ESTATE);
    REFUSED(pool_query(&r, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    REFUSED(pool_lease_native(lease) ? POOL_OK : POOL_ESTATE, POOL_ESTATE);
    REFUSED(pool_checkout(&l, pool, 0), POOL_EINVAL);
    REFUSED(pool_checkout_tagged(&l, pool, 0, "t"), POOL_EINVAL);
    REFUSED(pool_checkout_scoped(&l, pool, 0, "t"), POOL_EINVAL);
    REFUSED(pool_stats_get(pool, &st), POOL_EINVAL);
    REFUSED(pool_reset(pool), POOL_EINVAL);
    REFUSED(pool_wait_ready(pool, 0), POOL_EINVAL);
    REFUSED(pool_set_hooks(pool, NULL), POOL_EINVAL);
    REFUSED(pool_scope_release(pool), POOL_EINVAL);
    REFUSED(pool_dispose(pool), POOL_EINVAL);
    if (r || l) fail_msg("line %d: handle 0x%llx: a refused call stored a result", line,
                         (unsigned long long)value);
}
#define refused(lease, pool, value) refused_at((lease), (pool), (value), __LINE__)

/* Handles are validated without reading memory at the address they would name, whatever its
 * bits: values no pool or lease ever had (high bits set as in AArch64's tagged pointers, TBI
 * and MTE; small, odd, even) are refused by every call, never dereferenced; a lease is never
 * taken for a pool or the other way round; and neither real handle is disturbed. The handles
 * of a released pool and of its leases stay refused, also once a new pool reuses the memory. */
static void foreign_and_stale_handles_are_refused_without_being_dereferenced(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *lease;
    assert_ok(pool_checkout(&lease, pool, -1));
    int id = conn_id(lease);
    uint64_t lv = (uint64_t)(uintptr_t)lease, pv = (uint64_t)(uintptr_t)pool;
    const uint64_t top = UINT64_C(0xB4) << 56; /* Android's heap pointer tag */
    const uint64_t fakes[] = {
        UINT64_C(0xF000123456789ab0), UINT64_C(0xF000123456789ab1), UINT64_C(0xF000123456789ab3),
        UINT64_C(0xB400007fdeadbee0), UINT64_C(0xB400007fdeadbee1), 0x1, 0x2, 0x3, 0x5, 0x8,
        0x7ff, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 2, lv ^ top, pv ^ top, lv + 4, pv + 4,
        lv ^ (UINT64_C(1) << 40), pv ^ (UINT64_C(1) << 40), lv - 1, pv - 1};
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        if ((uintptr_t)fakes[i] != fakes[i]) continue; /* a 32-bit build */
        refused((pool_lease_t *)(uintptr_t)fakes[i], (pool_t *)(uintptr_t)fakes[i], fakes[i]);
    }
    /* a lease is not a pool, and a pool is not a lease */
    refused((pool_lease_t *)pool, (pool_t *)lease, lv);
    assert_int_equal(conn_id(lease), id);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.checkouts_total, 1);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.invalidated_total, 0);
    assert_int_equal(st.resets_total, 0);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool)); /* no lease out: released now */

    refused(lease, pool, lv);
    pool_t *next = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *next_lease;
    assert_ok(pool_checkout(&next_lease, next, -1));
    refused(lease, pool, lv);
    assert_non_null(pool_lease_native(next_lease));
    assert_int_equal(stats_of(next).checked_out, 1);
    assert_ok(pool_checkin(next_lease));
    assert_ok(pool_dispose(next));
}

/* A lease handle names one checkout: one from 65,536 (and more) checkouts of the same record
 * ago is refused, never taken for the lease out now. */
static void a_handle_from_65536_checkouts_ago_is_refused(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=1 max_overflow=0");
    pool_lease_t *first, *l;
    assert_ok(pool_checkout(&first, pool, -1));
    int id = conn_id(first);
    assert_ok(pool_checkin(first));
    for (long i = 1; i <= 65536 + 64; i++) {
        assert_ok(pool_checkout(&l, pool, -1));
        if (pool_lease_native(first))
            fail_msg("the first handle is taken for the lease of checkout %ld after it", i);
        if (i >= 65536 - 64) {
            if (conn_id(l) != id) fail_msg("checkout %ld: another connection", i);
            int rc = pool_checkin(first);
            if (rc != POOL_ESTATE)
                fail_msg("checkout %ld after it: checkin of the first handle: %s", i,
                         pool_error_name(rc));
            assert_int_equal(pool_invalidate(first), POOL_ESTATE);
        }
        assert_ok(pool_checkin(l));
    }
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checkouts_total, 65536 + 64 + 1);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.invalidated_total, 0);
    assert_ok(pool_dispose(pool));
}

struct hammer {
    pool_t *pool;
    int rounds;
    int failures;
};

static void *hammer_run(void *p) {
    struct hammer *h = p;
    for (int i = 0; i < h->rounds; i++) {
        pool_lease_t *l;
        if (pool_checkout(&l, h->pool, 10000) != POOL_OK) {
            h->failures++;
            continue;
        }
        struct fake_conn *c = pool_lease_native(l);
        int expected = 0;
        if (!atomic_compare_exchange_strong(&c->held, &expected, 1)) h->failures++;
        if (i % 7 == 0) sched_yield();
        atomic_store(&c->held, 0);
        if (i % 97 == 0) pool_invalidate(l);
        if (pool_checkin(l) != POOL_OK) h->failures++;
    }
    return NULL;
}

static void no_two_threads_ever_hold_one_connection(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=3 max_overflow=2");
    enum { THREADS = 16, ROUNDS = 3000 };
    pthread_t th[THREADS];
    struct hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){pool, ROUNDS, 0};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].failures, 0);
    }
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checkouts_total, THREADS * ROUNDS);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.opening, 0);
    assert_true(st.idle <= 3);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);
    assert_int_equal(st.timeouts_total, 0);
    assert_ok(pool_dispose(pool));
    assert_int_equal(F.opened, F.closed);
}

/* In a child, returns the first check that failed (0: all held). The parent's callbacks are
 * never asked to close an inherited connection: their close may talk to the server. */
static int child_checks(pool_t *pool, pool_lease_t *lent_before_fork, int closed_before) {
    alarm(10);
    if (pool_lease_native(lent_before_fork) != NULL) return 1;
    if (pool_invalidate(lent_before_fork) != POOL_EFORKED) return 2;
    pool_stats_t st = stats_of(pool);
    if (st.inherited_total != 3 || st.idle != 0 || st.checked_out != 0 || st.opened_total != 0)
        return 3;
    pool_lease_t *fresh;
    if (pool_checkout(&fresh, pool, 0) != POOL_OK) return 4;
    if (((struct fake_conn *)pool_lease_native(fresh))->id <= 3) return 5; /* a new one */
    if (pool_checkin(lent_before_fork) != POOL_OK) return 6;
    if (pool_checkin(lent_before_fork) != POOL_ESTATE) return 7;
    if (pool_checkin(fresh) != POOL_OK) return 8;
    if (F.closed != closed_before) return 9;
    if (pool_dispose(pool) != POOL_OK) return 10;
    if (F.closed != closed_before + 1) return 11; /* only the child's own connection */
    return 0;
}

static void a_child_never_closes_inherited_connections_and_opens_its_own(void **state) {
    (void)state;
    for (int raw = 0; raw <= 1; raw++) {
        pool_t *pool = fake_pool("pool_size=3");
        pool_lease_t *l[3];
        for (int i = 0; i < 3; i++) assert_ok(pool_checkout(&l[i], pool, -1));
        assert_ok(pool_checkin(l[1]));
        assert_ok(pool_checkin(l[2]));
        fflush(NULL);
        /* raw: a fork that runs no atfork handler, caught at the child's first call */
        pid_t child = raw ? (pid_t)syscall(SYS_fork) : fork();
        assert_true(child >= 0);
        if (child == 0) _exit(child_checks(pool, l[0], F.closed));
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0) fail_msg("raw=%d: child check %d failed", raw, WEXITSTATUS(status));
        /* the parent's pool is as it was */
        pool_stats_t st = stats_of(pool);
        assert_int_equal(st.checked_out, 1);
        assert_int_equal(st.idle, 2);
        assert_int_equal(st.inherited_total, 0);
        assert_non_null(pool_lease_native(l[0]));
        assert_ok(pool_checkin(l[0]));
        assert_ok(pool_dispose(pool));
        assert_int_equal(F.closed, 3);
    }
}

static void *checkin_thread(void *lease) { return (void *)(intptr_t)pool_checkin(lease); }

/* A fork while another thread is between checkin and the pool (here: inside reset): the child
 * still counts that connection as inherited and never closes it through the callbacks. */
static void a_fork_in_the_middle_of_a_checkin_loses_no_connection(void **state) {
    (void)state;
    pool_t *pool = fake_pool("pool_size=3");
    pool_lease_t *lent, *returning;
    assert_ok(pool_checkout(&lent, pool, -1));
    assert_ok(pool_checkout(&returning, pool, -1));
    set_reset_blocking(1);
    pthread_t t;
    pthread_create(&t, NULL, checkin_thread, returning);
    assert_true(await_true(one_reset_in_progress, NULL, 5000));
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        alarm(10);
        pool_stats_t st = stats_of(pool);
        int closed = F.closed;
        if (st.inherited_total != 2) _exit(1);
        if (pool_checkin(lent) != POOL_OK) _exit(2);
        if (pool_dispose(pool) != POOL_OK) _exit(3);
        _exit(F.closed == closed ? 0 : 4);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    set_reset_blocking(0);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((intptr_t)rc, POOL_OK);
    assert_int_equal(stats_of(pool).idle, 1);
    assert_ok(pool_checkin(lent));
    assert_ok(pool_dispose(pool));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_connection_is_reused),
        cmocka_unit_test(lifo_by_default_fifo_when_asked),
        cmocka_unit_test(a_parked_connection_is_idle_to_every_thread_and_every_rule),
        cmocka_unit_test(exhausted_pool_times_out_with_exact_message),
        cmocka_unit_test(a_zero_timeout_checkout_may_still_connect),
        cmocka_unit_test(with_pool_timeout_0_a_connect_gets_30_seconds),
        cmocka_unit_test(waiters_are_served_first_come_first_served),
        cmocka_unit_test(with_handoff_after_0_checkin_hands_off_to_a_waiter_not_a_newcomer),
        cmocka_unit_test(a_waiter_that_came_due_is_served_before_a_newcomer),
        cmocka_unit_test(before_a_waiter_comes_due_a_newcomer_may_take_the_connection),
        cmocka_unit_test(overflow_connections_close_at_checkin),
        cmocka_unit_test(an_overflow_connect_waits_for_a_connection_to_come_back_first),
        cmocka_unit_test(unlimited_overflow_never_waits),
        cmocka_unit_test(failed_open_reports_and_frees_the_slot),
        cmocka_unit_test(a_freed_slot_goes_to_the_first_waiter),
        cmocka_unit_test(a_slow_connect_does_not_stall_checkouts_served_from_idle),
        cmocka_unit_test(broken_or_invalidated_connections_are_closed),
        cmocka_unit_test(null_pool_opens_and_closes_every_time),
        cmocka_unit_test(dispose_wakes_waiters_and_waits_for_leases),
        cmocka_unit_test(dispose_closes_idle_connections_at_once),
        cmocka_unit_test(misuse_is_an_error_and_keeps_counts_exact),
        cmocka_unit_test(foreign_and_stale_handles_are_refused_without_being_dereferenced),
        cmocka_unit_test(a_handle_from_65536_checkouts_ago_is_refused),
        cmocka_unit_test(no_two_threads_ever_hold_one_connection),
        cmocka_unit_test(a_child_never_closes_inherited_connections_and_opens_its_own),
        cmocka_unit_test(a_fork_in_the_middle_of_a_checkin_loses_no_connection),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
