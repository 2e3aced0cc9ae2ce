/* The pool through the ODBC connector (unixODBC), against two drivers: psqlODBC to the test
 * server, and the SQLite ODBC driver on a file (../shared/fork-safety.md §4, §5, §E 12-14;
 * connpool.h, convention 8).
 *
 * Run under tests/with-postgres.sh: it registers "PostgreSQL Unicode" and "SQLite3" in a private
 * ODBCSYSINI, exports CONNPOOL_TEST_ODBC_PG (an odbc: string to the test server) and
 * CONNPOOL_TEST_SQLITE_DIR (a private directory for database files).
 *
 * Each scenario runs once per driver where it makes sense for both; the case names say which
 * ("psqlodbc:", "psqlodbc+tls:", "sqlite:"). Work goes through the lease's SQLHDBC
 * (SQLExecDirect, SQLFetch, SQLGetData). psqlODBC sessions carry the test's application_name
 * (Pqopt={application_name=...}, suffixed with this process's pid) so that a libpq monitor
 * outside any pool counts them in pg_stat_activity; counts that must drop are awaited, never
 * asserted at once. SQLite connections are counted through the pool's statistics, and each
 * test has a database file of its own.
 *
 * cmocka's assertions may only fail on the test's own thread: worker threads record what went
 * wrong in a report that the test thread checks after joining them. Forked children never call
 * cmocka either: they run under an alarm() watchdog and report through a pipe and their exit
 * code (as in test_fork.c). No sleeps: every wait is for a condition (await_true); server-side
 * pg_sleep is only ever the workload. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sql.h>
#include <sqlext.h>
#include <odbcinst.h>

#include "child.h"
#include "util.h"

extern char **environ;

/* ---------------------------------------------------------------- settings */

#define STORM_WATCHDOG_S 5
#define MAX_CONNS 8


/* ---------------------------------------------------------------- drivers */

enum kind { PSQLODBC, SQLITE };

struct driver {
    enum kind kind;
    const char *label;   /* part of every name the test gives the server or the disk */
    const char *sslmode; /* psqlODBC: disable or require */
};

static struct driver psqlodbc = {PSQLODBC, "pg", "disable"};
static struct driver psqlodbc_tls = {PSQLODBC, "pgtls", "require"};
static struct driver sqlite = {SQLITE, "lite", NULL};

/* One test's setting: its driver, its name, its pool's connection string. */
struct ctx {
    const struct driver *d;
    char name[64];      /* psqlODBC: the application_name; SQLite: the database file's name */
    char conninfo[768]; /* "odbc:..." */
    char db[512];       /* SQLite: the database file */
    PGconn *monitor;    /* psqlODBC: a libpq connection outside any pool */
};

static void ctx_init(struct ctx *c, void **state, const char *base) {
    memset(c, 0, sizeof *c);
    c->d = *state;
    snprintf(c->name, sizeof c->name, "%s_%s_%d", base, c->d->label, (int)getpid());
    if (c->d->kind == PSQLODBC) {
        snprintf(c->conninfo, sizeof c->conninfo, "%s;SSLmode=%s;Pqopt={application_name=%s}",
                 env_or_fail("CONNPOOL_TEST_ODBC_PG"), c->d->sslmode, c->name);
        c->monitor = monitor_connect();
    } else {
        snprintf(c->db, sizeof c->db, "%s/%s.db", env_or_fail("CONNPOOL_TEST_SQLITE_DIR"), c->name);
        unlink(c->db);
        snprintf(c->conninfo, sizeof c->conninfo, "odbc:Driver=SQLite3;Database=%s;Timeout=10000",
                 c->db);
    }
}

static void ctx_done(struct ctx *c) {
    if (c->monitor) PQfinish(c->monitor);
    if (c->db[0]) unlink(c->db);
}

static int is_pg(const struct ctx *c) { return c->d->kind == PSQLODBC; }

/* ---------------------------------------------------------------- ODBC helpers (no cmocka) */

/* Every diagnostic record of a handle as "[SQLSTATE] text; ...". */
static void diag_text(SQLSMALLINT type, SQLHANDLE handle, char *out, size_t len) {
    size_t used = 0;
    out[0] = 0;
    for (SQLSMALLINT i = 1; used + 1 < len; i++) {
        SQLCHAR state[6] = "", text[512] = "";
        SQLINTEGER native = 0;
        SQLSMALLINT text_len = 0;
        if (!SQL_SUCCEEDED(SQLGetDiagRec(type, handle, i, state, &native, text, sizeof text,
                                         &text_len)))
            break;
        int n = snprintf(out + used, len - used, "%s[%s] %s", used ? "; " : "", (char *)state,
                         (char *)text);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (!out[0]) snprintf(out, len, "no diagnostic record");
    for (char *nl = strchr(out, '\n'); nl; nl = strchr(nl, '\n')) *nl = ' '; /* one line */
}

/* Runs sql on dbc. With value, fetches column col of the first row as text ("NULL" for a null).
 * Returns 1 on success; on failure writes the diagnostics to err. Worker threads and children
 * call it too: it never fails a test itself. */
static int sql_run(SQLHDBC dbc, const char *sql, int col, char *value, size_t value_len, char *err,
                   size_t err_len) {
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    SQLHSTMT stmt = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, dbc, &stmt))) {
        diag_text(SQL_HANDLE_DBC, dbc, err, err_len);
        return 0;
    }
    int ok = 0;
    SQLRETURN rc = SQLExecDirect(stmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) { /* NO_DATA: a DELETE that matched no row */
        diag_text(SQL_HANDLE_STMT, stmt, err, err_len);
    } else if (!value) {
        ok = 1;
    } else if ((rc = SQLFetch(stmt)) == SQL_NO_DATA) {
        snprintf(err, err_len, "no row");
    } else if (!SQL_SUCCEEDED(rc)) {
        diag_text(SQL_HANDLE_STMT, stmt, err, err_len);
    } else {
        SQLLEN ind = 0;
        rc = SQLGetData(stmt, (SQLUSMALLINT)col, SQL_C_CHAR, value, (SQLLEN)value_len, &ind);
        if (!SQL_SUCCEEDED(rc)) {
            diag_text(SQL_HANDLE_STMT, stmt, err, err_len);
        } else {
            if (ind == SQL_NULL_DATA) snprintf(value, value_len, "NULL");
            ok = 1;
        }
    }
    SQLFreeHandle(SQL_HANDLE_STMT, stmt);
    return ok;
}

/* ---------------------------------------------------------------- ODBC helpers (test thread) */

static void exec_ok(SQLHDBC dbc, const char *sql) {
    char err[1024];
    if (!sql_run(dbc, sql, 0, NULL, 0, err, sizeof err)) fail_msg("\"%s\": %s", sql, err);
}

static void text_of(SQLHDBC dbc, const char *sql, char *out, size_t len) {
    char err[1024];
    if (!sql_run(dbc, sql, 1, out, len, err, sizeof err)) fail_msg("\"%s\": %s", sql, err);
}

static long long int_of(SQLHDBC dbc, const char *sql) {
    char value[64];
    text_of(dbc, sql, value, sizeof value);
    return strtoll(value, NULL, 10);
}

static SQLULEN autocommit_of(SQLHDBC dbc) {
    SQLULEN value = 0; /* wide enough whichever width the driver writes */
    SQLRETURN rc = SQLGetConnectAttr(dbc, SQL_ATTR_AUTOCOMMIT, &value, 0, NULL);
    if (!SQL_SUCCEEDED(rc)) {
        char err[512];
        diag_text(SQL_HANDLE_DBC, dbc, err, sizeof err);
        fail_msg("SQLGetConnectAttr(SQL_ATTR_AUTOCOMMIT): %s", err);
    }
    return value;
}

static void set_autocommit(SQLHDBC dbc, SQLULEN on) {
    SQLRETURN rc = SQLSetConnectAttr(dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)on, 0);
    if (!SQL_SUCCEEDED(rc)) {
        char err[512];
        diag_text(SQL_HANDLE_DBC, dbc, err, sizeof err);
        fail_msg("SQLSetConnectAttr(SQL_ATTR_AUTOCOMMIT, %lu): %s", (unsigned long)on, err);
    }
}

/* A connection of its own, outside any pool and any environment of the pool's. */
struct raw {
    SQLHENV env;
    SQLHDBC dbc;
};

static void raw_connect(struct raw *r, const char *conninfo) {
    const char *s = strncmp(conninfo, "odbc:", 5) == 0 ? conninfo + 5 : conninfo;
    char err[1024];
    assert_true(SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &r->env)));
    assert_true(SQL_SUCCEEDED(
        SQLSetEnvAttr(r->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0)));
    assert_true(SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, r->env, &r->dbc)));
    SQLRETURN rc = SQLDriverConnect(r->dbc, NULL, (SQLCHAR *)s, SQL_NTS, NULL, 0, NULL,
                                    SQL_DRIVER_NOPROMPT);
    if (!SQL_SUCCEEDED(rc)) {
        diag_text(SQL_HANDLE_DBC, r->dbc, err, sizeof err);
        fail_msg("a connection of its own: %s", err);
    }
}

static void raw_close(struct raw *r) {
    assert_true(SQL_SUCCEEDED(SQLDisconnect(r->dbc)));
    SQLFreeHandle(SQL_HANDLE_DBC, r->dbc);
    SQLFreeHandle(SQL_HANDLE_ENV, r->env);
}

/* ---------------------------------------------------------------- libpq helpers (monitor) */

static void pq_exec_ok(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("\"%s\": %s", sql, PQerrorMessage(conn));
    PQclear(r);
}

/* The first value of a query's first row, or "" if there is no row. */
static void pq_text(PGconn *conn, const char *sql, char *out, size_t len) {
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("query \"%s\": %s", sql, PQerrorMessage(conn));
    snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

/* Runs sql outside the pool under test: on the monitor for psqlODBC, on a connection of its own
 * for SQLite. */
static void side_exec(struct ctx *c, const char *sql) {
    if (is_pg(c)) {
        pq_exec_ok(c->monitor, sql);
        return;
    }
    struct raw r;
    raw_connect(&r, c->conninfo);
    exec_ok(r.dbc, sql);
    raw_close(&r);
}

static void side_text(struct ctx *c, const char *sql, char *out, size_t len) {
    if (is_pg(c)) {
        pq_text(c->monitor, sql, out, len);
        return;
    }
    struct raw r;
    raw_connect(&r, c->conninfo);
    text_of(r.dbc, sql, out, len);
    raw_close(&r);
}

static long long side_int(struct ctx *c, const char *sql) {
    char value[64];
    side_text(c, sql, value, sizeof value);
    return strtoll(value, NULL, 10);
}

/* ---------------------------------------------------------------- the pool */

static pool_t *make_pool(struct ctx *c, const char *options) {
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, c->conninfo, options));
    assert_non_null(pool);
    return pool;
}

static SQLHDBC native(pool_lease_t *lease) {
    SQLHDBC dbc = pool_lease_native(lease);
    assert_non_null(dbc);
    return dbc;
}

/* Who is behind a lease: for psqlODBC the server's backend pid (over TLS or not, as asked),
 * for SQLite the connection handle. */
static long long identity(struct ctx *c, pool_lease_t *lease) {
    SQLHDBC dbc = native(lease);
    if (!is_pg(c)) return (long long)(intptr_t)dbc;
    long long pid = int_of(dbc, "SELECT pg_backend_pid()");
    long long ssl = int_of(dbc, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    if (ssl != (strcmp(c->d->sslmode, "require") == 0))
        fail_msg("SSLmode=%s but backend %lld has ssl = %lld", c->d->sslmode, pid, ssl);
    return pid;
}


/* ---------------------------------------------------------------- awaiting the server */


static void terminate(PGconn *monitor, int pid) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 5000)::int", pid);
    assert_int_equal(query_int(monitor, sql), 1);
    assert_false(backend_exists(monitor, pid));
}

/* ---------------------------------------------------------------- worker threads */




/* ================================================================ 1. many threads, few connections */

#define SHARE_THREADS 300
#define SHARE_ROUNDS 5
#define SHARE_LIMIT 15 /* pool_size 5 + max_overflow 10 */

struct share {
    struct ctx *c;
    pool_t *pool;
    const char *sql; /* answers 42 */
    struct report rep;
    pthread_barrier_t start;
    pthread_mutex_t mu;
    SQLHDBC held[SHARE_THREADS]; /* connections in use by a thread now */
    int n_held;
    /* the monitor */
    int done;
    long long samples, max_server, max_open;
    char monitor_error[256];
};

/* Marks the connection held, failing if another thread holds it. */
static void share_take(struct share *s, SQLHDBC dbc) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_held; i++)
        if (s->held[i] == dbc)
            report_failure(&s->rep, "SQLHDBC %p handed to two threads at once", dbc);
    s->held[s->n_held++] = dbc;
    pthread_mutex_unlock(&s->mu);
}

static void share_release(struct share *s, SQLHDBC dbc) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_held; i++) {
        if (s->held[i] != dbc) continue;
        s->held[i] = s->held[--s->n_held];
        break;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *share_worker(void *p) {
    struct share *s = p;
    pthread_barrier_wait(&s->start);
    for (int round = 0; round < SHARE_ROUNDS; round++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, s->pool, -1);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            continue;
        }
        SQLHDBC dbc = pool_lease_native(lease);
        if (!dbc) {
            report_failure(&s->rep, "a checked-out lease has no connection");
        } else {
            char value[32], err[512];
            share_take(s, dbc);
            if (!sql_run(dbc, s->sql, 1, value, sizeof value, err, sizeof err))
                report_failure(&s->rep, "\"%s\": %s", s->sql, err);
            else if (strcmp(value, "42") != 0)
                report_failure(&s->rep, "\"%s\" returned %s", s->sql, value);
            share_release(s, dbc);
        }
        rc = pool_checkin(lease);
        if (rc != POOL_OK)
            report_failure(&s->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
    }
    return NULL;
}

/* One sample: the connections the pool has open (its own snapshot) and, for psqlODBC, the
 * client backends the server sees with the test's name. Returns 0 once told to stop. */
static int share_sample(struct share *s) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int ok = pool_stats_get(s->pool, &st) == POOL_OK;
    long long open = st.opened_total - st.closed_total;
    long long live = st.checked_out + st.idle + st.opening;
    if (live > open) open = live;
    long long server = 0;
    char error[256] = "";
    if (!ok) snprintf(error, sizeof error, "pool_stats_get: %s", pool_last_error());
    if (ok && is_pg(s->c)) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                 "AND backend_type = 'client backend'",
                 s->c->name);
        PGresult *r = PQexec(s->c->monitor, sql);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        if (ok) server = atoll(PQgetvalue(r, 0, 0));
        else snprintf(error, sizeof error, "%s", PQerrorMessage(s->c->monitor));
        PQclear(r);
    }
    pthread_mutex_lock(&s->mu);
    if (!ok) {
        snprintf(s->monitor_error, sizeof s->monitor_error, "%s", error);
    } else {
        s->samples++;
        if (open > s->max_open) s->max_open = open;
        if (server > s->max_server) s->max_server = server;
    }
    int done = s->done;
    pthread_mutex_unlock(&s->mu);
    return ok && !done;
}

static void *share_monitor(void *p) {
    struct share *s = p;
    while (share_sample(s)) sched_yield(); /* SQLite's samples cost no round trip: let workers run */
    return NULL;
}

static int share_monitor_started(void *p) {
    struct share *s = p;
    pthread_mutex_lock(&s->mu);
    int started = s->samples > 0 || s->monitor_error[0];
    pthread_mutex_unlock(&s->mu);
    return started;
}

static void three_hundred_threads_share_fifteen_connections(void **state) {
    static struct share s; /* large; and the threads only ever see this one */
    static pthread_t workers[SHARE_THREADS];
    struct ctx c;
    ctx_init(&c, state, "od_share");
    memset(&s, 0, sizeof s);
    s.c = &c;
    report_init(&s.rep);
    pthread_mutex_init(&s.mu, NULL);
    if (is_pg(&c)) {
        s.sql = "SELECT 42 FROM pg_sleep(0.001)";
    } else {
        side_exec(&c, "CREATE TABLE one (x int)");
        side_exec(&c, "INSERT INTO one VALUES (1)");
        s.sql = "SELECT x + 41 FROM one";
    }
    s.pool = make_pool(&c, "pool_size=5 max_overflow=10 pool_timeout=20");

    pthread_t monitor;
    if (pthread_create(&monitor, NULL, share_monitor, &s) != 0) fail_msg("pthread_create");
    assert_true(await_true(share_monitor_started, &s, SERVER_WAIT_MS));
    pthread_barrier_init(&s.start, NULL, SHARE_THREADS);
    if (!start_threads(workers, SHARE_THREADS, share_worker, &s)) fail_msg("pthread_create");
    join_threads(workers, SHARE_THREADS);
    pthread_barrier_destroy(&s.start);
    pthread_mutex_lock(&s.mu);
    s.done = 1;
    pthread_mutex_unlock(&s.mu);
    pthread_join(monitor, NULL);
    share_sample(&s); /* one last look: the pool's idle connections are still open */

    assert_no_failures(&s.rep);
    if (s.monitor_error[0]) fail_msg("monitor: %s", s.monitor_error);
    if (s.max_open > SHARE_LIMIT)
        fail_msg("the pool had %lld connections open, limited to %d", s.max_open, SHARE_LIMIT);
    if (s.max_server > SHARE_LIMIT)
        fail_msg("the server saw %lld sessions of a pool limited to %d", s.max_server, SHARE_LIMIT);
    assert_true(s.max_open >= 1);
    if (is_pg(&c)) assert_true(s.max_server >= 1); /* Pqopt's application_name did reach it */
    assert_true(s.samples >= 2);
    print_message("      %lld samples; at most %lld connections open%s\n", s.samples, s.max_open,
                  is_pg(&c) ? " (the server agrees)" : "");

    pool_stats_t st = stats_of(s.pool);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.connect_failures_total, 0);
    assert_int_equal(st.checkouts_total, SHARE_THREADS * SHARE_ROUNDS);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.overflow, 0);
    assert_true(st.idle >= 1 && st.idle <= 5);
    assert_true(st.opened_total >= st.idle && st.opened_total <= st.checkouts_total);
    assert_int_equal(st.opened_total - st.closed_total, st.idle);
    if (is_pg(&c)) /* what the pool keeps is what the server has */
        await_sessions(c.monitor, c.name, st.idle);

    assert_ok(pool_dispose(s.pool));
    if (is_pg(&c)) await_sessions(c.monitor, c.name, 0);
    pthread_mutex_destroy(&s.mu);
    ctx_done(&c);
}

/* ================================================================ 2. timeout */

static void a_full_pool_times_out_with_sqlalchemys_message(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_timeout");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 pool_timeout=0.05");
    pool_lease_t *held = checkout(pool);
    long long who = identity(&c, held);

    pool_lease_t *second = (pool_lease_t *)&second; /* must be overwritten with NULL */
    assert_int_equal(pool_checkout(&second, pool, -1), POOL_ETIMEDOUT);
    assert_null(second);
    const char *expected =
        "QueuePool limit of size 1 overflow 0 reached, connection timed out, timeout 0.05";
    if (strncmp(pool_last_error(), expected, strlen(expected)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", pool_last_error(), expected);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.timeouts_total, 1);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.checkouts_total, 1);
    assert_int_equal(st.opened_total, 1);
    assert_true(st.wait_max_us >= 40000); /* it did wait for its timeout (50 ms) */

    /* the held connection is untouched, and once back it serves the next checkout */
    assert_int_equal(int_of(native(held), "SELECT 1"), 1);
    assert_ok(pool_checkin(held));
    pool_lease_t *again = checkout(pool);
    assert_true(identity(&c, again) == who);
    assert_ok(pool_checkin(again));
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 3. overflow */

static void overflow_connections_are_closed_at_checkin(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_overflow");
    pool_t *pool = make_pool(&c, "pool_size=2 max_overflow=3");
    pool_lease_t *leases[5];
    for (int i = 0; i < 5; i++) {
        leases[i] = checkout(pool);
        assert_int_equal(int_of(native(leases[i]), "SELECT 1"), 1);
    }
    if (is_pg(&c)) await_sessions(c.monitor, c.name, 5);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checked_out, 5);
    assert_int_equal(st.overflow, 3);
    assert_int_equal(st.opened_total, 5);
    pool_lease_t *sixth = NULL;
    assert_int_equal(pool_checkout(&sixth, pool, 0), POOL_ETIMEDOUT);

    for (int i = 0; i < 5; i++) assert_ok(pool_checkin(leases[i]));
    if (is_pg(&c)) await_sessions(c.monitor, c.name, 2);
    st = stats_of(pool);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.overflow, 0);
    assert_int_equal(st.closed_total, 3);
    assert_int_equal(st.opened_total, 5);

    /* the two kept are open and working: no connect needed */
    for (int i = 0; i < 2; i++) {
        assert_ok(pool_checkout(&leases[i], pool, 0));
        assert_int_equal(int_of(native(leases[i]), "SELECT 1"), 1);
    }
    for (int i = 0; i < 2; i++) assert_ok(pool_checkin(leases[i]));
    assert_int_equal(stats_of(pool).opened_total, 5);

    assert_ok(pool_dispose(pool));
    if (is_pg(&c)) await_sessions(c.monitor, c.name, 0);
    ctx_done(&c);
}

/* ================================================================ 4. reset on return */

/* A table for the test: on the server (named after the test), or in the test's own file. */
static void make_table(struct ctx *c, char *table, size_t len) {
    char sql[512];
    if (is_pg(c)) {
        snprintf(table, len, "%s_rows", c->name);
        snprintf(sql, sizeof sql,
                 "SET client_min_messages = warning; DROP TABLE IF EXISTS %s; CREATE TABLE %s (x int)",
                 table, table);
    } else {
        snprintf(table, len, "rows_kept");
        snprintf(sql, sizeof sql, "CREATE TABLE %s (x int)", table);
    }
    side_exec(c, sql);
}

static void drop_table(struct ctx *c, const char *table) {
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    side_exec(c, sql);
}

static long long rows_in(SQLHDBC dbc, const char *table) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return int_of(dbc, sql);
}

static long long side_rows_in(struct ctx *c, const char *table) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return side_int(c, sql);
}

/* The user turns autocommit off, inserts a row and checks the lease in without a commit. The
 * next user (pool_size 1: the same connection) finds autocommit on again, and the row kept or
 * not as reset_on_return says. */
static void insert_without_commit_then_check_in(void **state, const char *base, const char *reset,
                                                long long rows_after) {
    struct ctx c;
    char table[96], sql[256], options[128];
    ctx_init(&c, state, base);
    make_table(&c, table, sizeof table);
    snprintf(options, sizeof options, "pool_size=1 max_overflow=0 reset_on_return=%s", reset);
    pool_t *pool = make_pool(&c, options);

    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    SQLHDBC dbc = native(lease);
    assert_int_equal(autocommit_of(dbc), SQL_AUTOCOMMIT_ON); /* what the pool promises */
    set_autocommit(dbc, SQL_AUTOCOMMIT_OFF);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    exec_ok(dbc, sql);
    assert_int_equal(rows_in(dbc, table), 1);      /* visible inside its transaction */
    assert_int_equal(side_rows_in(&c, table), 0);  /* and only there */
    assert_int_equal(autocommit_of(dbc), SQL_AUTOCOMMIT_OFF);
    assert_ok(pool_checkin(lease)); /* no commit */
    assert_int_equal(side_rows_in(&c, table), rows_after);

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who); /* the same connection, reset */
    dbc = native(lease);
    assert_int_equal(autocommit_of(dbc), SQL_AUTOCOMMIT_ON);
    assert_int_equal(rows_in(dbc, table), rows_after);
    /* autocommit really is on: what this user inserts is seen outside at once */
    exec_ok(dbc, sql);
    assert_int_equal(side_rows_in(&c, table), rows_after + 1);
    assert_ok(pool_checkin(lease));

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    if (is_pg(&c)) drop_table(&c, table);
    ctx_done(&c);
}

static void an_uncommitted_insert_is_rolled_back_and_autocommit_comes_back_on(void **state) {
    insert_without_commit_then_check_in(state, "od_rollback", "rollback", 0);
}

static void reset_on_return_commit_keeps_the_insert_and_turns_autocommit_back_on(void **state) {
    insert_without_commit_then_check_in(state, "od_commit", "commit", 1);
}

/* A BEGIN sent as text through the lease's own SQLHDBC (not pool_query, which the pool
 * tracks), an INSERT, and a checkin without a commit: the next borrower (the same connection)
 * must not see the row, and must not be inside that transaction (what it inserts is seen
 * outside at once; for psqlODBC the server also shows the session idle, not in transaction). */
static void a_begin_through_the_native_handle_is_rolled_back_at_checkin(void **state) {
    struct ctx c;
    char table[96], sql[256];
    ctx_init(&c, state, "od_native_begin");
    make_table(&c, table, sizeof table);
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 reset_on_return=rollback");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    SQLHDBC dbc = native(lease);
    exec_ok(dbc, "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    exec_ok(dbc, sql);
    assert_int_equal(rows_in(dbc, table), 1);
    assert_int_equal(side_rows_in(&c, table), 0); /* the transaction is open */
    assert_ok(pool_checkin(lease));
    if (is_pg(&c)) {
        char q[128], st[64];
        snprintf(q, sizeof q, "SELECT state FROM pg_stat_activity WHERE pid = %lld", who);
        pq_text(c.monitor, q, st, sizeof st);
        assert_string_equal(st, "idle");
    }

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who);
    dbc = native(lease);
    assert_int_equal(rows_in(dbc, table), 0);
    exec_ok(dbc, sql);
    assert_int_equal(side_rows_in(&c, table), 1); /* autocommit, outside any transaction */
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
    if (is_pg(&c)) drop_table(&c, table);
    ctx_done(&c);
}

/* reset_on_return=discard, psqlODBC: the next borrower of the same connection finds no SET
 * and no temporary table of the last one, and psqlODBC's own settings (client_encoding,
 * DateStyle) as they were after the connect. */
static void reset_on_return_discard_hands_out_a_clean_session(void **state) {
    struct ctx c;
    char value[64];
    ctx_init(&c, state, "od_discard");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 reset_on_return=discard");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    SQLHDBC dbc = native(lease);
    char encoding[64], datestyle[64];
    text_of(dbc, "SHOW client_encoding", encoding, sizeof encoding);
    text_of(dbc, "SHOW DateStyle", datestyle, sizeof datestyle);
    exec_ok(dbc, "SET work_mem = '7MB'");
    exec_ok(dbc, "SET DateStyle = 'German'");
    exec_ok(dbc, "CREATE TEMP TABLE od_discard_tmp (x int)");
    exec_ok(dbc, "BEGIN");
    exec_ok(dbc, "SET LOCAL statement_timeout = '1min'");
    assert_ok(pool_checkin(lease));

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who); /* the same session, cleaned */
    dbc = native(lease);
    text_of(dbc, "SHOW work_mem", value, sizeof value);
    assert_string_not_equal(value, "7MB");
    assert_int_equal(int_of(dbc, "SELECT count(*) FROM pg_class WHERE relname = 'od_discard_tmp'"),
                     0);
    text_of(dbc, "SHOW client_encoding", value, sizeof value);
    assert_string_equal(value, encoding);
    text_of(dbc, "SHOW DateStyle", value, sizeof value);
    assert_string_equal(value, datestyle);
    text_of(dbc, "SELECT 'ä€'", value, sizeof value); /* psqlODBC's conversions still right */
    assert_string_equal(value, "ä€");
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* SQLite has no DISCARD ALL: the first checkout says so, and nothing is handed out. */
static void reset_on_return_discard_is_refused_naming_the_reason(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_discard");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 reset_on_return=discard");
    pool_lease_t *lease = NULL;
    assert_int_equal(pool_checkout(&lease, pool, 5000), POOL_EINVAL);
    assert_null(lease);
    assert_contains(pool_last_error(), "reset_on_return=discard");
    assert_contains(pool_last_error(), "DISCARD ALL");
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle + st.checked_out + st.opening, 0);
    assert_int_equal(st.opened_total, 0);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* A statement that failed inside a transaction leaves the server's transaction aborted; the
 * checkin's rollback makes the session usable again. psqlODBC by default wraps each statement in
 * a savepoint and rolls an error back itself: Protocol=7.4-0 turns that off, so the aborted
 * transaction reaches the pool as it would through libpq. */
static void a_failed_transaction_comes_back_usable(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_failed_tx");
    strncat(c.conninfo, ";Protocol=7.4-0", sizeof c.conninfo - strlen(c.conninfo) - 1);
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    SQLHDBC dbc = native(lease);
    set_autocommit(dbc, SQL_AUTOCOMMIT_OFF);
    assert_int_equal(int_of(dbc, "SELECT 1"), 1);
    char value[32], err[512];
    assert_false(sql_run(dbc, "SELECT 1/0", 1, value, sizeof value, err, sizeof err));
    assert_contains(err, "division by zero");
    assert_false(sql_run(dbc, "SELECT 1", 1, value, sizeof value, err, sizeof err));
    assert_contains(err, "current transaction is aborted");
    assert_ok(pool_checkin(lease));

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who);
    assert_int_equal(autocommit_of(native(lease)), SQL_AUTOCOMMIT_ON);
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 5. broken connections */

static void an_invalidated_connection_is_closed_and_replaced(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_invalidate");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    assert_ok(pool_invalidate(lease));
    if (is_pg(&c)) /* invalidate alone closes nothing */
        assert_true(backend_exists(c.monitor, (int)who));
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    if (is_pg(&c)) await_backend_gone(c.monitor, (int)who);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);

    lease = checkout(pool);
    if (is_pg(&c)) assert_true(identity(&c, lease) != who);
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 2);
    assert_ok(pool_dispose(pool));
    if (is_pg(&c)) await_sessions(c.monitor, c.name, 0);
    ctx_done(&c);
}

static void a_backend_killed_while_checked_out_fails_the_query_and_is_not_handed_out_again(
    void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_killed_out");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = (int)identity(&c, lease);
    terminate(c.monitor, pid);
    char value[32], err[512];
    if (sql_run(native(lease), "SELECT 1", 1, value, sizeof value, err, sizeof err))
        fail_msg("a query on a terminated backend returned %s", value);
    print_message("      the user's query: %s\n", err);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);

    lease = checkout(pool);
    int new_pid = (int)identity(&c, lease);
    assert_int_not_equal(new_pid, pid);
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    await_sessions(c.monitor, c.name, 0);
    ctx_done(&c);
}

/* psqlODBC learns that a session died only when it next talks to it, so an idle connection
 * whose backend was killed may be handed out once; the user's query fails and the checkin
 * drops it. No more than one checkout meets the dead backend. */
static void a_backend_killed_while_idle_is_replaced_after_at_most_one_failure(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_killed_idle");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");

    pool_lease_t *lease = checkout(pool);
    int pid = (int)identity(&c, lease);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).idle, 1);
    terminate(c.monitor, pid);

    lease = checkout(pool);
    char value[32], err[512];
    if (!sql_run(native(lease), "SELECT 1", 1, value, sizeof value, err, sizeof err)) {
        assert_ok(pool_checkin(lease)); /* it was the dead one */
        assert_int_equal(stats_of(pool).idle, 0);
        assert_int_equal(stats_of(pool).closed_total, 1);
        lease = checkout(pool);
    }
    assert_int_not_equal((int)identity(&c, lease), pid);
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* With pool_pre_ping, the pool pings (SELECT 1 through the driver) before handing a
 * connection out: the killed backend is found and replaced inside the checkout, and the
 * caller never sees a failure. psqlODBC's SQL_ATTR_CONNECTION_DEAD is a flag that only a
 * failed statement sets, so an idle connection whose backend was terminated reads alive: with
 * a long pre_ping_interval too, the pool must still ping it (the connector is never sure). */
static void killed_idle_backend_is_replaced(void **state, const char *app, const char *options) {
    struct ctx c;
    ctx_init(&c, state, app);
    pool_t *pool = make_pool(&c, options);
    pool_lease_t *lease = checkout(pool);
    int pid = (int)identity(&c, lease);
    assert_ok(pool_checkin(lease));
    terminate(c.monitor, pid);

    lease = checkout(pool);
    assert_int_not_equal((int)identity(&c, lease), pid);
    assert_int_equal(int_of(native(lease), "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pings_total, 1);
    assert_int_equal(st.dead_total, 1);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

static void with_pre_ping_a_backend_killed_while_idle_is_replaced_unseen(void **state) {
    killed_idle_backend_is_replaced(state, "od_pre_ping",
                                    "pool_size=1 max_overflow=0 pool_pre_ping=true pre_ping_interval=0");
}

static void with_pre_ping_and_a_long_interval_a_backend_killed_while_idle_is_replaced(void **state) {
    killed_idle_backend_is_replaced(state, "od_ping_interval",
                                    "pool_size=1 max_overflow=0 pool_pre_ping=true pre_ping_interval=3600");
}

/* ================================================================ 6. fork: children */


/* ---------------------------------------------------------------- checks inside a child */

static pool_stats_t child_stats(pool_t *pool) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = pool_stats_get(pool, &st);
    CHILD_REQUIRE(rc == POOL_OK, "%s: %s", pool_error_name(rc), pool_last_error());
    return st;
}

/* The child's pool before it is used: the parent's history is gone, and the connections it
 * inherited (idle and lent) are counted as dropped. */
static void child_expect_fresh(pool_t *pool, int64_t inherited) {
    pool_stats_t st = child_stats(pool);
    CHILD_REQUIRE(st.checked_out == 0 && st.idle == 0 && st.opening == 0 && st.overflow == 0 &&
                      st.waiting == 0 && st.opened_total == 0 && st.closed_total == 0 &&
                      st.checkouts_total == 0,
                  "in the child: checked_out %lld idle %lld opening %lld overflow %lld waiting "
                  "%lld opened %lld closed %lld checkouts %lld\n",
                  (long long)st.checked_out, (long long)st.idle, (long long)st.opening,
                  (long long)st.overflow, (long long)st.waiting, (long long)st.opened_total,
                  (long long)st.closed_total, (long long)st.checkouts_total);
    CHILD_REQUIRE(st.inherited_total == inherited, "inherited_total %lld, expected %lld\n",
                  (long long)st.inherited_total, (long long)inherited);
}

static SQLHDBC child_checkout(pool_t *pool, pool_lease_t **lease, int64_t timeout_ms) {
    int rc = pool_checkout(lease, pool, timeout_ms);
    CHILD_REQUIRE(rc == POOL_OK, "pool_checkout: %s: %s\n", pool_error_name(rc), pool_last_error());
    SQLHDBC dbc = pool_lease_native(*lease);
    CHILD_REQUIRE(dbc != NULL, "a lease checked out in the child has no connection\n");
    return dbc;
}

static void child_text(SQLHDBC dbc, const char *sql, char *out, size_t len) {
    char err[512];
    CHILD_REQUIRE(sql_run(dbc, sql, 1, out, len, err, sizeof err), "\"%s\": %s\n", sql, err);
}

static void child_expect(SQLHDBC dbc, const char *sql, const char *expected) {
    char value[128];
    child_text(dbc, sql, value, sizeof value);
    CHILD_REQUIRE(strcmp(value, expected) == 0, "\"%s\" returned \"%s\", not \"%s\"\n", sql, value,
                  expected);
}

/* A lease lent before the fork is dead in the child: no connection, cannot be invalidated;
 * its checkin is accepted once and drops it. */
static void child_return_dead_lease(pool_lease_t *inherited) {
    CHILD_REQUIRE(pool_lease_native(inherited) == NULL,
                  "pool_lease_native() of an inherited lease is the parent's connection\n");
    int rc = pool_invalidate(inherited);
    CHILD_REQUIRE(rc == POOL_EFORKED, "pool_invalidate() of an inherited lease: %s\n",
                  pool_error_name(rc));
    rc = pool_checkin(inherited);
    CHILD_REQUIRE(rc == POOL_OK, "checkin of an inherited lease: %s: %s\n", pool_error_name(rc),
                  pool_last_error());
    rc = pool_checkin(inherited);
    CHILD_REQUIRE(rc == POOL_ESTATE, "second checkin of an inherited lease: %s\n",
                  pool_error_name(rc));
}

/* ================================================================ 6a. fork, psqlODBC */

/* Backend pids of the parent's connections, recorded before a fork. */
struct conns {
    int n;
    int pids[MAX_CONNS];
};

static int has_pid(const struct conns *k, int pid) {
    for (int i = 0; i < k->n; i++)
        if (k->pids[i] == pid) return 1;
    return 0;
}

static void add_pid(struct conns *k, int pid) {
    assert_true(k->n < MAX_CONNS);
    assert_false(has_pid(k, pid));
    k->pids[k->n++] = pid;
}

/* Opens n connections in the pool and leaves them idle there; records their pids. */
static void open_idle(struct ctx *c, pool_t *pool, int n, struct conns *k) {
    pool_lease_t *leases[MAX_CONNS];
    assert_true(n <= MAX_CONNS);
    for (int i = 0; i < n; i++) {
        leases[i] = checkout(pool);
        add_pid(k, (int)identity(c, leases[i]));
    }
    for (int i = 0; i < n; i++) assert_ok(pool_checkin(leases[i]));
}

/* §E's check that no child harmed the parent. All of the parent's connections in `pool` (the
 * pids in k) are idle in the pool now, and the pool has no others: the server still has each
 * of them, idle, and no other session of the test's; the pool hands out exactly those
 * backends, each answering through ODBC over TLS or not as before. */
static void assert_unharmed(struct ctx *c, pool_t *pool, const char *app, const struct conns *k) {
    await_sessions(c->monitor, app, k->n);
    for (int i = 0; i < k->n; i++) {
        char sql[160], state[64];
        snprintf(sql, sizeof sql, "SELECT coalesce(state, '?') FROM pg_stat_activity WHERE pid = %d",
                 k->pids[i]);
        pq_text(c->monitor, sql, state, sizeof state);
        if (strcmp(state, "idle") != 0)
            fail_msg("the parent's backend %d is %s", k->pids[i], state[0] ? state : "gone");
    }
    pool_stats_t before = stats_of(pool);
    assert_int_equal(before.idle, k->n);
    assert_int_equal(before.checked_out, 0);
    assert_int_equal(before.inherited_total, 0);

    pool_lease_t *leases[MAX_CONNS];
    struct conns seen = {0, {0}};
    for (int i = 0; i < k->n; i++) {
        assert_ok(pool_checkout(&leases[i], pool, 0)); /* idle ones: no connect */
        int pid = (int)identity(c, leases[i]);
        if (!has_pid(k, pid)) fail_msg("the parent's pool hands out backend %d, not its own", pid);
        if (has_pid(&seen, pid)) fail_msg("backend %d handed out twice", pid);
        seen.pids[seen.n++] = pid;
        assert_int_equal(int_of(native(leases[i]), "SELECT 1"), 1);
    }
    for (int i = 0; i < k->n; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t after = stats_of(pool);
    assert_int_equal(after.opened_total, before.opened_total);
    assert_int_equal(after.closed_total, before.closed_total);
    assert_int_equal(after.idle, k->n);
}

/* A query that runs while the test forks, on one connection: it waits for an advisory lock
 * the monitor holds, so it is still running when the child is done, however slow the child,
 * and ends when the test releases the lock. */
struct slow_query {
    SQLHDBC dbc;
    char sql[96];
    pthread_t thread;
    int64_t done; /* atomic */
    char value[64];
    char error[512];
};

static void *slow_query_run(void *p) {
    struct slow_query *q = p;
    sql_run(q->dbc, q->sql, 2, q->value, sizeof q->value, q->error, sizeof q->error);
    atomic_set(&q->done, 1);
    return NULL;
}

struct active_arg {
    PGconn *monitor;
    int pid;
};

static int query_is_active(void *p) {
    struct active_arg *a = p;
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'active' "
             "AND query LIKE '%%pg_advisory_xact_lock%%'",
             a->pid);
    return query_int(a->monitor, sql) == 1;
}

/* Starts the query and returns once the server runs it. */
static void start_slow_query(struct slow_query *q, PGconn *monitor, SQLHDBC dbc, int pid,
                             long long key) {
    memset(q, 0, sizeof *q);
    q->dbc = dbc;
    snprintf(q->sql, sizeof q->sql, "SELECT pg_advisory_xact_lock(%lld), 'tag'", key);
    if (pthread_create(&q->thread, NULL, slow_query_run, q) != 0) fail_msg("pthread_create");
    struct active_arg a = {monitor, pid};
    if (!await_true(query_is_active, &a, SERVER_WAIT_MS)) fail_msg("the query never started");
    if (atomic_get(&q->done)) fail_msg("the query ended already: \"%s\"", q->error);
}

/* The query returned its own result: not cancelled, not broken. */
static void assert_slow_query_answered(struct slow_query *q) {
    pthread_join(q->thread, NULL);
    if (q->error[0] || !q->value[0])
        fail_msg("the parent's query in flight at the fork failed: %s", q->error);
    assert_string_equal(q->value, "tag");
}

struct pg_fork {
    struct ctx *c;
    pool_t *pool;
    struct conns parent; /* every backend of the parent's pool, the lent one included */
    pool_lease_t *busy;  /* lent at the fork; its query runs in a parent thread */
    int inherited;       /* connections the child inherits: idle and lent */
};

/* The child's own session: a backend that is none of the parent's, TLS as asked, answering. */
static int child_new_backend(struct pg_fork *f, SQLHDBC dbc) {
    char value[64];
    child_text(dbc, "SELECT pg_backend_pid()", value, sizeof value);
    int pid = atoi(value);
    CHILD_REQUIRE(pid > 0 && !has_pid(&f->parent, pid), "the child was handed backend %s\n", value);
    child_expect(dbc, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                 strcmp(f->c->d->sslmode, "require") == 0 ? "1" : "0");
    child_expect(dbc, "SELECT 1", "1");
    return pid;
}

static int pg_child_exits(void *arg) {
    (void)arg;
    return 0; /* exit() with the pool alive: static destructors run */
}

/* Disposes of the pool (the inherited lease keeps it), then checks the dead lease in, which
 * releases the pool and its ODBC environment. Then exit(). */
static int pg_child_disposes(void *arg) {
    struct pg_fork *f = arg;
    int rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_EBUSY, "pool_dispose with an inherited lease out: %s: %s\n",
                  pool_error_name(rc), pool_last_error());
    CHILD_REQUIRE(strstr(pool_last_error(), "1 lease") != NULL, "message: \"%s\"\n",
                  pool_last_error());
    rc = pool_checkin(f->busy); /* the last lease: releases the pool */
    CHILD_REQUIRE(rc == POOL_OK, "checkin after dispose: %s: %s\n", pool_error_name(rc),
                  pool_last_error());
    return 0;
}

static int pg_child_checks_out(void *arg) {
    struct pg_fork *f = arg;
    child_expect_fresh(f->pool, f->inherited);
    pool_lease_t *lease;
    SQLHDBC dbc = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    int pid = child_new_backend(f, dbc);
    child_say("newpid=%d\n", pid);
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.opened_total == 1 && st.checked_out == 1 && st.inherited_total == f->inherited,
                  "opened %lld checked_out %lld inherited %lld\n", (long long)st.opened_total,
                  (long long)st.checked_out, (long long)st.inherited_total);
    int rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    /* pooled in the child */
    dbc = child_checkout(f->pool, &lease, 0);
    char value[64];
    child_text(dbc, "SELECT pg_backend_pid()", value, sizeof value);
    CHILD_REQUIRE(atoi(value) == pid, "the child's second checkout got backend %s, not %d\n", value,
                  pid);
    rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    child_return_dead_lease(f->busy);
    rc = pool_dispose(f->pool); /* closes the child's own connection only */
    CHILD_REQUIRE(rc == POOL_OK, "pool_dispose: %s: %s\n", pool_error_name(rc), pool_last_error());
    return 0;
}

/* Advisory lock keys: this process's own, so that runs sharing a server never meet. */
static long long next_lock_key(void) {
    static int n;
    return (long long)getpid() * 1000 + n++;
}

/* Four connections; one of them runs a query held by an advisory lock in a parent thread while
 * the test thread forks. The child does `body` and exits. The query must return 'tag', and
 * the parent's four sessions must be as they were. */
static void pg_parent_survives(void **state, const char *base, int (*body)(void *)) {
    struct ctx c;
    ctx_init(&c, state, base);
    struct pg_fork f;
    memset(&f, 0, sizeof f);
    f.c = &c;
    f.pool = make_pool(&c, "pool_size=4 max_overflow=0");
    open_idle(&c, f.pool, 4, &f.parent);
    await_sessions(c.monitor, c.name, 4);
    f.busy = checkout(f.pool);
    f.inherited = 4;
    int busy_pid = (int)identity(&c, f.busy);
    assert_true(has_pid(&f.parent, busy_pid));

    long long key = next_lock_key();
    char sql[96];
    struct slow_query q;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", key);
    pq_exec_ok(c.monitor, sql);
    start_slow_query(&q, c.monitor, native(f.busy), busy_pid, key);
    struct outcome o = run_child(VIA_FORK, body, &f, END_EXIT);
    int overlapped = !atomic_get(&q.done);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", key);
    pq_exec_ok(c.monitor, sql);
    assert_child_ok(&o, base);
    assert_slow_query_answered(&q);
    if (!overlapped) fail_msg("the parent's query ended before the child did: this proved nothing");
    if (body == pg_child_checks_out) {
        int child_pid = (int)child_said(&o, "newpid");
        assert_false(has_pid(&f.parent, child_pid));
        await_backend_gone(c.monitor, child_pid); /* the child's dispose closed its own session */
    }

    pool_stats_t st = stats_of(f.pool);
    assert_int_equal(st.inherited_total, 0);
    assert_int_equal(st.opened_total, 4);
    assert_int_equal(st.checked_out, 1);
    assert_int_equal((int)identity(&c, f.busy), busy_pid);
    assert_int_equal(autocommit_of(native(f.busy)), SQL_AUTOCOMMIT_ON);
    assert_ok(pool_checkin(f.busy));
    assert_unharmed(&c, f.pool, c.name, &f.parent);
    assert_ok(pool_dispose(f.pool));
    await_sessions(c.monitor, c.name, 0);
    ctx_done(&c);
}

static void a_child_that_exits_leaves_the_parents_sessions_and_running_query_alone(void **state) {
    pg_parent_survives(state, "od_fk_exit", pg_child_exits);
}

static void a_child_that_disposes_the_pool_leaves_the_parents_sessions_and_running_query_alone(
    void **state) {
    pg_parent_survives(state, "od_fk_dispose", pg_child_disposes);
}

static void a_child_that_checks_out_gets_a_new_backend_and_counts_the_inherited_ones(void **state) {
    pg_parent_survives(state, "od_fk_checkout", pg_child_checks_out);
}

/* ---------------------------------------------------------------- the storm */

#define STORM_FORKS 30
#define STORM_THREADS 2

struct storm {
    pool_t *churn; /* connects and closes all the time */
    pool_t *still; /* three idle connections all along: every child inherits them */
    struct pg_fork still_fork; /* the still pool's pids, for child_new_backend */
    int64_t stop, rounds, invalidated;
    struct report rep;
};

/* Checkouts and checkins only, every other connection invalidated so that connects and
 * closes keep happening: the only unixODBC calls in these threads are the pool's own. */
static void *storm_worker(void *p) {
    struct storm *s = p;
    for (long n = 0; !atomic_get(&s->stop); n++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, s->churn, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            break;
        }
        if (!pool_lease_native(lease)) report_failure(&s->rep, "a lease without a connection");
        if (n % 2 == 0) {
            pool_invalidate(lease);
            atomic_inc(&s->invalidated);
        }
        rc = pool_checkin(lease);
        if (rc != POOL_OK) report_failure(&s->rep, "checkin: %s", pool_error_name(rc));
        atomic_inc(&s->rounds);
    }
    return NULL;
}

static int child_of_the_storm(void *arg) {
    struct storm *s = arg;
    pool_stats_t st = child_stats(s->still);
    CHILD_REQUIRE(st.inherited_total == 3 && st.idle == 0, "still pool: inherited %lld idle %lld\n",
                  (long long)st.inherited_total, (long long)st.idle);
    pool_lease_t *lease;
    SQLHDBC dbc = child_checkout(s->churn, &lease, 4000);
    child_new_backend(&s->still_fork, dbc);
    st = child_stats(s->churn);
    CHILD_REQUIRE(st.opened_total == 1 && st.checkouts_total == 1,
                  "opened %lld checkouts %lld: not a new connection\n", (long long)st.opened_total,
                  (long long)st.checkouts_total);
    return 0; /* exit() with the lease out */
}

static int storm_progress(void *p) {
    struct storm *s = p;
    return atomic_get(&s->rounds) >= 20 || report_failures(&s->rep) > 0;
}

static void a_storm_of_forks_during_connects_has_no_hang_and_no_harm(void **state) {
    skip_fork_storm_under_asan();
    struct ctx c, still_c;
    ctx_init(&c, state, "od_storm");
    ctx_init(&still_c, state, "od_still");
    static struct storm s;
    memset(&s, 0, sizeof s);
    report_init(&s.rep);
    s.churn = make_pool(&c, "pool_size=2 max_overflow=4");
    s.still = make_pool(&still_c, "pool_size=3 max_overflow=0");
    open_idle(&still_c, s.still, 3, &s.still_fork.parent);
    s.still_fork.c = &c;

    pthread_t threads[STORM_THREADS];
    if (!start_threads(threads, STORM_THREADS, storm_worker, &s)) fail_msg("pthread_create");
    await_true(storm_progress, &s, SERVER_WAIT_MS);
    int64_t connects_before = stats_of(s.churn).opened_total;
    int64_t start = now_ms();
    int hangs = 0, failures = 0, forks = 0;
    struct outcome first;
    memset(&first, 0, sizeof first);
    while (forks < STORM_FORKS && hangs + failures < 3) { /* a broken library fails fast */
        struct outcome o = finish_child(start_child(VIA_FORK, STORM_WATCHDOG_S, child_of_the_storm, &s, END_EXIT));
        forks++;
        if (!child_ok(&o)) {
            if (child_hung(&o)) hangs++;
            else failures++;
            if (hangs + failures == 1) first = o;
        }
    }
    int64_t took = now_ms() - start;
    int64_t connects = stats_of(s.churn).opened_total - connects_before;
    atomic_set(&s.stop, 1);
    join_threads(threads, STORM_THREADS);

    print_message("      %d forks in %lld ms; meanwhile the parent did %lld rounds, %lld connects "
                  "and %lld invalidations; %d children hung, %d failed\n",
                  forks, (long long)took, (long long)s.rounds, (long long)connects,
                  (long long)s.invalidated, hangs, failures);
    if (hangs || failures) {
        char d[96];
        fail_msg("%d of %d children hung and %d failed; the first %s: %s", hangs, forks, failures,
                 describe(&first, d, sizeof d), first.out);
    }
    assert_no_failures(&s.rep);
    assert_true(connects > 0); /* the forks did meet connects */

    /* the parent's sessions: the three every child inherited, and whatever the churning pool
     * keeps idle now */
    assert_unharmed(&still_c, s.still, still_c.name, &s.still_fork.parent);
    struct conns kept = {0, {0}};
    pool_stats_t st = stats_of(s.churn);
    assert_int_equal(st.checked_out, 0);
    pool_lease_t *leases[MAX_CONNS];
    for (int i = 0; i < st.idle; i++) {
        assert_ok(pool_checkout(&leases[i], s.churn, 0));
        add_pid(&kept, (int)identity(&c, leases[i]));
    }
    for (int i = 0; i < st.idle; i++) assert_ok(pool_checkin(leases[i]));
    assert_unharmed(&c, s.churn, c.name, &kept);

    assert_ok(pool_dispose(s.churn));
    assert_ok(pool_dispose(s.still));
    await_sessions(c.monitor, c.name, 0);
    await_sessions(c.monitor, still_c.name, 0);
    ctx_done(&still_c);
    ctx_done(&c);
}

/* ================================================================ 6b. fork, SQLite */

struct lite_fork {
    pool_t *pool;
    pool_lease_t *busy; /* the parent's connection in a write transaction, lent at the fork */
};

/* Disposes of its copy of the pool and checks the dead lease in, which releases the pool and
 * its ODBC environment; then exit(). */
static int lite_child_disposes(void *arg) {
    struct lite_fork *f = arg;
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.inherited_total == 2 && st.idle == 0 && st.checked_out == 0,
                  "inherited %lld idle %lld checked_out %lld\n", (long long)st.inherited_total,
                  (long long)st.idle, (long long)st.checked_out);
    int rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_EBUSY, "pool_dispose with an inherited lease out: %s: %s\n",
                  pool_error_name(rc), pool_last_error());
    rc = pool_checkin(f->busy);
    CHILD_REQUIRE(rc == POOL_OK, "checkin after dispose: %s: %s\n", pool_error_name(rc),
                  pool_last_error());
    return 0;
}

/* Opens a fresh connection and reads: it sees the committed rows only. Then disposes. */
static int lite_child_reads(void *arg) {
    struct lite_fork *f = arg;
    child_expect_fresh(f->pool, 2);
    pool_lease_t *lease;
    SQLHDBC dbc = child_checkout(f->pool, &lease, SERVER_WAIT_MS);
    child_expect(dbc, "SELECT count(*) FROM rows_kept", "3"); /* the parent's 4th is not committed */
    pool_stats_t st = child_stats(f->pool);
    CHILD_REQUIRE(st.opened_total == 1 && st.checked_out == 1 && st.inherited_total == 2,
                  "opened %lld checked_out %lld inherited %lld\n", (long long)st.opened_total,
                  (long long)st.checked_out, (long long)st.inherited_total);
    int rc = pool_checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s\n", pool_error_name(rc));
    child_return_dead_lease(f->busy);
    rc = pool_dispose(f->pool);
    CHILD_REQUIRE(rc == POOL_OK, "pool_dispose: %s: %s\n", pool_error_name(rc), pool_last_error());
    return 0;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The parent has a write transaction open (one row not committed, the rollback journal next to
 * the database) and forks; the child does `body` and exits. The journal is still there, the
 * parent's commit succeeds, and a fresh connection finds every row and a sound database. */
static void lite_parent_commits_after_the_child(void **state, const char *base,
                                                int (*body)(void *)) {
    struct ctx c;
    char journal[600], value[64];
    ctx_init(&c, state, base);
    snprintf(journal, sizeof journal, "%s-journal", c.db);
    side_exec(&c, "CREATE TABLE rows_kept (x int)");
    side_exec(&c, "INSERT INTO rows_kept VALUES (1)");
    side_exec(&c, "INSERT INTO rows_kept VALUES (2)");
    side_exec(&c, "INSERT INTO rows_kept VALUES (3)");

    struct lite_fork f;
    memset(&f, 0, sizeof f);
    f.pool = make_pool(&c, "pool_size=2 max_overflow=0");
    pool_lease_t *leases[2]; /* two connections: one stays idle, one writes */
    for (int i = 0; i < 2; i++) leases[i] = checkout(f.pool);
    for (int i = 0; i < 2; i++) assert_ok(pool_checkin(leases[i]));
    f.busy = checkout(f.pool);
    SQLHDBC dbc = native(f.busy);
    set_autocommit(dbc, SQL_AUTOCOMMIT_OFF);
    exec_ok(dbc, "INSERT INTO rows_kept VALUES (4)");
    assert_int_equal(int_of(dbc, "SELECT count(*) FROM rows_kept"), 4);
    if (!file_exists(journal)) fail_msg("no rollback journal %s: no write transaction open", journal);

    struct outcome o = run_child(VIA_FORK, body, &f, END_EXIT);
    assert_child_ok(&o, base);

    if (!file_exists(journal)) fail_msg("the child deleted the parent's journal %s", journal);
    SQLRETURN rc = SQLEndTran(SQL_HANDLE_DBC, dbc, SQL_COMMIT);
    if (rc != SQL_SUCCESS) {
        char err[512];
        diag_text(SQL_HANDLE_DBC, dbc, err, sizeof err);
        fail_msg("the parent's commit returned %d: %s", (int)rc, err);
    }
    assert_false(file_exists(journal)); /* the commit ended the transaction */
    set_autocommit(dbc, SQL_AUTOCOMMIT_ON);
    assert_ok(pool_checkin(f.busy));

    struct raw fresh;
    raw_connect(&fresh, c.conninfo);
    assert_int_equal(int_of(fresh.dbc, "SELECT count(*) FROM rows_kept"), 4);
    assert_int_equal(int_of(fresh.dbc, "SELECT sum(x) FROM rows_kept"), 10);
    text_of(fresh.dbc, "PRAGMA integrity_check", value, sizeof value);
    assert_string_equal(value, "ok");
    raw_close(&fresh);

    pool_stats_t st = stats_of(f.pool);
    assert_int_equal(st.inherited_total, 0);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.idle, 2);
    assert_ok(pool_dispose(f.pool));
    ctx_done(&c);
}

static void a_child_disposing_its_copy_leaves_the_parents_write_transaction_intact(void **state) {
    lite_parent_commits_after_the_child(state, "od_fk_lite_dispose", lite_child_disposes);
}

static void a_child_reading_on_a_fresh_connection_leaves_the_parents_write_transaction_intact(
    void **state) {
    lite_parent_commits_after_the_child(state, "od_fk_lite_read", lite_child_reads);
}

/* ================================================================ 7. unixODBC's own pooling */

/* Run in a process of its own (the test binary exec'd with --dm-pooling DB): unixODBC reads
 * odbcinst.ini once per process, so the private ODBCSYSINI must be in place before the first
 * ODBC call. Prints what pool_create said, refusing and allowing DM pooling. */
static int dm_pooling_helper(const char *db) {
    alarm(CHILD_WATCHDOG_S);
    char conninfo[600];
    snprintf(conninfo, sizeof conninfo, "odbc:Driver=SQLite3;Database=%s", db);
    pool_t *pool = NULL;
    int rc = pool_create(&pool, conninfo, NULL);
    printf("refuse=%s\nrefuse_msg=%s\n", pool_error_name(rc), pool_last_error());
    if (rc == POOL_OK) pool_dispose(pool);
    rc = pool_create(&pool, conninfo, "odbc_dm_pooling=allow");
    printf("allow=%s\n", pool_error_name(rc));
    if (rc == POOL_OK) {
        pool_lease_t *lease = NULL;
        rc = pool_checkout(&lease, pool, SERVER_WAIT_MS);
        printf("checkout=%s %s\n", pool_error_name(rc), pool_last_error());
        if (rc == POOL_OK) {
            char value[32] = "", err[512] = "";
            sql_run(pool_lease_native(lease), "SELECT 41 + 1", 1, value, sizeof value, err,
                    sizeof err);
            printf("select=%s %s\n", value, err);
            pool_checkin(lease);
        }
        pool_dispose(pool);
    }
    return 0;
}

/* The helper's report under ODBCSYSINI=sysini, in out. */
static void run_dm_pooling_helper(const char *sysini, const char *db, char *out, size_t len) {
    /* the environment is built before fork: the child only execs */
    static char *envp[512];
    char sysini_var[600];
    snprintf(sysini_var, sizeof sysini_var, "ODBCSYSINI=%s", sysini);
    size_t n = 0;
    for (char **e = environ; *e && n < sizeof envp / sizeof envp[0] - 2; e++)
        if (strncmp(*e, "ODBCSYSINI=", 11) != 0) envp[n++] = *e;
    envp[n++] = sysini_var;
    envp[n] = NULL;
    char self[4096];
    ssize_t self_len = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(self_len > 0);
    self[self_len] = 0;
    char *argv[] = {self, "--dm-pooling", (char *)db, NULL};

    int fds[2];
    if (pipe(fds) != 0) fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execve(self, argv, envp);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while (used < len - 1 && (got = read(fds[0], out + used, len - 1 - used)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        used += (size_t)got;
    }
    out[used] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the helper ended with status 0x%x: %s", status, out);
}

static void unixodbc_pooling_is_refused_unless_allowed(void **state) {
    (void)state;
    const char *dir = env_or_fail("CONNPOOL_TEST_SQLITE_DIR");
    char sysini[512], ini[600], db[600], driver[512] = "", out[4096];
    snprintf(sysini, sizeof sysini, "%s/dm_pooling_%d", dir, (int)getpid());
    snprintf(ini, sizeof ini, "%s/odbcinst.ini", sysini);
    snprintf(db, sizeof db, "%s/dm_pooling_%d.db", dir, (int)getpid());
    if (mkdir(sysini, 0700) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", sysini, strerror(errno));
    SQLGetPrivateProfileString("SQLite3", "Driver", "", driver, sizeof driver, "ODBCINST.INI");
    if (!driver[0]) fail_msg("no Driver= for SQLite3 in $ODBCSYSINI/odbcinst.ini");
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f, "[ODBC]\nPooling=Yes\n\n[SQLite3]\nDriver=%s\n", driver);
    assert_int_equal(fclose(f), 0);

    /* first the harness's own ini, without pooling: a pool is created as usual */
    run_dm_pooling_helper(env_or_fail("ODBCSYSINI"), db, out, sizeof out);
    assert_contains(out, "refuse=POOL_OK\n");

    run_dm_pooling_helper(sysini, db, out, sizeof out);
    assert_contains(out, "refuse=POOL_EINVAL\n");
    const char *msg = strstr(out, "refuse_msg=");
    assert_non_null(msg);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(msg, "\n"), msg);
    assert_contains(line, "Pooling");
    assert_contains(line, "odbc_dm_pooling=allow");
    /* allowed: created, and it works */
    assert_contains(out, "allow=POOL_OK\n");
    assert_contains(out, "checkout=POOL_OK");
    assert_contains(out, "select=42");

    unlink(ini);
    rmdir(sysini);
    unlink(db);
}

/* ================================================================ 8. bad input */

static void an_unknown_driver_fails_at_checkout_naming_it(void **state) {
    (void)state;
    char msg[512];
    checkout_fails_to_connect("odbc:Driver=NoSuchDriver;Database=nothing", msg, sizeof msg);
    assert_contains(msg, "Can't open lib 'NoSuchDriver'");
}

static void a_sqlite_file_in_a_missing_directory_fails_naming_the_directory(void **state) {
    (void)state;
    char dir[512], conninfo[700], msg[1024];
    snprintf(dir, sizeof dir, "%s/no_such_dir_%d", env_or_fail("CONNPOOL_TEST_SQLITE_DIR"),
             (int)getpid());
    snprintf(conninfo, sizeof conninfo, "odbc:Driver=SQLite3;Database=%s/app.db", dir);
    checkout_fails_to_connect(conninfo, msg, sizeof msg);
    assert_contains(msg, dir);
    assert_contains(msg, "does not exist");
}

/* The harness's psqlODBC string with PWD replaced (the harness puts PWD last). */
static void pg_with_password(char *buf, size_t len, const char *pwd_assignment) {
    char base[512];
    snprintf(base, sizeof base, "%s", env_or_fail("CONNPOOL_TEST_ODBC_PG"));
    char *pwd = strstr(base, ";PWD=");
    assert_non_null(pwd);
    *pwd = 0;
    snprintf(buf, len, "%s;%s;Pqopt={application_name=od_bad_password}", base, pwd_assignment);
}

static void a_wrong_password_fails_at_checkout_without_showing_it(void **state) {
    (void)state;
    char conninfo[700], msg[1024];
    pg_with_password(conninfo, sizeof conninfo, "PWD=definitely_wrong_42");
    checkout_fails_to_connect(conninfo, msg, sizeof msg);
    assert_contains(msg, "password authentication failed");
    assert_lacks(msg, "definitely_wrong_42");
}

/* Braced ODBC values: a ';' or quotes inside, and '}}' for a '}'. psqlODBC parses each and
 * reaches the server (which refuses them); the message never shows them. */
static void passwords_with_quotes_and_braces_are_never_shown(void **state) {
    (void)state;
    static const struct {
        const char *assignment, *password;
    } cases[] = {
        {"PWD={we;ird_pw}", "we;ird_pw"},
        {"PWD={hun'ter\"2_pw}", "hun'ter\"2_pw"},
        {"PWD={s3cr}}et_x9}", "s3cr}et_x9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char conninfo[700], msg[1024];
        pg_with_password(conninfo, sizeof conninfo, cases[i].assignment);
        checkout_fails_to_connect(conninfo, msg, sizeof msg);
        assert_contains(msg, "password authentication failed");
        if (strstr(msg, cases[i].password) || strstr(msg, cases[i].assignment + 4))
            fail_msg("%s: the message shows the password: \"%s\"", cases[i].assignment, msg);
    }
}

/* Where a message does repeat the password (here the connector's own hint quotes Database=,
 * whose path contains it), all of it is masked: the secret is the value as the driver decodes
 * it, '}}' being one '}'. No four characters of it in a row may remain. */
static void a_password_with_quotes_or_an_escaped_brace_is_masked_whole(void **state) {
    (void)state;
    static const struct {
        const char *assignment, *password;
    } cases[] = {
        {"PWD={hun'ter\"2_pw}", "hun'ter\"2_pw"},
        {"PWD={s3cr}}et_x9}", "s3cr}et_x9"},
    };
    const char *dir = env_or_fail("CONNPOOL_TEST_SQLITE_DIR");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char conninfo[700], msg[1024];
        snprintf(conninfo, sizeof conninfo, "odbc:Driver=SQLite3;Database=%s/no_%s/app.db;%s", dir,
                 cases[i].password, cases[i].assignment);
        checkout_fails_to_connect(conninfo, msg, sizeof msg);
        assert_contains(msg, "does not exist"); /* the hint is there: the check below can bite */
        const char *pw = cases[i].password;
        for (size_t at = 0; at + 4 <= strlen(pw); at++) {
            char part[8];
            snprintf(part, sizeof part, "%.4s", pw + at);
            if (strstr(msg, part))
                fail_msg("%s: \"%s\" of the password shows in \"%s\"", cases[i].assignment, part,
                         msg);
        }
    }
}

/* ================================================================ 9. inside the driver */

#define CONNECT_THREADS 4

struct connects {
    pool_t *pool;
    int64_t started, done;
    pool_lease_t *leases[CONNECT_THREADS];
    struct report rep;
};

static void *connect_worker(void *p) {
    struct connects *k = p;
    int64_t me = __atomic_fetch_add(&k->started, 1, __ATOMIC_ACQ_REL);
    pool_lease_t *lease = NULL;
    int rc = pool_checkout(&lease, k->pool, SERVER_WAIT_MS);
    if (rc != POOL_OK)
        report_failure(&k->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
    k->leases[me] = lease;
    atomic_inc(&k->done);
    return NULL;
}

/* Backends of this test that run the connect's own statement (ConnSettings) now. */
static long long connects_in_the_driver(struct ctx *c) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND state = 'active' AND query LIKE '%%pg_sleep(0.25)%%'", c->name);
    return query_int(c->monitor, sql);
}

/* psqlODBC's connect calls setlocale(LC_CTYPE, ""), which frees the locale name that another
 * thread's connect may be reading (an ASan heap-use-after-free in the fork storm): the pool
 * must not run two SQLDriverConnects at once. Each connect here runs a 250 ms statement
 * inside SQLDriverConnect (psqlODBC's ConnSettings), which the monitor sees: never two at
 * once, and every connect came. */
static void concurrent_connects_never_run_in_the_driver_at_once(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_turns");
    strncat(c.conninfo, ";ConnSettings={SELECT pg_sleep(0.25)}",
            sizeof c.conninfo - strlen(c.conninfo) - 1);
    static struct connects k;
    memset(&k, 0, sizeof k);
    report_init(&k.rep);
    k.pool = make_pool(&c, "pool_size=4 max_overflow=0 pool_timeout=30");
    pthread_t threads[CONNECT_THREADS];
    int64_t start = now_ms();
    if (!start_threads(threads, CONNECT_THREADS, connect_worker, &k)) fail_msg("pthread_create");
    long long most = 0, samples = 0;
    while (atomic_get(&k.done) < CONNECT_THREADS && now_ms() - start < SERVER_WAIT_MS) {
        long long now = connects_in_the_driver(&c);
        if (now > most) most = now;
        samples++;
    }
    join_threads(threads, CONNECT_THREADS);
    int64_t took = now_ms() - start;
    print_message("      %d connects of 250 ms each took %lld ms; at most %lld at once in the "
                  "driver (%lld samples)\n", CONNECT_THREADS, (long long)took, most, samples);
    assert_no_failures(&k.rep);
    assert_int_equal(most, 1); /* 0: the monitor saw none, so the check could not bite */
    assert_true(took >= CONNECT_THREADS * 250);
    for (int i = 0; i < CONNECT_THREADS; i++) assert_ok(pool_checkin(k.leases[i]));
    assert_int_equal(stats_of(k.pool).opened_total, CONNECT_THREADS);
    assert_ok(pool_dispose(k.pool));
    ctx_done(&c);
}

/* A statement of the pool's (pool_query) that runs for 2 s must not hold up a fork: only
 * unixODBC's handle allocation, connect and disconnect hold the connect gate. */
struct long_query {
    pool_lease_t *lease;
    int rc;
    char value[64];
    char error[512];
    int64_t done;
};

static void *long_query_run(void *p) {
    struct long_query *q = p;
    pool_result_t *res = NULL;
    q->rc = pool_query(&res, q->lease, "SELECT pg_sleep(2), 'tag'", 0, NULL);
    if (q->rc == POOL_OK) {
        const char *v = pool_result_value(res, 0, 1);
        snprintf(q->value, sizeof q->value, "%s", v ? v : "");
        pool_result_free(res);
    } else {
        snprintf(q->error, sizeof q->error, "%s", pool_last_error());
    }
    atomic_set(&q->done, 1);
    return NULL;
}

static void a_fork_does_not_wait_for_a_long_statement(void **state) {
    struct ctx c;
    ctx_init(&c, state, "od_fork_long");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    static struct long_query q;
    memset(&q, 0, sizeof q);
    q.lease = checkout(pool);
    int pid = (int)identity(&c, q.lease);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, long_query_run, &q), 0);
    int64_t waited = now_ms();
    while (!backend_is_active(c.monitor, pid, "pg_sleep") && now_ms() - waited < SERVER_WAIT_MS)
        sched_yield();
    assert_true(backend_is_active(c.monitor, pid, "pg_sleep"));
    int64_t start = now_ms();
    pid_t child = fork();
    if (child == 0) _exit(0);
    int64_t took = now_ms() - start;
    assert_true(child > 0);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    int64_t query_left = atomic_get(&q.done);
    pthread_join(thread, NULL);
    print_message("      fork() during a 2 s pool_query returned in %lld ms\n", (long long)took);
    if (q.rc != POOL_OK) fail_msg("the query failed: %s", q.error);
    assert_string_equal(q.value, "tag");
    assert_false(query_left); /* the fork came back while the statement still ran */
    assert_true(took < 1000);
    assert_ok(pool_checkin(q.lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* Statements run outside the gate: forks while two threads run pool_query in a loop. Each
 * child opens a connection of its own and runs a statement, under a watchdog: none may hang
 * in unixODBC's mutexes, and the parent's statements all succeed. */
struct query_storm {
    pool_t *pool;
    int64_t stop, rounds;
    struct report rep;
};

static void *query_storm_worker(void *p) {
    struct query_storm *s = p;
    pool_lease_t *lease = NULL;
    int rc = pool_checkout(&lease, s->pool, SERVER_WAIT_MS);
    if (rc != POOL_OK) {
        report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
        return NULL;
    }
    while (!atomic_get(&s->stop)) {
        pool_result_t *res = NULL;
        rc = pool_query(&res, lease, "SELECT 1", 0, NULL);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "query: %s: %s", pool_error_name(rc), pool_last_error());
            break;
        }
        pool_result_free(res);
        atomic_inc(&s->rounds);
    }
    pool_checkin(lease);
    return NULL;
}

static int child_of_the_query_storm(void *arg) {
    struct query_storm *s = arg;
    pool_lease_t *lease;
    SQLHDBC dbc = child_checkout(s->pool, &lease, 4000);
    child_expect(dbc, "SELECT 7", "7");
    return 0;
}

static int query_storm_progress(void *p) {
    struct query_storm *s = p;
    return atomic_get(&s->rounds) >= 50 || report_failures(&s->rep) > 0;
}

static void a_storm_of_forks_during_statements_has_no_hang(void **state) {
    skip_under_valgrind();
    skip_fork_storm_under_asan();
    struct ctx c;
    ctx_init(&c, state, "od_qstorm");
    static struct query_storm s;
    memset(&s, 0, sizeof s);
    report_init(&s.rep);
    s.pool = make_pool(&c, "pool_size=2 max_overflow=1");
    pthread_t threads[2];
    if (!start_threads(threads, 2, query_storm_worker, &s)) fail_msg("pthread_create");
    await_true(query_storm_progress, &s, SERVER_WAIT_MS);
    int hangs = 0, failures = 0, forks = 0;
    int64_t rounds_before = atomic_get(&s.rounds), start = now_ms();
    struct outcome first;
    memset(&first, 0, sizeof first);
    while (forks < STORM_FORKS && hangs + failures < 3) {
        struct outcome o = finish_child(
            start_child(VIA_FORK, STORM_WATCHDOG_S, child_of_the_query_storm, &s, END_EXIT));
        forks++;
        if (!child_ok(&o)) {
            if (child_hung(&o)) hangs++;
            else failures++;
            if (hangs + failures == 1) first = o;
        }
    }
    int64_t took = now_ms() - start, rounds = atomic_get(&s.rounds) - rounds_before;
    atomic_set(&s.stop, 1);
    join_threads(threads, 2);
    print_message("      %d forks in %lld ms during %lld statements; %d children hung, %d failed\n",
                  forks, (long long)took, (long long)rounds, hangs, failures);
    if (hangs || failures) {
        char d[96];
        fail_msg("%d of %d children hung and %d failed; the first %s: %s", hangs, forks, failures,
                 describe(&first, d, sizeof d), first.out);
    }
    assert_no_failures(&s.rep);
    assert_true(rounds > 0);
    assert_ok(pool_dispose(s.pool));
    await_sessions(c.monitor, c.name, 0);
    ctx_done(&c);
}

/* ================================================================ 10. the fork gate */

/* The gate every ODBC call of the pool's holds (fork.cc). Two threads fork at once: Y from
 * inside a connect (a custom connector's open callback, which holds the gate), X from outside,
 * its fork waiting for Y's connect. Each fork's parent handler must undo only what its own
 * prepare did: with one flag shared by both, X's fork left the gate shut and every later
 * connect in the process hung. */
struct two_forks {
    int64_t y_in_open, x_entering_fork, armed, connects_done;
    pid_t x_tid;
    pthread_t x_thread;
    struct report rep;
};
static struct two_forks tf;

/* Registered after the library's, so glibc runs it before the library's prepare. */
static void two_forks_prepare(void) {
    if (atomic_get(&tf.armed) && pthread_equal(pthread_self(), tf.x_thread))
        atomic_set(&tf.x_entering_fork, 1);
}

static int x_entered_fork(void *unused) {
    (void)unused;
    return atomic_get(&tf.x_entering_fork) != 0;
}

/* X waits (state S) in the library's prepare handler, for Y's connect to leave the gate. */
static int x_waits_for_the_gate(void *unused) {
    (void)unused;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tf.x_tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = strrchr(buf, ')');
    return end && end[1] == ' ' && end[2] == 'S';
}

static int fork_and_reap(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

static int y_in_open(void *unused) {
    (void)unused;
    return atomic_get(&tf.y_in_open) != 0;
}

static int gate_open(void **conn, char *err, size_t len, int64_t timeout_ms, void *forks) {
    (void)timeout_ms;
    static int dummy;
    *conn = &dummy;
    if (!forks) return 0;
    atomic_set(&tf.y_in_open, 1);
    if (!await_true(x_entered_fork, NULL, 5000) || !await_true(x_waits_for_the_gate, NULL, 5000)) {
        snprintf(err, len, "thread X did not reach the gate");
        return 1;
    }
    if (!fork_and_reap()) {
        snprintf(err, len, "fork from inside the connect failed");
        return 1;
    }
    return 0;
}

static void gate_close(void *conn, void *user_data) {
    (void)conn;
    (void)user_data;
}

static void *x_forks(void *unused) {
    (void)unused;
    tf.x_tid = (pid_t)syscall(SYS_gettid);
    if (!await_true(y_in_open, NULL, 5000)) report_failure(&tf.rep, "Y never opened");
    else if (!fork_and_reap()) report_failure(&tf.rep, "X's fork failed");
    return NULL;
}

static void *connect_after(void *pool) {
    pool_lease_t *lease = NULL;
    int rc = pool_checkout(&lease, pool, 2000);
    if (rc != POOL_OK) report_failure(&tf.rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
    else pool_checkin(lease);
    atomic_set(&tf.connects_done, 1);
    return NULL;
}

static int connects_done(void *unused) {
    (void)unused;
    return atomic_get(&tf.connects_done) != 0;
}

static void a_fork_from_inside_a_connect_during_another_fork_leaves_the_gate_open(void **state) {
    (void)state;
    skip_under_valgrind();
    memset(&tf, 0, sizeof tf);
    report_init(&tf.rep);
    pool_t *forking = NULL, *plain = NULL;
    int marker = 1;
    assert_ok(pool_create_custom(&forking, "pool_size=1", gate_open, gate_close, NULL, NULL, NULL,
                                 &marker));
    assert_ok(pool_create_custom(&plain, "pool_size=1", gate_open, gate_close, NULL, NULL, NULL,
                                 NULL));
    static int registered;
    if (!registered++) assert_int_equal(pthread_atfork(two_forks_prepare, NULL, NULL), 0);
    assert_int_equal(pthread_create(&tf.x_thread, NULL, x_forks, NULL), 0);
    atomic_set(&tf.armed, 1);
    pool_lease_t *lease = checkout(forking); /* Y: this thread */
    pthread_join(tf.x_thread, NULL);
    atomic_set(&tf.armed, 0);
    assert_ok(pool_checkin(lease));

    pthread_t after;
    assert_int_equal(pthread_create(&after, NULL, connect_after, plain), 0);
    if (!await_true(connects_done, NULL, 3000))
        fail_msg("a connect after the two forks still waits for the gate: it stayed shut");
    pthread_join(after, NULL);
    assert_no_failures(&tf.rep);
    assert_ok(pool_dispose(forking));
    assert_ok(pool_dispose(plain));
}

/* ---------------------------------------------------------------- main */

#define CASE(drv, fn) \
    { #drv ": " #fn, fn, arm_watchdog, disarm_watchdog, &drv }
#define BOTH(fn) CASE(psqlodbc, fn), CASE(sqlite, fn)
#define ANY(fn) \
    { #fn, fn, arm_watchdog, disarm_watchdog, NULL }

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--dm-pooling") == 0) return dm_pooling_helper(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();

    const struct CMUnitTest tests[] = {
        /* 1-4: the pool's promises, through both drivers */
        BOTH(three_hundred_threads_share_fifteen_connections),
        BOTH(a_full_pool_times_out_with_sqlalchemys_message),
        BOTH(overflow_connections_are_closed_at_checkin),
        BOTH(an_uncommitted_insert_is_rolled_back_and_autocommit_comes_back_on),
        BOTH(reset_on_return_commit_keeps_the_insert_and_turns_autocommit_back_on),
        BOTH(a_begin_through_the_native_handle_is_rolled_back_at_checkin),
        CASE(psqlodbc, reset_on_return_discard_hands_out_a_clean_session),
        CASE(sqlite, reset_on_return_discard_is_refused_naming_the_reason),
        CASE(psqlodbc, a_failed_transaction_comes_back_usable),
        /* 5: broken connections */
        BOTH(an_invalidated_connection_is_closed_and_replaced),
        CASE(psqlodbc, a_backend_killed_while_checked_out_fails_the_query_and_is_not_handed_out_again),
        CASE(psqlodbc, a_backend_killed_while_idle_is_replaced_after_at_most_one_failure),
        CASE(psqlodbc, with_pre_ping_a_backend_killed_while_idle_is_replaced_unseen),
        CASE(psqlodbc_tls, with_pre_ping_a_backend_killed_while_idle_is_replaced_unseen),
        CASE(psqlodbc, with_pre_ping_and_a_long_interval_a_backend_killed_while_idle_is_replaced),
        /* 6: fork */
        CASE(psqlodbc, a_child_that_exits_leaves_the_parents_sessions_and_running_query_alone),
        CASE(psqlodbc_tls, a_child_that_exits_leaves_the_parents_sessions_and_running_query_alone),
        CASE(psqlodbc, a_child_that_disposes_the_pool_leaves_the_parents_sessions_and_running_query_alone),
        CASE(psqlodbc_tls, a_child_that_disposes_the_pool_leaves_the_parents_sessions_and_running_query_alone),
        CASE(psqlodbc, a_child_that_checks_out_gets_a_new_backend_and_counts_the_inherited_ones),
        CASE(psqlodbc_tls, a_child_that_checks_out_gets_a_new_backend_and_counts_the_inherited_ones),
        CASE(psqlodbc, a_storm_of_forks_during_connects_has_no_hang_and_no_harm),
        CASE(psqlodbc_tls, a_storm_of_forks_during_connects_has_no_hang_and_no_harm),
        CASE(sqlite, a_child_disposing_its_copy_leaves_the_parents_write_transaction_intact),
        CASE(sqlite, a_child_reading_on_a_fresh_connection_leaves_the_parents_write_transaction_intact),
        /* 7: unixODBC's pooling */
        ANY(unixodbc_pooling_is_refused_unless_allowed),
        /* 8: bad input */
        ANY(an_unknown_driver_fails_at_checkout_naming_it),
        ANY(a_sqlite_file_in_a_missing_directory_fails_naming_the_directory),
        ANY(a_wrong_password_fails_at_checkout_without_showing_it),
        ANY(passwords_with_quotes_and_braces_are_never_shown),
        ANY(a_password_with_quotes_or_an_escaped_brace_is_masked_whole),
        /* 9: inside the driver */
        CASE(psqlodbc, concurrent_connects_never_run_in_the_driver_at_once),
        /* 10: the fork gate */
        CASE(psqlodbc, a_fork_does_not_wait_for_a_long_statement),
        CASE(psqlodbc, a_storm_of_forks_during_statements_has_no_hang),
        CASE(psqlodbc_tls, a_storm_of_forks_during_statements_has_no_hang),
        ANY(a_fork_from_inside_a_connect_during_another_fork_leaves_the_gate_open),
    };
    /* CONNPOOL_TEST_FILTER=*storm* runs only the tests whose name matches */
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("odbc", tests, NULL, NULL);
}
