/* Issue 5, driven deterministically by a connector written here (no database): hooks and
 * their order, the log hook, leak reports and tags, scoped leases, max_waiting, fail fast,
 * pool_reset, pool_report_error, pre-ping with the ping callback, pool_recycle,
 * idle_timeout and min_idle, the new statistics and their Prometheus text, and misuse.
 *
 * The connector's callbacks and the hooks may run on the pool's maintenance thread, where
 * cmocka must not fail: they only record (under a mutex, or with atomics) what happened, and
 * the test thread checks the record. No sleeps: every wait is for a condition (await_true),
 * and where a test needs time to pass (a back-off, an age) it awaits the clock. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

#define AWAIT_MS 5000 /* upper bound for the maintenance thread to act; never reached */
#define PROMTOOL "/usr/bin/promtool"

/* ---------------------------------------------------------------- the test connector */

#define MAX_CONNS 64
#define MAX_EVENTS 128
#define MAX_LOGS 256

struct fconn {
    int id;
    int64_t dead;   /* the ping callback and reset report it dead */
    int64_t closed; /* close ran: a second close, or a ping after it, is misuse */
};

struct log_line {
    int level;
    char text[320];
};

struct fake {
    pthread_mutex_t mu;
    int64_t fail_opens;    /* the next this many opens fail (under mu) */
    int64_t open_delay_ms; /* each successful open takes this long */
    int64_t reset_fails;   /* resets report the connection broken */
    int next_id;           /* under mu */
    /* atomic counters of callback calls */
    int64_t open_calls, opens, closes, pings, resets, misuse;
    struct fconn conns[MAX_CONNS + 1]; /* by id; never freed, so a late call is seen */
    /* what happened, in order (under mu) */
    int nevents;
    char events[MAX_EVENTS][24];
    int nlogs;
    struct log_line logs[MAX_LOGS];
};

static struct fake F;

/* The hooks' own user_data, distinct from the connector's, so a mix-up shows. */
struct hook_state {
    int64_t fail_connect;  /* the next this many on_connect calls fail */
    int64_t fail_checkout; /* the next this many on_checkout calls fail */
    int64_t fail_checkin;
    int64_t checkout_calls;
    int64_t bad_user_data;
};

static struct hook_state H;

static void record(const char *what, int id) {
    pthread_mutex_lock(&F.mu);
    if (F.nevents < MAX_EVENTS) snprintf(F.events[F.nevents++], sizeof F.events[0], "%s %d", what, id);
    pthread_mutex_unlock(&F.mu);
}

/* The events so far, joined with ", ". */
static const char *events(void) {
    static char buf[MAX_EVENTS * 26];
    buf[0] = '\0';
    pthread_mutex_lock(&F.mu);
    for (int i = 0; i < F.nevents; i++) {
        if (i) strcat(buf, ", ");
        strcat(buf, F.events[i]);
    }
    pthread_mutex_unlock(&F.mu);
    return buf;
}

static void clear_events(void) {
    pthread_mutex_lock(&F.mu);
    F.nevents = 0;
    pthread_mutex_unlock(&F.mu);
}

static int take_one(int64_t *budget) {
    pthread_mutex_lock(&F.mu);
    int take = *budget > 0;
    if (take) (*budget)--;
    pthread_mutex_unlock(&F.mu);
    return take;
}

static void set_budget(int64_t *budget, int64_t n) {
    pthread_mutex_lock(&F.mu);
    *budget = n;
    pthread_mutex_unlock(&F.mu);
}

static int fake_open(void **out, char *err, size_t len, int64_t timeout_ms, void *ud) {
    (void)timeout_ms;
    if (ud != &F) atomic_inc(&F.misuse);
    atomic_inc(&F.open_calls);
    if (take_one(&F.fail_opens)) {
        snprintf(err, len, "fake server refused (test)");
        return -1;
    }
    int64_t until = now_ms() + atomic_get(&F.open_delay_ms);
    while (now_ms() < until) sched_yield(); /* a slow server */
    pthread_mutex_lock(&F.mu);
    int id = F.next_id < MAX_CONNS ? ++F.next_id : 0;
    pthread_mutex_unlock(&F.mu);
    if (id == 0) {
        snprintf(err, len, "the test connector ran out of connections");
        return -1;
    }
    struct fconn *c = &F.conns[id];
    c->id = id;
    atomic_inc(&F.opens);
    record("open", id);
    *out = c;
    return 0;
}

static void fake_close(void *conn, void *ud) {
    struct fconn *c = conn;
    if (ud != &F || atomic_get(&c->closed)) atomic_inc(&F.misuse);
    atomic_set(&c->closed, 1);
    atomic_inc(&F.closes);
    record("fclose", c->id);
}

static int fake_reset(void *conn, int mode, void *ud) {
    (void)mode;
    struct fconn *c = conn;
    if (ud != &F || atomic_get(&c->closed)) atomic_inc(&F.misuse);
    atomic_inc(&F.resets);
    record("reset", c->id);
    return atomic_get(&F.reset_fails) || atomic_get(&c->dead);
}

static int fake_ping(void *conn, void *ud) {
    struct fconn *c = conn;
    if (ud != &F || atomic_get(&c->closed)) atomic_inc(&F.misuse);
    atomic_inc(&F.pings);
    record("ping", c->id);
    return atomic_get(&c->dead) ? 1 : 0;
}

static int is_closed(int id) { return (int)atomic_get(&F.conns[id].closed); }
static void kill_conn(int id) { atomic_set(&F.conns[id].dead, 1); }

/* ---------------------------------------------------------------- hooks */

static int h_connect(void *conn, char *errbuf, size_t len, void *ud) {
    if (ud != &H) atomic_inc(&H.bad_user_data);
    record("connect", ((struct fconn *)conn)->id);
    if (take_one(&H.fail_connect)) {
        snprintf(errbuf, len, "SET search_path failed (test)");
        return 1;
    }
    return 0;
}

static int h_checkout(void *conn, void *ud) {
    if (ud != &H) atomic_inc(&H.bad_user_data);
    atomic_inc(&H.checkout_calls);
    record("checkout", ((struct fconn *)conn)->id);
    return take_one(&H.fail_checkout);
}

static int h_checkin(void *conn, void *ud) {
    if (ud != &H) atomic_inc(&H.bad_user_data);
    record("checkin", ((struct fconn *)conn)->id);
    return take_one(&H.fail_checkin);
}

static void h_close(void *conn, void *ud) {
    if (ud != &H) atomic_inc(&H.bad_user_data);
    record("close", ((struct fconn *)conn)->id);
}

static void h_log(int level, const char *message, void *ud) {
    if (ud != &H) atomic_inc(&H.bad_user_data);
    pthread_mutex_lock(&F.mu);
    if (F.nlogs < MAX_LOGS) {
        F.logs[F.nlogs].level = level;
        snprintf(F.logs[F.nlogs].text, sizeof F.logs[0].text, "%s", message);
        F.nlogs++;
    }
    pthread_mutex_unlock(&F.mu);
}

static pool_hooks_t all_hooks(int log_level) {
    pool_hooks_t h;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    h.on_connect = h_connect;
    h.on_checkout = h_checkout;
    h.on_checkin = h_checkin;
    h.on_close = h_close;
    h.log = h_log;
    h.log_level = log_level;
    h.user_data = &H;
    return h;
}

/* Log lines that contain both parts (part2 may be NULL). */
static int logs_matching(const char *part1, const char *part2) {
    int n = 0;
    pthread_mutex_lock(&F.mu);
    for (int i = 0; i < F.nlogs; i++)
        if (strstr(F.logs[i].text, part1) && (!part2 || strstr(F.logs[i].text, part2))) n++;
    pthread_mutex_unlock(&F.mu);
    return n;
}

static int log_count(void) {
    pthread_mutex_lock(&F.mu);
    int n = F.nlogs;
    pthread_mutex_unlock(&F.mu);
    return n;
}

/* The first log line with both parts, copied into out ("" if none); returns its level or -1. */
static int find_log(const char *part1, const char *part2, char *out, size_t len) {
    int level = -1;
    if (len) out[0] = '\0';
    pthread_mutex_lock(&F.mu);
    for (int i = 0; i < F.nlogs && level < 0; i++)
        if (strstr(F.logs[i].text, part1) && (!part2 || strstr(F.logs[i].text, part2))) {
            level = F.logs[i].level;
            snprintf(out, len, "%s", F.logs[i].text);
        }
    pthread_mutex_unlock(&F.mu);
    return level;
}

static const char *all_logs(void) {
    static char buf[4096];
    buf[0] = '\0';
    pthread_mutex_lock(&F.mu);
    for (int i = 0; i < F.nlogs; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "[%d] %s\n", F.logs[i].level, F.logs[i].text);
    }
    pthread_mutex_unlock(&F.mu);
    return buf;
}

struct log_wait {
    const char *part1, *part2;
};

static int log_seen(void *p) {
    struct log_wait *w = p;
    return logs_matching(w->part1, w->part2) > 0;
}

#define await_log(part1, part2)                                                          \
    do {                                                                                 \
        struct log_wait w_ = {(part1), (part2)};                                         \
        if (!await_true(log_seen, &w_, AWAIT_MS))                                        \
            fail_msg("no log line with \"%s\" and \"%s\"; the log:\n%s", (part1),        \
                     (part2) ? (part2) : "", all_logs());                                \
    } while (0)

/* ---------------------------------------------------------------- waiting */

struct elapsed {
    int64_t since, ms;
};

static int has_elapsed(void *p) {
    struct elapsed *e = p;
    return now_ms() - e->since >= e->ms;
}

/* Lets `ms` pass since `since` (a back-off to expire, an age to grow): awaited, not slept. */
static void await_elapsed(int64_t since, int64_t ms) {
    struct elapsed e = {since, ms};
    await_true(has_elapsed, &e, ms + 1000);
}

struct stat_wait {
    pool_t *pool;
    size_t offset;
    int64_t value;
};

static int64_t stat_at(pool_t *pool, size_t offset) {
    pool_stats_t st = stats_of(pool);
    int64_t v;
    memcpy(&v, (const char *)&st + offset, sizeof v);
    return v;
}

static int stat_reaches(void *p) {
    struct stat_wait *w = p;
    return stat_at(w->pool, w->offset) == w->value;
}

/* Awaits a statistics field reaching a value; fails the test if it does not. */
#define await_stat(pool, field, v)                                                         \
    do {                                                                                   \
        struct stat_wait w_ = {(pool), offsetof(pool_stats_t, field), (v)};                \
        if (!await_true(stat_reaches, &w_, AWAIT_MS))                                      \
            fail_msg(#field " is %lld, awaited %lld", (long long)stat_at((pool), w_.offset), \
                     (long long)(v));                                                      \
    } while (0)

/* ---------------------------------------------------------------- pools */

/* Pools a test made, so that teardown disposes of what a failed test left (its maintenance
 * thread would otherwise call into the next test's connector). */
static pool_t *live[8];
static int nlive;

static void fake_init(void) {
    memset(&F, 0, sizeof F);
    pthread_mutex_init(&F.mu, NULL);
    memset(&H, 0, sizeof H);
}

static pool_t *make_pool(const char *options) {
    pool_t *pool = NULL;
    assert_ok(pool_create_custom(&pool, options, fake_open, fake_close, fake_reset, fake_ping,
                                 NULL, &F));
    assert_true(nlive < 8);
    live[nlive++] = pool;
    return pool;
}

static pool_t *make_pool_with_hooks(const char *options, int log_level) {
    pool_t *pool = make_pool(options);
    pool_hooks_t h = all_hooks(log_level);
    assert_ok(pool_set_hooks(pool, &h));
    return pool;
}

static void forget(pool_t *pool) {
    for (int i = 0; i < nlive; i++)
        if (live[i] == pool) live[i] = live[--nlive];
}

/* Disposes of a pool with no lease out; every connection it opened is closed once. */
static void dispose(pool_t *pool) {
    forget(pool);
    assert_ok(pool_dispose(pool));
    assert_int_equal(atomic_get(&F.closes), atomic_get(&F.opens));
    assert_int_equal(atomic_get(&F.misuse), 0);
    assert_int_equal(atomic_get(&H.bad_user_data), 0);
}

static int setup(void **state) {
    fake_init();
    nlive = 0;
    return arm_watchdog(state);
}

static int teardown(void **state) {
    while (nlive > 0) pool_dispose(live[--nlive]); /* only after a failure */
    return disarm_watchdog(state);
}

static int conn_id(const pool_lease_t *lease) {
    struct fconn *c = pool_lease_native(lease);
    assert_non_null(c);
    return c->id;
}

static pool_lease_t *take(pool_t *pool) {
    pool_lease_t *lease = NULL;
    assert_ok(pool_checkout(&lease, pool, AWAIT_MS));
    assert_non_null(lease);
    return lease;
}

static pool_lease_t *take_tagged(pool_t *pool, const char *tag) {
    pool_lease_t *lease = NULL;
    assert_ok(pool_checkout_tagged(&lease, pool, AWAIT_MS, tag));
    assert_non_null(lease);
    return lease;
}

/* A thread that checks out (waiting up to timeout_ms) and gives the connection back at once. */
struct taker {
    pthread_t thread;
    pool_t *pool;
    int64_t timeout_ms;
    int rc;
    int id;
};

static void *taker_run(void *p) {
    struct taker *t = p;
    pool_lease_t *lease;
    t->rc = pool_checkout(&lease, t->pool, t->timeout_ms);
    if (t->rc == POOL_OK) {
        t->id = ((struct fconn *)pool_lease_native(lease))->id;
        t->rc = pool_checkin(lease);
    }
    return NULL;
}

static void start_taker(struct taker *t, pool_t *pool, int64_t timeout_ms) {
    memset(t, 0, sizeof *t);
    t->pool = pool;
    t->timeout_ms = timeout_ms;
    assert_int_equal(pthread_create(&t->thread, NULL, taker_run, t), 0);
}

/* ---------------------------------------------------------------- hooks */

static void hooks_run_in_order_with_their_user_data(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=2");
    pool_hooks_t h = all_hooks(POOL_LOG_OFF);
    assert_ok(pool_set_hooks(pool, &h));
    memset(&h, 0, sizeof h); /* copied: the pool does not keep the caller's struct */

    pool_lease_t *a = take(pool);
    assert_int_equal(conn_id(a), 1);
    assert_string_equal(events(), "open 1, connect 1, checkout 1");
    assert_ok(pool_checkin(a));
    assert_string_equal(events(), "open 1, connect 1, checkout 1, checkin 1, reset 1");
    a = take(pool); /* reused: no second on_connect */
    assert_int_equal(conn_id(a), 1);
    assert_ok(pool_checkin(a));
    assert_string_equal(events(), "open 1, connect 1, checkout 1, checkin 1, reset 1, "
                                  "checkout 1, checkin 1, reset 1");
    clear_events();
    dispose(pool);
    assert_string_equal(events(), "close 1, fclose 1"); /* on_close before the close */
    assert_int_equal(atomic_get(&H.checkout_calls), 2);
}

static void a_failing_on_connect_is_a_connect_error(void **state) {
    (void)state;
    pool_t *pool = make_pool_with_hooks("pool_size=1 max_overflow=0", POOL_LOG_OFF);
    set_budget(&H.fail_connect, 1);
    pool_lease_t *lease = (pool_lease_t *)&lease;
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_null(lease);
    assert_contains(pool_last_error(), "SET search_path failed (test)");
    /* the connector's close ran, on_close did not: the connection never passed on_connect */
    assert_string_equal(events(), "open 1, connect 1, fclose 1");
    assert_int_equal(atomic_get(&F.closes), 1);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.connect_failures_total, 1);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.idle, 0);

    clear_events();
    lease = take(pool); /* the slot was given back */
    assert_int_equal(conn_id(lease), 2);
    assert_string_equal(events(), "open 2, connect 2, checkout 2");
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).connect_failures_total, 1);
    dispose(pool);
}

static void a_failing_on_checkout_closes_and_tries_another_three_at_most(void **state) {
    (void)state;
    pool_t *pool = make_pool_with_hooks("pool_size=3 max_overflow=0", POOL_LOG_OFF);
    pool_lease_t *lease = take(pool);
    assert_int_equal(conn_id(lease), 1);
    assert_ok(pool_checkin(lease));

    /* one failure: the idle connection is closed and a new one is handed out */
    set_budget(&H.fail_checkout, 1);
    int64_t calls = atomic_get(&H.checkout_calls);
    lease = take(pool);
    assert_int_equal(conn_id(lease), 2);
    assert_int_equal(atomic_get(&H.checkout_calls) - calls, 2);
    assert_true(is_closed(1));
    assert_contains(events(), "close 1, fclose 1"); /* it had passed on_connect */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_ok(pool_checkin(lease));

    /* always failing: three connections tried (the idle one, then two new), then an error */
    set_budget(&H.fail_checkout, 1000);
    calls = atomic_get(&H.checkout_calls);
    lease = (pool_lease_t *)&lease;
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_null(lease);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(atomic_get(&H.checkout_calls) - calls, 3);
    st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 4);
    assert_int_equal(st.closed_total, 4);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checkouts_total, 2);
    assert_int_equal(atomic_get(&F.closes), 4);

    /* the slots were all given back, and a hook's failure is not a connect failure */
    set_budget(&H.fail_checkout, 0);
    pool_lease_t *l[3];
    for (int i = 0; i < 3; i++) l[i] = take(pool);
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(l[i]));
    assert_int_equal(stats_of(pool).fast_fails_total, 0);
    dispose(pool);
}

static void a_failing_on_checkin_closes_the_connection(void **state) {
    (void)state;
    pool_t *pool = make_pool_with_hooks("pool_size=2", POOL_LOG_OFF);
    pool_lease_t *lease = take(pool);
    set_budget(&H.fail_checkin, 1);
    assert_ok(pool_checkin(lease));
    assert_true(is_closed(1));
    assert_contains(events(), "checkin 1");
    assert_contains(events(), "close 1, fclose 1");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.invalidated_total, 1);
    lease = take(pool);
    assert_int_equal(conn_id(lease), 2);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).idle, 1);
    dispose(pool);
}

static void hooks_are_installed_before_first_use_only(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=2");
    pool_hooks_t h = all_hooks(POOL_LOG_OFF);
    h.size = 0; /* size not set */
    assert_int_equal(pool_set_hooks(pool, &h), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    h.size = sizeof h;
    assert_int_equal(pool_set_hooks(NULL, &h), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_ok(pool_set_hooks(pool, &h));
    assert_ok(pool_set_hooks(pool, NULL)); /* removed again */

    pool_lease_t *lease = take(pool);
    assert_string_equal(events(), "open 1"); /* no hook ran */
    assert_int_equal(pool_set_hooks(pool, &h), POOL_ESTATE);
    assert_string_not_equal(pool_last_error(), "");
    assert_ok(pool_checkin(lease));
    assert_int_equal(pool_set_hooks(pool, &h), POOL_ESTATE); /* in use, even with none out */
    assert_int_equal(pool_set_hooks(pool, NULL), POOL_ESTATE);
    lease = take(pool);
    assert_ok(pool_checkin(lease));
    assert_int_equal(atomic_get(&H.checkout_calls), 0);
    dispose(pool);

    /* pool_wait_ready() starts the pool as a checkout does */
    pool = make_pool("pool_size=2");
    assert_ok(pool_wait_ready(pool, 0));
    assert_int_equal(pool_set_hooks(pool, &h), POOL_ESTATE);
    dispose(pool);
}

/* ---------------------------------------------------------------- log hook */

static void the_log_hook_is_silent_by_default_and_filters_by_level(void **state) {
    (void)state;
    /* log set, log_level left at 0 */
    pool_t *pool = make_pool_with_hooks("pool_size=1", POOL_LOG_OFF);
    set_budget(&F.fail_opens, 1);
    pool_lease_t *lease;
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    lease = take(pool);
    assert_ok(pool_invalidate(lease));
    assert_ok(pool_checkin(lease));
    dispose(pool);
    assert_int_equal(log_count(), 0);

    /* ERROR: the connect failure, nothing about connections that open and close fine */
    fake_init();
    pool = make_pool_with_hooks("pool_size=1", POOL_LOG_ERROR);
    set_budget(&F.fail_opens, 1);
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    char line[320];
    int level = find_log("fake server refused (test)", NULL, line, sizeof line);
    if (level != POOL_LOG_ERROR) fail_msg("connect failure logged at %d; the log:\n%s", level, all_logs());
    int after_failure = log_count();
    lease = take(pool);
    assert_ok(pool_invalidate(lease));
    assert_ok(pool_checkin(lease));
    dispose(pool);
    if (log_count() != after_failure) fail_msg("more than errors logged:\n%s", all_logs());
    for (int i = 0; i < F.nlogs; i++) assert_int_equal(F.logs[i].level, POOL_LOG_ERROR);

    /* DEBUG: every connect and close */
    fake_init();
    pool = make_pool_with_hooks("pool_size=1", POOL_LOG_DEBUG);
    lease = take(pool);
    assert_ok(pool_checkin(lease));
    dispose(pool);
    int debug = 0;
    for (int i = 0; i < F.nlogs; i++) {
        assert_in_range(F.logs[i].level, POOL_LOG_ERROR, POOL_LOG_DEBUG);
        debug += F.logs[i].level == POOL_LOG_DEBUG;
    }
    if (debug < 2) fail_msg("%d debug lines for a connect and a close:\n%s", debug, all_logs());
}

/* ---------------------------------------------------------------- leaks and tags */

static void a_lease_held_past_leak_threshold_is_reported_once_with_its_tag(void **state) {
    (void)state;
    pool_t *pool = make_pool_with_hooks("pool_size=2 leak_threshold=0.05", POOL_LOG_WARN);
    pool_lease_t *quick = take_tagged(pool, "quick_one");
    assert_ok(pool_checkin(quick));
    pool_lease_t *held = take_tagged(pool, "report_job");
    await_log("leak", "'report_job'");
    char line[320];
    assert_int_equal(find_log("leak", "'report_job'", line, sizeof line), POOL_LOG_WARN);
    assert_contains(line, "thread ");
    assert_int_equal(stats_of(pool).leaks_total, 1);

    /* four more thresholds: still one report */
    await_elapsed(now_ms(), 200);
    assert_int_equal(logs_matching("leak", "'report_job'"), 1);
    assert_int_equal(stats_of(pool).leaks_total, 1);

    assert_ok(pool_checkin(held));
    await_log("checked in after", "'report_job'");
    assert_int_equal(find_log("checked in after", "'report_job'", line, sizeof line),
                     POOL_LOG_WARN);
    assert_int_equal(logs_matching("quick_one", NULL), 0); /* returned in time */
    assert_int_equal(stats_of(pool).leaks_total, 1);
    dispose(pool);
}

/* The age printed after 'tag' in a timeout message, or -1. */
static double age_of(const char *message, const char *quoted_tag) {
    const char *p = strstr(message, quoted_tag);
    double age = -1;
    if (p && sscanf(p + strlen(quoted_tag), " %lf s", &age) != 1) age = -1;
    return age;
}

static void the_timeout_message_names_the_longest_holders(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=4 max_overflow=0");
    pool_lease_t *l[4];
    l[0] = take_tagged(pool, "tagA");
    await_elapsed(now_ms(), 30);
    l[1] = take_tagged(pool, "tagB");
    await_elapsed(now_ms(), 30);
    l[2] = take(pool); /* untagged */
    await_elapsed(now_ms(), 30);
    l[3] = take_tagged(pool, "tagD"); /* the newest: not among the three longest */

    pool_lease_t *late = (pool_lease_t *)&late;
    assert_int_equal(pool_checkout_tagged(&late, pool, 20, "late"), POOL_ETIMEDOUT);
    assert_null(late);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pool_last_error());
    assert_contains(msg, "QueuePool limit of size 4 overflow 0 reached, connection timed out, "
                         "timeout 0.02 (checked out 4, idle 0, waiting 0)");
    assert_contains(msg, "; longest held: 'tagA' ");
    const char *a = strstr(msg, "'tagA'"), *b = strstr(msg, "'tagB'"), *u = strstr(msg, "'(untagged)'");
    if (!a || !b || !u || !(a < b && b < u)) fail_msg("holders not oldest first: %s", msg);
    assert_lacks(msg, "tagD");
    assert_lacks(msg, "late");
    double age_a = age_of(msg, "'tagA'"), age_b = age_of(msg, "'tagB'");
    if (!(age_a >= 0.05 && age_b >= 0 && age_a >= age_b))
        fail_msg("ages %.3f and %.3f in: %s", age_a, age_b, msg);

    for (int i = 0; i < 4; i++) assert_ok(pool_checkin(l[i]));
    dispose(pool);
}

/* ---------------------------------------------------------------- scoped leases */

struct scoped_arg {
    pool_t *pool;
    int release; /* pool_scope_release() before the thread ends */
    int rc;
    pool_lease_t *first, *second;
    int id;
};

static void *scoped_run(void *p) {
    struct scoped_arg *s = p;
    s->rc = pool_checkout_scoped(&s->first, s->pool, AWAIT_MS, "worker");
    if (s->rc == POOL_OK) s->rc = pool_checkout_scoped(&s->second, s->pool, AWAIT_MS, "worker");
    if (s->rc == POOL_OK) s->id = ((struct fconn *)pool_lease_native(s->first))->id;
    if (s->rc == POOL_OK && s->release) s->rc = pool_scope_release(s->pool);
    return NULL;
}

static void a_scoped_lease_is_one_per_thread(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3");
    pool_lease_t *a, *again;
    assert_ok(pool_checkout_scoped(&a, pool, AWAIT_MS, "handler"));
    assert_ok(pool_checkout_scoped(&again, pool, AWAIT_MS, "another tag"));
    assert_ptr_equal(a, again);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.checkouts_total, 1);

    /* not for pool_checkin(): it stays out */
    assert_int_equal(pool_checkin(a), POOL_ESTATE);
    assert_string_not_equal(pool_last_error(), "");
    assert_non_null(pool_lease_native(a));
    assert_int_equal(stats_of(pool).checked_out, 1);

    /* another thread gets a lease of its own, with another connection */
    struct scoped_arg s = {pool, 1, -99, NULL, NULL, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, scoped_run, &s), 0);
    pthread_join(t, NULL);
    assert_ok(s.rc);
    assert_ptr_equal(s.first, s.second);
    assert_ptr_not_equal(s.first, a);
    assert_int_not_equal(s.id, conn_id(a));
    st = stats_of(pool);
    assert_int_equal(st.checked_out, 1); /* the thread released its own */
    assert_int_equal(st.idle, 1);

    /* a scoped lease is per pool */
    pool_t *other = make_pool("pool_size=1");
    pool_lease_t *o;
    assert_ok(pool_checkout_scoped(&o, other, AWAIT_MS, NULL));
    assert_ptr_not_equal(o, a);
    assert_ok(pool_scope_release(other));
    assert_int_equal(stats_of(other).checked_out, 0);
    assert_int_equal(stats_of(pool).checked_out, 1);
    forget(other);
    assert_ok(pool_dispose(other));

    assert_ok(pool_scope_release(pool));
    st = stats_of(pool);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 2);
    assert_ok(pool_scope_release(pool)); /* none: fine */
    assert_int_equal(pool_scope_release(NULL), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");

    /* after a release the next call checks out afresh */
    assert_ok(pool_checkout_scoped(&a, pool, AWAIT_MS, NULL));
    assert_int_equal(stats_of(pool).checkouts_total, 3); /* a, the thread's, a again */
    assert_ok(pool_scope_release(pool));
    assert_int_equal(stats_of(pool).checked_out, 0);
    dispose(pool);
}

static void a_thread_that_exits_gives_its_scoped_lease_back(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0");
    struct scoped_arg s = {pool, 0, -99, NULL, NULL, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, scoped_run, &s), 0);
    pthread_join(t, NULL);
    assert_ok(s.rc);
    await_stat(pool, checked_out, 0);
    assert_int_equal(atomic_get(&F.resets), 1); /* reset_on_return applied */
    assert_int_equal(stats_of(pool).idle, 1);

    pool_lease_t *lease = (pool_lease_t *)&lease;
    assert_ok(pool_checkout(&lease, pool, 0)); /* free at once, and the same connection */
    assert_int_equal(conn_id(lease), s.id);
    assert_int_equal(atomic_get(&F.opens), 1);
    assert_ok(pool_checkin(lease));
    dispose(pool);
}

/* ---------------------------------------------------------------- max_waiting */

static void max_waiting_refuses_the_next_waiter_at_once(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0 max_waiting=1");
    pool_lease_t *held = take(pool);
    struct taker t;
    start_taker(&t, pool, AWAIT_MS);
    assert_true(await_waiting(pool, 1, AWAIT_MS));

    pool_lease_t *lease = (pool_lease_t *)&lease;
    int64_t start = now_ms();
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ETOOMANYWAITERS);
    assert_true(now_ms() - start < AWAIT_MS / 5); /* at once, not after a wait */
    assert_null(lease);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_checkout_tagged(&lease, pool, AWAIT_MS, "t"), POOL_ETOOMANYWAITERS);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.rejected_total, 2);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.waiting, 1);

    assert_ok(pool_checkin(held)); /* the queued one is served */
    pthread_join(t.thread, NULL);
    assert_ok(t.rc);
    st = stats_of(pool);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.rejected_total, 2);
    dispose(pool);

    /* max_waiting=0: no checkout ever waits */
    fake_init();
    pool = make_pool("pool_size=1 max_overflow=0 max_waiting=0");
    held = take(pool);
    start = now_ms();
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ETOOMANYWAITERS);
    assert_true(now_ms() - start < AWAIT_MS / 5);
    assert_int_equal(stats_of(pool).rejected_total, 1);
    assert_ok(pool_checkin(held));
    dispose(pool);
}

/* ---------------------------------------------------------------- fail fast */

static void repeated_connect_failures_fail_fast_until_the_back_off_ends(void **state) {
    (void)state;
    /* the window: 0.25 s at first, capped by fail_fast_backoff_max */
    pool_t *pool = make_pool("pool_size=2 max_overflow=0 fail_fast_after=3 "
                             "fail_fast_backoff_max=0.1");
    pool_lease_t *held = take(pool);
    set_budget(&F.fail_opens, 1000);
    pool_lease_t *lease;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
        assert_contains(pool_last_error(), "fake server refused (test)");
        assert_lacks(pool_last_error(), "failing fast");
    }
    assert_int_equal(atomic_get(&F.open_calls), 4);
    int64_t failed_at = now_ms();

    /* in the window: at once, with the last error, and the connector is not asked */
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_contains(pool_last_error(), "failing fast");
    assert_contains(pool_last_error(), "fake server refused (test)");
    assert_int_equal(atomic_get(&F.open_calls), 4);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.fast_fails_total, 1);
    assert_int_equal(st.connect_failures_total, 3);
    assert_int_equal(st.opening, 0);

    /* idle connections are still served */
    assert_ok(pool_checkin(held));
    held = take(pool);
    assert_int_equal(conn_id(held), 1);

    /* after the window one checkout tries again; it fails, and a new window begins */
    await_elapsed(failed_at, 300);
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_lacks(pool_last_error(), "failing fast");
    assert_int_equal(atomic_get(&F.open_calls), 5);
    failed_at = now_ms();
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_contains(pool_last_error(), "failing fast");
    assert_int_equal(atomic_get(&F.open_calls), 5);
    assert_int_equal(stats_of(pool).fast_fails_total, 2);

    /* the server is back: after the window a checkout connects, and fail-fast is over */
    set_budget(&F.fail_opens, 0);
    await_elapsed(failed_at, 300);
    lease = take(pool);
    assert_int_equal(atomic_get(&F.open_calls), 6);
    assert_ok(pool_invalidate(lease));
    assert_ok(pool_checkin(lease));
    set_budget(&F.fail_opens, 1);
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
    assert_lacks(pool_last_error(), "failing fast"); /* one failure is not three */
    assert_int_equal(atomic_get(&F.open_calls), 7);
    lease = take(pool);
    assert_int_equal(atomic_get(&F.open_calls), 8);
    st = stats_of(pool);
    assert_int_equal(st.fast_fails_total, 2);
    assert_int_equal(st.connect_failures_total, 5);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_checkin(held));
    dispose(pool);
}

static void fail_fast_after_zero_never_fails_fast(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0 fail_fast_after=0");
    set_budget(&F.fail_opens, 1000);
    pool_lease_t *lease;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ECONNECT);
        assert_lacks(pool_last_error(), "failing fast");
    }
    assert_int_equal(atomic_get(&F.open_calls), 6);
    assert_int_equal(stats_of(pool).fast_fails_total, 0);
    dispose(pool);
}

/* ---------------------------------------------------------------- pool_reset */

static void pool_reset_retires_the_connections_open_now(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3");
    pool_lease_t *a = take(pool), *b = take(pool), *c = take(pool);
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_ok(pool_reset(pool));
    /* the idle ones are closed before it returns */
    assert_true(is_closed(1) && is_closed(2));
    assert_false(is_closed(3));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.resets_total, 1);
    assert_int_equal(st.reset_closed_total, 2);
    assert_int_equal(st.closed_total, 2);

    pool_lease_t *d = take(pool); /* opened after the reset */
    assert_int_equal(conn_id(d), 4);
    assert_ok(pool_checkin(c)); /* retired: closed at its checkin */
    assert_true(is_closed(3));
    assert_ok(pool_checkin(d)); /* kept */
    assert_false(is_closed(4));
    st = stats_of(pool);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.reset_closed_total, 3);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.resets_total, 1);
    d = take(pool);
    assert_int_equal(conn_id(d), 4);
    assert_ok(pool_checkin(d));

    assert_ok(pool_reset(pool));
    assert_true(is_closed(4));
    st = stats_of(pool);
    assert_int_equal(st.resets_total, 2);
    assert_int_equal(st.reset_closed_total, 4);
    assert_int_equal(pool_reset(NULL), POOL_EINVAL);
    dispose(pool);
}

/* ---------------------------------------------------------------- pool_report_error */

static void report_error_retires_on_server_gone_codes_only(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3");
    pool_lease_t *a = take(pool), *b = take(pool);
    assert_ok(pool_checkin(b));

    /* a constraint violation: nothing changes */
    assert_ok(pool_report_error(a, "23505"));
    assert_ok(pool_checkin(a));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.resets_total, 0);
    assert_int_equal(st.invalidated_total, 0);

    /* admin_shutdown: this lease and every older idle connection */
    a = take(pool);
    int id = conn_id(a);
    assert_ok(pool_report_error(a, "57P01"));
    assert_true(is_closed(id == 1 ? 2 : 1)); /* the idle one, at once */
    assert_int_equal(stats_of(pool).idle, 0);
    assert_non_null(pool_lease_native(a)); /* the lease itself stays usable until checkin */
    assert_ok(pool_checkin(a));
    assert_true(is_closed(id));
    st = stats_of(pool);
    assert_int_equal(st.closed_total, 2);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.reset_closed_total, 1);
    assert_int_equal(st.resets_total, 1);
    assert_int_equal(st.idle, 0);

    /* the other codes that mean the server went away or changed role */
    static const char *const gone[] = {"08006", "08001", "08P01", "57P02", "57P03", "25006"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        a = take(pool);
        id = conn_id(a);
        assert_ok(pool_report_error(a, gone[i]));
        assert_ok(pool_checkin(a));
        if (!is_closed(id)) fail_msg("%s did not invalidate the lease", gone[i]);
    }
    st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 7);
    assert_int_equal(st.resets_total, 7);

    /* not five characters */
    a = take(pool);
    static const char *const bad[] = {"bad", "", "123456", "5701"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pool_report_error(a, bad[i]), POOL_EINVAL);
        assert_string_not_equal(pool_last_error(), "");
    }
    assert_int_equal(pool_report_error(a, NULL), POOL_EINVAL);
    assert_int_equal(pool_report_error(NULL, "57P01"), POOL_EINVAL);
    id = conn_id(a);
    assert_ok(pool_checkin(a));
    assert_false(is_closed(id)); /* the bad calls changed nothing */
    assert_int_equal(pool_report_error(a, "57P01"), POOL_ESTATE); /* checked in */
    assert_int_equal(stats_of(pool).resets_total, 7);
    dispose(pool);
}

/* ---------------------------------------------------------------- pre-ping */

static void pre_ping_replaces_a_dead_idle_connection_unseen(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0 pool_pre_ping=true pre_ping_interval=0");
    pool_lease_t *lease = take(pool);
    assert_ok(pool_checkin(lease));
    kill_conn(1);
    lease = take(pool);
    assert_int_equal(conn_id(lease), 2); /* a fresh one, within the same checkout */
    assert_true(is_closed(1));
    assert_int_equal(atomic_get(&F.pings), 1); /* the new one is not pinged */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_int_equal(st.checked_out, 1);
    assert_ok(pool_checkin(lease));
    lease = take(pool); /* alive: pinged (interval 0) and served */
    assert_int_equal(conn_id(lease), 2);
    st = stats_of(pool);
    assert_int_equal(st.pings_total, 2);
    assert_int_equal(st.dead_total, 1);
    assert_ok(pool_checkin(lease));
    dispose(pool);
}

static void a_dead_connection_found_by_ping_retires_the_older_ones(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3 pool_use_lifo=true pool_pre_ping=true "
                             "pre_ping_interval=0");
    pool_lease_t *l[3];
    for (int i = 0; i < 3; i++) l[i] = take(pool);
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(l[i]));
    kill_conn(3); /* the newest, served first (LIFO) */
    pool_lease_t *lease = take(pool);
    assert_int_equal(conn_id(lease), 4);
    assert_true(is_closed(1) && is_closed(2) && is_closed(3));
    assert_int_equal(atomic_get(&F.pings), 1); /* 1 and 2 were retired, not pinged */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.resets_total, 1);
    assert_int_equal(st.reset_closed_total, 2);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.idle, 0);
    assert_ok(pool_checkin(lease));
    dispose(pool);
}

static void pre_ping_interval_decides_which_checkouts_ping(void **state) {
    (void)state;
    /* 0: every checkout of an idle connection pings (a new one never) */
    pool_t *pool = make_pool("pool_size=1 pool_pre_ping=true pre_ping_interval=0");
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(take(pool)));
    assert_int_equal(atomic_get(&F.pings), 2);
    assert_int_equal(stats_of(pool).pings_total, 2);
    dispose(pool);

    /* the default (0.5 s): a connection checked in moments ago is not pinged */
    fake_init();
    pool = make_pool("pool_size=1 pool_pre_ping=true");
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(take(pool)));
    assert_int_equal(atomic_get(&F.pings), 0);
    assert_int_equal(stats_of(pool).pings_total, 0);
    dispose(pool);

    /* idle longer than the interval: pinged */
    fake_init();
    pool = make_pool("pool_size=1 pool_pre_ping=true pre_ping_interval=0.05");
    assert_ok(pool_checkin(take(pool)));
    int64_t returned = now_ms();
    await_elapsed(returned, 150);
    assert_ok(pool_checkin(take(pool)));
    assert_int_equal(atomic_get(&F.pings), 1);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 0);
    assert_int_equal(st.opened_total, 1);
    dispose(pool);

    /* without pool_pre_ping the ping callback is never called */
    fake_init();
    pool = make_pool("pool_size=1 pre_ping_interval=0");
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(take(pool)));
    assert_int_equal(atomic_get(&F.pings), 0);
    assert_int_equal(stats_of(pool).pings_total, 0);
    dispose(pool);
}

static void a_connection_dead_at_checkin_retires_the_older_ones(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3");
    pool_lease_t *a = take(pool), *b = take(pool), *c = take(pool);
    assert_ok(pool_checkin(a)); /* idle */
    kill_conn(3);               /* its reset fails */
    assert_ok(pool_checkin(c));
    assert_true(is_closed(3));
    assert_true(is_closed(1)); /* idle and older: closed at once */
    assert_false(is_closed(2)); /* out: closed at its checkin */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.resets_total, 1);
    assert_int_equal(st.idle, 0);
    assert_ok(pool_checkin(b));
    assert_true(is_closed(2));
    st = stats_of(pool);
    assert_int_equal(st.reset_closed_total, 2);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.dead_total, 1);
    pool_lease_t *d = take(pool);
    assert_int_equal(conn_id(d), 4);
    assert_ok(pool_checkin(d));
    assert_int_equal(stats_of(pool).idle, 1);
    dispose(pool);
}

/* ---------------------------------------------------------------- recycle, idle, min_idle */

static void pool_recycle_replaces_old_connections_at_checkout_and_checkin(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0 pool_recycle=0.05");
    int64_t opened = now_ms();
    pool_lease_t *lease = take(pool);
    assert_ok(pool_checkin(lease)); /* young: kept */
    assert_int_equal(stats_of(pool).idle, 1);
    await_elapsed(opened, 100);
    lease = take(pool); /* old: closed and replaced, unseen */
    assert_int_equal(conn_id(lease), 2);
    assert_true(is_closed(1));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.recycled_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.checkouts_total, 2);

    opened = now_ms();
    await_elapsed(opened, 100);
    assert_ok(pool_checkin(lease)); /* grew old while out: closed instead of kept */
    assert_true(is_closed(2));
    st = stats_of(pool);
    assert_int_equal(st.recycled_total, 2);
    assert_int_equal(st.closed_total, 2);
    assert_int_equal(st.idle, 0);
    dispose(pool);
}

static void idle_timeout_closes_idle_connections_down_to_min_idle(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=4 max_overflow=0 min_idle=1 idle_timeout=0.05");
    pool_lease_t *l[4];
    for (int i = 0; i < 4; i++) l[i] = take(pool);
    for (int i = 0; i < 4; i++) assert_ok(pool_checkin(l[i]));
    await_stat(pool, idle, 1);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle_closed_total, 3);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.opened_total, 4);
    assert_int_equal(st.checked_out, 0);
    /* and it stays at min_idle */
    await_elapsed(now_ms(), 150);
    st = stats_of(pool);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.idle_closed_total, 3);
    dispose(pool);
}

static void min_idle_is_opened_in_the_background_and_refilled(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=3 min_idle=2");
    assert_int_equal(atomic_get(&F.open_calls), 0); /* nothing before first use */
    assert_ok(pool_wait_ready(pool, AWAIT_MS));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.checkouts_total, 0);

    /* a reset closes them; the pool opens two new ones. First let the maintenance thread
     * settle (min_idle met, nothing due for long): the reset must wake it. */
    await_elapsed(now_ms(), 50);
    assert_ok(pool_reset(pool));
    await_stat(pool, idle, 2);
    st = stats_of(pool);
    assert_int_equal(st.reset_closed_total, 2);
    assert_int_equal(st.opened_total, 4);
    assert_true(is_closed(1) && is_closed(2));

    /* invalidated ones are replaced too */
    pool_lease_t *x = take(pool), *y = take(pool);
    assert_ok(pool_invalidate(x));
    assert_ok(pool_invalidate(y));
    assert_ok(pool_checkin(x));
    assert_ok(pool_checkin(y));
    await_stat(pool, idle, 2);
    st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 2);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    /* 4, then one while x and y were out (the pool opens at most pool_size by itself) or
     * none, then what makes 2 idle again: 6 either way */
    assert_int_equal(st.opened_total, 6);
    assert_int_equal(st.closed_total, 4);
    dispose(pool);
}

static void wait_ready_times_out_with_the_connect_error(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=2 min_idle=1");
    set_budget(&F.fail_opens, 1000000);
    int64_t start = now_ms();
    assert_int_equal(pool_wait_ready(pool, 100), POOL_ETIMEDOUT);
    assert_true(now_ms() - start >= 90);
    assert_contains(pool_last_error(), "fake server refused (test)");
    assert_true(atomic_get(&F.open_calls) >= 1);
    dispose(pool); /* joins the maintenance thread, failing or not */

    fake_init();
    pool = make_pool("pool_size=2"); /* min_idle 0: ready at once */
    assert_ok(pool_wait_ready(pool, 0));
    assert_int_equal(atomic_get(&F.open_calls), 0);
    dispose(pool);
}

/* ---------------------------------------------------------------- statistics */

static void statistics_are_exact_after_a_scripted_run(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0");
    atomic_set(&F.open_delay_ms, 20);
    pool_lease_t *a = take(pool); /* 1: opens, in 20 ms */
    atomic_set(&F.open_delay_ms, 0);
    assert_ok(pool_checkin(a));
    a = take(pool); /* 2: served idle, no wait */

    struct taker t; /* 3: waits until the checkin below */
    start_taker(&t, pool, AWAIT_MS);
    assert_true(await_waiting(pool, 1, AWAIT_MS));
    assert_ok(pool_checkin(a));
    pthread_join(t.thread, NULL);
    assert_ok(t.rc);

    a = take(pool); /* 4 */
    pool_lease_t *none;
    assert_int_equal(pool_checkout(&none, pool, 30), POOL_ETIMEDOUT); /* waits 30 ms, fails */
    assert_ok(pool_invalidate(a));
    assert_ok(pool_checkin(a));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.size, sizeof st);
    assert_int_equal(st.checkouts_total, 4);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.timeouts_total, 1);
    assert_int_equal(st.waits_total, 2);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(st.wait_total_us >= 25000);
    assert_true(st.wait_max_us >= 25000 && st.wait_max_us <= st.wait_total_us);
    for (int i = 1; i < POOL_WAIT_BUCKETS; i++)
        if (st.wait_le_us[i] < st.wait_le_us[i - 1])
            fail_msg("wait_le_us[%d] = %lld < wait_le_us[%d] = %lld", i,
                     (long long)st.wait_le_us[i], i - 1, (long long)st.wait_le_us[i - 1]);
    assert_true(st.wait_le_us[2] <= 1); /* the 30 ms wait is above 10 ms */
    assert_int_equal(st.wait_le_us[POOL_WAIT_BUCKETS - 1], 2); /* both under 10 s */
    assert_true(st.connect_time_total_us >= 15000);
    assert_true(st.connect_time_max_us >= 15000);
    assert_true(st.connect_time_max_us <= st.connect_time_total_us);
    assert_int_equal(st.pings_total + st.dead_total + st.recycled_total + st.idle_closed_total +
                         st.reset_closed_total + st.resets_total + st.leaks_total +
                         st.fast_fails_total + st.rejected_total,
                     0);
    dispose(pool);
}

/* ---------------------------------------------------------------- Prometheus */

/* Runs promtool check metrics on text; returns its exit status, its output in out. */
static int promtool_check(const char *text, char *out, size_t len) {
    if (access(PROMTOOL, X_OK) != 0)
        fail_msg(PROMTOOL " is missing: run make deps (it installs the prometheus package)");
    char path[] = "/tmp/connpool-promtool.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics >%s 2>&1", path);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    fputs(text, p);
    int status = pclose(p);
    signal(SIGPIPE, old);
    ssize_t n = read(fd, out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *prometheus_text(pool_t *pool, const char *name) {
    size_t need = 0;
    assert_int_equal(pool_stats_prometheus(NULL, 0, &need, pool, name), POOL_ERANGE);
    assert_true(need > 0);
    char *buf = malloc(need + 1);
    size_t len = 0;
    assert_ok(pool_stats_prometheus(buf, need + 1, &len, pool, name));
    assert_int_equal(len, need);
    assert_int_equal(strlen(buf), len);
    return buf;
}

static void prometheus_text_is_sized_exactly_and_passes_promtool(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=2");
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(take(pool)));

    /* too small, even by the NUL: POOL_ERANGE, the length needed, nothing written */
    size_t need = 0;
    assert_int_equal(pool_stats_prometheus(NULL, 0, &need, pool, "x"), POOL_ERANGE);
    assert_true(need > 100);
    char *buf = malloc(need + 1);
    memset(buf, 'Z', need + 1);
    size_t len = 12345;
    assert_int_equal(pool_stats_prometheus(buf, need, &len, pool, "x"), POOL_ERANGE);
    assert_int_equal(len, need);
    for (size_t i = 0; i < need + 1; i++)
        if (buf[i] != 'Z') fail_msg("byte %zu written on POOL_ERANGE", i);
    assert_ok(pool_stats_prometheus(buf, need + 1, &len, pool, "x"));
    assert_int_equal(len, need);
    assert_int_equal(strlen(buf), need);

    assert_contains(buf, "\nconnpool_checkouts_total{pool=\"x\"} 3\n");
    assert_contains(buf, "# TYPE connpool_checkouts_total counter");
    assert_contains(buf, "# TYPE connpool_checkout_wait_seconds histogram");
    assert_contains(buf, "connpool_checkout_wait_seconds_bucket{");
    assert_contains(buf, "le=\"+Inf\"");
    assert_contains(buf, "connpool_checkout_wait_seconds_count{pool=\"x\"} 0");
    char out[4096];
    int rc = promtool_check(buf, out, sizeof out);
    if (rc != 0 || out[0]) fail_msg("promtool exit %d: %s\nthe text:\n%s", rc, out, buf);
    free(buf);

    /* no name: no label */
    buf = prometheus_text(pool, NULL);
    assert_contains(buf, "\nconnpool_checkouts_total 3\n");
    assert_lacks(buf, "pool=");
    rc = promtool_check(buf, out, sizeof out);
    if (rc != 0 || out[0]) fail_msg("promtool exit %d: %s\nthe text:\n%s", rc, out, buf);
    free(buf);

    /* a name that needs escaping in a label value */
    buf = prometheus_text(pool, "we\"ird\\pool\nname");
    assert_contains(buf, "connpool_checkouts_total{pool=\"we\\\"ird\\\\pool\\nname\"} 3\n");
    rc = promtool_check(buf, out, sizeof out);
    if (rc != 0 || out[0]) fail_msg("promtool exit %d: %s\nthe text:\n%s", rc, out, buf);
    free(buf);

    assert_int_equal(pool_stats_prometheus(NULL, 0, NULL, pool, "x"), POOL_EINVAL);
    assert_int_equal(pool_stats_prometheus(NULL, 0, &need, NULL, "x"), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    dispose(pool);
}

/* ---------------------------------------------------------------- misuse */

static void misuse_of_the_new_calls_is_an_error_with_a_message(void **state) {
    (void)state;
    pool_t *pool = make_pool("pool_size=1 max_overflow=0");
    pool_lease_t *lease = NULL;
    pool_hooks_t h = all_hooks(POOL_LOG_OFF);
    struct {
        const char *what;
        int rc;
    } calls[] = {
        {"pool_checkout_tagged(NULL out)", pool_checkout_tagged(NULL, pool, 0, "t")},
        {"pool_checkout_tagged(NULL pool)", pool_checkout_tagged(&lease, NULL, 0, "t")},
        {"pool_checkout_scoped(NULL out)", pool_checkout_scoped(NULL, pool, 0, "t")},
        {"pool_checkout_scoped(NULL pool)", pool_checkout_scoped(&lease, NULL, 0, "t")},
        {"pool_scope_release(NULL)", pool_scope_release(NULL)},
        {"pool_report_error(NULL lease)", pool_report_error(NULL, "57P01")},
        {"pool_reset(NULL)", pool_reset(NULL)},
        {"pool_wait_ready(NULL)", pool_wait_ready(NULL, 0)},
        {"pool_set_hooks(NULL pool)", pool_set_hooks(NULL, &h)},
        {"pool_stats_prometheus(NULL pool)", pool_stats_prometheus(NULL, 0, NULL, NULL, NULL)},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (calls[i].rc != POOL_EINVAL)
            fail_msg("%s returned %s", calls[i].what, pool_error_name(calls[i].rc));
    /* each one sets its message (checked one by one: the next call clears it) */
    assert_int_equal(pool_checkout_tagged(&lease, NULL, 0, "t"), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_reset(NULL), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_wait_ready(NULL, 0), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_report_error(NULL, "57P01"), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_checkout_scoped(NULL, pool, 0, NULL), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_int_equal(pool_stats_get(pool, NULL), POOL_EINVAL); /* unchanged since 1.0 */

    /* a 200-byte tag: accepted, 63 bytes kept */
    char tag[201];
    memset(tag, 'x', 200);
    tag[200] = '\0';
    lease = take_tagged(pool, tag);
    pool_lease_t *none;
    assert_int_equal(pool_checkout(&none, pool, 0), POOL_ETIMEDOUT);
    char quoted[70];
    snprintf(quoted, sizeof quoted, "'%.63s'", tag);
    assert_contains(pool_last_error(), quoted);
    char longer[70];
    snprintf(longer, sizeof longer, "%.64s", tag);
    assert_lacks(pool_last_error(), longer);
    assert_ok(pool_checkin(lease));
    lease = take_tagged(pool, NULL); /* NULL: no tag */
    assert_ok(pool_checkin(lease));

    /* a disposed pool whose lease is still out: POOL_ECLOSED */
    lease = take(pool);
    forget(pool);
    assert_int_equal(pool_dispose(pool), POOL_EBUSY);
    assert_int_equal(pool_reset(pool), POOL_ECLOSED);
    assert_int_equal(pool_wait_ready(pool, 0), POOL_ECLOSED);
    assert_int_equal(pool_checkout_tagged(&none, pool, 0, "t"), POOL_ECLOSED);
    assert_int_equal(pool_checkout_scoped(&none, pool, 0, "t"), POOL_ECLOSED);
    assert_ok(pool_checkin(lease)); /* releases the pool */
    assert_int_equal(atomic_get(&F.closes), atomic_get(&F.opens));
}

/* Issue 14, item 4: the maintenance thread's min_idle connect gets what a checkout's own
 * connect gets: with pool_timeout=0 ("never wait") that is 30 s, not "connect in no time". */
static int64_t last_open_timeout_ms = -1; /* atomic */

static int timed_open(void **out, char *err, size_t len, int64_t timeout_ms, void *ud) {
    atomic_set(&last_open_timeout_ms, timeout_ms);
    return fake_open(out, err, len, timeout_ms, ud);
}

static void the_min_idle_refill_connects_within_the_io_bound_not_pool_timeout_zero(void **state) {
    (void)state;
    atomic_set(&last_open_timeout_ms, -1);
    pool_t *pool = NULL;
    assert_ok(pool_create_custom(&pool, "pool_size=2 min_idle=1 pool_timeout=0", timed_open,
                                 fake_close, fake_reset, fake_ping, NULL, &F));
    live[nlive++] = pool;
    assert_ok(pool_wait_ready(pool, AWAIT_MS));
    int64_t got = atomic_get(&last_open_timeout_ms);
    if (got < 29000 || got > 30000)
        fail_msg("the refill's open callback was given %lld ms, expected about 30000",
                 (long long)got);
    dispose(pool);
}

/* ---------------------------------------------------------------- injected failures */

/* This program's own pthread_create and operator new come first in the symbol lookup, so the
 * library's calls reach them (they forward to the real ones, under a sanitizer its
 * interceptors): a test can make the next thread fail to start, or the next C++ allocation
 * throw std::bad_alloc (libstdc++'s own thrower, so the exception is a real one). */
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int64_t refuse_threads; /* atomic: pthread_create fails with EAGAIN */

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *),
                   void *arg) {
    static pthread_create_fn real;
    if (!real) real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (atomic_get(&refuse_threads)) return EAGAIN;
    return real(thread, attr, start, arg);
}

static int64_t fail_next_new; /* atomic: the next operator new throws */

void *_Znwm(size_t size); /* operator new(size_t) */
void *_Znwm(size_t size) {
    static void *(*real)(size_t);
    if (__atomic_exchange_n(&fail_next_new, 0, __ATOMIC_ACQ_REL)) {
        void (*throw_bad_alloc)(void) =
            (void (*)(void))dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
        if (throw_bad_alloc) throw_bad_alloc();
        abort(); /* no libstdc++: cannot happen, the library links it */
    }
    if (!real) real = (void *(*)(size_t))dlsym(RTLD_NEXT, "_Znwm");
    return real(size);
}

/* An open that succeeds, and arms the failure of the library's next allocation: the record
 * for the new connection. */
static int open_then_no_memory(void **out, char *err, size_t len, int64_t timeout_ms, void *ud) {
    int rc = fake_open(out, err, len, timeout_ms, ud);
    if (rc == 0 && atomic_get(&F.opens) == 1) atomic_set(&fail_next_new, 1);
    return rc;
}

/* Issue 14, item 5: std::bad_alloc after the driver's connect succeeded: the checkout fails
 * with POOL_ENOMEM, the new connection is closed and its capacity slot comes back. */
static void no_memory_after_a_connect_closes_the_connection_and_frees_its_slot(void **state) {
    (void)state;
    skip_under_valgrind(); /* its allocator replaces operator new: nothing to inject */
    pool_t *pool = NULL;
    assert_ok(pool_create_custom(&pool, "pool_size=1 max_overflow=0", open_then_no_memory,
                                 fake_close, fake_reset, fake_ping, NULL, &F));
    live[nlive++] = pool;
    pool_lease_t *lease = NULL;
    assert_int_equal(pool_checkout(&lease, pool, AWAIT_MS), POOL_ENOMEM);
    assert_null(lease);
    assert_int_equal(atomic_get(&fail_next_new), 0); /* the injection was used */
    assert_int_equal(atomic_get(&F.opens), 1);
    assert_true(is_closed(1)); /* not leaked */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 0);
    /* the one slot is free again: the next checkout opens at once instead of timing out */
    assert_ok(pool_checkout(&lease, pool, 100));
    assert_int_equal(conn_id(lease), 2);
    assert_ok(pool_checkin(lease));
    dispose(pool);
}

/* Issue 14, item 6: a checkout does not need the maintenance thread: if it cannot be started,
 * checkouts work without it, and the failure is logged once. */
static void checkouts_work_when_the_maintenance_thread_cannot_start(void **state) {
    (void)state;
    pool_t *pool = make_pool_with_hooks("pool_size=2 leak_threshold=30", POOL_LOG_WARN);
    atomic_set(&refuse_threads, 1);
    pool_lease_t *a = NULL;
    int rc = pool_checkout(&a, pool, AWAIT_MS);
    atomic_set(&refuse_threads, 0);
    if (rc != POOL_OK) fail_msg("checkout: %s: %s", pool_error_name(rc), pool_last_error());
    atomic_set(&refuse_threads, 1);
    pool_lease_t *b = NULL;
    rc = pool_checkout(&b, pool, AWAIT_MS);
    atomic_set(&refuse_threads, 0);
    if (rc != POOL_OK) fail_msg("second checkout: %s: %s", pool_error_name(rc), pool_last_error());
    assert_ok(pool_checkin(a));
    assert_ok(pool_checkin(b));
    assert_int_equal(logs_matching("could not start the pool's maintenance thread", "Resource"), 1);
    dispose(pool);
    /* wait_ready needs the thread (it opens min_idle): it says so */
    pool_t *ready = make_pool("pool_size=1 min_idle=1");
    atomic_set(&refuse_threads, 1);
    rc = pool_wait_ready(ready, 0);
    atomic_set(&refuse_threads, 0);
    assert_int_equal(rc, POOL_ERROR);
    assert_contains(pool_last_error(), "maintenance thread");
    dispose(ready);
}

/* ---------------------------------------------------------------- the last checkin's release */

/* Issue 14, item 1: the checkin of the last lease of a disposed pool releases it, and no other
 * thread may then still read the pool. A checkin logs what it found (a lease reported as a
 * leak, a dead connection) after it has left the lock: the thread must still count as inside
 * the pool then, or a second checkin releases the pool under the first one's log call. */

static int64_t pool_destroyed; /* atomic: the connector's destroy ran (the pool is released) */
static int64_t b_returned;     /* atomic: the test thread's checkin returned */
static int64_t in_late_log;    /* atomic: the first checkin is in its log hook */
static int64_t late_logs;      /* atomic */
static int64_t log_after_release; /* atomic: a hook ran after the pool was released */

static void note_destroyed(void *ud) {
    if (ud != &F) atomic_inc(&F.misuse);
    atomic_set(&pool_destroyed, 1);
}

static int released_or_b_returned(void *unused) {
    (void)unused;
    return atomic_get(&pool_destroyed) || atomic_get(&b_returned);
}

/* Records the line; in the first "checked in after" report it holds its thread until the
 * other checkin returned or the pool was released (whichever comes first). */
static void holding_log(int level, const char *message, void *ud) {
    if (atomic_get(&pool_destroyed)) atomic_inc(&log_after_release);
    h_log(level, message, ud);
    if (strstr(message, "checked in after") && __atomic_fetch_add(&late_logs, 1, __ATOMIC_ACQ_REL) == 0) {
        atomic_set(&in_late_log, 1);
        await_true(released_or_b_returned, NULL, AWAIT_MS);
    }
}

static int is_in_late_log(void *unused) {
    (void)unused;
    return (int)atomic_get(&in_late_log);
}

static void *checkin_run(void *p) {
    pool_lease_t *lease = p;
    return (void *)(intptr_t)pool_checkin(lease);
}

static void the_last_checkin_never_releases_the_pool_under_another_checkins_log(void **state) {
    (void)state;
    atomic_set(&pool_destroyed, 0);
    atomic_set(&b_returned, 0);
    atomic_set(&in_late_log, 0);
    atomic_set(&late_logs, 0);
    atomic_set(&log_after_release, 0);
    pool_t *pool = NULL;
    assert_ok(pool_create_custom(&pool, "pool_size=2 max_overflow=0 leak_threshold=0.01",
                                 fake_open, fake_close, fake_reset, fake_ping, note_destroyed, &F));
    pool_hooks_t h = all_hooks(POOL_LOG_WARN);
    h.log = holding_log;
    assert_ok(pool_set_hooks(pool, &h));
    pool_lease_t *a = take_tagged(pool, "a"), *b = take_tagged(pool, "b");
    await_log("possible leak", "'a'");
    await_log("possible leak", "'b'");
    assert_int_equal(pool_dispose(pool), POOL_EBUSY);
    kill_conn(conn_id(a)); /* both backends gone: each checkin finds its connection dead */
    kill_conn(conn_id(b));

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, checkin_run, a), 0);
    if (!await_true(is_in_late_log, NULL, AWAIT_MS))
        fail_msg("the first checkin never logged; the log:\n%s", all_logs());
    assert_ok(pool_checkin(b)); /* the last lease */
    atomic_set(&b_returned, 1);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((int)(intptr_t)rc, POOL_OK);
    /* the first checkin's dead-connection line came, and before the pool was released */
    assert_int_equal(logs_matching("was found dead", NULL), 2);
    assert_int_equal(atomic_get(&log_after_release), 0);
    assert_int_equal(atomic_get(&pool_destroyed), 1); /* released by whichever left last */
    assert_int_equal(atomic_get(&F.closes), 2);
    assert_int_equal(atomic_get(&F.misuse), 0);
    assert_int_equal(atomic_get(&H.bad_user_data), 0);
}

/* The same race left to the scheduler, as issue 14 describes it (no leak report, nothing held):
 * two leases of a disposed pool, both connections dead, checked in at once from two threads;
 * many rounds, for the sanitizers to see a late read. */
struct racer {
    pool_lease_t *lease;
    int64_t *go;
    int rc;
};

static void *racing_checkin(void *p) {
    struct racer *r = p;
    while (!atomic_get(r->go)) sched_yield();
    r->rc = pool_checkin(r->lease);
    return NULL;
}

#define RACE_ROUNDS 300

static void two_last_checkins_racing_after_dispose_release_the_pool_once(void **state) {
    (void)state;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        fake_init();
        atomic_set(&pool_destroyed, 0);
        atomic_set(&log_after_release, 0);
        pool_t *pool = NULL;
        assert_ok(pool_create_custom(&pool, "pool_size=2 max_overflow=0", fake_open, fake_close,
                                     fake_reset, fake_ping, note_destroyed, &F));
        pool_hooks_t h = all_hooks(POOL_LOG_WARN);
        h.log = holding_log;
        assert_ok(pool_set_hooks(pool, &h));
        pool_lease_t *a = take(pool), *b = take(pool);
        assert_int_equal(pool_dispose(pool), POOL_EBUSY);
        kill_conn(conn_id(a));
        kill_conn(conn_id(b));
        int64_t go = 0;
        struct racer ra = {a, &go, -1}, rb = {b, &go, -1};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, racing_checkin, &ra), 0);
        assert_int_equal(pthread_create(&tb, NULL, racing_checkin, &rb), 0);
        atomic_set(&go, 1);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        assert_int_equal(ra.rc, POOL_OK);
        assert_int_equal(rb.rc, POOL_OK);
        assert_int_equal(atomic_get(&pool_destroyed), 1);
        assert_int_equal(atomic_get(&log_after_release), 0);
        assert_int_equal(logs_matching("was found dead", NULL), 2);
        assert_int_equal(atomic_get(&F.closes), 2);
        assert_int_equal(atomic_get(&F.misuse), 0);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(hooks_run_in_order_with_their_user_data),
        T(a_failing_on_connect_is_a_connect_error),
        T(a_failing_on_checkout_closes_and_tries_another_three_at_most),
        T(a_failing_on_checkin_closes_the_connection),
        T(hooks_are_installed_before_first_use_only),
        T(the_log_hook_is_silent_by_default_and_filters_by_level),
        T(a_lease_held_past_leak_threshold_is_reported_once_with_its_tag),
        T(the_timeout_message_names_the_longest_holders),
        T(a_scoped_lease_is_one_per_thread),
        T(a_thread_that_exits_gives_its_scoped_lease_back),
        T(max_waiting_refuses_the_next_waiter_at_once),
        T(repeated_connect_failures_fail_fast_until_the_back_off_ends),
        T(fail_fast_after_zero_never_fails_fast),
        T(pool_reset_retires_the_connections_open_now),
        T(report_error_retires_on_server_gone_codes_only),
        T(pre_ping_replaces_a_dead_idle_connection_unseen),
        T(a_dead_connection_found_by_ping_retires_the_older_ones),
        T(pre_ping_interval_decides_which_checkouts_ping),
        T(a_connection_dead_at_checkin_retires_the_older_ones),
        T(pool_recycle_replaces_old_connections_at_checkout_and_checkin),
        T(idle_timeout_closes_idle_connections_down_to_min_idle),
        T(min_idle_is_opened_in_the_background_and_refilled),
        T(wait_ready_times_out_with_the_connect_error),
        T(statistics_are_exact_after_a_scripted_run),
        T(prometheus_text_is_sized_exactly_and_passes_promtool),
        T(misuse_of_the_new_calls_is_an_error_with_a_message),
        T(the_last_checkin_never_releases_the_pool_under_another_checkins_log),
        T(two_last_checkins_racing_after_dispose_release_the_pool_once),
        T(the_min_idle_refill_connects_within_the_io_bound_not_pool_timeout_zero),
        T(no_memory_after_a_connect_closes_the_connection_and_frees_its_slot),
        T(checkouts_work_when_the_maintenance_thread_cannot_start),
    };
#undef T
    /* CONNPOOL_TEST_FILTER=*scoped* runs only the tests whose name matches */
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
