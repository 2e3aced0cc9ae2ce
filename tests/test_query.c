/* pool_query() and the pool_result_* accessors (connpool.h, "queries") through the three
 * backends: libpq, psqlODBC to the test server, and an SQLite file through the SQLite ODBC
 * driver.
 *
 * Run under tests/with-postgres.sh: libpq uses its PG* variables; psqlODBC uses
 * CONNPOOL_TEST_ODBC_PG; SQLite gets a database file of its own in CONNPOOL_TEST_SQLITE_DIR.
 * Each scenario runs once per backend where it makes sense; the case names say which
 * ("libpq:", "psqlodbc:", "sqlite:"). Statements are written with ? placeholders and turned
 * into $1, $2... for libpq. PostgreSQL sessions carry the test's application_name (suffixed
 * with this process's pid) so that a libpq monitor outside any pool can find them; work
 * tables are TEMP tables, private to the session, so runs never see each other's.
 * No sleeps: every wait is for a condition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

#include "backends.h"

/* Who is behind a lease: the server's backend pid for PostgreSQL (asked through pool_query),
 * the connection handle for SQLite. */
static long long identity(struct ctx *c, pool_lease_t *lease) {
    assert_non_null(pool_lease_native(lease));
    if (!is_pg(c)) return (long long)(intptr_t)pool_lease_native(lease);
    long long pid = scalar_int(c, lease, "SELECT pg_backend_pid()");
    assert_true(pid > 0);
    return pid;
}

/* The server's state of a backend ("idle", "idle in transaction", ...). */
static void backend_state(PGconn *monitor, long long pid, char *out, size_t len) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT state FROM pg_stat_activity WHERE pid = %lld", pid);
    PGresult *r = PQexec(monitor, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("\"%s\": %s", sql, PQerrorMessage(monitor));
    snprintf(out, len, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "(no such backend)");
    PQclear(r);
}

static void terminate(PGconn *monitor, long long pid) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld, 5000)::int", pid);
    assert_int_equal(query_int(monitor, sql), 1);
    await_backend_gone(monitor, (int)pid);
}

#define assert_value(res, row, col, expected)                                                \
    do {                                                                                     \
        const char *v_ = pool_result_value((res), (row), (col));                             \
        if (!v_) fail_msg("value (%d, %d) is NULL, expected \"%s\"", (int)(row), (int)(col), \
                          (expected));                                                       \
        assert_string_equal(v_, (expected));                                                 \
    } while (0)

static const char *const hostile = "'); DROP TABLE t; --";
static const char *const marks = "a ? b $1 c; 'd' \"e\" \\f \\' --";

/* ================================================================ 1. parameters and results */

/* Text parameters reach the server as values: NULL is SQL NULL, "" an empty string, and a
 * value full of quotes, semicolons, placeholders and comment marks comes back unchanged and
 * runs nothing. */
static void text_parameters_round_trip_unchanged(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_params");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    const char *p[] = {"hello", NULL, "", hostile, marks};
    pool_result_t *res =
        run(&c, lease, "SELECT ? AS plain, ? AS missing, ? AS empty, ? AS hostile, ? AS marks", 5,
            p);
    assert_int_equal(pool_result_rows(res), 1);
    assert_int_equal(pool_result_columns(res), 5);
    const char *names[] = {"plain", "missing", "empty", "hostile", "marks"};
    for (int i = 0; i < 5; i++) assert_string_equal(pool_result_column_name(res, i), names[i]);
    assert_value(res, 0, 0, "hello");
    assert_null(pool_result_value(res, 0, 1)); /* SQL NULL */
    assert_value(res, 0, 2, "");               /* an empty string, not NULL */
    assert_value(res, 0, 3, hostile);
    assert_value(res, 0, 4, marks);
    pool_result_free(res);

    /* The same through a table named t: had the value been spliced into the text, t would be
     * gone. */
    exec_ok(&c, lease, "CREATE TEMP TABLE t (k text, v text)");
    const char *row1[] = {"hostile", hostile};
    const char *row2[] = {"marks", marks};
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k, v) VALUES (?, ?)", 2, row1), 1);
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k, v) VALUES (?, ?)", 2, row2), 1);
    const char *key[] = {"hostile"};
    res = run(&c, lease, "SELECT v FROM t WHERE k = ?", 1, key);
    assert_int_equal(pool_result_rows(res), 1);
    assert_value(res, 0, 0, hostile);
    pool_result_free(res);
    /* a parameter is compared as a value too: the hostile text matches itself only */
    res = run(&c, lease, "SELECT k FROM t WHERE v = ?", 1, &hostile);
    assert_int_equal(pool_result_rows(res), 1);
    assert_value(res, 0, 0, "hostile");
    pool_result_free(res);
    assert_int_equal(scalar_int(&c, lease, "SELECT count(*) FROM t"), 2);

    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* Values longer than any one buffer come back whole and in order (ODBC reads them in
 * pieces of 4 KiB). */
static void long_values_come_back_whole(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_long");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    static const size_t sizes[] = {1, 4095, 4096, 4097, 8191, 8192, 10000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        char *text = malloc(n + 1);
        assert_non_null(text);
        for (size_t i = 0; i < n; i++) text[i] = (char)('a' + (i * 7 + i / 26) % 26);
        text[n] = 0;
        const char *p[] = {text};
        pool_result_t *res = run(&c, lease, "SELECT ? AS v", 1, p);
        const char *v = pool_result_value(res, 0, 0);
        assert_non_null(v);
        if (strlen(v) != n || memcmp(v, text, n) != 0)
            fail_msg("a value of %zu bytes came back as %zu bytes, or changed", n, strlen(v));
        pool_result_free(res);
        free(text);
    }
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* Values are UTF-8 text both ways: the server sees the characters the caller meant (length
 * counts characters, not bytes) and they come back byte for byte. */
static void utf8_text_round_trips(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_utf8");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    /* "żółw € 日本": 9 characters, 18 bytes */
    const char *text = "\xc5\xbc\xc3\xb3\xc5\x82w \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac";
    const char *p[] = {text, text};
    pool_result_t *res = run(&c, lease, "SELECT ? AS v, length(?) AS n", 2, p);
    assert_int_equal(strlen(text), 18);
    const char *v = pool_result_value(res, 0, 0);
    assert_non_null(v);
    assert_string_equal(v, text);
    assert_value(res, 0, 1, "9");
    pool_result_free(res);
    /* and a literal in the statement's text */
    res = run(&c, lease,
              "SELECT '\xc5\xbc\xc3\xb3\xc5\x82w \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac' AS v", 0,
              NULL);
    assert_value(res, 0, 0, text);
    pool_result_free(res);

    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* libpq: connpool asks for client_encoding UTF8 (whatever the database's encoding), unless
 * the connection string or PGCLIENTENCODING asks for another. */
static void libpq_text_is_utf8_unless_asked_otherwise(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_encoding");
    const char *settings[][2] = {{"", "UTF8"}, {" client_encoding=LATIN1", "LATIN1"}};
    char base[sizeof c.conninfo];
    snprintf(base, sizeof base, "%s", c.conninfo);
    for (int i = 0; i < 2; i++) {
        snprintf(c.conninfo, sizeof c.conninfo, "%s%s", base, settings[i][0]);
        pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
        pool_lease_t *lease = checkout(pool);
        pool_result_t *res = run(&c, lease, "SHOW client_encoding", 0, NULL);
        assert_value(res, 0, 0, settings[i][1]);
        pool_result_free(res);
        assert_ok(pool_checkin(lease));
        assert_ok(pool_dispose(pool));
    }
    ctx_done(&c);
}

/* Rows, columns, names, NULL against "", and accessors out of range. */
static void rows_columns_and_null_against_empty(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_rows");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    exec_ok(&c, lease, "CREATE TEMP TABLE t (k text, v text)");
    const char *rows[][2] = {{"1", "one"}, {"2", NULL}, {"3", ""}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(affected(&c, lease, "INSERT INTO t (k, v) VALUES (?, ?)", 2, rows[i]), 1);

    pool_result_t *res = run(&c, lease, "SELECT k, v FROM t ORDER BY k", 0, NULL);
    assert_int_equal(pool_result_rows(res), 3);
    assert_int_equal(pool_result_columns(res), 2);
    assert_string_equal(pool_result_column_name(res, 0), "k");
    assert_string_equal(pool_result_column_name(res, 1), "v");
    assert_value(res, 0, 0, "1");
    assert_value(res, 0, 1, "one");
    assert_value(res, 1, 0, "2");
    assert_null(pool_result_value(res, 1, 1)); /* stored NULL */
    assert_value(res, 2, 0, "3");
    assert_value(res, 2, 1, ""); /* stored empty string: not NULL */
    /* out of range: NULL, never a neighbour's value */
    assert_null(pool_result_value(res, -1, 0));
    assert_null(pool_result_value(res, 3, 0));
    assert_null(pool_result_value(res, INT64_MAX, 0));
    assert_null(pool_result_value(res, INT64_MIN, 0));
    assert_null(pool_result_value(res, 0, -1));
    assert_null(pool_result_value(res, 0, 2));
    assert_null(pool_result_value(res, 1, 2)); /* would be row 2's first value if row-major leaked */
    assert_null(pool_result_column_name(res, -1));
    assert_null(pool_result_column_name(res, 2));
    pool_result_free(res);

    /* NULL and '' written in the statement */
    res = run(&c, lease, "SELECT NULL AS n, '' AS e", 0, NULL);
    assert_int_equal(pool_result_rows(res), 1);
    assert_int_equal(pool_result_columns(res), 2);
    assert_string_equal(pool_result_column_name(res, 0), "n");
    assert_string_equal(pool_result_column_name(res, 1), "e");
    assert_null(pool_result_value(res, 0, 0));
    assert_value(res, 0, 1, "");
    pool_result_free(res);

    /* no row: the columns are still described */
    const char *none[] = {"none"};
    res = run(&c, lease, "SELECT k, v FROM t WHERE k = ?", 1, none);
    assert_int_equal(pool_result_rows(res), 0);
    assert_int_equal(pool_result_columns(res), 2);
    assert_string_equal(pool_result_column_name(res, 0), "k");
    assert_string_equal(pool_result_column_name(res, 1), "v");
    assert_null(pool_result_value(res, 0, 0));
    pool_result_free(res);

    /* no result at all */
    assert_int_equal(pool_result_rows(NULL), 0);
    assert_int_equal(pool_result_columns(NULL), 0);
    assert_int_equal(pool_result_affected(NULL), -1);
    assert_null(pool_result_column_name(NULL, 0));
    assert_null(pool_result_value(NULL, 0, 0));
    pool_result_free(NULL); /* a no-op */

    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* pool_result_affected(): the exact number of rows inserted, updated or deleted. */
static void affected_counts_inserts_updates_and_deletes_exactly(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_affected");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    exec_ok(&c, lease, "CREATE TEMP TABLE t (k text, v text)");
    const char *one[] = {"1", "a"};
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k, v) VALUES (?, ?)", 2, one), 1);
    const char *three[] = {"2", "3", "4"};
    assert_int_equal(
        affected(&c, lease, "INSERT INTO t (k, v) VALUES (?, 'a'), (?, 'b'), (?, 'a')", 3, three),
        3);
    const char *set_a[] = {"z", "a"};
    assert_int_equal(affected(&c, lease, "UPDATE t SET v = ? WHERE v = ?", 2, set_a), 3);
    const char *set_none[] = {"z", "no such key"};
    assert_int_equal(affected(&c, lease, "UPDATE t SET v = ? WHERE k = ?", 2, set_none), 0);
    const char *del_z[] = {"z"};
    assert_int_equal(affected(&c, lease, "DELETE FROM t WHERE v = ?", 1, del_z), 3);
    assert_int_equal(affected(&c, lease, "DELETE FROM t WHERE k = 'no such key'", 0, NULL), 0);
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k, v) VALUES ('5', 'c')", 0, NULL), 1);
    assert_int_equal(affected(&c, lease, "DELETE FROM t", 0, NULL), 2);
    assert_int_equal(scalar_int(&c, lease, "SELECT count(*) FROM t"), 0);

    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* connpool.h: "Rows the statement inserted, updated or deleted, or -1 if the driver does not
 * say." A SELECT inserts, updates and deletes nothing: 0, or -1; never the rows it returned
 * (that is pool_result_rows()), and a portable program must be able to rely on it. */
static void a_select_reports_no_affected_rows(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_select_affected");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);

    exec_ok(&c, lease, "CREATE TEMP TABLE t (k text)");
    assert_int_equal(
        affected(&c, lease, "INSERT INTO t (k) VALUES ('1'), ('2'), ('3')", 0, NULL), 3);
    pool_result_t *res = run(&c, lease, "SELECT k FROM t", 0, NULL);
    assert_int_equal(pool_result_rows(res), 3);
    int64_t n = pool_result_affected(res);
    pool_result_free(res);
    if (n != -1 && n != 0)
        fail_msg("a SELECT of 3 rows reports %lld rows affected (inserted, updated or deleted); "
                 "expected -1 or 0",
                 (long long)n);

    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 2. failed statements */

/* A failed statement: POOL_EQUERY, the driver's message, its SQLSTATE; the lease stays
 * usable, and its connection is reused after checkin (nothing was closed). */
static void a_failed_statement_returns_equery_and_the_lease_stays_usable(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_failed");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);

    struct failure f;
    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    if (is_pg(&c)) {
        assert_string_equal(f.sqlstate, "42P01");
        assert_contains(f.message, "no_such_table_q");
        assert_contains(f.message, "does not exist");
    } else {
        assert_contains(f.message, "no such table");
    }
    /* the SQLSTATE lasts until the next connpool call that can fail... */
    assert_int_equal(strlen(pool_last_sqlstate()), 5);
    /* ...and a successful one clears it */
    char v[32];
    scalar(&c, lease, "SELECT 1", v, sizeof v);
    assert_string_equal(v, "1");
    assert_string_equal(pool_last_sqlstate(), "");

    if (is_pg(&c)) {
        run_fails(&c, lease, "SELECT 1/0", &f);
        assert_string_equal(f.sqlstate, "22012");
        assert_contains(f.message, "division by zero");
        /* a failure without an SQLSTATE (a misuse) replaces it with "" */
        pool_result_t *res = (pool_result_t *)&res;
        assert_int_equal(pool_query(&res, lease, NULL, 0, NULL), POOL_EINVAL);
        assert_string_equal(pool_last_sqlstate(), "");
    }
    assert_int_equal(scalar_int(&c, lease, "SELECT 2"), 2);

    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    assert_ok(pool_checkin(lease));
    assert_string_equal(pool_last_sqlstate(), ""); /* cleared by a successful checkin */
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.invalidated_total, 0);
    assert_int_equal(st.idle, 1);

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who); /* the same connection */
    assert_int_equal(scalar_int(&c, lease, "SELECT 3"), 3);
    assert_ok(pool_checkin(lease));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* BEGIN through pool_query, a row written, then a failed statement: at checkin the
 * transaction is rolled back (reset_on_return=rollback), and the connection comes back
 * usable, with no transaction open and the row gone. */
static void a_failed_statement_in_a_transaction_comes_back_usable_and_rolled_back(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_failed_tx");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 reset_on_return=rollback");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);

    exec_ok(&c, lease, "CREATE TEMP TABLE t (k text)"); /* outside the transaction: kept */
    exec_ok(&c, lease, "BEGIN");
    const char *k[] = {"uncommitted"};
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k) VALUES (?)", 1, k), 1);
    struct failure f;
    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    if (c.b->kind == LIBPQ) { /* the transaction is aborted: every statement fails now */
        run_fails(&c, lease, "SELECT 1", &f);
        assert_string_equal(f.sqlstate, "25P02");
    }
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.idle, 1);
    if (is_pg(&c)) { /* the server agrees: no transaction is open on the idle connection */
        char s[64];
        backend_state(c.monitor, who, s, sizeof s);
        assert_string_equal(s, "idle");
    }

    lease = checkout(pool);
    assert_true(identity(&c, lease) == who); /* the same connection, reused */
    assert_int_equal(scalar_int(&c, lease, "SELECT count(*) FROM t"), 0); /* rolled back */
    /* a new transaction can begin (none was left open) and commit */
    exec_ok(&c, lease, "BEGIN");
    const char *k2[] = {"committed"};
    assert_int_equal(affected(&c, lease, "INSERT INTO t (k) VALUES (?)", 1, k2), 1);
    exec_ok(&c, lease, "COMMIT");
    assert_ok(pool_checkin(lease));

    lease = checkout(pool);
    assert_int_equal(scalar_int(&c, lease, "SELECT count(*) FROM t"), 1);
    assert_ok(pool_checkin(lease));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.closed_total, 0);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 3. a lost connection */

/* The lease's backend is terminated: pool_query fails with POOL_EQUERY, a connection-loss
 * SQLSTATE and a message that says so; the checkin closes the connection (invalidated), and
 * the next checkout gets a new backend. */
static void a_lost_connection_fails_the_query_and_is_replaced(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_lost");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long pid = identity(&c, lease);
    terminate(c.monitor, pid);

    struct failure f;
    run_fails(&c, lease, "SELECT 1", &f);
    if (strncmp(f.sqlstate, "08", 2) != 0 && strcmp(f.sqlstate, "57P01") != 0)
        fail_msg("SQLSTATE %s is neither class 08 nor 57P01: %s", f.sqlstate, f.message);
    assert_contains(f.message, "connection is lost");

    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checked_out, 0);

    lease = checkout(pool);
    long long new_pid = identity(&c, lease);
    assert_true(new_pid != pid);
    assert_int_equal(scalar_int(&c, lease, "SELECT 1"), 1);
    assert_ok(pool_checkin(lease));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 2);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* query_timeout: a statement still running when it expires fails with POOL_ETIMEDOUT, long
 * before the statement would end; the lease refuses further queries, and its connection is
 * closed at checkin, never lent again. libpq enforces the limit itself; ODBC passes it to the
 * driver in whole seconds (psqlODBC: 1 s here). */
static void a_query_past_query_timeout_fails_and_its_connection_is_abandoned(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_qtimeout");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0 query_timeout=0.2");
    pool_lease_t *lease = checkout(pool);
    long long pid = identity(&c, lease);

    pool_result_t *res = (pool_result_t *)&res;
    int64_t start = now_ms();
    int rc = pool_query(&res, lease, "SELECT pg_sleep(4)", 0, NULL);
    int64_t took = now_ms() - start;
    if (rc != POOL_ETIMEDOUT)
        fail_msg("%s: %s, expected POOL_ETIMEDOUT", pool_error_name(rc), pool_last_error());
    assert_null(res);
    if (took >= 4000) fail_msg("the query was awaited to its end (%lld ms)", (long long)took);
    if (c.b->kind == LIBPQ) assert_contains(pool_last_error(), "query_timeout");

    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_contains(pool_last_error(), "timed out");
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.invalidated_total, 1);
    assert_int_equal(st.closed_total, 1);
    assert_int_equal(st.idle + st.checked_out, 0);

    lease = checkout(pool);
    assert_true(identity(&c, lease) != pid);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* connpool.h: a lost connection retires every older one, as pool_report_error(): an idle
 * connection opened before the failure is closed at once, one opened after it is kept. */
static void a_lost_connection_retires_the_connections_opened_before_it(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_lost_retire");
    pool_t *pool = make_pool(&c, "pool_size=2 max_overflow=0");
    pool_lease_t *a = checkout(pool);
    pool_lease_t *b = checkout(pool);
    long long pid_a = identity(&c, a);
    long long pid_b = identity(&c, b);
    assert_ok(pool_checkin(b)); /* idle, alive */
    terminate(c.monitor, pid_a);

    struct failure f;
    run_fails(&c, a, "SELECT 1", &f);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 1); /* b, at once */
    assert_int_equal(st.reset_closed_total, 1);
    assert_int_equal(st.idle, 0);
    await_backend_gone(c.monitor, (int)pid_b);
    assert_ok(pool_checkin(a));
    st = stats_of(pool);
    assert_int_equal(st.closed_total, 2);
    assert_int_equal(st.invalidated_total, 1);

    pool_lease_t *fresh = checkout(pool);
    long long pid_fresh = identity(&c, fresh);
    assert_true(pid_fresh != pid_a && pid_fresh != pid_b);
    assert_ok(pool_checkin(fresh));
    st = stats_of(pool);
    assert_int_equal(st.opened_total, 3);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 4. misuse */

static int custom_open(void **conn_out, char *errbuf, size_t errbuf_len, int64_t timeout_ms,
                       void *user_data) {
    (void)errbuf, (void)errbuf_len, (void)timeout_ms;
    *conn_out = user_data;
    return 0;
}

static void custom_close(void *conn, void *user_data) { (void)conn, (void)user_data; }

static void a_custom_connector_has_no_query(void **state) {
    (void)state;
    static int handle;
    pool_t *pool = NULL;
    assert_ok(pool_create_custom(&pool, "pool_size=1 max_overflow=0", custom_open, custom_close,
                                 NULL, NULL, NULL, &handle));
    pool_lease_t *lease = checkout(pool);
    pool_result_t *res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ENOTSUP);
    assert_null(res);
    assert_true(pool_last_error()[0] != 0);
    assert_string_equal(pool_last_sqlstate(), "");
    assert_ptr_equal(pool_lease_native(lease), &handle); /* the lease is untouched */
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.idle, 1);
    assert_ok(pool_dispose(pool));
}

/* Bad arguments are POOL_EINVAL and a checked-in lease POOL_ESTATE, with *out NULL and no
 * SQLSTATE; none of them touches the connection. */
static void misuse_is_einval_or_estate(void **state) {
    struct ctx c;
    ctx_init(&c, state, "q_misuse");
    pool_t *pool = make_pool(&c, "pool_size=1 max_overflow=0");
    pool_lease_t *lease = checkout(pool);
    long long who = identity(&c, lease);
    const char *one[] = {"x"};
    const char *with_param = dialect(&c, "SELECT ? AS v");
    char sql[64];
    snprintf(sql, sizeof sql, "%s", with_param);
    struct failure f;
    pool_result_t *res;

    /* each misuse follows a failed statement: its SQLSTATE must not linger */
    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    assert_int_equal(pool_query(NULL, lease, "SELECT 1", 0, NULL), POOL_EINVAL);
    assert_true(pool_last_error()[0] != 0);
    assert_string_equal(pool_last_sqlstate(), "");

    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, NULL, "SELECT 1", 0, NULL), POOL_EINVAL);
    assert_null(res);
    assert_string_equal(pool_last_sqlstate(), "");

    run_fails(&c, lease, "SELECT * FROM no_such_table_q", &f);
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, NULL, 0, NULL), POOL_EINVAL);
    assert_null(res);
    assert_string_equal(pool_last_sqlstate(), "");

    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, sql, -1, one), POOL_EINVAL);
    assert_null(res);
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, sql, -1, NULL), POOL_EINVAL);
    assert_null(res);
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, sql, 1, NULL), POOL_EINVAL);
    assert_null(res);
    assert_true(pool_last_error()[0] != 0);
    assert_string_equal(pool_last_sqlstate(), "");

    /* params may be NULL when there are none */
    res = NULL;
    assert_ok(pool_query(&res, lease, "SELECT 1 AS one", 0, NULL));
    assert_value(res, 0, 0, "1");
    pool_result_free(res);
    res = run(&c, lease, "SELECT ? AS v", 1, one);
    assert_value(res, 0, 0, "x");
    pool_result_free(res);
    pool_result_free(NULL); /* a no-op */

    assert_ok(pool_checkin(lease));
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_null(res);
    assert_true(pool_last_error()[0] != 0);
    assert_string_equal(pool_last_sqlstate(), "");

    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.invalidated_total, 0);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.checked_out, 0);
    lease = checkout(pool);
    assert_true(identity(&c, lease) == who);
    assert_ok(pool_checkin(lease));
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();

    const struct CMUnitTest tests[] = {
        /* 1: parameters and results */
        ALL(text_parameters_round_trip_unchanged),
        ALL(long_values_come_back_whole),
        ALL(utf8_text_round_trips),
        CASE(libpq, libpq_text_is_utf8_unless_asked_otherwise),
        ALL(rows_columns_and_null_against_empty),
        ALL(affected_counts_inserts_updates_and_deletes_exactly),
        ALL(a_select_reports_no_affected_rows),
        /* 2: failed statements */
        ALL(a_failed_statement_returns_equery_and_the_lease_stays_usable),
        ALL(a_failed_statement_in_a_transaction_comes_back_usable_and_rolled_back),
        /* 3: a lost connection */
        PG(a_lost_connection_fails_the_query_and_is_replaced),
        PG(a_lost_connection_retires_the_connections_opened_before_it),
        PG(a_query_past_query_timeout_fails_and_its_connection_is_abandoned),
        /* 4: misuse */
        ANY(a_custom_connector_has_no_query),
        ALL(misuse_is_einval_or_estate),
    };
    /* CONNPOOL_TEST_FILTER=*lost* runs only the tests whose name matches */
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
