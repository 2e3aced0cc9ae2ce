/*
 * demo: the problems a connection pool exists for, acted out in three short scenes, with a
 * report you can read at a glance.
 *
 *   1. A burst: 300 threads share a pool of 5 (+10 overflow). All finish, nobody times out,
 *      and a handful of connections does the work of 1500 one-off ones.
 *   2. Exhaustion: a pool of 1 whose connection is held. The next checkout gives up after
 *      pool_timeout with a clear message instead of hanging or opening more connections.
 *   3. fork(): the child uses the same pool with a fresh connection of its own while the
 *      parent keeps querying on its connections. Neither disturbs the other.
 *
 *   demo              a fresh SQLite file in a new temporary directory, through the SQLite
 *                     ODBC driver registered as "SQLite3" (examples/run-demo.sh registers it
 *                     in a private ODBCSYSINI; `make demo` runs that script)
 *   demo CONNINFO     "odbc:..." for any ODBC data source; anything else ("postgresql://...",
 *                     "host=... dbname=...") is PostgreSQL through libpq
 *
 * It creates a table named connpool_demo and drops it at the end. Exit status 0 when every
 * scene behaved as described, 1 otherwise (the errors go to stderr).
 *
 * Build: cc -std=c99 demo.c $(pkg-config --cflags --libs connpool libpq odbc) -pthread
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sql.h>
#include <sqlext.h>

#include <connpool.h>
#include <libpq-fe.h>

#define LABEL "   %-20s"   /* every figure line: indented label, then the value */

static int use_odbc;          /* the connection string starts with "odbc:" */
static const char *conninfo;  /* the connection string given to every pool */

/* ------------------------------------------------------------------ small helpers */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reports a failed connpool call: the code's name and this thread's detail message. */
static int pool_failed(const char *call, int rc) {
    fprintf(stderr, "demo: %s: %s: %s\n", call, pool_error_name(rc), pool_last_error());
    return 1;
}

static int create_pool(pool_t **pool, const char *options) {
    int rc = pool_create(pool, conninfo, options);
    return rc == POOL_OK ? 0 : pool_failed("pool_create", rc);
}

static int get_stats(pool_t *pool, pool_stats_t *st) {
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    int rc = pool_stats_get(pool, st);
    return rc == POOL_OK ? 0 : pool_failed("pool_stats_get", rc);
}

/* ------------------------------------------------------------------ run_query */

/* Every diagnostic record of an ODBC handle, on one line. */
static void odbc_error(const char *sql, SQLSMALLINT type, SQLHANDLE handle) {
    fprintf(stderr, "demo: query \"%s\" failed:", sql);
    for (SQLSMALLINT i = 1;; i++) {
        SQLCHAR state[6] = "", text[512] = "";
        SQLINTEGER native = 0;
        SQLSMALLINT len = 0;
        if (!SQL_SUCCEEDED(SQLGetDiagRec(type, handle, i, state, &native, text, sizeof text, &len))) {
            if (i == 1) fprintf(stderr, " no diagnostic record");
            break;
        }
        fprintf(stderr, " [%s] %s", (char *)state, (char *)text);
    }
    fprintf(stderr, "\n");
}

static int odbc_query(SQLHDBC dbc, const char *sql, char *out, size_t outlen) {
    SQLHSTMT st = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, dbc, &st))) {
        odbc_error(sql, SQL_HANDLE_DBC, dbc);
        return -1;
    }
    int status = 0;
    SQLRETURN rc = SQLExecDirect(st, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) { /* SQL_NO_DATA: a DELETE of no row */
        odbc_error(sql, SQL_HANDLE_STMT, st);
        status = -1;
    } else if (out) {
        SQLSMALLINT columns = 0;
        SQLLEN indicator = 0;
        if (SQL_SUCCEEDED(SQLNumResultCols(st, &columns)) && columns > 0) {
            rc = SQLFetch(st);
            if (SQL_SUCCEEDED(rc)) {
                rc = SQLGetData(st, 1, SQL_C_CHAR, out, (SQLLEN)outlen, &indicator);
                if (!SQL_SUCCEEDED(rc)) {
                    odbc_error(sql, SQL_HANDLE_STMT, st);
                    status = -1;
                } else if (indicator == SQL_NULL_DATA) {
                    out[0] = '\0';
                }
            } else if (rc != SQL_NO_DATA) {
                odbc_error(sql, SQL_HANDLE_STMT, st);
                status = -1;
            }
        }
    }
    SQLFreeHandle(SQL_HANDLE_STMT, st);
    return status;
}

static int pq_query(PGconn *conn, const char *sql, char *out, size_t outlen) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(res);
    int status = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        const char *msg = PQerrorMessage(conn);
        fprintf(stderr, "demo: query \"%s\" failed: %.*s\n", sql, (int)strcspn(msg, "\n"), msg);
        status = -1;
    } else if (out && s == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0) {
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return status;
}

/* Runs one SQL statement on a lease's connection: SQLExecDirect on the SQLHDBC for ODBC,
 * PQexec on the PGconn * for libpq. When out is not NULL it receives the first column of the
 * first row as text ("" when there is none). Returns 0, or -1 after printing the error. */
static int run_query(pool_lease_t *lease, const char *sql, char *out, size_t outlen) {
    void *native = pool_lease_native(lease);
    if (out && outlen) out[0] = '\0';
    if (!native) {
        fprintf(stderr, "demo: query \"%s\": the lease has no connection\n", sql);
        return -1;
    }
    return use_odbc ? odbc_query((SQLHDBC)native, sql, out, outlen)
                    : pq_query((PGconn *)native, sql, out, outlen);
}

/* ------------------------------------------------------------------ setup */

/* Prints what the database is and creates the demo's table, empty. */
static int setup(const char *sqlite_file) {
    pool_t *pool;
    pool_lease_t *lease;
    char dbms[128] = "", version[64] = "", driver[128] = "";
    int rc, status = 0;

    if (create_pool(&pool, "pool_size=1 max_overflow=0 pool_timeout=10")) return 1;
    if ((rc = pool_checkout(&lease, pool, -1)) != POOL_OK) {
        pool_failed("pool_checkout", rc);
        pool_dispose(pool);
        return 1;
    }
    void *native = pool_lease_native(lease);
    if (use_odbc) {
        SQLGetInfo((SQLHDBC)native, SQL_DBMS_NAME, dbms, sizeof dbms, NULL);
        SQLGetInfo((SQLHDBC)native, SQL_DBMS_VER, version, sizeof version, NULL);
        SQLGetInfo((SQLHDBC)native, SQL_DRIVER_NAME, driver, sizeof driver, NULL);
    } else {
        const char *v = PQparameterStatus((PGconn *)native, "server_version");
        snprintf(dbms, sizeof dbms, "PostgreSQL");
        snprintf(version, sizeof version, "%s", v ? v : "?");
    }
    printf("connpool %s demo\n", pool_version_string());
    if (sqlite_file)
        printf(LABEL "%s %s, file %s\n", "database", dbms, version, sqlite_file);
    else if (use_odbc)
        printf(LABEL "%s %s (the odbc: connection string given)\n", "database", dbms, version);
    else
        printf(LABEL "%s %s, database \"%s\" on %s\n", "database", dbms, version,
               PQdb((PGconn *)native), PQhost((PGconn *)native));
    if (use_odbc)
        printf(LABEL "ODBC (unixODBC, driver %s)\n", "through", driver);
    else
        printf(LABEL "libpq\n", "through");

    /* Portable SQL: the same statements run on SQLite, PostgreSQL and most ODBC sources. */
    if (run_query(lease, "CREATE TABLE IF NOT EXISTS connpool_demo (who VARCHAR(16), n INTEGER)",
                  NULL, 0) ||
        run_query(lease, "DELETE FROM connpool_demo", NULL, 0) ||
        run_query(lease, "INSERT INTO connpool_demo (who, n) VALUES ('setup', 0)", NULL, 0))
        status = 1;
    if ((rc = pool_checkin(lease)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    if ((rc = pool_dispose(pool)) != POOL_OK) status = pool_failed("pool_dispose", rc);
    return status;
}

static int teardown(void) {
    pool_t *pool;
    pool_lease_t *lease;
    int rc, status = 0;
    if (create_pool(&pool, "pool_size=1 max_overflow=0 pool_timeout=10")) return 1;
    if ((rc = pool_checkout(&lease, pool, -1)) != POOL_OK) {
        status = pool_failed("pool_checkout", rc);
    } else {
        if (run_query(lease, "DROP TABLE connpool_demo", NULL, 0)) status = 1;
        if ((rc = pool_checkin(lease)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    }
    if ((rc = pool_dispose(pool)) != POOL_OK) status = pool_failed("pool_dispose", rc);
    return status;
}

/* ------------------------------------------------------------------ 1. the burst */

#define THREADS 300
#define ROUNDS 5
#define WORK_MS 1 /* the "work" each thread does while it holds a connection */

struct burst {
    pool_t *pool;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t go;  /* every thread starts at once, when started is set: a real burst */
    int started;
    double waits[THREADS * ROUNDS];
    int done, timeouts, errors;
    int64_t peak_open;    /* most connections open at once, seen in the stats after checkouts */
    int64_t peak_waiting; /* most threads waiting at once, in the same snapshots */
    char first_error[512];
};

static void burst_error(struct burst *b, int rc, const char *call) {
    pthread_mutex_lock(&b->mu);
    if (rc == POOL_ETIMEDOUT) b->timeouts++;
    else b->errors++;
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s: %s: %s", call,
                 rc ? pool_error_name(rc) : "query failed", rc ? pool_last_error() : "see above");
    pthread_mutex_unlock(&b->mu);
}

static void *burst_thread(void *arg) {
    struct burst *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->started) pthread_cond_wait(&b->go, &b->mu);
    pthread_mutex_unlock(&b->mu);
    for (int r = 0; r < ROUNDS; r++) {
        pool_lease_t *lease;
        double t0 = now_s();
        int rc = pool_checkout(&lease, b->pool, -1);
        double waited = now_s() - t0;
        if (rc != POOL_OK) {
            burst_error(b, rc, "pool_checkout");
            continue;
        }
        pool_stats_t st;
        int64_t open = 0, waiting = 0;
        if (get_stats(b->pool, &st) == 0) {
            open = st.checked_out + st.idle;
            waiting = st.waiting;
        }
        char count[32];
        int query_failed = run_query(lease, "SELECT count(*) FROM connpool_demo", count, sizeof count);
        sleep_ms(WORK_MS);
        if (query_failed) burst_error(b, 0, "run_query");
        if ((rc = pool_checkin(lease)) != POOL_OK) burst_error(b, rc, "pool_checkin");
        pthread_mutex_lock(&b->mu);
        b->waits[b->done++] = waited;
        if (open > b->peak_open) b->peak_open = open;
        if (waiting > b->peak_waiting) b->peak_waiting = waiting;
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static double percentile(const double *sorted, int n, int p) {
    int rank = (n * p + 99) / 100; /* ceil(n * p / 100) */
    return sorted[rank > 0 ? rank - 1 : 0];
}

static int scene_burst(void) {
    static struct burst b; /* 12 KB of wait times: not on the stack */
    pthread_t threads[THREADS];
    pthread_attr_t attr;
    int created = 0, status = 0, rc;

    memset(&b, 0, sizeof b);
    if (create_pool(&b.pool, "pool_size=5 max_overflow=10 pool_timeout=10")) return 1;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.go, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 2u << 20); /* 2 MiB each is plenty */

    for (; created < THREADS; created++) {
        if ((rc = pthread_create(&threads[created], &attr, burst_thread, &b)) != 0) {
            fprintf(stderr, "demo: pthread_create: %s\n", strerror(rc));
            status = 1;
            break;
        }
    }
    double t0 = now_s();
    pthread_mutex_lock(&b.mu);
    b.started = 1;
    pthread_cond_broadcast(&b.go);
    pthread_mutex_unlock(&b.mu);
    for (int i = 0; i < created; i++) pthread_join(threads[i], NULL);
    double elapsed = now_s() - t0;
    pthread_attr_destroy(&attr);

    pool_stats_t st;
    if (get_stats(b.pool, &st)) status = 1;
    qsort(b.waits, (size_t)b.done, sizeof b.waits[0], compare_double);
    int expected = THREADS * ROUNDS;
    if (b.done != expected || b.timeouts || b.errors) status = 1;

    if (status == 0)
        printf("\n1. %d threads, pool of 5 + 10 overflow: all done, 0 timeouts\n", THREADS);
    else
        printf("\n1. %d threads, pool of 5 + 10 overflow: FAILED, %d timeouts, %d errors\n",
               THREADS, b.timeouts, b.errors);
    printf(LABEL "%d of %d (%d threads x %d rounds: checkout, query, %d ms of work, checkin)\n",
           "checkouts done", b.done, expected, THREADS, ROUNDS, WORK_MS);
    if (b.done > 0)
        printf(LABEL "p50 %.1f ms   p99 %.1f ms   max %.1f ms\n", "wait per checkout",
               1e3 * percentile(b.waits, b.done, 50), 1e3 * percentile(b.waits, b.done, 99),
               1e3 * b.waits[b.done - 1]);
    printf(LABEL "%lld at once at the peak (limit 5 + 10), with up to %lld threads queued\n",
           "connections open", (long long)b.peak_open, (long long)b.peak_waiting);
    printf(LABEL "%lld in total, instead of %d without a pool (one per checkout)\n",
           "connections opened", (long long)st.opened_total, expected);
    printf(LABEL "%lld kept idle for the next burst; %lld overflow ones closed as they came "
           "back\n", "afterwards", (long long)st.idle, (long long)st.closed_total);
    printf(LABEL "%.2f s\n", "time", elapsed);
    if (b.first_error[0]) fprintf(stderr, "demo: first error: %s\n", b.first_error);

    if ((rc = pool_dispose(b.pool)) != POOL_OK) status = pool_failed("pool_dispose", rc);
    pthread_cond_destroy(&b.go);
    pthread_mutex_destroy(&b.mu);
    return status;
}

/* ------------------------------------------------------------------ 2. exhaustion */

static int scene_timeout(void) {
    pool_t *pool;
    pool_lease_t *held, *second;
    int rc, status = 0;

    if (create_pool(&pool, "pool_size=1 max_overflow=0 pool_timeout=0.5")) return 1;
    if ((rc = pool_checkout(&held, pool, -1)) != POOL_OK) {
        pool_failed("pool_checkout", rc);
        pool_dispose(pool);
        return 1;
    }
    double t0 = now_s();
    rc = pool_checkout(&second, pool, -1); /* -1: wait up to pool_timeout, 0.5 s */
    double waited = now_s() - t0;
    char message[512];
    snprintf(message, sizeof message, "%s: %s", pool_error_name(rc), pool_last_error());

    if (rc == POOL_ETIMEDOUT) {
        printf("\n2. pool of 1 + 0 overflow, its connection held: "
               "the next checkout timed out after %.2f s\n", waited);
        printf(LABEL "%s\n", "pool_checkout", message);
    } else {
        printf("\n2. pool of 1 + 0 overflow, its connection held: FAILED, expected "
               "POOL_ETIMEDOUT, got %s\n", message);
        if (rc == POOL_OK) pool_checkin(second);
        status = 1;
    }
    if ((rc = pool_checkin(held)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    /* Once the connection is back, the next checkout gets it without waiting. */
    t0 = now_s();
    if ((rc = pool_checkout(&second, pool, 0)) != POOL_OK) {
        status = pool_failed("pool_checkout after checkin", rc);
    } else {
        waited = now_s() - t0;
        char one[16];
        if (run_query(second, "SELECT 1", one, sizeof one)) status = 1;
        printf(LABEL "the next checkout got the connection at once (%.1f ms), "
               "SELECT 1 = %s\n", "after a checkin", 1e3 * waited, one);
        if ((rc = pool_checkin(second)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    }
    if ((rc = pool_dispose(pool)) != POOL_OK) status = pool_failed("pool_dispose", rc);
    return status;
}

/* ------------------------------------------------------------------ 3. fork */

#define CHILD_ROWS 3

/* The child: uses the pool it inherited. Writes its report lines into fd; returns 0 or 1. */
static int fork_child(pool_t *pool, pool_lease_t *held, int fd) {
    char report[2048], count[32] = "";
    int rc, status = 0, n = 0;
    pool_lease_t *lease;
    pool_stats_t st;
    memset(&st, 0, sizeof st);

    /* The lease the parent held at the fork is dead here: no handle, nothing sent. */
    void *inherited_native = pool_lease_native(held);
    if (inherited_native) {
        fprintf(stderr, "demo: child: the lease held across fork still has a connection\n");
        status = 1;
    }
    if ((rc = pool_checkout(&lease, pool, -1)) != POOL_OK) {
        status = pool_failed("child: pool_checkout", rc);
    } else {
        for (int i = 1; i <= CHILD_ROWS; i++) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO connpool_demo (who, n) VALUES ('child', %d)", i);
            if (run_query(lease, sql, NULL, 0)) status = 1;
        }
        if (run_query(lease, "SELECT count(*) FROM connpool_demo WHERE who = 'child'", count,
                      sizeof count))
            status = 1;
        if ((rc = pool_checkin(lease)) != POOL_OK) status = pool_failed("child: pool_checkin", rc);
    }
    if ((rc = pool_checkin(held)) != POOL_OK) status = pool_failed("child: pool_checkin(held)", rc);
    if (get_stats(pool, &st)) status = 1;
    if ((rc = pool_dispose(pool)) != POOL_OK) status = pool_failed("child: pool_dispose", rc);

    n += snprintf(report + n, sizeof report - n,
                  LABEL "dropped the %lld connections it inherited, unused (inherited_total %lld)\n",
                  "child", (long long)st.inherited_total, (long long)st.inherited_total);
    n += snprintf(report + n, sizeof report - n,
                  LABEL "opened %lld fresh connection: wrote %d rows, read back count = %s\n",
                  "", (long long)st.opened_total, CHILD_ROWS, count[0] ? count : "?");
    snprintf(report + n, sizeof report - n,
             LABEL "the lease held across the fork: native handle %s, checked in safely\n", "",
             inherited_native ? "NOT NULL" : "NULL");
    if (write(fd, report, strlen(report)) < 0) status = 1;
    return status;
}

static int scene_fork(void) {
    pool_t *pool;
    pool_lease_t *held, *other;
    pool_stats_t before, after;
    int rc, status = 0, fds[2];
    char count[32];

    if (create_pool(&pool, "pool_size=2 max_overflow=0 pool_timeout=5")) return 1;
    /* Two connections: one held across the fork, one idle in the pool. */
    if ((rc = pool_checkout(&held, pool, -1)) != POOL_OK) {
        pool_failed("pool_checkout", rc);
        pool_dispose(pool);
        return 1;
    }
    if ((rc = pool_checkout(&other, pool, -1)) != POOL_OK) {
        pool_failed("pool_checkout", rc);
        pool_checkin(held);
        pool_dispose(pool);
        return 1;
    }
    if (run_query(held, "SELECT 1", NULL, 0) || run_query(other, "SELECT 1", NULL, 0)) status = 1;
    if ((rc = pool_checkin(other)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    if (get_stats(pool, &before)) status = 1;
    if (status || pipe(fds) != 0) {
        if (!status) perror("demo: pipe");
        pool_checkin(held);
        pool_dispose(pool);
        return 1;
    }

    fflush(stdout); /* nothing buffered may be printed twice */
    fflush(stderr);
    pid_t child = fork();
    if (child < 0) {
        perror("demo: fork");
        close(fds[0]);
        close(fds[1]);
        pool_checkin(held);
        pool_dispose(pool);
        return 1;
    }
    if (child == 0) {
        close(fds[0]);
        int child_status = fork_child(pool, held, fds[1]);
        _exit(child_status); /* no atexit handlers: the parent owns the temporary files */
    }
    close(fds[1]);

    /* The parent keeps working on its connections while the child runs: queries on the lease
     * it held at the fork, and checkouts of the other connection. */
    int queries = 0, rounds = 0, child_status = -1;
    double deadline = now_s() + 10;
    for (;;) {
        if (run_query(held, "SELECT count(*) FROM connpool_demo", count, sizeof count)) status = 1;
        else queries++;
        if ((rc = pool_checkout(&other, pool, -1)) != POOL_OK) {
            status = pool_failed("pool_checkout", rc);
        } else {
            if (run_query(other, "SELECT 1", NULL, 0)) status = 1;
            else queries++;
            if ((rc = pool_checkin(other)) != POOL_OK) status = pool_failed("pool_checkin", rc);
        }
        rounds++;
        pid_t w = rounds >= 20 ? waitpid(child, &child_status, WNOHANG) : 0;
        if (w == child) break;
        if (w < 0) {
            perror("demo: waitpid");
            status = 1;
            break;
        }
        if (now_s() > deadline) {
            fprintf(stderr, "demo: the child did not finish within 10 s: killed\n");
            kill(child, SIGKILL);
            waitpid(child, &child_status, 0);
            status = 1;
            break;
        }
        sleep_ms(1);
    }
    char child_report[2048];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof child_report - 1 &&
           (r = read(fds[0], child_report + got, sizeof child_report - 1 - got)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        got += (size_t)r;
    }
    child_report[got] = '\0';
    close(fds[0]);
    int child_ok = WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0;

    /* After the child: the parent's sessions are the same ones, and they see its rows. */
    char child_rows[32] = "";
    if (run_query(held, "SELECT count(*) FROM connpool_demo WHERE who = 'child'", child_rows,
                  sizeof child_rows))
        status = 1;
    if ((rc = pool_checkin(held)) != POOL_OK) status = pool_failed("pool_checkin", rc);
    if (get_stats(pool, &after)) status = 1;
    int same = after.opened_total == before.opened_total && after.closed_total == 0;
    if (!same || !child_ok || atoi(child_rows) != CHILD_ROWS) status = 1;

    if (status == 0)
        printf("\n3. fork: the child used the pool with a connection of its own, "
               "the parent kept its own; both fine\n");
    else
        printf("\n3. fork: FAILED (child %s)\n", child_ok ? "succeeded" : "failed");
    printf("%s", child_report);
    printf(LABEL "ran %d queries on its %lld connections alongside the child, all fine\n",
           "parent", queries, (long long)before.opened_total);
    printf(LABEL "%s (opened_total %lld, closed_total %lld); sees the child's %s rows\n", "",
           same ? "still the same connections" : "its connections CHANGED",
           (long long)after.opened_total, (long long)after.closed_total,
           child_rows[0] ? child_rows : "?");
    if ((rc = pool_dispose(pool)) != POOL_OK) status = pool_failed("pool_dispose", rc);
    return status;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    char dir[256] = "", db[300] = "", odbc[400];
    double t0 = now_s();

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: demo [CONNINFO]   (no argument: a temporary SQLite file "
                        "through the ODBC driver \"SQLite3\")\n");
        return 2;
    }
    if (argc == 2) {
        conninfo = argv[1];
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/connpool-demo.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("demo: mkdtemp");
            return 1;
        }
        snprintf(db, sizeof db, "%s/demo.db", dir);
        snprintf(odbc, sizeof odbc, "odbc:Driver=SQLite3;Database=%s", db);
        conninfo = odbc;
    }
    use_odbc = strncmp(conninfo, "odbc:", 5) == 0;

    int failed = 0;
    if (setup(db[0] ? db : NULL)) {
        fprintf(stderr, "demo: could not prepare the database%s\n",
                dir[0] ? " (is the SQLite ODBC driver registered as SQLite3? "
                         "`make demo` does it)" : "");
        failed = -1;
    } else {
        failed += scene_burst();
        failed += scene_timeout();
        failed += scene_fork();
        if (teardown()) failed++;
        if (failed == 0)
            printf("\nall 3 scenes behaved as described, in %.1f s\n", now_s() - t0);
        else
            printf("\ndemo FAILED: %d problem(s), see the errors above\n", failed);
    }
    if (dir[0]) { /* the SQLite file and any journal it left */
        const char *suffixes[] = {"", "-journal", "-wal", "-shm"};
        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            char path[320];
            snprintf(path, sizeof path, "%s%s", db, suffixes[i]);
            unlink(path);
        }
        if (rmdir(dir) != 0) fprintf(stderr, "demo: could not remove %s: %s\n", dir, strerror(errno));
    }
    return failed ? 1 : 0;
}
