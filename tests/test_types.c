/* Typed results (connpool.h, "typed results"): column types, exact NULLs and lengths, raw
 * bytea, typed getters, the bulk read, binary-safe parameters, prepared statements and
 * streams, through the three backends of backends.h (the case names say which).
 * No sleeps: every wait is for a condition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "child.h"

/* ---------------------------------------------------------------- helpers */

static pool_result_t *run_params(struct ctx *c, pool_lease_t *lease, const char *sql,
                                 int nparams, const pool_param_t *params, int flags) {
    pool_result_t *res = NULL;
    int rc = pool_query_params(&res, lease, dialect(c, sql), nparams, params, flags);
    if (rc != POOL_OK)
        fail_msg("\"%s\": %s: %s (SQLSTATE \"%s\")", c->sql, pool_error_name(rc),
                 pool_last_error(), pool_last_sqlstate());
    assert_non_null(res);
    return res;
}

/* A session whose time zone is UTC (PostgreSQL), so timestamptz text is fixed. */
static pool_lease_t *utc_lease(struct ctx *c, pool_t *pool) {
    pool_lease_t *lease = checkout(pool);
    if (is_pg(c)) exec_ok(c, lease, "SET TIME ZONE 'UTC'");
    return lease;
}

/* Replaces the one-column work table with one of the given column type. */
static void work_table(struct ctx *c, pool_lease_t *lease, const char *columns) {
    char sql[256];
    exec_ok(c, lease, "DROP TABLE IF EXISTS w");
    snprintf(sql, sizeof sql, "CREATE TEMP TABLE w (%s)", columns);
    exec_ok(c, lease, sql);
}

static void assert_bytes(const pool_result_t *res, int64_t row, int col, const void *want,
                         size_t want_len) {
    size_t len = 12345;
    const void *v = pool_result_bytes(res, row, col, &len);
    if (!v) fail_msg("value (%d, %d) is NULL", (int)row, col);
    if (len != want_len || memcmp(v, want, len) != 0)
        fail_msg("value (%d, %d): %zu bytes \"%.*s\", expected %zu \"%.*s\"", (int)row, col,
                 len, (int)len, (const char *)v, want_len, (int)want_len, (const char *)want);
    assert_int_equal(((const char *)v)[len], 0); /* NUL-terminated all the same */
    assert_int_equal(pool_result_length(res, row, col), (int64_t)want_len);
    assert_int_equal(pool_result_is_null(res, row, col), 0);
}

/* ================================================================ 1. types */

/* One type's round trip: the column is declared `pg` (PostgreSQL) or `lite` (SQLite; NULL:
 * not an SQLite type), the parameter sent as text (or bytes) with type `ptype`, and the value
 * read back with a pool_type per backend and a text per backend (NULL: the input). */
struct type_case {
    const char *pg, *lite;
    int ptype;
    const char *in;
    size_t in_len; /* 0: strlen(in) */
    int type_pq, type_odbc, type_lite;
    const char *out_pq, *out_odbc, *out_lite;
};

static const char bytes_in[] = "a\0b\xff\x01\\x00'"; /* NULs, high bytes, quotes, a fake escape */

static const struct type_case type_cases[] = {
    {"bool", "BOOLEAN", POOL_TYPE_BOOL, "t", 0, POOL_TYPE_BOOL, POOL_TYPE_BOOL, POOL_TYPE_BOOL,
     NULL, NULL, NULL},
    {"bool", "BOOLEAN", POOL_TYPE_BOOL, "f", 0, POOL_TYPE_BOOL, POOL_TYPE_BOOL, POOL_TYPE_BOOL,
     NULL, NULL, NULL},
    {"int2", "SMALLINT", POOL_TYPE_INT16, "-32768", 0, POOL_TYPE_INT16, POOL_TYPE_INT16,
     POOL_TYPE_INT16, NULL, NULL, NULL},
    {"int4", "INT", POOL_TYPE_INT32, "2147483647", 0, POOL_TYPE_INT32, POOL_TYPE_INT32,
     POOL_TYPE_INT64, NULL, NULL, NULL},
    {"int8", "INTEGER", POOL_TYPE_INT64, "-9007199254740993", 0, POOL_TYPE_INT64,
     POOL_TYPE_INT64, POOL_TYPE_INT64, NULL, NULL, NULL},
    {"float4", NULL, POOL_TYPE_FLOAT32, "1.5", 0, POOL_TYPE_FLOAT32, POOL_TYPE_FLOAT32, 0,
     NULL, NULL, NULL},
    {"float8", "REAL", POOL_TYPE_FLOAT64, "-2.25", 0, POOL_TYPE_FLOAT64, POOL_TYPE_FLOAT64,
     POOL_TYPE_FLOAT64, NULL, NULL, NULL},
    {"float8", NULL, POOL_TYPE_FLOAT64, "Infinity", 0, POOL_TYPE_FLOAT64, POOL_TYPE_FLOAT64, 0,
     NULL, NULL, NULL},
    {"numeric", NULL, POOL_TYPE_NUMERIC, "12345678901234567890.123456789", 0,
     POOL_TYPE_NUMERIC, POOL_TYPE_NUMERIC, 0, NULL, NULL, NULL},
    {"numeric", NULL, POOL_TYPE_NUMERIC, "NaN", 0, POOL_TYPE_NUMERIC, POOL_TYPE_NUMERIC, 0,
     NULL, NULL, NULL},
    {"text", "TEXT", POOL_TYPE_TEXT, "h\xc3\xa9llo, 'w\"orld' ?", 0, POOL_TYPE_TEXT,
     POOL_TYPE_TEXT, POOL_TYPE_TEXT, NULL, NULL, NULL},
    {"varchar(40)", "VARCHAR(40)", POOL_TYPE_UNKNOWN, "plain", 0, POOL_TYPE_TEXT,
     POOL_TYPE_TEXT, POOL_TYPE_TEXT, NULL, NULL, NULL},
    {"bytea", "BLOB", POOL_TYPE_BYTEA, bytes_in, sizeof bytes_in - 1, POOL_TYPE_BYTEA,
     POOL_TYPE_BYTEA, POOL_TYPE_BYTEA, NULL, NULL, NULL},
    {"date", "DATE", POOL_TYPE_DATE, "2024-01-02", 0, POOL_TYPE_DATE, POOL_TYPE_DATE,
     POOL_TYPE_DATE, NULL, NULL, NULL},
    {"time", NULL, POOL_TYPE_TIME, "03:04:05", 0, POOL_TYPE_TIME, POOL_TYPE_TIME, 0, NULL,
     NULL, NULL},
    {"timestamp", "TIMESTAMP", POOL_TYPE_TIMESTAMP, "2024-01-02 03:04:05.5", 0,
     POOL_TYPE_TIMESTAMP, POOL_TYPE_TIMESTAMP, POOL_TYPE_TIMESTAMP, NULL, NULL, NULL},
    /* psqlODBC gives the session's local time (UTC here) without the offset. */
    {"timestamptz", NULL, POOL_TYPE_TIMESTAMPTZ, "2024-01-02 05:04:05.5+02", 0,
     POOL_TYPE_TIMESTAMPTZ, POOL_TYPE_TIMESTAMPTZ, 0, "2024-01-02 03:04:05.5+00",
     "2024-01-02 03:04:05.5", NULL},
    /* psqlODBC does not name these types: they read as text, as they are. */
    {"interval", NULL, POOL_TYPE_INTERVAL, "1 day 02:03:04", 0, POOL_TYPE_INTERVAL,
     POOL_TYPE_TEXT, 0, NULL, NULL, NULL},
    {"uuid", NULL, POOL_TYPE_UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", 0, POOL_TYPE_UUID,
     POOL_TYPE_UUID, 0, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", NULL},
    {"jsonb", NULL, POOL_TYPE_JSON, "{\"a\": [1, null]}", 0, POOL_TYPE_JSON, POOL_TYPE_TEXT, 0,
     NULL, NULL, NULL},
    {"int4[]", NULL, POOL_TYPE_ARRAY, "{1,2,NULL}", 0, POOL_TYPE_ARRAY, POOL_TYPE_TEXT, 0,
     NULL, NULL, NULL},
};

/* Each type goes in as a parameter (prepared, on every backend: ODBC ignores the flag) and
 * comes back with its pool_type and its exact bytes; the PostgreSQL OID or ODBC SQL type is
 * there too. */
static void every_type_round_trips(void **state) {
    struct ctx c;
    ctx_init(&c, state, "types");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = utc_lease(&c, pool);
    int tried = 0;
    for (size_t i = 0; i < sizeof type_cases / sizeof type_cases[0]; i++) {
        const struct type_case *t = &type_cases[i];
        const char *decl = is_pg(&c) ? t->pg : t->lite;
        if (!decl) continue;
        char column[64];
        snprintf(column, sizeof column, "v %s", decl);
        work_table(&c, lease, column);
        size_t in_len = t->in_len ? t->in_len : strlen(t->in);
        pool_param_t p = {t->in, (int64_t)in_len, t->ptype};
        /* One statement text per case: a prepared statement keeps the parameter types and
         * result shape of the table it was prepared against. */
        char insert[64], select[64];
        snprintf(insert, sizeof insert, "INSERT INTO w VALUES (?) /* %zu */", i);
        snprintf(select, sizeof select, "SELECT v FROM w /* %zu */", i);
        pool_result_free(run_params(&c, lease, insert, 1, &p, POOL_QUERY_PREPARE));
        pool_result_t *res = run_params(&c, lease, select, 0, NULL, POOL_QUERY_PREPARE);
        assert_int_equal(pool_result_rows(res), 1);
        int want = c.b->kind == LIBPQ ? t->type_pq : c.b->kind == PSQLODBC ? t->type_odbc
                                                                           : t->type_lite;
        const char *out = c.b->kind == LIBPQ ? t->out_pq : c.b->kind == PSQLODBC ? t->out_odbc
                                                                                 : t->out_lite;
        int64_t backend = -12345;
        int got = pool_result_column_type(res, 0, &backend);
        if (got != want) fail_msg("%s: pool_type %d, expected %d", decl, got, want);
        assert_true(backend != -12345);
        if (strcmp(decl, "int4") == 0) assert_int_equal(backend, c.b->kind == LIBPQ ? 23 : 4);
        if (t->ptype == POOL_TYPE_BOOL) { /* "t"/"f" on every backend, and the getter agrees */
            int b = -1;
            assert_ok(pool_result_bool(res, 0, 0, &b));
            assert_int_equal(b, t->in[0] == 't');
        }
        if (out) assert_bytes(res, 0, 0, out, strlen(out));
        else assert_bytes(res, 0, 0, t->in, in_len);
        if (want == POOL_TYPE_BYTEA) /* its text form is PostgreSQL's hex */
            assert_string_equal(pool_result_value(res, 0, 0), "\\x610062ff015c78303027");
        pool_result_free(res);
        tried++;
    }
    assert_true(tried >= 10);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* SQL NULL, an empty string and an empty bytea are three different things, in and out. */
static void null_empty_text_and_empty_bytea_are_told_apart(void **state) {
    struct ctx c;
    ctx_init(&c, state, "empty");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    work_table(&c, lease, is_pg(&c) ? "a text, b text, e bytea, n bytea"
                                    : "a TEXT, b TEXT, e BLOB, n BLOB");
    pool_param_t p[4] = {{NULL, -1, POOL_TYPE_TEXT},
                         {"", 0, POOL_TYPE_TEXT},
                         {"", 0, POOL_TYPE_BYTEA},
                         {NULL, 0, POOL_TYPE_BYTEA}};
    pool_result_free(run_params(&c, lease, "INSERT INTO w VALUES (?, ?, ?, ?)", 4, p, 0));
    pool_result_t *res = run_params(&c, lease, "SELECT a, b, e, n FROM w", 0, NULL, 0);
    size_t len = 99;
    assert_int_equal(pool_result_is_null(res, 0, 0), 1);
    assert_null(pool_result_bytes(res, 0, 0, &len));
    assert_int_equal(len, 0);
    assert_int_equal(pool_result_length(res, 0, 0), -1);
    assert_null(pool_result_value(res, 0, 0));
    assert_bytes(res, 0, 1, "", 0);
    assert_string_equal(pool_result_value(res, 0, 1), "");
    assert_bytes(res, 0, 2, "", 0);
    assert_string_equal(pool_result_value(res, 0, 2), "\\x");
    assert_int_equal(pool_result_is_null(res, 0, 3), 1);
    /* out of range is not NULL: -1 */
    assert_int_equal(pool_result_is_null(res, 1, 0), -1);
    assert_int_equal(pool_result_is_null(res, 0, 4), -1);
    assert_int_equal(pool_result_length(res, 0, -1), -1);
    assert_int_equal(pool_result_column_type(res, 4, NULL), -1);
    pool_result_free(res);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* Every byte value, NULs included, round-trips as bytea; text holding a NUL is refused
 * before anything is sent. */
static void bytea_parameters_hold_any_bytes(void **state) {
    struct ctx c;
    ctx_init(&c, state, "bytes");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    unsigned char all[512];
    for (size_t i = 0; i < sizeof all; i++) all[i] = (unsigned char)(i * 7);
    work_table(&c, lease, is_pg(&c) ? "v bytea" : "v BLOB");
    pool_param_t p = {all, sizeof all, POOL_TYPE_BYTEA};
    pool_result_free(run_params(&c, lease, "INSERT INTO w VALUES (?)", 1, &p, 0));
    pool_result_t *res = run_params(&c, lease, "SELECT v FROM w", 0, NULL, 0);
    assert_bytes(res, 0, 0, all, sizeof all);
    pool_result_free(res);

    pool_param_t bad = {"a\0b", 3, POOL_TYPE_TEXT};
    res = (pool_result_t *)&res;
    assert_int_equal(pool_query_params(&res, lease, dialect(&c, "SELECT ?"), 1, &bad, 0),
                     POOL_EINVAL);
    assert_null(res);
    assert_non_null(strstr(pool_last_error(), "NUL"));
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 2. getters and bulk */

/* The typed getters convert what they can and refuse the rest with POOL_ETYPE, leaving *out
 * alone; indexes out of range are POOL_ERANGE. */
static void typed_getters_convert_or_refuse(void **state) {
    struct ctx c;
    ctx_init(&c, state, "getters");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    work_table(&c, lease, is_pg(&c) ? "i int8, f float8, b bool, s text, n int4"
                                    : "i INTEGER, f REAL, b BOOLEAN, s TEXT, n INTEGER");
    pool_param_t p[5] = {{"-9007199254740993", -1, POOL_TYPE_INT64},
                         {"0.5", -1, POOL_TYPE_FLOAT64},
                         {"t", -1, POOL_TYPE_BOOL},
                         {"abc", -1, POOL_TYPE_TEXT},
                         {NULL, -1, POOL_TYPE_INT32}};
    pool_result_free(run_params(&c, lease, "INSERT INTO w VALUES (?, ?, ?, ?, ?)", 5, p, 0));
    pool_result_t *res = run_params(&c, lease, "SELECT i, f, b, s, n FROM w", 0, NULL, 0);
    int64_t i = 0;
    double d = 0;
    int b = -1;
    assert_ok(pool_result_int64(res, 0, 0, &i));
    assert_true(i == -9007199254740993LL);
    assert_ok(pool_result_double(res, 0, 1, &d));
    assert_true(d == 0.5);
    assert_ok(pool_result_double(res, 0, 0, &d)); /* an integer reads as a double */
    assert_true(d == -9007199254740992.0);
    assert_ok(pool_result_bool(res, 0, 2, &b));
    assert_int_equal(b, 1);

    i = 42;
    assert_int_equal(pool_result_int64(res, 0, 3, &i), POOL_ETYPE); /* "abc" */
    assert_non_null(strstr(pool_last_error(), "column 3"));
    assert_int_equal(pool_result_int64(res, 0, 4, &i), POOL_ETYPE); /* NULL */
    assert_non_null(strstr(pool_last_error(), "NULL"));
    assert_int_equal(pool_result_int64(res, 0, 1, &i), POOL_ETYPE); /* 0.5 */
    assert_int_equal(pool_result_int64(res, 0, 2, &i), POOL_ETYPE); /* a bool */
    assert_true(i == 42);
    assert_int_equal(pool_result_double(res, 0, 3, &d), POOL_ETYPE);
    assert_int_equal(pool_result_bool(res, 0, 0, &b), POOL_ETYPE);
    assert_int_equal(pool_result_int64(res, 1, 0, &i), POOL_ERANGE);
    assert_int_equal(pool_result_int64(res, 0, 5, &i), POOL_ERANGE);
    assert_int_equal(pool_result_int64(res, -1, 0, &i), POOL_ERANGE);
    assert_int_equal(pool_result_int64(res, 0, 0, NULL), POOL_EINVAL);
    assert_int_equal(pool_result_int64(NULL, 0, 0, &i), POOL_EINVAL);
    assert_true(i == 42);
    pool_result_free(res);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

#define BULK_ROWS 100

static const char *bulk_sql(const struct ctx *c) {
    return is_pg(c) ? "SELECT g, 'row ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE '' END "
                      "FROM generate_series(1, 100) g"
                    : "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                      "WHERE g < 100) SELECT g, 'row ' || g, CASE WHEN g % 3 = 0 THEN NULL "
                      "ELSE '' END FROM s";
}

/* The bulk read gives what the per-value calls give, in one buffer: its size is asked for
 * first, a buffer one byte short is refused untouched, and a range of rows reads alone. */
static void the_bulk_read_matches_the_values_and_refuses_a_short_buffer(void **state) {
    struct ctx c;
    ctx_init(&c, state, "bulk");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_result_t *res = run(&c, lease, bulk_sql(&c), 0, NULL);
    assert_int_equal(pool_result_rows(res), BULK_ROWS);
    int cols = pool_result_columns(res);
    assert_int_equal(cols, 3);
    size_t needed = 0;
    assert_int_equal(pool_result_read(res, 0, BULK_ROWS, NULL, 0, NULL, &needed), POOL_ERANGE);
    assert_true(needed > 300);
    char *buf = malloc(needed + 1);
    int64_t lengths[BULK_ROWS * 3];
    memset(buf, '#', needed + 1);
    lengths[0] = 777;
    assert_int_equal(pool_result_read(res, 0, BULK_ROWS, buf, needed - 1, lengths, NULL),
                     POOL_ERANGE);
    assert_int_equal(buf[0], '#');
    assert_int_equal(lengths[0], 777);
    size_t again = 0;
    assert_ok(pool_result_read(res, 0, BULK_ROWS + 50, buf, needed, lengths, &again));
    assert_int_equal(again, needed);
    assert_int_equal(buf[needed], '#'); /* not one byte past it */
    size_t at = 0;
    for (int64_t r = 0; r < BULK_ROWS; r++)
        for (int col = 0; col < cols; col++) {
            int64_t len = lengths[r * cols + col];
            const char *v = pool_result_value(res, r, col);
            if (!v) {
                assert_int_equal(len, -1);
                assert_int_equal(buf[at], 0);
                at += 1;
                continue;
            }
            assert_int_equal(len, (int64_t)strlen(v));
            assert_memory_equal(buf + at, v, (size_t)len + 1);
            at += (size_t)len + 1;
        }
    assert_int_equal(at, needed);
    /* rows 10 to 14 alone: row 10 is "11", "row 11", "" */
    assert_ok(pool_result_read(res, 10, 5, buf, needed, lengths, &again));
    assert_memory_equal(buf, "11\0row 11\0\0", 11);
    assert_int_equal(lengths[2], 0);
    assert_int_equal(lengths[3 * 1 + 2], -1); /* row 11 is 12: a multiple of 3, NULL */
    /* the end, and out of range */
    assert_ok(pool_result_read(res, BULK_ROWS, 1, NULL, 0, NULL, &again));
    assert_int_equal(again, 0);
    assert_int_equal(pool_result_read(res, BULK_ROWS + 1, 1, buf, needed, lengths, NULL),
                     POOL_EINVAL);
    assert_int_equal(pool_result_read(res, -1, 1, buf, needed, lengths, NULL), POOL_EINVAL);
    assert_int_equal(pool_result_read(res, 0, -1, buf, needed, lengths, NULL), POOL_EINVAL);
    assert_int_equal(pool_result_read(res, 0, 1, buf, needed, NULL, NULL), POOL_EINVAL);
    assert_int_equal(pool_result_read(NULL, 0, 1, buf, needed, lengths, NULL), POOL_EINVAL);
    assert_true(pool_result_memory(res) > needed / 2);
    assert_int_equal(pool_result_memory(NULL), 0);
    free(buf);
    pool_result_free(res);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 3. prepared statements */

static long long prepared_count(struct ctx *c, pool_lease_t *lease) {
    return scalar_int(c, lease, "SELECT count(*) FROM pg_prepared_statements "
                                "WHERE name LIKE 'connpool_%'");
}

static long long prepared_run(struct ctx *c, pool_lease_t *lease, const char *sql,
                              const char *arg) {
    pool_param_t p = {arg, -1, POOL_TYPE_INT32};
    pool_result_t *res = run_params(c, lease, sql, 1, &p, POOL_QUERY_PREPARE);
    int64_t v = 0;
    assert_ok(pool_result_int64(res, 0, 0, &v));
    pool_result_free(res);
    return (long long)v;
}

/* A prepared statement is prepared once per connection and reused; the least recently used
 * beyond statement_cache_size is deallocated; one the application deallocated is prepared
 * again, transparently outside a transaction and with 26000 inside one. */
static void prepared_statements_are_cached_evicted_and_recovered(void **state) {
    struct ctx c;
    ctx_init(&c, state, "prepared");
    pool_t *pool = make_pool(&c, "pool_size=1 statement_cache_size=2");
    pool_lease_t *lease = checkout(pool);
    const char *add = "SELECT ?::int + 1", *mul = "SELECT ?::int * 2", *sub = "SELECT ?::int - 1";
    for (int i = 0; i < 3; i++) assert_int_equal(prepared_run(&c, lease, add, "41"), 42);
    assert_int_equal(prepared_count(&c, lease), 1);
    assert_int_equal(prepared_run(&c, lease, mul, "21"), 42);
    assert_int_equal(prepared_count(&c, lease), 2);
    assert_int_equal(prepared_run(&c, lease, sub, "43"), 42); /* add is evicted */
    assert_int_equal(prepared_count(&c, lease), 2);
    assert_int_equal(prepared_run(&c, lease, add, "1"), 2); /* prepared again, mul evicted */
    assert_int_equal(prepared_count(&c, lease), 2);

    exec_ok(&c, lease, "DEALLOCATE ALL");
    assert_int_equal(prepared_run(&c, lease, add, "2"), 3); /* unnamed this time */
    assert_int_equal(prepared_run(&c, lease, add, "3"), 4); /* prepared again */
    assert_int_equal(prepared_count(&c, lease), 1);

    exec_ok(&c, lease, "BEGIN");
    exec_ok(&c, lease, "DEALLOCATE ALL");
    pool_param_t p = {"5", -1, POOL_TYPE_INT32};
    pool_result_t *res = (pool_result_t *)&res;
    assert_int_equal(pool_query_params(&res, lease, dialect(&c, add), 1, &p, POOL_QUERY_PREPARE),
                     POOL_EQUERY);
    assert_string_equal(pool_last_sqlstate(), "26000");
    assert_null(res);
    exec_ok(&c, lease, "ROLLBACK");
    assert_int_equal(prepared_run(&c, lease, add, "5"), 6);
    assert_int_equal(prepared_run(&c, lease, add, "6"), 7);
    assert_int_equal(prepared_count(&c, lease), 1);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* reset_on_return=discard drops the server's statements, and the cache with them; with
 * statement_cache_size=0 the flag prepares nothing. */
static void discard_empties_the_cache_and_size_zero_prepares_nothing(void **state) {
    struct ctx c;
    ctx_init(&c, state, "discard");
    pool_t *pool = make_pool(&c, "pool_size=1 reset_on_return=discard");
    pool_lease_t *lease = checkout(pool);
    long long who = scalar_int(&c, lease, "SELECT pg_backend_pid()");
    assert_int_equal(prepared_run(&c, lease, "SELECT ?::int + 1", "1"), 2);
    assert_int_equal(prepared_count(&c, lease), 1);
    assert_ok(pool_checkin(lease));
    lease = checkout(pool);
    assert_int_equal(scalar_int(&c, lease, "SELECT pg_backend_pid()"), who);
    assert_int_equal(prepared_count(&c, lease), 0);
    assert_int_equal(prepared_run(&c, lease, "SELECT ?::int + 1", "2"), 3);
    assert_int_equal(prepared_count(&c, lease), 1);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));

    pool = make_pool(&c, "pool_size=1 statement_cache_size=0");
    lease = checkout(pool);
    assert_int_equal(prepared_run(&c, lease, "SELECT ?::int + 1", "1"), 2);
    assert_int_equal(prepared_count(&c, lease), 0);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 4. streams */

static pool_stream_t *open_stream(struct ctx *c, pool_lease_t *lease, const char *sql) {
    pool_stream_t *s = NULL;
    int rc = pool_stream_open(&s, lease, dialect(c, sql), 0, NULL, 0);
    if (rc != POOL_OK) fail_msg("\"%s\": %s: %s", c->sql, pool_error_name(rc), pool_last_error());
    assert_non_null(s);
    return s;
}

static const char *series_sql(const struct ctx *c, int n) {
    static char sql[256];
    if (is_pg(c))
        snprintf(sql, sizeof sql, "SELECT g, 'row ' || g FROM generate_series(1, %d) g", n);
    else
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %d) "
                 "SELECT g, 'row ' || g FROM s",
                 n);
    return sql;
}

/* Reads a stream of series_sql() to its end in pieces of at most max_rows (at least one row
 * each), checking that its rows continue the series after `seen`: returns the last g, and
 * the pieces in *pieces. */
static int64_t read_series(pool_stream_t *s, int64_t max_rows, int64_t seen, int64_t *pieces) {
    for (;;) {
        pool_result_t *piece = NULL;
        assert_ok(pool_stream_next(&piece, s, max_rows));
        if (!piece) return seen;
        (*pieces)++;
        assert_int_equal(pool_result_columns(piece), 2);
        assert_true(pool_result_rows(piece) >= 1 && pool_result_rows(piece) <= max_rows);
        for (int64_t r = 0; r < pool_result_rows(piece); r++) {
            int64_t g = 0;
            assert_ok(pool_result_int64(piece, r, 0, &g));
            assert_int_equal(g, ++seen);
        }
        pool_result_free(piece);
    }
}

/* Every row comes, in order, in pieces of at most max_rows; then NULL. An empty result gives
 * one piece with its columns and no rows. */
static void a_stream_gives_every_row_in_pieces(void **state) {
    struct ctx c;
    ctx_init(&c, state, "stream");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_stream_t *s = open_stream(&c, lease, series_sql(&c, 2500));
    pool_result_t *piece = NULL;
    assert_int_equal(pool_stream_next(&piece, s, 0), POOL_EINVAL);
    int64_t pieces = 0, seen = read_series(s, 1000, 0, &pieces);
    assert_int_equal(seen, 2500);
    assert_int_equal(pieces, 3);
    assert_ok(pool_stream_next(&piece, s, 10)); /* the end stays the end */
    assert_null(piece);
    assert_ok(pool_stream_close(s));

    s = open_stream(&c, lease, is_pg(&c) ? "SELECT 1 AS one WHERE false"
                                         : "SELECT 1 AS one WHERE 0");
    assert_ok(pool_stream_next(&piece, s, 10));
    assert_non_null(piece);
    assert_int_equal(pool_result_rows(piece), 0);
    assert_int_equal(pool_result_columns(piece), 1);
    assert_string_equal(pool_result_column_name(piece, 0), "one");
    pool_result_free(piece);
    assert_ok(pool_stream_next(&piece, s, 10));
    assert_null(piece);
    assert_ok(pool_stream_close(s));
    assert_int_equal(scalar_int(&c, lease, "SELECT 7"), 7);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* While a stream is open its lease runs nothing else and cannot be checked in; closed early,
 * the rest is discarded (libpq: cancelled) and the lease works again. */
static void an_open_stream_holds_its_lease_and_closes_early(void **state) {
    struct ctx c;
    ctx_init(&c, state, "busy");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_stream_t *s = open_stream(&c, lease, series_sql(&c, 200000));
    pool_result_t *piece = NULL, *res = (pool_result_t *)&res;
    assert_ok(pool_stream_next(&piece, s, 10));
    assert_int_equal(pool_result_rows(piece), 10);
    pool_result_free(piece);
    assert_int_equal(pool_query(&res, lease, "SELECT 1", 0, NULL), POOL_ESTATE);
    assert_non_null(strstr(pool_last_error(), "stream"));
    assert_null(res);
    pool_stream_t *other = (pool_stream_t *)&other;
    assert_int_equal(pool_stream_open(&other, lease, "SELECT 1", 0, NULL, 0), POOL_ESTATE);
    assert_null(other);
    assert_int_equal(pool_checkin(lease), POOL_ESTATE);
    assert_ok(pool_stream_close(s));
    assert_int_equal(scalar_int(&c, lease, "SELECT 7"), 7);
    assert_ok(pool_checkin(lease));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.idle, 1); /* kept: the lease came back whole */
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* A statement that fails midway reports POOL_EQUERY from pool_stream_next(), with its
 * SQLSTATE; closed, the lease works again. */
static void a_failing_stream_reports_equery_and_the_lease_recovers(void **state) {
    struct ctx c;
    ctx_init(&c, state, "streamfail");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    /* libpq sends rows as they are made, so the failure comes from pool_stream_next();
     * psqlODBC reads the whole result at SQLExecDirect, so from pool_stream_open(). */
    pool_stream_t *s = NULL;
    pool_result_t *piece = NULL;
    int rc = pool_stream_open(&s, lease, "SELECT 1 / (g - 50) FROM generate_series(1, 100) g",
                              0, NULL, 0);
    int64_t rows = 0;
    if (c.b->kind == LIBPQ) {
        assert_ok(rc);
        while ((rc = pool_stream_next(&piece, s, 7)) == POOL_OK && piece) {
            rows += pool_result_rows(piece);
            pool_result_free(piece);
        }
    } else {
        assert_null(s);
    }
    assert_int_equal(rc, POOL_EQUERY);
    assert_string_equal(pool_last_sqlstate(), "22012");
    assert_true(rows < 50);
    assert_ok(pool_stream_close(s));
    assert_int_equal(scalar_int(&c, lease, "SELECT 7"), 7);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 100 MB streamed through libpq in pieces of 1000 rows: no piece holds more than a few MB,
 * and the process grows by far less than the result. */
static void a_100_mb_result_streams_in_bounded_memory(void **state) {
    struct ctx c;
    ctx_init(&c, state, "big");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    long before = rss_kb();
    pool_stream_t *s = open_stream(&c, lease, "SELECT g, repeat('x', 1000) FROM "
                                              "generate_series(1, 100000) g");
    pool_result_t *piece = NULL;
    size_t bytes = 0, largest = 0;
    long peak = before;
    while (pool_stream_next(&piece, s, 1000) == POOL_OK && piece) {
        size_t len = 0;
        for (int64_t r = 0; r < pool_result_rows(piece); r++) {
            assert_non_null(pool_result_bytes(piece, r, 1, &len));
            bytes += len;
        }
        if (pool_result_memory(piece) > largest) largest = pool_result_memory(piece);
        pool_result_free(piece);
        long now = rss_kb();
        if (now > peak) peak = now;
    }
    assert_ok(pool_stream_close(s));
    assert_int_equal(bytes, (size_t)100000 * 1000);
    printf("# 100 MB stream: largest piece %zu KB, process grew %ld KB\n", largest / 1024,
           peak - before);
    assert_true(largest < 8 * 1024 * 1024);
    assert_true(peak - before < 32 * 1024);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

struct inherited {
    pool_stream_t *stream;
    pool_lease_t *lease;
};

static int close_inherited(void *arg) {
    struct inherited *in = arg;
    CHILD_REQUIRE(pool_stream_close(in->stream) == POOL_OK, "%s", pool_last_error());
    CHILD_REQUIRE(pool_checkin(in->lease) == POOL_OK, "%s", pool_last_error());
    return 0;
}

/* A stream opened before fork belongs to the parent: the child's close sends nothing, and
 * the parent reads on as if the child never was. */
static void a_child_closing_an_inherited_stream_leaves_the_parents_alone(void **state) {
    struct ctx c;
    ctx_init(&c, state, "forkstream");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_stream_t *s = open_stream(&c, lease, series_sql(&c, 3000));
    pool_result_t *piece = NULL;
    assert_ok(pool_stream_next(&piece, s, 1000));
    int64_t seen = pool_result_rows(piece);
    pool_result_free(piece);
    struct inherited in = {s, lease};
    struct outcome o = run_child(VIA_FORK, close_inherited, &in, END__EXIT);
    assert_child_ok(&o, "closing the inherited stream");
    int64_t pieces = 0;
    seen = read_series(s, 1000, seen, &pieces);
    assert_int_equal(pieces, 2);
    assert_int_equal(seen, 3000);
    assert_ok(pool_stream_close(s));
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

/* ================================================================ 5. misuse */

static void misuse_is_einval_or_estate(void **state) {
    struct ctx c;
    ctx_init(&c, state, "typesmisuse");
    pool_t *pool = make_pool(&c, "pool_size=1");
    pool_lease_t *lease = checkout(pool);
    pool_result_t *res = (pool_result_t *)&res;
    pool_param_t p = {"1", -1, 99};
    assert_int_equal(pool_query_params(&res, lease, "SELECT 1", 1, &p, 0), POOL_EINVAL);
    assert_null(res);
    assert_non_null(strstr(pool_last_error(), "parameter 1"));
    p.type = POOL_TYPE_TEXT;
    p.length = -2;
    assert_int_equal(pool_query_params(&res, lease, "SELECT 1", 1, &p, 0), POOL_EINVAL);
    assert_int_equal(pool_query_params(&res, lease, "SELECT 1", 0, NULL, 8), POOL_EINVAL);
    assert_non_null(strstr(pool_last_error(), "flags"));
    assert_int_equal(pool_query_params(&res, lease, "SELECT 1", 1, NULL, 0), POOL_EINVAL);
    assert_int_equal(pool_query_params(&res, lease, NULL, 0, NULL, 0), POOL_EINVAL);
    assert_int_equal(pool_query_params(NULL, lease, "SELECT 1", 0, NULL, 0), POOL_EINVAL);
    assert_int_equal(pool_query_params(&res, NULL, "SELECT 1", 0, NULL, 0), POOL_EINVAL);
    pool_stream_t *s = (pool_stream_t *)&s;
    assert_int_equal(pool_stream_open(&s, NULL, "SELECT 1", 0, NULL, 0), POOL_EINVAL);
    assert_null(s);
    assert_int_equal(pool_stream_next(&res, NULL, 1), POOL_EINVAL);
    assert_ok(pool_stream_close(NULL));
    assert_int_equal(pool_result_column_type(NULL, 0, NULL), -1);
    assert_int_equal(pool_result_is_null(NULL, 0, 0), -1);
    size_t len = 5;
    assert_null(pool_result_bytes(NULL, 0, 0, &len));
    assert_int_equal(len, 0);
    assert_int_equal(pool_result_length(NULL, 0, 0), -1);
    /* the lease still works */
    assert_int_equal(scalar_int(&c, lease, "SELECT 7"), 7);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    ctx_done(&c);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_parent_watchdog();

    const struct CMUnitTest tests[] = {
        /* 1: types */
        ALL(every_type_round_trips),
        ALL(null_empty_text_and_empty_bytea_are_told_apart),
        ALL(bytea_parameters_hold_any_bytes),
        /* 2: getters and bulk */
        ALL(typed_getters_convert_or_refuse),
        ALL(the_bulk_read_matches_the_values_and_refuses_a_short_buffer),
        /* 3: prepared statements */
        CASE(libpq, prepared_statements_are_cached_evicted_and_recovered),
        CASE(libpq, discard_empties_the_cache_and_size_zero_prepares_nothing),
        /* 4: streams */
        ALL(a_stream_gives_every_row_in_pieces),
        ALL(an_open_stream_holds_its_lease_and_closes_early),
        PG(a_failing_stream_reports_equery_and_the_lease_recovers),
        CASE(libpq, a_100_mb_result_streams_in_bounded_memory),
        PG(a_child_closing_an_inherited_stream_leaves_the_parents_alone),
        /* 5: misuse */
        ALL(misuse_is_einval_or_estate),
    };
    if (getenv("CONNPOOL_TEST_FILTER")) cmocka_set_test_filter(getenv("CONNPOOL_TEST_FILTER"));
    return cmocka_run_group_tests_name("types", tests, NULL, NULL);
}
