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
 * Every measurement is time-boxed: the threads start together at a barrier, run until the main
 * thread raises a stop flag, and finish the operation they are in; the wall time runs from the
 * barrier to the last join, and every operation completed in it counts.
 *
 * Run it with `make bench`: tests/with-postgres.sh starts a throwaway server and sets the PG*
 * environment variables libpq reads (the conninfo strings below add only application_name,
 * and connect_timeout for connect-per-query).
 * Any failure prints pool_last_error() (or libpq's message) and exits with status 1.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
           "section 2 = SELECT 1 operations/s (pool vs raw libpq vs connect-per-query).\n\n",
           pool_version_string(), online, usable);

    bench_overhead();
    bench_sql();

    printf("\ntotal run time %.1f s\n", now_seconds() - t0);
    return 0;
}
