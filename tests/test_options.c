/* Options, connection-string classification and the error surface: no connection is made. */
#include <stdio.h>
#include <string.h>

#include "util.h"

static void expect_create_error(const char *conninfo, const char *options, int code,
                                const char *needle1, const char *needle2) {
    pool_t *pool = (pool_t *)0x1;
    int rc = pool_create(&pool, conninfo, options);
    if (rc != code)
        fail_msg("options \"%s\": got %s (%s), want %s", options, pool_error_name(rc),
                 pool_last_error(), pool_error_name(code));
    assert_null(pool);
    if (needle1 && !strstr(pool_last_error(), needle1))
        fail_msg("message \"%s\" does not name \"%s\"", pool_last_error(), needle1);
    if (needle2 && !strstr(pool_last_error(), needle2))
        fail_msg("message \"%s\" does not name \"%s\"", pool_last_error(), needle2);
}

static void defaults_follow_sqlalchemy(void **state) {
    (void)state;
    pool_t *pool;
    assert_ok(pool_create(&pool, "", NULL));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pool_size, 5);
    assert_int_equal(st.max_overflow, 10);
    assert_int_equal(st.size, sizeof(pool_stats_t));
    assert_int_equal(st.opened_total, 0); /* connections open lazily */
    assert_ok(pool_dispose(pool));
}

static void options_parse_with_libpq_quoting(void **state) {
    (void)state;
    pool_t *pool;
    assert_ok(pool_create(&pool, "", "  pool_size = '7'\tmax_overflow=-1 pool_timeout=0.5 "
                                     "pool_use_lifo=on reset_on_return=none poolclass=queue"));
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.pool_size, 7);
    assert_int_equal(st.max_overflow, -1);
    assert_ok(pool_dispose(pool));
    /* a repeated key: the last one wins, as in libpq */
    assert_ok(pool_create(&pool, "", "pool_size=2 pool_size=3"));
    assert_int_equal(stats_of(pool).pool_size, 3);
    assert_ok(pool_dispose(pool));
    /* backslash escapes inside quotes */
    expect_create_error("", "reset_on_return='roll\\'back'", POOL_EINVAL, "reset_on_return",
                        "roll'back");
}

static void unknown_key_is_named(void **state) {
    (void)state;
    expect_create_error("", "pool_size=3 pool_sise=4", POOL_EINVAL, "unknown option \"pool_sise\"",
                        NULL);
}

static void bad_values_name_key_and_value(void **state) {
    (void)state;
    static const struct {
        const char *options, *key, *value;
    } cases[] = {
        {"pool_size=0", "pool_size", "\"0\""},
        {"pool_size=-1", "pool_size", "\"-1\""},
        {"pool_size=abc", "pool_size", "\"abc\""},
        {"pool_size=5x", "pool_size", "\"5x\""},
        {"pool_size=99999999999999999999", "pool_size", "\"99999999999999999999\""},
        {"max_overflow=-2", "max_overflow", "\"-2\""},
        {"pool_timeout=-1", "pool_timeout", "\"-1\""},
        {"pool_timeout=abc", "pool_timeout", "\"abc\""},
        {"pool_timeout=1e3", "pool_timeout", "\"1e3\""},
        {"pool_timeout=.", "pool_timeout", "\".\""},
        {"pool_timeout=nan", "pool_timeout", "\"nan\""},
        {"pool_use_lifo=maybe", "pool_use_lifo", "\"maybe\""},
        {"reset_on_return=sometimes", "reset_on_return", "\"sometimes\""},
        {"poolclass=static", "poolclass", "\"static\""},
        {"pool_overflow_after=soon", "pool_overflow_after", "\"soon\""},
        {"pool_overflow_after=-1", "pool_overflow_after", "\"-1\""},
        {"pool_size=", "pool_size", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_create_error("", cases[i].options, POOL_EINVAL, cases[i].key, cases[i].value);
}

static void syntax_errors_are_clear(void **state) {
    (void)state;
    expect_create_error("", "pool_size", POOL_EINVAL, "missing \"=\" after \"pool_size\"", NULL);
    expect_create_error("", "pool_size='3", POOL_EINVAL, "unterminated", "pool_size");
}

static void params_form_needs_no_quoting(void **state) {
    (void)state;
    pool_t *pool;
    const char *keys[] = {"pool_size", "pool_timeout", NULL};
    const char *values[] = {"4", "2.5", NULL};
    assert_ok(pool_create_params(&pool, "", keys, values));
    assert_int_equal(stats_of(pool).pool_size, 4);
    assert_ok(pool_dispose(pool));

    assert_ok(pool_create_params(&pool, "", NULL, NULL));
    assert_int_equal(stats_of(pool).pool_size, 5);
    assert_ok(pool_dispose(pool));

    const char *bad_keys[] = {"pool_size", NULL};
    const char *null_values[] = {NULL, NULL};
    assert_int_equal(pool_create_params(&pool, "", bad_keys, null_values), POOL_EINVAL);
    assert_non_null(strstr(pool_last_error(), "pool_size"));
    const char *spaced[] = {"reset_on_return", NULL};
    const char *spaced_values[] = {"roll back", NULL};
    assert_int_equal(pool_create_params(&pool, "", spaced, spaced_values), POOL_EINVAL);
    assert_non_null(strstr(pool_last_error(), "\"roll back\""));
}

static void connection_strings_select_a_connector(void **state) {
    (void)state;
    pool_t *pool;
    static const char *const libpq[] = {
        "", "host=127.0.0.1 dbname=x", "postgresql://u@127.0.0.1/x", "postgres://127.0.0.1",
    };
    for (size_t i = 0; i < sizeof libpq / sizeof libpq[0]; i++) {
        assert_ok(pool_create(&pool, libpq[i], NULL));
        assert_ok(pool_dispose(pool));
    }
    expect_create_error("mysql://u:pw@host/db", NULL, POOL_ENOTSUP, "unsupported scheme", NULL);
    expect_create_error("justaword", NULL, POOL_EINVAL, "neither", NULL);
    expect_create_error("host=x port", NULL, POOL_EINVAL, "invalid connection string", NULL);
    expect_create_error(NULL, NULL, POOL_EINVAL, "conninfo is NULL", NULL);
    assert_int_equal(pool_create(NULL, "", NULL), POOL_EINVAL);
}

static void passwords_never_reach_messages(void **state) {
    (void)state;
    pool_t *pool;
    /* libpq's parse errors quote the string; the password must not survive */
    assert_int_equal(pool_create(&pool, "host=x password=s3cr3t-pw port", NULL), POOL_EINVAL);
    assert_null(strstr(pool_last_error(), "s3cr3t-pw"));
    assert_int_equal(pool_create(&pool, "mysql://user:s3cr3t-pw@h/db", NULL), POOL_ENOTSUP);
    assert_null(strstr(pool_last_error(), "s3cr3t-pw"));
}

static void messages_are_cleared_by_the_next_call(void **state) {
    (void)state;
    pool_t *pool;
    assert_int_equal(pool_create(&pool, "", "bogus=1"), POOL_EINVAL);
    assert_string_not_equal(pool_last_error(), "");
    assert_ok(pool_create(&pool, "", NULL));
    assert_string_equal(pool_last_error(), "");
    assert_ok(pool_dispose(pool));
}

static void codes_have_names_and_texts(void **state) {
    (void)state;
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {POOL_OK, "POOL_OK"},           {POOL_ERROR, "POOL_ERROR"},
        {POOL_EINVAL, "POOL_EINVAL"},   {POOL_ENOMEM, "POOL_ENOMEM"},
        {POOL_ETIMEDOUT, "POOL_ETIMEDOUT"}, {POOL_ECONNECT, "POOL_ECONNECT"},
        {POOL_EBUSY, "POOL_EBUSY"},     {POOL_ECLOSED, "POOL_ECLOSED"},
        {POOL_ESTATE, "POOL_ESTATE"},   {POOL_ENOTSUP, "POOL_ENOTSUP"},
        {POOL_EFORKED, "POOL_EFORKED"}, {POOL_ETOOMANYWAITERS, "POOL_ETOOMANYWAITERS"},
        {POOL_ERANGE, "POOL_ERANGE"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_equal(pool_error_name(codes[i].code), codes[i].name);
        assert_string_not_equal(pool_strerror(codes[i].code), "unknown error");
    }
    assert_string_equal(pool_error_name(-999), "POOL_UNKNOWN");
    assert_string_equal(pool_strerror(12345), "unknown error");
    assert_int_equal(pool_version(), CONNPOOL_VERSION_MAJOR * 10000 +
                                         CONNPOOL_VERSION_MINOR * 100 + CONNPOOL_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CONNPOOL_VERSION_MAJOR, CONNPOOL_VERSION_MINOR,
             CONNPOOL_VERSION_PATCH);
    assert_string_equal(pool_version_string(), want);
}

static int destroyed;
static int never_open(void **out, char *err, size_t len, int64_t t, void *ud) {
    (void)out, (void)err, (void)len, (void)t, (void)ud;
    return 1;
}
static void never_close(void *c, void *ud) { (void)c, (void)ud; }
static void count_destroy(void *ud) { destroyed += *(int *)ud; }

static void custom_create_destroys_user_data_once_even_on_failure(void **state) {
    (void)state;
    pool_t *pool;
    int one = 1;
    destroyed = 0;
    assert_int_equal(pool_create_custom(&pool, NULL, NULL, never_close, NULL, NULL, count_destroy, &one),
                     POOL_EINVAL);
    assert_int_equal(destroyed, 1);
    assert_int_equal(pool_create_custom(&pool, "pool_size=x", never_open, never_close, NULL, NULL,
                                        count_destroy, &one),
                     POOL_EINVAL);
    assert_int_equal(destroyed, 2);
    assert_ok(pool_create_custom(&pool, NULL, never_open, never_close, NULL, NULL, count_destroy, &one));
    assert_int_equal(destroyed, 2);
    assert_ok(pool_dispose(pool));
    assert_int_equal(destroyed, 3);
}

static void health_and_lifecycle_options_parse(void **state) {
    (void)state;
    static const char *const good[] = {
        "pool_pre_ping=true pre_ping_interval=0 ping_timeout=0.5 pool_recycle=3600 "
        "pool_recycle_jitter=60 idle_timeout=300 min_idle=2 max_waiting=10 leak_threshold=30 "
        "fail_fast_after=5 fail_fast_backoff_max=1.5",
        "pool_pre_ping=off pre_ping_interval=.25 pool_recycle=0 idle_timeout=0 leak_threshold=0",
        "pool_recycle=-1",            /* SQLAlchemy's "never", accepted for 0 */
        "max_waiting=-1",             /* no limit */
        "max_waiting=0",              /* no checkout ever waits */
        "min_idle=0 fail_fast_after=0",
        "min_idle=3 pool_size=3",     /* min_idle may equal pool_size, in either order */
        "pool_size=3 min_idle=3",
        "pool_overflow_after=auto pool_handoff_after=0",
        "pool_overflow_after=0.05",
        "pool_overflow_after=0",      /* SQLAlchemy's rule: overflow opens at once */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pool_t *pool = NULL;
        int rc = pool_create(&pool, "", good[i]);
        if (rc != POOL_OK)
            fail_msg("options \"%s\": %s: %s", good[i], pool_error_name(rc), pool_last_error());
        assert_ok(pool_dispose(pool));
    }
    /* the params form, and a custom connector, take them too */
    pool_t *pool;
    const char *keys[] = {"min_idle", "max_waiting", "pool_pre_ping", NULL};
    const char *values[] = {"1", "0", "yes", NULL};
    assert_ok(pool_create_params(&pool, "", keys, values));
    assert_ok(pool_dispose(pool));
    assert_ok(pool_create_custom(&pool, "pool_pre_ping=1 pre_ping_interval=0 leak_threshold=0.05",
                                 never_open, never_close, NULL, NULL, NULL, NULL));
    assert_ok(pool_dispose(pool));
}

static void bad_health_and_lifecycle_values_name_key_and_value(void **state) {
    (void)state;
    static const struct {
        const char *options, *key, *value;
    } cases[] = {
        {"pool_pre_ping=maybe", "pool_pre_ping", "\"maybe\""},
        {"pool_pre_ping=", "pool_pre_ping", "\"\""},
        {"pre_ping_interval=-1", "pre_ping_interval", "\"-1\""},
        {"pre_ping_interval=soon", "pre_ping_interval", "\"soon\""},
        {"ping_timeout=abc", "ping_timeout", "\"abc\""},
        {"ping_timeout=-5", "ping_timeout", "\"-5\""},
        {"pool_recycle=-2", "pool_recycle", "\"-2\""},
        {"pool_recycle=1h", "pool_recycle", "\"1h\""},
        {"pool_recycle_jitter=-1", "pool_recycle_jitter", "\"-1\""},
        {"idle_timeout=1e3", "idle_timeout", "\"1e3\""},
        {"idle_timeout=nan", "idle_timeout", "\"nan\""},
        {"min_idle=-1", "min_idle", "\"-1\""},
        {"min_idle=1.5", "min_idle", "\"1.5\""},
        {"max_waiting=-2", "max_waiting", "\"-2\""},
        {"max_waiting=many", "max_waiting", "\"many\""},
        {"leak_threshold=-1", "leak_threshold", "\"-1\""},
        {"leak_threshold=.", "leak_threshold", "\".\""},
        {"fail_fast_after=-1", "fail_fast_after", "\"-1\""},
        {"fail_fast_after=3.5", "fail_fast_after", "\"3.5\""},
        {"fail_fast_backoff_max=abc", "fail_fast_backoff_max", "\"abc\""},
        {"fail_fast_backoff_max=-1", "fail_fast_backoff_max", "\"-1\""},
        {"query_timeout=-0.5", "query_timeout", "\"-0.5\""},
        {"query_timeout=forever", "query_timeout", "\"forever\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_create_error("", cases[i].options, POOL_EINVAL, cases[i].key, cases[i].value);
    /* min_idle is at most pool_size, whatever the order of the two */
    expect_create_error("", "min_idle=6", POOL_EINVAL, "min_idle", "pool_size");
    expect_create_error("", "min_idle=3 pool_size=2", POOL_EINVAL, "min_idle", "pool_size");
    expect_create_error("", "pool_size=2 min_idle=3", POOL_EINVAL, "min_idle", "pool_size");
    /* a misspelt new key is named */
    expect_create_error("", "pool_preping=true", POOL_EINVAL, "unknown option \"pool_preping\"",
                        NULL);
}

static void stats_fill_only_what_the_caller_has_room_for(void **state) {
    (void)state;
    pool_t *pool;
    assert_ok(pool_create(&pool, "", "pool_size=9"));
    int64_t old[4] = {3 * (int64_t)sizeof(int64_t), -1, -1, -1}; /* size, pool_size, max_overflow */
    assert_ok(pool_stats_get(pool, (pool_stats_t *)old));
    assert_int_equal(old[0], 3 * sizeof(int64_t));
    assert_int_equal(old[1], 9);
    assert_int_equal(old[2], 10);
    assert_int_equal(old[3], -1); /* untouched */
    int64_t tiny[1] = {4};
    assert_int_equal(pool_stats_get(pool, (pool_stats_t *)tiny), POOL_EINVAL);
    assert_int_equal(pool_stats_get(pool, NULL), POOL_EINVAL);
    assert_int_equal(pool_stats_get(NULL, (pool_stats_t *)old), POOL_EINVAL);
    assert_ok(pool_dispose(pool));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_follow_sqlalchemy),
        cmocka_unit_test(options_parse_with_libpq_quoting),
        cmocka_unit_test(unknown_key_is_named),
        cmocka_unit_test(bad_values_name_key_and_value),
        cmocka_unit_test(syntax_errors_are_clear),
        cmocka_unit_test(params_form_needs_no_quoting),
        cmocka_unit_test(connection_strings_select_a_connector),
        cmocka_unit_test(passwords_never_reach_messages),
        cmocka_unit_test(messages_are_cleared_by_the_next_call),
        cmocka_unit_test(codes_have_names_and_texts),
        cmocka_unit_test(custom_create_destroys_user_data_once_even_on_failure),
        cmocka_unit_test(stats_fill_only_what_the_caller_has_room_for),
        cmocka_unit_test(health_and_lifecycle_options_parse),
        cmocka_unit_test(bad_health_and_lifecycle_values_name_key_and_value),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
