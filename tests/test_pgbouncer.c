/* The pool behind PgBouncer in transaction mode: the core scenarios, a stress test, and what
 * the pool sends to the server of its own accord (only what transaction pooling allows).
 *
 * Run under tests/with-postgres.sh and tests/with-pgbouncer.sh: PgBouncer 1.18 in
 * pool_mode=transaction in front of the test server, with at most 4 server connections per
 * database, so more pool connections (clients of PgBouncer) than server connections share
 * them. Its databases: CONNPOOL_TEST_PGBOUNCER (the test database), connpool_single (the same
 * database over exactly one server connection: what one client leaves in that session, the
 * next one meets) and connpool_kill (the same, for the test that kills PgBouncer's clients).
 * PgBouncer's admin console (SHOW STATS, SHOW POOLS, KILL) counts what reaches the server:
 * its total_query_count counts every statement a client sends, the empty ping included, and
 * is updated as they run, so exact counts prove what the pool sent and did not send.
 *
 * What transaction pooling breaks: anything that outlives a transaction on the server
 * connection, since the next transaction may run on another one: SET outside a transaction,
 * named prepared statements, LISTEN, session advisory locks, temporary tables, WITH HOLD
 * cursors. The pool's reset-on-return sends ROLLBACK (or COMMIT) only when the lease left a
 * transaction open, inside that transaction, while PgBouncer still links the client to its
 * server connection; it never sends DISCARD ALL or RESET ALL. The pre-ping is an empty query
 * outside any transaction. pool_query uses PQexecParams: unnamed statements, which live only
 * until the next Parse of the same transaction. So none of it depends on the server
 * connection staying the same. A lease that runs SET outside a transaction leaves it on a
 * server connection other clients share: a caveat to document (use SET LOCAL inside a
 * transaction), not something the pool can repair.
 *
 * Every test names its connections with its own application_name (suffixed with this
 * process's pid). cmocka's assertions run only on the test thread: worker threads record
 * failures in a shared report. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

/* A pool of libpq connections to PgBouncer's database `db` (NULL: the test database). A later
 * dbname overrides the one in CONNPOOL_TEST_PGBOUNCER (libpq keeps the last). */
static pool_t *bouncer_pool(const char *app, const char *db, const char *options) {
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s application_name=%s%s%s",
             env_or_fail("CONNPOOL_TEST_PGBOUNCER"), app, db ? " dbname=" : "", db ? db : "");
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, options));
    return pool;
}

static PGconn *admin_connect(void) {
    PGconn *c = PQconnectdb(env_or_fail("CONNPOOL_TEST_PGBOUNCER_ADMIN"));
    if (PQstatus(c) != CONNECTION_OK) fail_msg("admin console: %s", PQerrorMessage(c));
    return c;
}

static void admin_command(PGconn *admin, const char *command) {
    PGresult *r = PQexec(admin, command);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", command, PQerrorMessage(admin));
    PQclear(r);
}

/* Column `column` of the row for `db` in an admin SHOW command; 0 if PgBouncer has no row for
 * it yet (SHOW STATS lists a database once it was used). */
static long long bouncer_value(PGconn *admin, const char *show, const char *db,
                               const char *column) {
    PGresult *r = PQexec(admin, show);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", show, PQerrorMessage(admin));
    int dbcol = PQfnumber(r, "database"), col = PQfnumber(r, column);
    if (dbcol < 0 || col < 0) fail_msg("%s has no column %s", show, column);
    long long v = 0;
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, dbcol), db) == 0) v += strtoll(PQgetvalue(r, i, col), NULL, 10);
    PQclear(r);
    return v;
}

/* Rows of an admin SHOW command (SHOW SERVERS, SHOW CLIENTS) for `db`. */
static long long bouncer_rows(PGconn *admin, const char *show, const char *db) {
    PGresult *r = PQexec(admin, show);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", show, PQerrorMessage(admin));
    int dbcol = PQfnumber(r, "database");
    long long n = 0;
    for (int i = 0; i < PQntuples(r); i++) n += strcmp(PQgetvalue(r, i, dbcol), db) == 0;
    PQclear(r);
    return n;
}

static long long queries_sent(PGconn *admin, const char *db) {
    return bouncer_value(admin, "SHOW STATS", db, "total_query_count");
}

/* pool_query returning one value as text (first row, first column), copied into buf. */
static void lease_text(pool_lease_t *lease, const char *sql, int nparams,
                       const char *const *params, char *buf, size_t len) {
    pool_result_t *res = NULL;
    int rc = pool_query(&res, lease, sql, nparams, params);
    if (rc != POOL_OK)
        fail_msg("%s: %s: %s (SQLSTATE %s)", sql, pool_error_name(rc), pool_last_error(),
                 pool_last_sqlstate());
    const char *v = pool_result_rows(res) > 0 ? pool_result_value(res, 0, 0) : NULL;
    snprintf(buf, len, "%s", v ? v : "");
    pool_result_free(res);
}

static long long lease_int(pool_lease_t *lease, const char *sql) {
    char buf[64];
    lease_text(lease, sql, 0, NULL, buf, sizeof buf);
    return strtoll(buf, NULL, 10);
}

static void lease_exec(pool_lease_t *lease, const char *sql) {
    pool_result_t *res = NULL;
    int rc = pool_query(&res, lease, sql, 0, NULL);
    if (rc != POOL_OK) fail_msg("%s: %s: %s", sql, pool_error_name(rc), pool_last_error());
    pool_result_free(res);
}

/* The port of the server that ran a lease's statement: PgBouncer's own port never shows. */
static void assert_reaches_the_test_server(pool_lease_t *lease) {
    assert_int_equal(lease_int(lease, "SELECT inet_server_port()"), atoi(env_or_fail("PGPORT")));
}

/* ---------------------------------------------------------------- core scenarios */

static void a_lease_queries_the_server_behind_pgbouncer(void **state) {
    (void)state;
    char app[64], got[128];
    test_app_name(app, sizeof app, "pgb_basic");
    pool_t *pool = bouncer_pool(app, NULL, "pool_size=2 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    assert_reaches_the_test_server(lease);
    /* PgBouncer passes the client's application_name on to the server connection */
    lease_text(lease, "SELECT current_setting('application_name')", 0, NULL, got, sizeof got);
    assert_string_equal(got, app);
    assert_int_equal(PQtransactionStatus(pool_lease_native(lease)), PQTRANS_IDLE);
    assert_ok(pool_checkin(lease));
    lease = checkout(pool); /* the same client connection again */
    assert_int_equal(lease_int(lease, "SELECT 41 + 1"), 42);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.checkouts_total, 2);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
}

static long long rows_in(pool_lease_t *lease, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return lease_int(lease, sql);
}

/* BEGIN ... ROLLBACK through pool_query, and a lease checked in with its transaction open:
 * the reset rolls it back while PgBouncer still links the client to that server connection,
 * so the insert is gone and no server session is left idle in transaction. */
static void transactions_roll_back_explicitly_and_at_checkin(void **state) {
    (void)state;
    char app[64], table[64], sql[256];
    test_app_name(app, sizeof app, "pgb_tx");
    snprintf(table, sizeof table, "pgb_tx_%d", (int)getpid());
    pool_t *pool = bouncer_pool(app, NULL, "pool_size=2 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (v int)", table);
    lease_exec(lease, sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);

    lease_exec(lease, "BEGIN");
    lease_exec(lease, sql);
    assert_int_equal(rows_in(lease, table), 1);
    lease_exec(lease, "ROLLBACK");
    assert_int_equal(rows_in(lease, table), 0);

    lease_exec(lease, "BEGIN");
    lease_exec(lease, sql);
    assert_int_equal(PQtransactionStatus(pool_lease_native(lease)), PQTRANS_INTRANS);
    assert_ok(pool_checkin(lease));

    PGconn *monitor = monitor_connect(); /* straight to the server, not through PgBouncer */
    char count_sql[256];
    snprintf(count_sql, sizeof count_sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND state LIKE 'idle in transaction%%'", app);
    assert_int_equal(query_int(monitor, count_sql), 0);
    lease = checkout(pool);
    assert_int_equal(PQtransactionStatus(pool_lease_native(lease)), PQTRANS_IDLE);
    assert_int_equal(rows_in(lease, table), 0);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    lease_exec(lease, sql);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0); /* the reset succeeded: the connection was reused */
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
}

#define PARAM_LEASES 10 /* more clients than PgBouncer's 4 server connections */
#define PARAM_ROUNDS 20

/* pool_query's parameters go through PQexecParams, an unnamed statement parsed, bound and
 * executed in one transaction: ten leases held at once take turns on four server
 * connections, and every answer is right. */
static void parameters_travel_as_unnamed_statements_over_shared_server_connections(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_params");
    pool_t *pool = bouncer_pool(app, NULL, "pool_size=10 max_overflow=0");
    PGconn *admin = admin_connect();
    pool_lease_t *leases[PARAM_LEASES];
    for (int i = 0; i < PARAM_LEASES; i++) leases[i] = checkout(pool);
    for (int round = 0; round < PARAM_ROUNDS; round++) {
        for (int i = 0; i < PARAM_LEASES; i++) {
            char a[16], b[32], got[64], want[64];
            snprintf(a, sizeof a, "%d", round * 100 + i);
            snprintf(b, sizeof b, "lease %d", i);
            const char *params[] = {a, b, NULL};
            lease_text(leases[i], "SELECT ($1::int * 2)::text || ' ' || $2 || coalesce($3, '!')",
                       3, params, got, sizeof got);
            snprintf(want, sizeof want, "%d lease %d!", (round * 100 + i) * 2, i);
            assert_string_equal(got, want);
        }
    }
    assert_true(bouncer_rows(admin, "SHOW CLIENTS", env_or_fail("PGDATABASE")) >= PARAM_LEASES);
    assert_true(bouncer_rows(admin, "SHOW SERVERS", env_or_fail("PGDATABASE")) <= 4);
    for (int i = 0; i < PARAM_LEASES; i++) assert_ok(pool_checkin(leases[i]));
    assert_int_equal(stats_of(pool).opened_total, PARAM_LEASES);
    assert_ok(pool_dispose(pool));
    PQfinish(admin);
}

/* POOL_QUERY_PREPARE through PgBouncer 1.18 in transaction mode, which knows nothing of
 * prepared statements: a session's next transaction may run on a server connection that
 * never saw its statement (26000), or on one where another client prepared a statement of the
 * same name (impossible: the names carry the pid and a random number). Every answer must be
 * right anyway: the pool forgets the statement and runs it unnamed. */
static void prepared_statements_stay_correct_over_shared_server_connections(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_prepare");
    pool_t *pool = bouncer_pool(app, NULL, "pool_size=10 max_overflow=0");
    pool_lease_t *leases[PARAM_LEASES];
    for (int i = 0; i < PARAM_LEASES; i++) leases[i] = checkout(pool);
    for (int round = 0; round < PARAM_ROUNDS; round++) {
        for (int i = 0; i < PARAM_LEASES; i++) {
            char a[16];
            snprintf(a, sizeof a, "%d", round * 100 + i);
            pool_param_t p = {a, -1, POOL_TYPE_INT32};
            pool_result_t *res = NULL;
            int rc = pool_query_params(&res, leases[i], "SELECT $1 * 2", 1, &p, POOL_QUERY_PREPARE);
            if (rc != POOL_OK) fail_msg("round %d lease %d: %s", round, i, pool_last_error());
            int64_t got = 0;
            assert_ok(pool_result_int64(res, 0, 0, &got));
            assert_int_equal(got, (round * 100 + i) * 2);
            pool_result_free(res);
        }
    }
    for (int i = 0; i < PARAM_LEASES; i++) assert_ok(pool_checkin(leases[i]));
    assert_int_equal(stats_of(pool).opened_total, PARAM_LEASES);  /* no connection was lost */
    assert_ok(pool_dispose(pool));
}

/* With pool_pre_ping and no interval, every checkout pings: one empty query, which PgBouncer
 * forwards and counts like any statement. Then PgBouncer drops every client of the database
 * (KILL): the pool finds its idle connections dead at checkout and opens new ones, unseen by
 * the caller. */
static void pre_ping_goes_through_and_replaces_connections_pgbouncer_dropped(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_ping");
    const char *db = "connpool_kill";
    pool_t *pool = bouncer_pool(app, db, "pool_size=3 max_overflow=0 pool_pre_ping=1 "
                                         "pre_ping_interval=0");
    PGconn *admin = admin_connect();
    pool_lease_t *leases[3];
    for (int i = 0; i < 3; i++) leases[i] = checkout(pool); /* new: no ping */
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(leases[i]));
    long long before = queries_sent(admin, db);
    for (int i = 0; i < 3; i++) leases[i] = checkout(pool); /* idle ones: pinged */
    assert_int_equal(stats_of(pool).pings_total, 3);
    assert_int_equal(queries_sent(admin, db) - before, 3);
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(leases[i]));

    admin_command(admin, "KILL connpool_kill");
    admin_command(admin, "RESUME connpool_kill");
    for (int i = 0; i < 3; i++) {
        leases[i] = checkout(pool);
        assert_int_equal(lease_int(leases[i], "SELECT 7"), 7);
    }
    for (int i = 0; i < 3; i++) assert_ok(pool_checkin(leases[i]));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.dead_total, 3);
    assert_int_equal(st.opened_total, 6);
    assert_int_equal(st.checkouts_total, 9);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_dispose(pool));
    PQfinish(admin);
}

struct client_changes {
    pool_t *pool;
    int key; /* PgBouncer's BackendKeyData for one client connection (its "backend pid") */
};

static int handed_out_another_client(void *p) {
    struct client_changes *a = p;
    pool_lease_t *lease = checkout(a->pool);
    int key = PQbackendPID(pool_lease_native(lease));
    assert_ok(pool_checkin(lease));
    return key != a->key;
}

/* Invalidate and recycle close the pool's connection to PgBouncer, and only that: the server
 * connection behind it stays in PgBouncer's pool. */
static void invalidate_and_recycle_replace_the_client_connection(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_recycle");
    PGconn *admin = admin_connect();
    pool_t *pool = bouncer_pool(app, "connpool_single", "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    int first = PQbackendPID(pool_lease_native(lease));
    assert_int_equal(lease_int(lease, "SELECT 1"), 1);
    assert_ok(pool_invalidate(lease));
    assert_ok(pool_checkin(lease));
    lease = checkout(pool);
    assert_int_not_equal(PQbackendPID(pool_lease_native(lease)), first);
    assert_int_equal(lease_int(lease, "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(bouncer_rows(admin, "SHOW SERVERS", "connpool_single"), 1);
    assert_ok(pool_dispose(pool));

    pool = bouncer_pool(app, "connpool_single",
                        "pool_size=1 max_overflow=0 pool_recycle=0.2 pool_recycle_jitter=0");
    lease = checkout(pool);
    struct client_changes a = {pool, PQbackendPID(pool_lease_native(lease))};
    assert_ok(pool_checkin(lease));
    if (!await_true(handed_out_another_client, &a, SERVER_WAIT_MS))
        fail_msg("the client connection was never recycled (pool_recycle 0.2)");
    st = stats_of(pool);
    assert_int_equal(st.recycled_total, 1);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(bouncer_rows(admin, "SHOW SERVERS", "connpool_single"), 1);
    assert_ok(pool_dispose(pool));
    PQfinish(admin);
}

/* ---------------------------------------------------------------- stress */

#define STRESS_THREADS 64
#define STRESS_ROUNDS 50
#define STRESS_POOL 10

struct stress {
    pool_t *pool;
    struct report rep;
    int64_t leased; /* atomic: checkouts that succeeded, counted by the workers */
};

static void *stress_worker(void *p) {
    struct stress *s = p;
    for (int i = 0; i < STRESS_ROUNDS; i++) {
        pool_lease_t *lease = NULL;
        int rc = pool_checkout(&lease, s->pool, SERVER_WAIT_MS);
        if (rc != POOL_OK) {
            report_failure(&s->rep, "checkout: %s: %s", pool_error_name(rc), pool_last_error());
            continue;
        }
        atomic_inc(&s->leased);
        char n[16];
        snprintf(n, sizeof n, "%d", i);
        const char *params[] = {n};
        pool_result_t *res = NULL;
        rc = pool_query(&res, lease, "SELECT $1::int + 1", 1, params);
        if (rc != POOL_OK)
            report_failure(&s->rep, "query: %s: %s", pool_error_name(rc), pool_last_error());
        else if (pool_result_rows(res) != 1 || atoi(pool_result_value(res, 0, 0)) != i + 1)
            report_failure(&s->rep, "query: wrong answer for %d", i);
        pool_result_free(res);
        rc = pool_checkin(lease);
        if (rc != POOL_OK)
            report_failure(&s->rep, "checkin: %s: %s", pool_error_name(rc), pool_last_error());
    }
    return NULL;
}

/* Runs the stress on `pool`: every checkout and query succeeds; returns the milliseconds. */
static int64_t run_stress(pool_t *pool) {
    struct stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    report_init(&s->rep);
    s->pool = pool;
    pthread_t threads[STRESS_THREADS];
    int64_t t0 = now_ms();
    if (!start_threads(threads, STRESS_THREADS, stress_worker, s)) fail_msg("pthread_create");
    join_threads(threads, STRESS_THREADS);
    int64_t elapsed = now_ms() - t0;
    assert_no_failures(&s->rep);
    assert_int_equal(atomic_get(&s->leased), STRESS_THREADS * STRESS_ROUNDS);
    free(s);
    return elapsed;
}

static double per_second(int64_t ms) {
    return ms > 0 ? STRESS_THREADS * STRESS_ROUNDS * 1000.0 / (double)ms : 0.0;
}

/* 64 threads share a pool of 10 connections to PgBouncer, which shares 4 server connections
 * among them: every checkout and query succeeds, the counts are exact, and the server never
 * sees more than 4 connections from PgBouncer. The same run straight to the server gives the
 * figure to compare with (printed, not asserted). */
static void sixty_four_threads_share_ten_clients_over_four_server_connections(void **state) {
    (void)state;
    char app[64], options[128];
    test_app_name(app, sizeof app, "pgb_stress");
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0", STRESS_POOL);
    pool_t *pool = bouncer_pool(app, NULL, options);
    PGconn *admin = admin_connect();
    const char *db = env_or_fail("PGDATABASE");
    long long before = queries_sent(admin, db);
    int64_t elapsed = run_stress(pool);

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.checkouts_total, STRESS_THREADS * STRESS_ROUNDS);
    assert_int_equal(st.checked_out, 0);
    assert_true(st.opened_total <= STRESS_POOL);
    assert_int_equal(st.idle, st.opened_total);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.timeouts_total, 0);
    assert_int_equal(st.connect_failures_total, 0);
    /* one statement per round: the reset added nothing (no transaction was left open) */
    assert_int_equal(queries_sent(admin, db) - before, STRESS_THREADS * STRESS_ROUNDS);
    assert_true(bouncer_rows(admin, "SHOW SERVERS", db) <= 4);
    assert_ok(pool_dispose(pool));
    PQfinish(admin);

    char direct_app[64], conninfo[128];
    test_app_name(direct_app, sizeof direct_app, "pgb_stress_direct");
    snprintf(conninfo, sizeof conninfo, "application_name=%s", direct_app);
    pool_t *direct = NULL;
    assert_ok(pool_create(&direct, conninfo, options));
    int64_t direct_ms = run_stress(direct);
    assert_ok(pool_dispose(direct));
    printf("# stress: %d checkouts+queries by %d threads, pool of %d: through PgBouncer (4 server "
           "connections) %lld ms, %.0f/s, %lld waits; straight to the server %lld ms, %.0f/s\n",
           STRESS_THREADS * STRESS_ROUNDS, STRESS_THREADS, STRESS_POOL, (long long)elapsed,
           per_second(elapsed), (long long)st.waits_total, (long long)direct_ms,
           per_second(direct_ms));
}

/* ---------------------------------------------------------------- what the pool sends */

/* The last statement the one server connection behind connpool_single ran, as the server
 * reports it (the monitor connects to the server directly). */
static void last_statement(PGconn *monitor, const char *app, char *buf, size_t len) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT query FROM pg_stat_activity WHERE application_name = '%s' "
             "AND backend_type = 'client backend'", app);
    PGresult *r = PQexec(monitor, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %d rows: %s", sql, PQntuples(r), PQerrorMessage(monitor));
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Since `since`, PgBouncer counted `n` statements on `db`, and the last one the server ran for
 * the session named `app` was `last`. assert_sent is a macro, so that a failure names the
 * test's line. */
static void assert_sent_at(PGconn *admin, PGconn *monitor, const char *db, const char *app,
                           long long since, long long n, const char *last, int line) {
    long long sent = queries_sent(admin, db) - since;
    if (sent != n) fail_msg("line %d: %lld statements sent, expected %lld", line, sent, n);
    char got[256];
    last_statement(monitor, app, got, sizeof got);
    if (strcmp(got, last) != 0)
        fail_msg("line %d: the last statement was \"%s\", expected \"%s\"", line, got, last);
}
#define assert_sent(admin, monitor, db, app, since, n, last) \
    assert_sent_at((admin), (monitor), (db), (app), (since), (n), (last), __LINE__)

/* Over the single server connection of connpool_single, PgBouncer's statement count and the
 * server's record of the last statement show everything the pool sent: a checkin after an
 * idle lease sends nothing; a checkin with a transaction open sends exactly one ROLLBACK (and
 * with reset_on_return=commit one COMMIT); nothing ever sends DISCARD ALL or RESET ALL. */
static void the_reset_on_return_sends_only_rollback_or_commit_of_an_open_transaction(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_reset");
    const char *db = "connpool_single";
    PGconn *admin = admin_connect();
    PGconn *monitor = monitor_connect();
    pool_t *pool = bouncer_pool(app, db, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long before = queries_sent(admin, db);

    assert_int_equal(lease_int(lease, "SELECT 11"), 11);
    assert_ok(pool_checkin(lease));
    assert_sent(admin, monitor, db, app, before, 1, "SELECT 11");

    lease = checkout(pool);
    lease_exec(lease, "BEGIN");
    assert_int_equal(lease_int(lease, "SELECT 12"), 12);
    assert_ok(pool_checkin(lease));
    assert_sent(admin, monitor, db, app, before, 4, "ROLLBACK");

    /* a failed transaction: the same single ROLLBACK */
    lease = checkout(pool);
    lease_exec(lease, "BEGIN");
    pool_result_t *res = NULL;
    assert_int_equal(pool_query(&res, lease, "SELECT 1/0", 0, NULL), POOL_EQUERY);
    assert_int_equal(PQtransactionStatus(pool_lease_native(lease)), PQTRANS_INERROR);
    assert_ok(pool_checkin(lease));
    assert_sent(admin, monitor, db, app, before, 7, "ROLLBACK");
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));

    pool = bouncer_pool(app, db, "pool_size=1 max_overflow=0 reset_on_return=commit");
    lease = checkout(pool);
    before = queries_sent(admin, db);
    lease_exec(lease, "BEGIN");
    assert_ok(pool_checkin(lease));
    assert_sent(admin, monitor, db, app, before, 2, "COMMIT");
    assert_ok(pool_dispose(pool));
    PQfinish(monitor);
    PQfinish(admin);
}

static void show_setting(PGconn *conn, const char *name, char *buf, size_t len) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT current_setting('%s')", name);
    query_string(conn, sql, buf, len);
}

/* The caveat, shown: a lease's SET outside a transaction stays on PgBouncer's server
 * connection after checkin (the pool sends nothing to undo it: no DISCARD ALL, which would
 * also be wrong here, since the next transaction on that server connection may belong to any
 * client), so another client of the same database meets it. A SET LOCAL inside a
 * transaction ends with the transaction: that is the pattern to use behind PgBouncer. */
static void a_session_set_outlives_the_lease_behind_pgbouncer_and_set_local_does_not(void **state) {
    (void)state;
    char app[64], other_app[64], got[64];
    test_app_name(app, sizeof app, "pgb_set");
    test_app_name(other_app, sizeof other_app, "pgb_set_other");
    const char *db = "connpool_single";
    PGconn *admin = admin_connect();
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s dbname=%s application_name=%s",
             env_or_fail("CONNPOOL_TEST_PGBOUNCER"), db, other_app);
    PGconn *other = PQconnectdb(conninfo); /* another client of the same PgBouncer database */
    if (PQstatus(other) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(other));
    show_setting(other, "statement_timeout", got, sizeof got);
    assert_string_equal(got, "0");

    pool_t *pool = bouncer_pool(app, db, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long before = queries_sent(admin, db);
    lease_exec(lease, "SET statement_timeout = '4321ms'");
    assert_ok(pool_checkin(lease));
    assert_int_equal(queries_sent(admin, db) - before, 1); /* nothing after the SET */
    show_setting(other, "statement_timeout", got, sizeof got);
    assert_string_equal(got, "4321ms"); /* leaked to another client */
    PQclear(PQexec(other, "RESET statement_timeout"));
    show_setting(other, "statement_timeout", got, sizeof got);
    assert_string_equal(got, "0");

    lease = checkout(pool);
    lease_exec(lease, "BEGIN");
    lease_exec(lease, "SET LOCAL statement_timeout = '4321ms'");
    lease_text(lease, "SELECT current_setting('statement_timeout')", 0, NULL, got, sizeof got);
    assert_string_equal(got, "4321ms");
    assert_ok(pool_checkin(lease)); /* ROLLBACK ends it */
    show_setting(other, "statement_timeout", got, sizeof got);
    assert_string_equal(got, "0");
    assert_ok(pool_dispose(pool));
    PQfinish(other);
    PQfinish(admin);
}

#define NAMED_HOLDERS 4 /* PgBouncer's server connections for the test database */

static int backend_of(PGconn *conn) { return (int)query_int(conn, "SELECT pg_backend_pid()"); }

static void exec_ok(PGconn *conn, const char *sql) {
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
}

/* Why pool_query uses only unnamed statements, and the caveat for code that uses the native
 * connection: a named prepared statement lives on the server connection that parsed it, and
 * the client's next transaction may run on another. Made deterministic: the statement is
 * prepared in a transaction that also reads its server backend; four other leases then hold
 * every server connection in open transactions, and the one not on that backend commits, so
 * the next transaction of the first lease can only run on another backend. It fails there
 * with 26000 (no such statement), while pool_query with parameters works at once. */
static void a_named_prepared_statement_stays_behind_on_its_server_connection(void **state) {
    (void)state;
    char app[64];
    test_app_name(app, sizeof app, "pgb_named");
    pool_t *pool = bouncer_pool(app, NULL, "pool_size=5 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    PGconn *conn = pool_lease_native(lease);
    exec_ok(conn, "BEGIN");
    PGresult *r = PQprepare(conn, "connpool_named", "SELECT $1::int + 1", 1, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("PQprepare: %s", PQerrorMessage(conn));
    PQclear(r);
    int home = backend_of(conn);
    exec_ok(conn, "COMMIT");

    pool_lease_t *holders[NAMED_HOLDERS];
    int holder_backend[NAMED_HOLDERS], released = -1;
    for (int i = 0; i < NAMED_HOLDERS; i++) {
        holders[i] = checkout(pool);
        exec_ok(pool_lease_native(holders[i]), "BEGIN");
        holder_backend[i] = backend_of(pool_lease_native(holders[i]));
    }
    for (int i = 0; i < NAMED_HOLDERS; i++) {
        assert_int_not_equal(holder_backend[i], 0);
        for (int j = 0; j < i; j++) assert_int_not_equal(holder_backend[i], holder_backend[j]);
        if (released < 0 && holder_backend[i] != home) released = i;
    }
    assert_true(released >= 0);
    exec_ok(pool_lease_native(holders[released]), "COMMIT");

    const char *params[] = {"41"};
    r = PQexecPrepared(conn, "connpool_named", 1, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000");
    PQclear(r);
    char got[16];
    lease_text(lease, "SELECT $1::int + 1", 1, params, got, sizeof got);
    assert_string_equal(got, "42");
    assert_int_not_equal(backend_of(conn), home);

    for (int i = 0; i < NAMED_HOLDERS; i++) assert_ok(pool_checkin(holders[i]));
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
}

/* ---------------------------------------------------------------- ODBC */

/* psqlODBC through PgBouncer: a query, a parameter, a transaction left open at checkin and
 * rolled back by the reset. The ODBC string is the harness's with PgBouncer's port. */
static void psqlodbc_works_through_pgbouncer_in_transaction_mode(void **state) {
    (void)state;
    char app[64], conninfo[768], table[64], sql[256], got[64];
    test_app_name(app, sizeof app, "pgb_odbc");
    snprintf(table, sizeof table, "pgb_odbc_%d", (int)getpid());
    const char *base = env_or_fail("CONNPOOL_TEST_ODBC_PG");
    const char *port = strstr(base, ";Port=");
    if (!port) fail_msg("CONNPOOL_TEST_ODBC_PG has no ;Port=");
    const char *rest = strchr(port + 1, ';');
    snprintf(conninfo, sizeof conninfo, "%.*s;Port=%s%s;SSLmode=disable;Pqopt={application_name=%s}",
             (int)(port - base), base, env_or_fail("CONNPOOL_TEST_PGBOUNCER_PORT"),
             rest ? rest : "", app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=6 max_overflow=0"));
    pool_lease_t *leases[6];
    for (int i = 0; i < 6; i++) leases[i] = checkout(pool);
    for (int i = 0; i < 6; i++) {
        char n[16], want[16];
        snprintf(n, sizeof n, "%d", i);
        const char *params[] = {n};
        lease_text(leases[i], "SELECT CAST(? AS integer) * 3", 1, params, got, sizeof got);
        snprintf(want, sizeof want, "%d", i * 3);
        assert_string_equal(got, want);
        assert_int_equal(lease_int(leases[i], "SELECT inet_server_port()"),
                         atoi(env_or_fail("PGPORT")));
    }
    snprintf(sql, sizeof sql, "CREATE TABLE %s (v int)", table);
    lease_exec(leases[0], sql);
    lease_exec(leases[1], "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    lease_exec(leases[1], sql);
    for (int i = 0; i < 6; i++) assert_ok(pool_checkin(leases[i]));
    pool_lease_t *lease = checkout(pool);
    assert_int_equal(rows_in(lease, table), 0);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    lease_exec(lease, sql);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 6);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();
#define T(name) cmocka_unit_test_setup_teardown(name, arm_watchdog, disarm_watchdog)
    const struct CMUnitTest tests[] = {
        T(a_lease_queries_the_server_behind_pgbouncer),
        T(transactions_roll_back_explicitly_and_at_checkin),
        T(parameters_travel_as_unnamed_statements_over_shared_server_connections),
        T(prepared_statements_stay_correct_over_shared_server_connections),
        T(pre_ping_goes_through_and_replaces_connections_pgbouncer_dropped),
        T(invalidate_and_recycle_replace_the_client_connection),
        T(sixty_four_threads_share_ten_clients_over_four_server_connections),
        T(the_reset_on_return_sends_only_rollback_or_commit_of_an_open_transaction),
        T(a_session_set_outlives_the_lease_behind_pgbouncer_and_set_local_does_not),
        T(a_named_prepared_statement_stays_behind_on_its_server_connection),
        T(psqlodbc_works_through_pgbouncer_in_transaction_mode),
    };
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("pgbouncer", tests, NULL, NULL);
}
