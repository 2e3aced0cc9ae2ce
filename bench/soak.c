/*
 * soak: 64 threads use a pool against the test server through the fault-injecting proxy
 * (tests/faultproxy.h) for SOAK_SECONDS (default 600), while a fault thread keeps changing
 * what the proxy does: pass, delay, refuse new connections, reset every connection, black-hole
 * everything (half-open connections). Then it checks that nothing leaked.
 *
 * The run is cut into rounds (a new pool each, SOAK_ROUND_SECONDS, default 60, fewer if the
 * run is short). After each round the pool is disposed and the process measured: open file
 * descriptors, threads, heap bytes in use (mallinfo2) and RSS. The first half of the rounds
 * warms up what libraries allocate once and keep (OpenSSL, libpq's messages: measured to grow
 * by 28, 18, 3, 0.5 and 0.2 KiB after rounds 1 to 5 of 10 s, then stop); the last round must
 * come back to where the middle one ended:
 *   - file descriptors and threads: exactly;
 *   - heap bytes in use: within HEAP_SLACK (one-time caches that a rarer fault first reaches);
 *   - RSS: within RSS_SLACK (the allocator keeps freed pages; RSS is reported, the heap decides);
 *   - the server: no session of ours left; the proxy: no connection left open.
 * Every operation is checked (a query's answer must be the right one), and every error is
 * counted by where it happened and its code; a checkin that fails, a wrong answer, or a pool
 * whose counts do not add up is a failure (exit status 1). Errors the faults cause are the
 * point of the run: they are reported, not failed on.
 *
 * Run it with `make soak` (SOAK_SECONDS=60 make soak for a short run): tests/with-postgres.sh
 * starts the server and sets the PG* variables. This is a benchmark, not a test: it sleeps to
 * pace the faults.
 */
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "connpool.h"
#include "faultproxy.h"

#define THREADS 64
#define HEAP_SLACK (16 * 1024)
#define RSS_SLACK (16 * 1024 * 1024)
#define POOL_OPTIONS                                                                        \
    "pool_size=10 max_overflow=10 pool_timeout=2 pool_pre_ping=1 pre_ping_interval=0.2 " \
    "ping_timeout=0.5 query_timeout=2 fail_fast_backoff_max=1"

/* ---------------------------------------------------------------- counting */

/* Errors by where they happened and their code. */
enum stage { AT_CHECKOUT, AT_CHECKOUT_FAST, AT_QUERY, STAGES };
static const char *const stage_names[STAGES] = {"checkout", "checkout (failing fast)", "query"};
#define CODES 32 /* -code; POOL_* codes are small */
static atomic_long errors[STAGES][CODES];
static atomic_long operations, queries, invalidations, transactions_left_open;
static atomic_long failures; /* wrong answers, failed checkins, bad counts */
static atomic_int stop;

static void count_error(enum stage at, int rc) {
    int i = -rc > 0 && -rc < CODES ? -rc : 0;
    atomic_fetch_add(&errors[at][i], 1);
}

static void failure(const char *what, const char *detail) {
    atomic_fetch_add(&failures, 1);
    fprintf(stderr, "soak: FAILURE: %s: %s\n", what, detail);
}

/* ---------------------------------------------------------------- the workers */

struct worker {
    pool_t *pool;
    unsigned seed;
};

/* One query; checks its answer. 0 if the query failed (counted), 1 if it ran. */
static int query_checked(pool_lease_t *lease, const char *sql, const char *param,
                         const char *want) {
    pool_result_t *res = NULL;
    const char *params[1] = {param};
    int rc = pool_query(&res, lease, sql, param ? 1 : 0, params);
    atomic_fetch_add(&queries, 1);
    if (rc != POOL_OK) {
        count_error(AT_QUERY, rc);
        return 0;
    }
    if (want) {
        const char *got = pool_result_rows(res) == 1 ? pool_result_value(res, 0, 0) : NULL;
        if (!got || strcmp(got, want) != 0) failure("wrong answer", sql);
    }
    pool_result_free(res);
    return 1;
}

static void *work(void *arg) {
    struct worker *w = arg;
    while (!atomic_load(&stop)) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, w->pool, 1000);
        if (rc != POOL_OK) {
            int fast = rc == POOL_ECONNECT && strstr(pool_last_error(), "failing fast");
            count_error(fast ? AT_CHECKOUT_FAST : AT_CHECKOUT, rc);
            continue;
        }
        int dice = (int)(rand_r(&w->seed) % 100);
        char param[16], want[16];
        int n = (int)(rand_r(&w->seed) % 100000);
        snprintf(param, sizeof param, "%d", n);
        snprintf(want, sizeof want, "%d", n + 1);
        if (dice < 70) {
            query_checked(lease, "SELECT $1::int + 1", param, want);
        } else if (dice < 85) {  /* left open: the checkin's reset rolls it back */
            if (query_checked(lease, "BEGIN", NULL, NULL) &&
                query_checked(lease, "SELECT $1::int + 1", param, want))
                atomic_fetch_add(&transactions_left_open, 1);
        } else if (dice < 95) {  /* a bigger answer: 64 KiB crosses many reads */
            query_checked(lease, "SELECT length(repeat('x', 65536))", NULL, "65536");
        } else {
            pool_invalidate(lease);
            atomic_fetch_add(&invalidations, 1);
        }
        rc = pool_checkin(lease);
        if (rc != POOL_OK) failure("checkin", pool_last_error());
        atomic_fetch_add(&operations, 1);
    }
    return NULL;
}

/* ---------------------------------------------------------------- the faults */

enum fault { F_PASS, F_DELAY, F_REFUSE, F_RESET, F_BLACKHOLE, FAULTS };
static const char *const fault_names[FAULTS] = {"pass", "delay", "refuse", "reset all",
                                                "black hole"};
static long faults_injected[FAULTS];

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

struct faulter {
    faultproxy_t *proxy;
    unsigned seed;
};

/* Every 0.2-2 s, a new state: mostly healthy, sometimes one of the faults. */
static void *inject_faults(void *arg) {
    struct faulter *f = arg;
    while (!atomic_load(&stop)) {
        int dice = (int)(rand_r(&f->seed) % 100);
        enum fault fault = dice < 50 ? F_PASS : dice < 65 ? F_DELAY : dice < 75 ? F_REFUSE
                                              : dice < 85 ? F_RESET : F_BLACKHOLE;
        faults_injected[fault]++;
        switch (fault) {
        case F_PASS: fp_set_mode(f->proxy, FP_PASS, 0); break;
        case F_DELAY:  /* slow logins, and a little latency on every chunk */
            fp_set_delays(f->proxy, 20 + (int)(rand_r(&f->seed) % 300), (int)(rand_r(&f->seed) % 20));
            break;
        case F_REFUSE: fp_set_mode(f->proxy, FP_REFUSE, 0); break;
        case F_RESET: fp_reset_all(f->proxy); break;
        case F_BLACKHOLE: fp_set_mode(f->proxy, FP_BLACKHOLE, 0); break;
        default: break;
        }
        sleep_ms(200 + (long)(rand_r(&f->seed) % 1800));
    }
    fp_set_mode(f->proxy, FP_PASS, 0);
    return NULL;
}

/* ---------------------------------------------------------------- the process */

struct footprint {
    long fds, threads;
    size_t heap, rss;
};

static long entries(const char *dir) {
    DIR *d = opendir(dir);
    long n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static struct footprint measure(void) {
    struct footprint f;
    malloc_trim(0);
    f.fds = entries("/proc/self/fd") - 1; /* minus opendir's own */
    f.threads = entries("/proc/self/task");
    f.heap = mallinfo2().uordblks;
    long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (statm) fclose(statm);
    f.rss = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    return f;
}

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static long long sessions(PGconn *monitor, const char *app) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
    PGresult *r = PQexec(monitor, sql);
    long long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

/* Polls until what(arg) is 0, up to 10 s; the last value. */
static long long await_zero(long long (*what)(void *), void *arg) {
    long long v = what(arg);
    for (int i = 0; v != 0 && i < 1000; i++) {
        sleep_ms(10);
        v = what(arg);
    }
    return v;
}

struct server_watch {
    PGconn *monitor;
    const char *app;
};
static long long our_sessions(void *arg) {
    struct server_watch *s = arg;
    return sessions(s->monitor, s->app);
}
static long long proxy_connections(void *arg) { return fp_connections(arg); }

/* One round: a new proxy and a new pool, THREADS workers and the fault thread for `seconds`,
 * then checks. The proxy is new too: its tables only grow, to the round's peak, and would
 * show as heap growth across rounds that is not the pool's. */
static void round_of(int upstream_port, PGconn *monitor, int round, double seconds) {
    faultproxy_t *proxy = NULL;
    if (fp_start(&proxy, "127.0.0.1", upstream_port) != 0) {
        perror("soak: fp_start");
        exit(1);
    }
    char app[64], conninfo[256];
    snprintf(app, sizeof app, "connpool_soak_%d", (int)getpid());
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d application_name=%s",
             fp_port(proxy), app);
    pool_t *pool = NULL;
    if (pool_create(&pool, conninfo, POOL_OPTIONS) != POOL_OK) {
        fprintf(stderr, "soak: pool_create: %s\n", pool_last_error());
        exit(1);
    }
    atomic_store(&stop, 0);
    struct worker workers[THREADS];
    pthread_t threads[THREADS], faults;
    struct faulter faulter = {proxy, 7919u * (unsigned)round};
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){pool, (unsigned)(round * THREADS + i + 1)};
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    pthread_create(&faults, NULL, inject_faults, &faulter);
    sleep_ms((long)(seconds * 1000));
    atomic_store(&stop, 1);
    pthread_join(faults, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (pool_stats_get(pool, &st) != POOL_OK) failure("pool_stats", pool_last_error());
    if (st.checked_out != 0) failure("counts", "leases still out after every thread checked in");
    if (st.opened_total - st.closed_total != st.idle)
        failure("counts", "opened - closed is not the number of idle connections");
    if (pool_dispose(pool) != POOL_OK) failure("pool_dispose", pool_last_error());
    struct server_watch watch = {monitor, app};
    long long left = await_zero(our_sessions, &watch);
    if (left != 0) failure("server", "sessions of the pool left on the server after dispose");
    long long open = await_zero(proxy_connections, proxy);
    if (open != 0) failure("proxy", "connections still open through the proxy after dispose");
    fp_stop(proxy);
    printf("round %d: %.0f s, pool opened %lld closed %lld (dead %lld, invalidated %lld), "
           "server sessions left %lld, proxy connections left %lld\n",
           round, seconds, (long long)st.opened_total, (long long)st.closed_total,
           (long long)st.dead_total, (long long)st.invalidated_total, left, open);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    double total = getenv("SOAK_SECONDS") ? atof(getenv("SOAK_SECONDS")) : 600;
    double per_round = getenv("SOAK_ROUND_SECONDS") ? atof(getenv("SOAK_ROUND_SECONDS")) : 60;
    if (total < 3) total = 3;
    int rounds = (int)(total / per_round + 0.5);
    if (rounds < 3) rounds = 3; /* a warm-up, then the middle and the last to compare */
    per_round = total / rounds;

    const char *port = getenv("PGPORT");
    PGconn *monitor = PQconnectdb("application_name=connpool_soak_monitor");
    if (PQstatus(monitor) != CONNECTION_OK) {
        fprintf(stderr, "soak: monitor: %s", PQerrorMessage(monitor));
        return 1;
    }
    printf("soak: %d threads, %d rounds of %.0f s, pool \"%s\"\n", THREADS, rounds, per_round,
           POOL_OPTIONS);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct footprint base = {0}, last = {0};
    for (int r = 1; r <= rounds; r++) {
        round_of(port ? atoi(port) : 5432, monitor, r, per_round);
        last = measure();
        if (r == (rounds + 1) / 2) base = last;
        printf("  after round %d: fds %ld, threads %ld, heap in use %zu B, RSS %zu KiB\n", r,
               last.fds, last.threads, last.heap, last.rss / 1024);
    }
    double took = seconds_since(&t0);

    printf("\noperations %ld (%.0f/s), queries %ld, invalidations %ld, "
           "transactions left open at checkin %ld\n",
           atomic_load(&operations), (double)atomic_load(&operations) / took,
           atomic_load(&queries), atomic_load(&invalidations),
           atomic_load(&transactions_left_open));
    printf("faults injected:");
    for (int f = 0; f < FAULTS; f++) printf(" %s %ld%s", fault_names[f], faults_injected[f],
                                            f + 1 < FAULTS ? "," : "\n");
    printf("errors by kind (caused by the faults; expected):\n");
    for (int s = 0; s < STAGES; s++)
        for (int c = 0; c < CODES; c++)
            if (atomic_load(&errors[s][c]))
                printf("  %-24s %-22s %ld\n", stage_names[s], pool_error_name(-c),
                       atomic_load(&errors[s][c]));

    long heap_delta = (long)last.heap - (long)base.heap;
    long rss_delta = (long)last.rss - (long)base.rss;
    printf("leaks, last round vs round %d: fds %+ld, threads %+ld, heap %+ld B (slack %d), "
           "RSS %+ld KiB (slack %d KiB)\n",
           (rounds + 1) / 2, last.fds - base.fds, last.threads - base.threads, heap_delta, HEAP_SLACK,
           rss_delta / 1024, RSS_SLACK / 1024);
    if (last.fds != base.fds) failure("leak", "file descriptors");
    if (last.threads != base.threads) failure("leak", "threads");
#ifndef __SANITIZE_ADDRESS__
    if (heap_delta > HEAP_SLACK) failure("leak", "heap bytes in use grew");
    if (rss_delta > RSS_SLACK) failure("leak", "RSS grew");
#else
    /* ASan's allocator keeps freed memory in quarantine and mallinfo2 cannot see it: here
     * LeakSanitizer decides, at exit (make soak SAN=address). */
    (void)heap_delta, (void)rss_delta;
#endif
    PQfinish(monitor);
    long bad = atomic_load(&failures);
    printf("%s (%ld failures)\n", bad ? "soak: FAILED" : "soak: passed", bad);
    return bad ? 1 : 0;
}
