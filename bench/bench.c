/*
 * bench: what connpool costs, and what it saves.
 *
 *  1. Pool overhead: checkout+checkin pairs on a custom connector that does no I/O, with 1, 2,
 *     8 and 64 threads on a pool of 64 (so no thread ever waits for a connection: this is the
 *     pool's own cost, lock contention included).
 *  2. Throughput against a real PostgreSQL: checkout + SELECT 1 + checkin on a pool of 10, with
 *     1, 8, 64 and 300 threads, next to raw libpq with one dedicated connection per thread (the
 *     ceiling) and to connect-per-query (PQconnectdb + SELECT 1 + PQfinish per operation).
 *
 *  3. Fork check cost: section 1's single-thread pair, through function pointers into two
 *     copies of the library loaded with dlopen, the normal one and one built with the fork
 *     check compiled out (make bench passes its path in CONNPOOL_BENCH_NOFORK_LIB).
 *  4. Fork: what a child's first checkout costs (dropping the 10 connections it inherited
 *     without a word to the server, then connecting one of its own), with and without TLS,
 *     what fork() itself costs the parent, and a check that the parent's sessions survive.
 *  5. Issue 15's effects, each alone against raw libpq: reuse order (LIFO/FIFO at 4 threads),
 *     hand-off (bounded barging/strict FIFO at 32 threads), and a checkin's cost (a libpq
 *     pair against one poll() of its socket).
 *
 * Sections 1 and 2 are time-boxed: the threads start together at a barrier, run until the main
 * thread raises a stop flag, and finish the operation they are in; the wall time runs from the
 * barrier to the last join, and every operation completed in it counts.
 *
 * Run it with `make bench`: tests/with-postgres.sh starts a throwaway server and sets the PG*
 * environment variables libpq reads (the conninfo strings below add only application_name,
 * connect_timeout for connect-per-query, and sslmode for section 4; the server has TLS on).
 * Any failure prints pool_last_error() (or libpq's message) and exits with status 1; so does a
 * failed check of section 4, after the whole table is printed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "connpool.h"

/* ---------------------------------------------------------------- settings */

#define OVERHEAD_ROUNDS 3        /* best of this many runs per overhead row */
#define OVERHEAD_SECONDS 0.4     /* wall time of one overhead run */
#define OVERHEAD_WARMUP 20000    /* untimed pairs per thread before each run */
#define OVERHEAD_BATCH 16        /* pairs between two looks at the stop flag */
#define OVERHEAD_POOL_SIZE 64
#define OVERHEAD_TARGET_NS 150.0 /* the target for one thread */

#define SQL_ROUNDS 7             /* pool and ceiling alternate; best of this many runs */
#define SQL_SECONDS 0.4
#define SQL_WARMUP 10            /* untimed queries per thread before each run */
#define CONNECT_SECONDS 1.5      /* connect-per-query: one run */
#define SQL_POOL_SIZE 10
#define SQL_TARGET_PERCENT 95.0  /* pool within 5% of the ceiling while threads <= pool_size */

#define FORKCHECK_ROUNDS 1000     /* runs per library, the two libraries taking turns */
#define FORKCHECK_PAIRS 4000      /* pairs in one run (about 0.3 ms: short, so most runs see
                                     no preemption, and the turns follow any clock drift) */
#define FORKCHECK_WARMUP 20000    /* untimed pairs per library before the first run */
#define FORKCHECK_TARGET_NS 5.0   /* "no more than a few ns" per pair, read as <= 5 ns */

#define FORK_CHILDREN 20          /* children per kind (and sslmode); the kinds alternate */
#define FORK_POOL_SIZE 10
#define FORK_CHILD_TIMEOUT_MS 60000 /* a child that has not reported by then is killed */

#define WORKER_STACK (512 * 1024)

static const int overhead_threads[] = {1, 2, 8, 64};
static const int sql_threads[] = {1, 8, 64, 300};
#define N_OVERHEAD (int)(sizeof overhead_threads / sizeof overhead_threads[0])
#define N_SQL (int)(sizeof sql_threads / sizeof sql_threads[0])
#define MAX_SQL_THREADS 300

static const char overhead_options[] = "pool_size=64 max_overflow=0";
static const char sql_options[] = "pool_size=10 max_overflow=0 pool_timeout=60";
static const char pool_conninfo[] = "application_name=bench-pool";
static const char raw_conninfo[] = "application_name=bench-raw";
static const char connect_conninfo[] = "application_name=bench-connect connect_timeout=30";
static const char fork_options[] = "pool_size=10 max_overflow=0";
static const char *const fork_sslmodes[] = {"disable", "require"};
#define N_FORK_SSLMODES (int)(sizeof fork_sslmodes / sizeof fork_sslmodes[0])

/* ---------------------------------------------------------------- failing */

static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;

/* Prints the message and ends the process at once: other threads may still be inside
 * connpool or libpq, so no atexit handlers or static destructors run. */
static void die(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *format, ...) {
    va_list ap;
    pthread_mutex_lock(&die_lock); /* the first failure reports; the others block here */
    fflush(stdout);
    fputs("bench: ", stderr);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

/* rc is a failed connpool call's status: report it with this thread's detail message. */
static void die_pool(const char *what, int rc) __attribute__((noreturn));
static void die_pool(const char *what, int rc) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", pool_last_error()); /* copy before anything else */
    die("%s failed: %s (%d): %s", what, pool_error_name(rc), rc, detail);
}

static void check_pthread(const char *what, int rc) {
    if (rc != 0) die("%s failed: %s", what, strerror(rc));
}

/* ---------------------------------------------------------------- time */

static double now_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds) {
    struct timespec until;
    if (clock_gettime(CLOCK_MONOTONIC, &until) != 0) die("clock_gettime: %s", strerror(errno));
    long long ns = (long long)until.tv_nsec + (long long)(seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) == EINTR) {
    }
    if (rc != 0) die("clock_nanosleep: %s", strerror(rc));
}

/* ---------------------------------------------------------------- the no-I/O connector */

static char dummy_connection; /* every "connection" of the overhead pool is this address */

static int dummy_open(void **conn_out, char *errbuf, size_t errbuf_len, int64_t timeout_ms,
                      void *user_data) {
    (void)errbuf;
    (void)errbuf_len;
    (void)timeout_ms;
    (void)user_data;
    *conn_out = &dummy_connection;
    return 0;
}

static void dummy_close(void *conn, void *user_data) {
    (void)conn;
    (void)user_data;
}

/* ---------------------------------------------------------------- runs */

enum bench_mode {
    MODE_OVERHEAD, /* checkout + checkin, nothing else */
    MODE_POOL_SQL, /* checkout + SELECT 1 + checkin */
    MODE_RAW_SQL,  /* SELECT 1 on the thread's own connection */
    MODE_CONNECT   /* PQconnectdb + SELECT 1 + PQfinish */
};

struct run;

typedef struct worker {
    pthread_t tid;
    struct run *run;
    PGconn *conn; /* MODE_RAW_SQL: this thread's dedicated connection */
    uint64_t ops; /* written once, at the end */
} worker_t;

struct run {
    enum bench_mode mode;
    pool_t *pool;
    int threads;
    long warmup;
    pthread_barrier_t start;
    worker_t *workers;
    /* Written once by the main thread, read by all workers: alone on its cache line. */
    char pad0[64];
    int stop;
    char pad1[64];
};

typedef struct result {
    uint64_t ops;
    double seconds;
} result_t;

static int stopped(const struct run *r) { return __atomic_load_n(&r->stop, __ATOMIC_RELAXED); }

static void overhead_pair(pool_t *pool) {
    pool_lease_t *lease;
    int rc = pool_checkout(&lease, pool, -1);
    if (rc != POOL_OK) die_pool("pool_checkout", rc);
    rc = pool_checkin(lease);
    if (rc != POOL_OK) die_pool("pool_checkin", rc);
}

static void select_one(PGconn *conn, const char *who) {
    PGresult *res = PQexec(conn, "SELECT 1");
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "1") != 0)
        die("%s: SELECT 1 failed: %s", who, PQerrorMessage(conn));
    PQclear(res);
}

static void pool_sql_op(pool_t *pool) {
    pool_lease_t *lease;
    int rc = pool_checkout(&lease, pool, -1);
    if (rc != POOL_OK) die_pool("pool_checkout", rc);
    PGconn *conn = pool_lease_native(lease);
    if (!conn) die("pool_lease_native returned NULL for a checked-out lease");
    select_one(conn, "pool");
    rc = pool_checkin(lease);
    if (rc != POOL_OK) die_pool("pool_checkin", rc);
}

static PGconn *connect_or_die(const char *conninfo) {
    PGconn *conn = PQconnectdb(conninfo);
    if (!conn) die("PQconnectdb: out of memory");
    if (PQstatus(conn) != CONNECTION_OK) die("PQconnectdb failed: %s", PQerrorMessage(conn));
    return conn;
}

static void connect_op(void) {
    PGconn *conn = connect_or_die(connect_conninfo);
    select_one(conn, "connect-per-query");
    PQfinish(conn);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    struct run *r = w->run;
    uint64_t n = 0;
    long i;

    for (i = 0; i < r->warmup; i++) {
        switch (r->mode) {
        case MODE_OVERHEAD: overhead_pair(r->pool); break;
        case MODE_POOL_SQL: pool_sql_op(r->pool); break;
        case MODE_RAW_SQL: select_one(w->conn, "raw"); break;
        case MODE_CONNECT: connect_op(); break;
        }
    }

    int rc = pthread_barrier_wait(&r->start);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) check_pthread("pthread_barrier_wait", rc);

    switch (r->mode) {
    case MODE_OVERHEAD:
        while (!stopped(r)) {
            for (i = 0; i < OVERHEAD_BATCH; i++) overhead_pair(r->pool);
            n += OVERHEAD_BATCH;
        }
        break;
    case MODE_POOL_SQL:
        for (; !stopped(r); n++) pool_sql_op(r->pool);
        break;
    case MODE_RAW_SQL:
        for (; !stopped(r); n++) select_one(w->conn, "raw");
        break;
    case MODE_CONNECT:
        for (; !stopped(r); n++) connect_op();
        break;
    }
    w->ops = n;
    return NULL;
}

/* Runs `threads` workers in `mode` for about `seconds` of wall time after the start barrier.
 * conns: MODE_RAW_SQL's connections, one per thread. */
static result_t run_threads(enum bench_mode mode, pool_t *pool, PGconn **conns, int threads,
                            long warmup, double seconds) {
    static struct run r; /* big and shared: not on the main thread's stack */
    result_t res = {0, 0.0};
    pthread_attr_t attr;
    int i;

    memset(&r, 0, sizeof r);
    r.mode = mode;
    r.pool = pool;
    r.threads = threads;
    r.warmup = warmup;
    r.workers = calloc((size_t)threads, sizeof *r.workers);
    if (!r.workers) die("out of memory");
    check_pthread("pthread_barrier_init",
                  pthread_barrier_init(&r.start, NULL, (unsigned)threads + 1));
    check_pthread("pthread_attr_init", pthread_attr_init(&attr));
    check_pthread("pthread_attr_setstacksize", pthread_attr_setstacksize(&attr, WORKER_STACK));
    for (i = 0; i < threads; i++) {
        r.workers[i].run = &r;
        r.workers[i].conn = conns ? conns[i] : NULL;
        check_pthread("pthread_create",
                      pthread_create(&r.workers[i].tid, &attr, worker_main, &r.workers[i]));
    }
    pthread_attr_destroy(&attr);

    int rc = pthread_barrier_wait(&r.start);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) check_pthread("pthread_barrier_wait", rc);
    double t0 = now_seconds();
    sleep_seconds(seconds);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < threads; i++) {
        check_pthread("pthread_join", pthread_join(r.workers[i].tid, NULL));
        res.ops += r.workers[i].ops;
    }
    res.seconds = now_seconds() - t0;

    pthread_barrier_destroy(&r.start);
    free(r.workers);
    return res;
}

static double per_second(result_t r) { return r.seconds > 0 ? (double)r.ops / r.seconds : 0.0; }

static void get_stats(pool_t *pool, pool_stats_t *st) {
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    int rc = pool_stats_get(pool, st);
    if (rc != POOL_OK) die_pool("pool_stats_get", rc);
}

static void dispose_or_die(pool_t *pool) {
    int rc = pool_dispose(pool);
    if (rc != POOL_OK) die_pool("pool_dispose", rc);
}

/* Checks `n` leases out at once (so the pool opens n connections before any timing), then
 * checks them all back in. */
static void open_connections(pool_t *pool, int n) {
    pool_lease_t *leases[OVERHEAD_POOL_SIZE];
    int i, rc;
    if (n > OVERHEAD_POOL_SIZE) die("open_connections: %d is too many", n);
    for (i = 0; i < n; i++) {
        rc = pool_checkout(&leases[i], pool, -1);
        if (rc != POOL_OK) die_pool("pool_checkout (opening the pool's connections)", rc);
    }
    for (i = 0; i < n; i++) {
        rc = pool_checkin(leases[i]);
        if (rc != POOL_OK) die_pool("pool_checkin", rc);
    }
}

/* ---------------------------------------------------------------- 1. overhead */

static void bench_overhead(void) {
    pool_t *pool;
    pool_stats_t before, after;
    int t, round, rc;

    rc = pool_create_custom(&pool, overhead_options, dummy_open, dummy_close, NULL, NULL, NULL,
                            NULL);
    if (rc != POOL_OK) die_pool("pool_create_custom", rc);
    open_connections(pool, OVERHEAD_POOL_SIZE);
    get_stats(pool, &before);

    printf("1. Pool overhead: pool_checkout(-1) + pool_checkin pairs; custom connector whose open\n"
           "   returns a dummy pointer (no I/O), no reset or ping; options \"%s\",\n"
           "   all %d connections opened beforehand, so no thread ever waits: this is the pool's\n"
           "   own cost, lock contention included. Best of %d runs of %.1f s after %d warm-up\n"
           "   pairs per thread.\n"
           "   ns/pair  = wall time x threads / pairs: the latency one thread sees (with more\n"
           "              threads than cores it includes waiting for a core)\n"
           "   ns/core  = wall time x min(threads, cores) / pairs: CPU time per pair\n",
           overhead_options, OVERHEAD_POOL_SIZE, OVERHEAD_ROUNDS, OVERHEAD_SECONDS,
           OVERHEAD_WARMUP);
    printf("\n   %7s  %12s  %9s  %9s  %12s  %s\n", "threads", "pairs", "ns/pair", "ns/core",
           "pairs/s", "target");

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    for (t = 0; t < N_OVERHEAD; t++) {
        int threads = overhead_threads[t];
        result_t best = {0, 0.0};
        double best_ns = 0;
        for (round = 0; round < OVERHEAD_ROUNDS; round++) {
            result_t r = run_threads(MODE_OVERHEAD, pool, NULL, threads, OVERHEAD_WARMUP,
                                     OVERHEAD_SECONDS);
            if (r.ops == 0) die("overhead run with %d threads completed no pair", threads);
            double ns = r.seconds * 1e9 * threads / (double)r.ops;
            if (round == 0 || ns < best_ns) {
                best = r;
                best_ns = ns;
            }
        }
        double ns_core = best.seconds * 1e9 * (threads < cores ? threads : cores) /
                         (double)best.ops;
        char target[64] = "";
        if (threads == 1)
            snprintf(target, sizeof target, "< %.0f ns: %s", OVERHEAD_TARGET_NS,
                     best_ns < OVERHEAD_TARGET_NS ? "met" : "MISSED");
        printf("   %7d  %12llu  %9.1f  %9.1f  %12.0f  %s\n", threads,
               (unsigned long long)best.ops, best_ns, ns_core, per_second(best), target);
        fflush(stdout);
    }

    get_stats(pool, &after);
    printf("   pool stats over all runs: %lld checkouts, %lld connections opened during the runs, "
           "%lld timeouts, %lld us spent waiting\n",
           (long long)(after.checkouts_total - before.checkouts_total),
           (long long)(after.opened_total - before.opened_total),
           (long long)(after.timeouts_total - before.timeouts_total),
           (long long)(after.wait_total_us - before.wait_total_us));
    if (after.opened_total != before.opened_total || after.wait_total_us != before.wait_total_us)
        printf("   WARNING: the pool opened connections or made threads wait: the rows above "
               "measure more than the pool's overhead\n");
    dispose_or_die(pool);
}

/* ---------------------------------------------------------------- 2. real server */

static void bench_sql(void) {
    pool_t *pool;
    PGconn *raw[MAX_SQL_THREADS];
    result_t pool_best[N_SQL], raw_best[N_SQL], connect_res[N_SQL];
    double spread[N_SQL]; /* how far the worst run fell below the best, in %, either mode */
    pool_stats_t before, after;
    int t, round, i, rc;

    /* Everything is opened before any timing: the pool's 10 and one per thread for the
     * ceiling (the most threads need the most: 300, well under max_connections). */
    rc = pool_create(&pool, pool_conninfo, sql_options);
    if (rc != POOL_OK) die_pool("pool_create", rc);
    open_connections(pool, SQL_POOL_SIZE);
    double t0 = now_seconds();
    for (i = 0; i < MAX_SQL_THREADS; i++) raw[i] = connect_or_die(raw_conninfo);
    double connect_ms = (now_seconds() - t0) * 1000.0 / MAX_SQL_THREADS;
    int server_version = PQserverVersion(raw[0]);
    get_stats(pool, &before);

    printf("\n2. Throughput against PostgreSQL %d.%d (libpq %d) over TCP to %s (same machine, so the\n"
           "   server shares the cores). Operations per second, all threads together:\n"
           "   pool       = pool_checkout(-1) + PQexec(\"SELECT 1\") + pool_checkin, options\n"
           "                \"%s\"\n"
           "   ceiling    = raw libpq, one dedicated connection per thread, no pool; above %d\n"
           "                threads it uses more server connections than the pool (column conns)\n"
           "   conn/query = PQconnectdb + SELECT 1 + PQfinish per operation: what pooling saves\n"
           "                (one connect took %.2f ms on average when the %d ceiling connections\n"
           "                were opened one after another); speedup = pool / conn/query\n"
           "   pool and ceiling take turns, best of %d runs of %.1f s each after %d warm-up queries\n"
           "   per thread; spread = how far the worst of those runs fell below the best (pool or\n"
           "   ceiling, whichever varied more): run-to-run noise, compare it with the gap between\n"
           "   the two. conn/query is one run of %.1f s. Target: pool within %.0f%% of the ceiling\n"
           "   while threads <= pool_size (%d).\n",
           server_version / 10000, server_version % 10000, PQlibVersion(),
           PQhost(raw[0]) ? PQhost(raw[0]) : "?", sql_options, SQL_POOL_SIZE, connect_ms,
           MAX_SQL_THREADS, SQL_ROUNDS, SQL_SECONDS, SQL_WARMUP, CONNECT_SECONDS,
           100.0 - SQL_TARGET_PERCENT, SQL_POOL_SIZE);
    fflush(stdout);

    for (t = 0; t < N_SQL; t++) {
        int threads = sql_threads[t];
        if (threads > MAX_SQL_THREADS) die("too many threads: %d", threads);
        double pool_worst = 0, raw_worst = 0;
        for (round = 0; round < SQL_ROUNDS; round++) {
            result_t p, r; /* which goes first alternates too */
            if (round % 2 == 0) {
                p = run_threads(MODE_POOL_SQL, pool, NULL, threads, SQL_WARMUP, SQL_SECONDS);
                r = run_threads(MODE_RAW_SQL, NULL, raw, threads, SQL_WARMUP, SQL_SECONDS);
            } else {
                r = run_threads(MODE_RAW_SQL, NULL, raw, threads, SQL_WARMUP, SQL_SECONDS);
                p = run_threads(MODE_POOL_SQL, pool, NULL, threads, SQL_WARMUP, SQL_SECONDS);
            }
            if (round == 0 || per_second(p) > per_second(pool_best[t])) pool_best[t] = p;
            if (round == 0 || per_second(r) > per_second(raw_best[t])) raw_best[t] = r;
            if (round == 0 || per_second(p) < pool_worst) pool_worst = per_second(p);
            if (round == 0 || per_second(r) < raw_worst) raw_worst = per_second(r);
        }
        double pool_spread = 100.0 * (1.0 - pool_worst / per_second(pool_best[t]));
        double raw_spread = 100.0 * (1.0 - raw_worst / per_second(raw_best[t]));
        spread[t] = pool_spread > raw_spread ? pool_spread : raw_spread;
        fprintf(stderr, "bench: %d threads: pool %.0f ops/s, ceiling %.0f ops/s\n", threads,
                per_second(pool_best[t]), per_second(raw_best[t]));
    }
    get_stats(pool, &after);

    /* Connect-per-query last, with the ceiling's connections closed and the pool disposed,
     * so its up to 300 sessions (plus backends still exiting) fit in max_connections. */
    for (i = 0; i < MAX_SQL_THREADS; i++) PQfinish(raw[i]);
    dispose_or_die(pool);
    for (t = 0; t < N_SQL; t++) {
        connect_res[t] = run_threads(MODE_CONNECT, NULL, NULL, sql_threads[t], 0, CONNECT_SECONDS);
        fprintf(stderr, "bench: %d threads: connect-per-query %.0f ops/s\n", sql_threads[t],
                per_second(connect_res[t]));
    }

    printf("\n   %7s  %10s  %10s  %5s  %9s  %6s  %10s  %9s  %s\n", "threads", "pool", "ceiling",
           "conns", "pool/ceil", "spread", "conn/query", "speedup", "target");
    for (t = 0; t < N_SQL; t++) {
        int threads = sql_threads[t];
        double p = per_second(pool_best[t]), r = per_second(raw_best[t]);
        double c = per_second(connect_res[t]);
        double percent = r > 0 ? 100.0 * p / r : 0.0;
        char target[64] = "";
        if (threads <= SQL_POOL_SIZE)
            snprintf(target, sizeof target, ">= %.0f%%: %s", SQL_TARGET_PERCENT,
                     percent >= SQL_TARGET_PERCENT ? "met" : "MISSED");
        else
            snprintf(target, sizeof target, "(%d threads share %d connections)", threads,
                     SQL_POOL_SIZE);
        char conns[16];
        snprintf(conns, sizeof conns, "%d", threads);
        char ratio[32];
        if (c > 0)
            snprintf(ratio, sizeof ratio, "%.1fx", p / c);
        else
            snprintf(ratio, sizeof ratio, "-");
        printf("   %7d  %10.0f  %10.0f  %5s  %8.1f%%  %5.0f%%  %10.0f  %9s  %s\n", threads, p, r,
               conns, percent, spread[t], c, ratio, target);
    }
    printf("   pool stats over its runs: %lld checkouts, %lld connections opened during the runs, "
           "%lld timeouts,\n   time spent waiting for a connection %.1f s in all, longest wait %.1f ms\n",
           (long long)(after.checkouts_total - before.checkouts_total),
           (long long)(after.opened_total - before.opened_total),
           (long long)(after.timeouts_total - before.timeouts_total),
           (double)(after.wait_total_us - before.wait_total_us) / 1e6,
           (double)after.wait_max_us / 1e3);
}

/* ---------------------------------------------------------------- 5. effects alone */

/* Issue 15's three effects, each alone: one option changed against the defaults, next to raw
 * libpq (one connection per thread), in alternating runs, best of SQL_ROUNDS. */

/* The best ops/s of `rounds` runs of each of n configurations, taking turns. */
static void best_of_turns(int n, enum bench_mode *modes, pool_t **pools, PGconn **raw,
                          int threads, long warmup, double *best) {
    int round, k;
    for (k = 0; k < n; k++) best[k] = 0;
    for (round = 0; round < SQL_ROUNDS; round++)
        for (k = 0; k < n; k++) {
            int which = (k + round) % n;
            result_t r = run_threads(modes[which], pools[which], raw, threads, warmup, SQL_SECONDS);
            if (per_second(r) > best[which]) best[which] = per_second(r);
        }
}

static pool_t *sql_pool(const char *extra) {
    char options[256];
    snprintf(options, sizeof options, "%s %s", sql_options, extra);
    pool_t *pool;
    int rc = pool_create(&pool, pool_conninfo, options);
    if (rc != POOL_OK) die_pool("pool_create", rc);
    open_connections(pool, SQL_POOL_SIZE);
    return pool;
}

/* SELECT 1 at `threads` threads: the default pool, the pool with `changed`, raw libpq. */
static void effect_row(const char *effect, int threads, const char *changed, PGconn **raw) {
    pool_t *normal = sql_pool(""), *other = sql_pool(changed);
    enum bench_mode modes[3] = {MODE_POOL_SQL, MODE_POOL_SQL, MODE_RAW_SQL};
    pool_t *pools[3] = {normal, other, NULL};
    double best[3];
    best_of_turns(3, modes, pools, raw, threads, SQL_WARMUP, best);
    printf("   %-13s %7d  %10.0f  %-26s %10.0f  %10.0f  %6.1f%%\n", effect, threads, best[0],
           changed, best[1], best[2], best[2] > 0 ? 100.0 * best[0] / best[2] : 0.0);
    dispose_or_die(normal);
    dispose_or_die(other);
}

static double poll_ns(int fd) {
    const int n = 200000;
    struct pollfd pfd = {fd, POLLIN, 0};
    double t0 = now_seconds();
    for (int i = 0; i < n; i++) (void)poll(&pfd, 1, 0);
    return (now_seconds() - t0) * 1e9 / n;
}

static void bench_effects(void) {
    PGconn *raw[32];
    int i;
    for (i = 0; i < 32; i++) raw[i] = connect_or_die(raw_conninfo);
    printf("\n5. Each effect alone (SELECT 1 operations/s, pool of %d; best of %d turns of %.1f s):\n"
           "   the defaults, the same pool with one option changed, and raw libpq with one\n"
           "   connection per thread (the ceiling); pool/ceil is the defaults' share of it.\n\n"
           "   %-13s %7s  %10s  %-26s %10s  %10s  %7s\n",
           SQL_POOL_SIZE, SQL_ROUNDS, SQL_SECONDS, "effect", "threads", "defaults", "changed",
           "changed", "ceiling", "pool/ceil");
    fflush(stdout);
    effect_row("reuse order", 4, "pool_use_lifo=false", raw);
    effect_row("hand-off", 32, "pool_handoff_after=0", raw);

    /* Thread-affine reuse: checkout+checkin pairs of libpq connections (no query) at 4
     * threads on the pool of 10, each thread taking back the connection it returned without
     * the lock, against the same pool with leak_threshold set, whose maintenance thread keeps
     * every idle connection on the shared list (under the lock). */
    pool_t *affine = sql_pool(""), *shared = sql_pool("leak_threshold=3600");
    enum bench_mode pair_modes[2] = {MODE_OVERHEAD, MODE_OVERHEAD};
    pool_t *pair_pools[2] = {affine, shared};
    double pairs[2];
    best_of_turns(2, pair_modes, pair_pools, NULL, 4, OVERHEAD_WARMUP, pairs);
    printf("\n   thread-affine reuse: checkout+checkin pairs/s at 4 threads: %.0f with the defaults,\n"
           "   %.0f with leak_threshold=3600 (every idle connection on the shared list)\n",
           pairs[0], pairs[1]);
    dispose_or_die(affine);
    dispose_or_die(shared);

    /* Checkin cost: a pair on a real libpq connection, against section 1's connector that
     * does no I/O, and what one look at the socket (the poll() a checkin no longer makes when
     * the connection was just used) costs on this machine. */
    pool_t *pq = sql_pool("");
    enum bench_mode modes[1] = {MODE_OVERHEAD};
    pool_t *pools[1] = {pq};
    double best[1];
    best_of_turns(1, modes, pools, NULL, 1, OVERHEAD_WARMUP, best);
    double pair_ns = best[0] > 0 ? 1e9 / best[0] : 0;
    double look_ns = poll_ns(PQsocket(raw[0]));
    printf("\n   checkin cost: checkout+checkin of a libpq connection on 1 thread %.0f ns per pair;\n"
           "   one poll() of its socket (what a checkin of a just-used connection no longer\n"
           "   does) %.0f ns\n",
           pair_ns, look_ns);
    dispose_or_die(pq);
    for (i = 0; i < 32; i++) PQfinish(raw[i]);
}

/* ---------------------------------------------------------------- 3. fork check cost */

typedef int (*create_custom_fn)(pool_t **, const char *, pool_open_cb, pool_close_cb,
                                pool_reset_cb, pool_ping_cb, pool_destroy_cb, void *);
typedef int (*checkout_fn)(pool_lease_t **, pool_t *, int64_t);
typedef int (*checkin_fn)(pool_lease_t *);
typedef int (*dispose_fn)(pool_t *);
typedef const char *(*string_fn)(void);
typedef const char *(*code_name_fn)(int);

/* One copy of the library, loaded with dlopen and called only through these pointers. */
typedef struct loaded_lib {
    const char *label;
    char path[PATH_MAX];
    void *handle;
    create_custom_fn create_custom;
    checkout_fn checkout;
    checkin_fn checkin;
    dispose_fn dispose;
    string_fn last_error;
    code_name_fn error_name;
    pool_t *pool;
    double ns[FORKCHECK_ROUNDS]; /* ns per pair, one per run */
} loaded_lib_t;

/* dlsym returns an object pointer: its bytes are copied into the function pointer. */
static void lookup(const loaded_lib_t *lib, void *fn, size_t size, const char *name) {
    dlerror();
    void *sym = dlsym(lib->handle, name);
    if (!sym) die("dlsym(%s, \"%s\"): %s", lib->path, name, dlerror());
    memcpy(fn, &sym, size);
}
#define LOOKUP(lib, field, name) lookup((lib), &(lib)->field, sizeof (lib)->field, name)

static void load_lib(loaded_lib_t *lib, const char *label, const char *path) {
    lib->label = label;
    if (snprintf(lib->path, sizeof lib->path, "%s", path) >= (int)sizeof lib->path)
        die("library path too long: %s", path);
    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib->handle) die("dlopen(%s): %s", path, dlerror());
    LOOKUP(lib, create_custom, "pool_create_custom");
    LOOKUP(lib, checkout, "pool_checkout");
    LOOKUP(lib, checkin, "pool_checkin");
    LOOKUP(lib, dispose, "pool_dispose");
    LOOKUP(lib, last_error, "pool_last_error");
    LOOKUP(lib, error_name, "pool_error_name");
}

/* Like die_pool, with the message of the library that failed (each copy has its own). */
static void die_lib(const loaded_lib_t *lib, const char *what, int rc) __attribute__((noreturn));
static void die_lib(const loaded_lib_t *lib, const char *what, int rc) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", lib->last_error());
    die("%s (%s library) failed: %s (%d): %s", what, lib->label, lib->error_name(rc), rc, detail);
}

static void lib_pair(const loaded_lib_t *lib) {
    pool_lease_t *lease;
    int rc = lib->checkout(&lease, lib->pool, -1);
    if (rc != POOL_OK) die_lib(lib, "pool_checkout", rc);
    rc = lib->checkin(lease);
    if (rc != POOL_OK) die_lib(lib, "pool_checkin", rc);
}

/* One run of FORKCHECK_PAIRS pairs. Returns ns per pair. */
static double lib_run(const loaded_lib_t *lib) {
    long i;
    double t0 = now_seconds();
    for (i = 0; i < FORKCHECK_PAIRS; i++) lib_pair(lib);
    return (now_seconds() - t0) * 1e9 / FORKCHECK_PAIRS;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Sorts v in place. */
static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void bench_fork_check(void) {
    static loaded_lib_t libs[2]; /* [0] normal, [1] fork check compiled out */
    const char *nofork = getenv("CONNPOOL_BENCH_NOFORK_LIB");
    char normal[PATH_MAX];
    int i, k, round, rc;

    printf("\n3. Fork check cost: section 1's pair on one thread (pool_checkout(-1) + "
           "pool_checkin, no-I/O\n   connector, options \"%s\", all %d connections opened "
           "beforehand), in\n   the normal library and in one built with -DCONNPOOL_NO_FORK_CHECK "
           "(generation() is a\n   constant there; the check runs in checkout and in checkin). "
           "Both are loaded with\n   dlopen(RTLD_NOW | RTLD_LOCAL) and called through function "
           "pointers. After %d warm-up pairs\n   each, the two take turns (which goes first "
           "alternates) for %d rounds of %d pairs, so\n   noise hits both alike; ns per pair: "
           "the best run, the 10th percentile and the median of\n   each library's %d runs.\n",
           overhead_options, OVERHEAD_POOL_SIZE, FORKCHECK_WARMUP, FORKCHECK_ROUNDS,
           FORKCHECK_PAIRS, FORKCHECK_ROUNDS);
    if (!nofork || !*nofork) {
        printf("   skipped: CONNPOOL_BENCH_NOFORK_LIB is not set (make bench sets it)\n");
        return;
    }

    /* The normal library is build/libconnpool.so.1: three levels above
     * build/bench/nofork/libconnpool.so.1. */
    if (snprintf(normal, sizeof normal, "%s", nofork) >= (int)sizeof normal)
        die("CONNPOOL_BENCH_NOFORK_LIB too long");
    for (i = 0; i < 3; i++) {
        char *slash = strrchr(normal, '/');
        if (!slash) die("CONNPOOL_BENCH_NOFORK_LIB=%s: expected .../bench/nofork/<library>",
                        nofork);
        *slash = '\0';
    }
    size_t len = strlen(normal);
    if (snprintf(normal + len, sizeof normal - len, "/libconnpool.so.1") >=
        (int)(sizeof normal - len))
        die("library path too long");
    load_lib(&libs[0], "normal", normal);
    load_lib(&libs[1], "nofork", nofork);

    /* Is the normal copy the library this bench is linked with (sections 1, 2 and 4)? */
    void *sym;
    Dl_info linked, loaded;
    dlerror();
    sym = dlsym(libs[0].handle, "pool_version");
    int same = sym && dladdr((void *)pool_version, &linked) && dladdr(sym, &loaded) &&
               linked.dli_fbase == loaded.dli_fbase;
    printf("   normal = %s%s\n   nofork = %s\n", libs[0].path,
           same ? " (the copy linked into this bench)" : "", libs[1].path);

    for (k = 0; k < 2; k++) {
        rc = libs[k].create_custom(&libs[k].pool, overhead_options, dummy_open, dummy_close,
                                   NULL, NULL, NULL, NULL);
        if (rc != POOL_OK) die_lib(&libs[k], "pool_create_custom", rc);
        pool_lease_t *leases[OVERHEAD_POOL_SIZE];
        for (i = 0; i < OVERHEAD_POOL_SIZE; i++) {
            rc = libs[k].checkout(&leases[i], libs[k].pool, -1);
            if (rc != POOL_OK) die_lib(&libs[k], "pool_checkout (opening)", rc);
        }
        for (i = 0; i < OVERHEAD_POOL_SIZE; i++) {
            rc = libs[k].checkin(leases[i]);
            if (rc != POOL_OK) die_lib(&libs[k], "pool_checkin", rc);
        }
    }

    for (k = 0; k < 2; k++)
        for (i = 0; i < FORKCHECK_WARMUP; i++) lib_pair(&libs[k]);
    /* A, B, A, B, ...; every other round B goes first, so neither always follows the other. */
    for (round = 0; round < FORKCHECK_ROUNDS; round++) {
        int first = round % 2;
        libs[first].ns[round] = lib_run(&libs[first]);
        libs[!first].ns[round] = lib_run(&libs[!first]);
    }

    /* Paired, round by round: the two runs of a round are adjacent in time, so the difference
     * is immune to slow drift (other processes, clock speed) that can hand one library a lucky
     * best run. */
    static double paired[FORKCHECK_ROUNDS];
    int normal_slower = 0;
    for (round = 0; round < FORKCHECK_ROUNDS; round++) {
        paired[round] = libs[0].ns[round] - libs[1].ns[round];
        if (paired[round] > 0) normal_slower++;
    }
    double paired_median = median_of(paired, FORKCHECK_ROUNDS);

    double best[2], p10[2], med[2];
    for (k = 0; k < 2; k++) {
        static double v[FORKCHECK_ROUNDS];
        memcpy(v, libs[k].ns, sizeof v);
        med[k] = median_of(v, FORKCHECK_ROUNDS);
        best[k] = v[0];
        p10[k] = v[FORKCHECK_ROUNDS / 10];
    }
    printf("\n   %-34s  %9s  %9s  %9s\n", "library", "best ns", "10th pct", "median ns");
    printf("   %-34s  %9.1f  %9.1f  %9.1f\n", "normal (fork check)", best[0], p10[0], med[0]);
    printf("   %-34s  %9.1f  %9.1f  %9.1f\n", "nofork (-DCONNPOOL_NO_FORK_CHECK)", best[1],
           p10[1], med[1]);
    printf("   %-34s  %+9.1f  %+9.1f  %+9.1f\n", "difference (normal - nofork)",
           best[0] - best[1], p10[0] - p10[1], med[0] - med[1]);
    printf("   paired: median of the %d per-round differences %+.1f ns per pair; the normal "
           "library\n   was the slower one in %d of the %d rounds. Target: the check adds no more "
           "than a few ns\n   (<= %.0f ns, paired median): %s\n",
           FORKCHECK_ROUNDS, paired_median, normal_slower, FORKCHECK_ROUNDS, FORKCHECK_TARGET_NS,
           paired_median <= FORKCHECK_TARGET_NS ? "met" : "MISSED");

    for (k = 0; k < 2; k++) {
        rc = libs[k].dispose(libs[k].pool);
        if (rc != POOL_OK) die_lib(&libs[k], "pool_dispose", rc);
    }
    /* Unloaded again, so section 4's forks run only the linked copy's atfork handlers (the
     * normal handle only drops a reference: that copy stays, it is linked). */
    for (k = 1; k >= 0; k--)
        if (dlclose(libs[k].handle) != 0) die("dlclose(%s): %s", libs[k].path, dlerror());
}

/* ---------------------------------------------------------------- 4. fork */

enum child_kind {
    CHILD_CHECKOUT_FIRST, /* t1 = first pool_checkout, t2 = second (served from idle) */
    CHILD_STATS_FIRST     /* t1 = pool_stats_get as the first call, t2 = the checkout after it */
};

/* What a child sends its parent through the pipe: one write, under PIPE_BUF. */
typedef struct child_report {
    double t1_us, t2_us;
    double f1, f2; /* minor page faults during each (copy-on-write, first touch of a page) */
    int ok;
    char msg[240];
} child_report_t;

typedef struct fork_times {
    int n_fork, n_first, n_stats;
    double fork_us[2 * FORK_CHILDREN];
    double first_us[FORK_CHILDREN], second_us[FORK_CHILDREN];
    double stats_us[FORK_CHILDREN], connect_us[FORK_CHILDREN];
    double first_f[FORK_CHILDREN], second_f[FORK_CHILDREN]; /* their page faults */
    double stats_f[FORK_CHILDREN], connect_f[FORK_CHILDREN];
} fork_times_t;

static double minor_faults(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_minflt;
}

/* SELECT 1 without dying (a child reports, the parent's check prints). Returns 1 if it worked. */
static int select_one_ok(PGconn *conn, char *why, size_t why_len) {
    PGresult *res = PQexec(conn, "SELECT 1");
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
             strcmp(PQgetvalue(res, 0, 0), "1") == 0;
    if (!ok) snprintf(why, why_len, "SELECT 1 failed: %s", PQerrorMessage(conn));
    PQclear(res);
    return ok;
}

static int pid_in(int pid, const int *pids, int n) {
    int i;
    for (i = 0; i < n; i++)
        if (pids[i] == pid) return 1;
    return 0;
}

#define CHILD_FAIL(...)                                                 \
    do {                                                                \
        rep.ok = 0;                                                     \
        snprintf(rep.msg, sizeof rep.msg, __VA_ARGS__);                 \
        goto report;                                                    \
    } while (0)

/* The child's side: never returns. Writes no stdout; the timings go to the parent. */
static void child_main(pool_t *pool, enum child_kind kind, const int *parent_pids, int wfd)
    __attribute__((noreturn));
static void child_main(pool_t *pool, enum child_kind kind, const int *parent_pids, int wfd) {
    child_report_t rep;
    pool_lease_t *lease = NULL;
    pool_stats_t st;
    double t0;
    int rc, pid;

    memset(&rep, 0, sizeof rep);
    rep.ok = 1;
    if (kind == CHILD_STATS_FIRST) {
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        rep.f1 = minor_faults();
        t0 = now_seconds();
        rc = pool_stats_get(pool, &st);
        rep.t1_us = (now_seconds() - t0) * 1e6;
        rep.f1 = minor_faults() - rep.f1;
        if (rc != POOL_OK) CHILD_FAIL("pool_stats_get: %s: %s", pool_error_name(rc), pool_last_error());
        if (st.inherited_total != FORK_POOL_SIZE || st.idle != 0 || st.opened_total != 0)
            CHILD_FAIL("stats after adopting: inherited_total %lld idle %lld opened_total %lld "
                       "(expected %d, 0, 0)", (long long)st.inherited_total, (long long)st.idle,
                       (long long)st.opened_total, FORK_POOL_SIZE);
        rep.f2 = minor_faults();
        t0 = now_seconds();
        rc = pool_checkout(&lease, pool, -1);
        rep.t2_us = (now_seconds() - t0) * 1e6;
        rep.f2 = minor_faults() - rep.f2;
    } else {
        rep.f1 = minor_faults();
        t0 = now_seconds();
        rc = pool_checkout(&lease, pool, -1);
        rep.t1_us = (now_seconds() - t0) * 1e6;
        rep.f1 = minor_faults() - rep.f1;
    }
    if (rc != POOL_OK) CHILD_FAIL("pool_checkout: %s: %s", pool_error_name(rc), pool_last_error());

    /* Untimed checks: the connection is the child's own and works. */
    PGconn *conn = pool_lease_native(lease);
    if (!conn) CHILD_FAIL("pool_lease_native returned NULL");
    pid = PQbackendPID(conn);
    if (pid_in(pid, parent_pids, FORK_POOL_SIZE))
        CHILD_FAIL("the child's connection is the parent's session (backend %d)", pid);
    if (!select_one_ok(conn, rep.msg, sizeof rep.msg)) {
        rep.ok = 0;
        goto report;
    }
    rc = pool_checkin(lease);
    lease = NULL;
    if (rc != POOL_OK) CHILD_FAIL("pool_checkin: %s: %s", pool_error_name(rc), pool_last_error());

    if (kind == CHILD_CHECKOUT_FIRST) {
        rep.f2 = minor_faults();
        t0 = now_seconds();
        rc = pool_checkout(&lease, pool, -1);
        rep.t2_us = (now_seconds() - t0) * 1e6;
        rep.f2 = minor_faults() - rep.f2;
        if (rc != POOL_OK)
            CHILD_FAIL("second pool_checkout: %s: %s", pool_error_name(rc), pool_last_error());
        conn = pool_lease_native(lease);
        if (!conn || PQbackendPID(conn) != pid)
            CHILD_FAIL("the second checkout was not served from idle (backend %d, then %d)", pid,
                       conn ? PQbackendPID(conn) : -1);
        rc = pool_checkin(lease);
        lease = NULL;
        if (rc != POOL_OK)
            CHILD_FAIL("pool_checkin: %s: %s", pool_error_name(rc), pool_last_error());
    }

    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    rc = pool_stats_get(pool, &st);
    if (rc != POOL_OK) CHILD_FAIL("pool_stats_get: %s: %s", pool_error_name(rc), pool_last_error());
    if (st.inherited_total != FORK_POOL_SIZE || st.opened_total != 1 || st.idle != 1)
        CHILD_FAIL("child stats: inherited_total %lld opened_total %lld idle %lld (expected %d, "
                   "1, 1)", (long long)st.inherited_total, (long long)st.opened_total,
                   (long long)st.idle, FORK_POOL_SIZE);
    /* Closes the child's own connection politely; the inherited ones are long gone. */
    rc = pool_dispose(pool);
    if (rc != POOL_OK) CHILD_FAIL("pool_dispose: %s: %s", pool_error_name(rc), pool_last_error());

report:
    if (write(wfd, &rep, sizeof rep) != (ssize_t)sizeof rep) _exit(2);
    _exit(0);
}

/* Forks, timing fork() as the parent sees it. The child runs child_main (or, without a pool,
 * exits at once). Returns the child's report (zeros without a pool). */
static child_report_t fork_one(pool_t *pool, enum child_kind kind, const int *parent_pids,
                               double *fork_us) {
    child_report_t rep;
    int fds[2];
    memset(&rep, 0, sizeof rep);
    if (pipe(fds) != 0) die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    double t0 = now_seconds();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (!pool) _exit(0);
        child_main(pool, kind, parent_pids, fds[1]);
    }
    double t1 = now_seconds();
    if (pid < 0) die("fork: %s", strerror(errno));
    *fork_us = (t1 - t0) * 1e6;
    close(fds[1]);

    if (pool) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ready;
        while ((ready = poll(&pfd, 1, FORK_CHILD_TIMEOUT_MS)) < 0 && errno == EINTR) {
        }
        if (ready <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            die("child %d sent no report within %d s", (int)pid, FORK_CHILD_TIMEOUT_MS / 1000);
        }
        ssize_t got;
        while ((got = read(fds[0], &rep, sizeof rep)) < 0 && errno == EINTR) {
        }
        if (got != (ssize_t)sizeof rep) {
            memset(&rep, 0, sizeof rep);
            snprintf(rep.msg, sizeof rep.msg, "child's report is %zd bytes, not %zu", got,
                     sizeof rep);
        }
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (!pool) die("child %d did not exit with status 0 (status 0x%x)", (int)pid, status);
        if (rep.ok) {
            rep.ok = 0;
            snprintf(rep.msg, sizeof rep.msg, "child %d exited with status 0x%x", (int)pid, status);
        }
    }
    return rep;
}

/* Sorts v (and faults) in place; prints one row: n, median, max, median faults. */
static void print_times(const char *what, double *v, double *faults, int n) {
    char f[32] = "";
    if (n == 0) {
        printf("   %-52s  %3d  %9s  %9s\n", what, 0, "-", "-");
        return;
    }
    if (faults) snprintf(f, sizeof f, "  %9.0f", median_of(faults, n));
    double med = median_of(v, n);
    printf("   %-52s  %3d  %9.1f  %9.1f%s\n", what, n, med, v[n - 1], f);
}

/* Checks all FORK_POOL_SIZE connections out at once and records their backends, or compares
 * them with the recorded ones (check = 1). Returns the number of failures; why gets the first. */
static int parent_sessions(pool_t *pool, int *pids, int check, char *why, size_t why_len) {
    pool_lease_t *leases[FORK_POOL_SIZE];
    int seen[FORK_POOL_SIZE];
    int i, rc, failures = 0;
    char msg[256];
    for (i = 0; i < FORK_POOL_SIZE; i++) {
        rc = pool_checkout(&leases[i], pool, 0); /* all 10 are idle: no waiting, no connect */
        if (rc != POOL_OK) die_pool("pool_checkout (parent's sessions)", rc);
        PGconn *conn = pool_lease_native(leases[i]);
        if (!conn) die("pool_lease_native returned NULL in the parent");
        seen[i] = PQbackendPID(conn);
        if (!check) {
            pids[i] = seen[i];
            continue;
        }
        msg[0] = '\0';
        if (!select_one_ok(conn, msg, sizeof msg)) {
        } else if (!pid_in(seen[i], pids, FORK_POOL_SIZE)) {
            snprintf(msg, sizeof msg, "backend %d is not one of the parent's before the forks",
                     seen[i]);
        } else if (pid_in(seen[i], seen, i)) {
            snprintf(msg, sizeof msg, "backend %d served two leases", seen[i]);
        }
        if (msg[0]) {
            if (failures++ == 0) snprintf(why, why_len, "%s", msg);
        }
    }
    for (i = 0; i < FORK_POOL_SIZE; i++) {
        rc = pool_checkin(leases[i]);
        if (rc != POOL_OK) die_pool("pool_checkin", rc);
    }
    return failures;
}

/* Returns 1 if the parent's sessions came through unharmed. */
static int bench_fork_mode(const char *sslmode, double *fork_nopool_us, int n_nopool) {
    static fork_times_t ft;
    char conninfo[128];
    int parent_pids[FORK_POOL_SIZE];
    pool_stats_t before, after;
    pool_t *pool;
    int i, rc, child_failures = 0;
    char first_failure[256] = "";

    memset(&ft, 0, sizeof ft);
    snprintf(conninfo, sizeof conninfo, "application_name=bench_fork sslmode=%s", sslmode);
    rc = pool_create(&pool, conninfo, fork_options);
    if (rc != POOL_OK) die_pool("pool_create", rc);
    open_connections(pool, FORK_POOL_SIZE);
    parent_sessions(pool, parent_pids, 0, NULL, 0);
    get_stats(pool, &before);

    for (i = 0; i < 2 * FORK_CHILDREN; i++) {
        enum child_kind kind = i % 2 ? CHILD_STATS_FIRST : CHILD_CHECKOUT_FIRST;
        child_report_t rep = fork_one(pool, kind, parent_pids, &ft.fork_us[ft.n_fork++]);
        if (!rep.ok) {
            if (child_failures++ == 0) snprintf(first_failure, sizeof first_failure, "%s", rep.msg);
            continue;
        }
        if (kind == CHILD_CHECKOUT_FIRST) {
            ft.first_f[ft.n_first] = rep.f1;
            ft.second_f[ft.n_first] = rep.f2;
            ft.first_us[ft.n_first] = rep.t1_us;
            ft.second_us[ft.n_first++] = rep.t2_us;
        } else {
            ft.stats_f[ft.n_stats] = rep.f1;
            ft.connect_f[ft.n_stats] = rep.f2;
            ft.stats_us[ft.n_stats] = rep.t1_us;
            ft.connect_us[ft.n_stats++] = rep.t2_us;
        }
    }

    char why[256] = "";
    int failures = parent_sessions(pool, parent_pids, 1, why, sizeof why);
    get_stats(pool, &after);
    int64_t opened = after.opened_total - before.opened_total;
    int64_t closed = after.closed_total - before.closed_total;

    printf("\n   sslmode=%s (conninfo \"%s\")\n", sslmode, conninfo);
    printf("   %-52s  %3s  %9s  %9s  %9s\n", "microseconds", "n", "median", "max", "faults");
    if (n_nopool > 0)
        print_times("fork() in the parent, no pool alive", fork_nopool_us, NULL, n_nopool);
    print_times("fork() in the parent, this pool alive and idle", ft.fork_us, NULL, ft.n_fork);
    print_times("child: 1st pool_checkout (drop 10, connect 1)", ft.first_us, ft.first_f,
                ft.n_first);
    print_times("child: 2nd pool_checkout (served from idle)", ft.second_us, ft.second_f,
                ft.n_first);
    print_times("other children: pool_stats_get first (drop 10)", ft.stats_us, ft.stats_f,
                ft.n_stats);
    print_times("other children: pool_checkout after it (connect 1)", ft.connect_us,
                ft.connect_f, ft.n_stats);
    if (child_failures)
        printf("   CHILDREN FAILED: %d of %d; first: %s\n", child_failures, 2 * FORK_CHILDREN,
               first_failure);
    else
        printf("   every child: inherited_total %d; its own connection (a backend not the "
               "parent's)\n   answered SELECT 1\n", FORK_POOL_SIZE);
    int ok = failures == 0 && opened == 0 && closed == 0 && child_failures == 0;
    if (failures == 0 && opened == 0 && closed == 0)
        printf("   parent after %d forks: OK: all %d sessions answer SELECT 1, on the same "
               "backend pids\n   as before the forks; the pool opened and closed none\n",
               2 * FORK_CHILDREN, FORK_POOL_SIZE);
    else
        printf("   parent after %d forks: FAILED: %d of %d sessions broken%s%s;\n   the pool "
               "opened %lld and closed %lld connections meanwhile\n",
               2 * FORK_CHILDREN, failures, FORK_POOL_SIZE, failures ? ", first: " : "", why,
               (long long)opened, (long long)closed);
    dispose_or_die(pool);
    return ok;
}

/* Returns 1 if every check passed. */
static int bench_fork(void) {
    double nopool_us[FORK_CHILDREN];
    int i, ok = 1;

    printf("\n4. Fork: a libpq pool (options \"%s\") with its %d connections opened "
           "and\n   checked back in (idle), then %d forks per sslmode, one child at a time. Half "
           "the children\n   time their first pool_checkout (it drops the %d inherited "
           "connections, PQfinish on sockets\n   pointed at /dev/null, and connects one of its "
           "own: TCP, TLS if required, password\n   authentication) and then a second one; the "
           "other half call pool_stats_get first (it drops\n   the inherited connections without "
           "connecting) and then pool_checkout (the connect alone).\n   Children time themselves "
           "and report through a pipe; faults = the median number of minor\n   page faults "
           "during the call (copy-on-write and first touch of pages after fork, included\n   in "
           "the time). fork() is timed in the parent: its prepare handler takes the connect "
           "gate\n   and every pool's lock.\n",
           fork_options, FORK_POOL_SIZE, 2 * FORK_CHILDREN, FORK_POOL_SIZE);

    /* Baseline: fork() with the atfork handlers installed but no pool alive. */
    for (i = 0; i < FORK_CHILDREN; i++) fork_one(NULL, CHILD_CHECKOUT_FIRST, NULL, &nopool_us[i]);

    for (i = 0; i < N_FORK_SSLMODES; i++)
        if (!bench_fork_mode(fork_sslmodes[i], nopool_us, i == 0 ? FORK_CHILDREN : 0)) ok = 0;
    return ok;
}

/* ---------------------------------------------------------------- main */

int main(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int usable = -1;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) usable = CPU_COUNT(&set);
#endif
    double t0 = now_seconds();

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("connpool %s bench on %ld CPU cores (%d usable here; the PostgreSQL server shares "
           "them). Each row is one thread count: section 1 = ns per checkout+checkin pair, "
           "section 2 = SELECT 1 operations/s (pool vs raw libpq vs connect-per-query); "
           "section 3 = what the fork check adds to a pair; section 4 = a forked child's first "
           "checkout, and fork() itself.\n\n",
           pool_version_string(), online, usable);

    bench_overhead();
    bench_sql();
    bench_effects();
    bench_fork_check();
    int fork_ok = bench_fork();

    printf("\ntotal run time %.1f s\n", now_seconds() - t0);
    if (!fork_ok) {
        fprintf(stderr, "bench: the fork checks of section 4 failed (see above)\n");
        return 1;
    }
    return 0;
}
