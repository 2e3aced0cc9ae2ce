/* Security against a real PostgreSQL server, through libpq and psqlODBC: TLS verification
 * with the harness's test CA, passwords that never leave the library, and leases that belong
 * to their own pool.
 *
 * Run under tests/with-postgres.sh. Its server's certificate is signed by a throwaway CA
 * (CONNPOOL_TEST_SSL_CA) and names only 127.0.0.1; CONNPOOL_TEST_SSL_WRONG_CA is an unrelated
 * CA. So: sslmode=verify-full passes for host 127.0.0.1 with the right CA and fails with the
 * wrong one (libpq's "certificate verify failed"), fails on the name for host localhost
 * (where verify-ca passes, which shows the name is the only fault), and fails clearly when
 * the root certificate file is missing. Each case runs through libpq and through psqlODBC,
 * which hands sslrootcert to libpq in Pqopt={...} and has SSLmode=verify-full itself. A
 * failed connect is counted as one connect failure and nothing else: no connection opened,
 * no slot kept, and no session on the server.
 *
 * The password scan: a role whose password holds every character that needs quoting
 * somewhere (' \ space = ; @ % : / { } " and non-ASCII UTF-8) logs in over TCP, where the
 * server asks for a SCRAM password (pg_virtualenv's pg_hba). A scripted run passes that
 * password as a URI (percent-encoded), a key=value string (single-quoted, escaped) and an ODBC
 * PWD={...} (braced, "}}" for "}"), plus wrong variants: a wrong password sharing a prefix
 * with the right one, and strings malformed the usual ways (the password unquoted or
 * unterminated in key=value, unbraced in ODBC). The run makes checkouts, queries, a failing
 * query, a checkout timeout, invalidations, resets and a refused connect, with the log hook at POOL_LOG_DEBUG and the on_connect/on_close hooks on. It keeps
 * every pool_last_error(), every log line, the Prometheus text and a dump of the statistics,
 * and it points fds 1 and 2 at a temporary file meanwhile, so whatever the library or a driver
 * prints is kept too. No piece of four bytes or more of any password, in any of its written
 * forms, may appear in any of it. The run is checked for having done what it claims (log
 * lines, errors, checkouts, hooks), so the scan cannot pass on an empty text. While fds 1 and 2
 * are redirected no cmocka assertion may fail (its message would vanish): problems are
 * recorded and asserted once they are back. Nothing here prints a password, even on failure:
 * a leak is reported by its place, with the password masked. The same scan runs on the
 * commonest mistake alone, the password left unencoded in a URI, whose parse error quotes a
 * piece of it.
 *
 * Leases and pools: the API has no call taking both a pool and a lease (a lease knows its
 * pool), so a lease cannot be checked into another pool; what can be tried is a pool handle
 * given where a lease belongs, which is refused with POOL_ESTATE and changes neither pool.
 * Scoped leases are per pool (test_lifecycle.c, a_scoped_lease_is_one_per_thread); a forked
 * child cannot use its parent's sessions (test_fork.c, test_pool.c, test_odbc.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---------------------------------------------------------------- helpers */

/* The first value of a one-row result, copied into buf; "" and the error in buf on failure
 * (the caller decides whether that fails the test). */
static int query_text(pool_lease_t *lease, const char *sql, char *buf, size_t len) {
    pool_result_t *r = NULL;
    int rc = pool_query(&r, lease, sql, 0, NULL);
    if (rc != POOL_OK) {
        snprintf(buf, len, "%s", pool_last_error());
        return rc;
    }
    const char *v = pool_result_rows(r) > 0 ? pool_result_value(r, 0, 0) : NULL;
    snprintf(buf, len, "%s", v ? v : "");
    pool_result_free(r);
    return POOL_OK;
}

/* ---------------------------------------------------------------- TLS */

enum connector_kind { VIA_LIBPQ, VIA_ODBC };
static const char *const connector_names[] = {"libpq", "psqlODBC"};

/* A connection string for this server through `kind`, as the harness's superuser, with TLS
 * `sslmode` to `host` and root certificate `rootcert` (NULL: none given). */
static void tls_conninfo(char *buf, size_t len, enum connector_kind kind, const char *host,
                         const char *sslmode, const char *rootcert, const char *app) {
    const char *port = env_or_fail("PGPORT"), *db = env_or_fail("PGDATABASE");
    const char *user = env_or_fail("PGUSER"), *password = env_or_fail("PGPASSWORD");
    char root[320] = "";
    if (kind == VIA_LIBPQ) {
        if (rootcert) snprintf(root, sizeof root, " sslrootcert=%s", rootcert);
        snprintf(buf, len, "host=%s port=%s dbname=%s user=%s sslmode=%s%s application_name=%s",
                 host, port, db, user, sslmode, root, app);
    } else {
        if (rootcert) snprintf(root, sizeof root, "sslrootcert=%s ", rootcert);
        snprintf(buf, len,
                 "odbc:Driver={PostgreSQL Unicode};Server=%s;Port=%s;Database=%s;UID=%s;"
                 "PWD={%s};SSLmode=%s;Pqopt={%sapplication_name=%s}",
                 host, port, db, user, password, sslmode, root, app);
    }
}

/* Checks out through `conninfo`, and checks that the session is ours, on TLS, as the server
 * sees it. */
static void tls_session_works(const char *conninfo, const char *app, const char *what) {
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=1 max_overflow=0"));
    pool_lease_t *lease = checkout(pool);
    char ssl[256];
    if (query_text(lease, "SELECT CASE WHEN ssl THEN 'tls' ELSE 'plain' END FROM pg_stat_ssl "
                          "WHERE pid = pg_backend_pid()",
                   ssl, sizeof ssl) != POOL_OK)
        fail_msg("%s: pg_stat_ssl: %s", what, ssl);
    if (strcmp(ssl, "tls") != 0) fail_msg("%s: the session is %s", what, ssl);
    PGconn *monitor = monitor_connect();
    assert_int_equal(sessions_named(monitor, app), 1);
    pool_stats_t st = stats_of(pool);
    assert_int_equal(st.opened_total, 1);
    assert_int_equal(st.checkouts_total, 1);
    assert_int_equal(st.connect_failures_total, 0);
    assert_ok(pool_checkin(lease));
    assert_ok(pool_dispose(pool));
    await_sessions(monitor, app, 0);
    PQfinish(monitor);
}

/* The checkout fails with POOL_ECONNECT and a message containing `why`, twice (the slot is
 * given back), counting connect failures only (checkout_fails_to_connect checks the counts),
 * and the server never saw a session by this name. */
static void tls_connect_fails(const char *conninfo, const char *app, const char *why,
                              const char *what) {
    char msg[1024];
    checkout_fails_to_connect(conninfo, msg, sizeof msg);
    if (!strstr(msg, why)) fail_msg("%s: \"%s\" does not say \"%s\"", what, msg, why);
    print_message("%s: %s\n", what, msg);
    const char *password = env_or_fail("PGPASSWORD");
    if (strstr(msg, password)) fail_msg("%s: the message shows PGPASSWORD", what);
    PGconn *monitor = monitor_connect();
    assert_int_equal(sessions_named(monitor, app), 0);
    PQfinish(monitor);
}

/* Through libpq, then psqlODBC: a pool over `host` with `sslmode` and root certificate
 * `rootcert` (NULL: none), its sessions named <base>_pq and <base>_od, works on TLS
 * (tls_session_works) if `why` is NULL, else fails saying `why` (tls_connect_fails). */
static void tls_through_both(const char *base, const char *host, const char *sslmode,
                             const char *rootcert, const char *why) {
    for (int k = VIA_LIBPQ; k <= VIA_ODBC; k++) {
        char name[48], app[64], conninfo[768];
        snprintf(name, sizeof name, "%s_%s", base, k == VIA_LIBPQ ? "pq" : "od");
        test_app_name(app, sizeof app, name);
        tls_conninfo(conninfo, sizeof conninfo, k, host, sslmode, rootcert, app);
        if (why)
            tls_connect_fails(conninfo, app, why, connector_names[k]);
        else
            tls_session_works(conninfo, app, connector_names[k]);
    }
}

static void sslmode_require_encrypts_the_pooled_sessions(void **state) {
    (void)state;
    tls_through_both("sec_require", "127.0.0.1", "require", NULL, NULL);
}

static void verify_full_with_the_test_ca_connects(void **state) {
    (void)state;
    tls_through_both("sec_vfull", "127.0.0.1", "verify-full", env_or_fail("CONNPOOL_TEST_SSL_CA"),
                     NULL);
}

static void verify_full_with_a_wrong_ca_fails_at_checkout_saying_why(void **state) {
    (void)state;
    tls_through_both("sec_wrongca", "127.0.0.1", "verify-full",
                     env_or_fail("CONNPOOL_TEST_SSL_WRONG_CA"), "certificate verify failed");
}

/* The certificate names 127.0.0.1 only. verify-ca through the same name passes, so the
 * name is the only fault verify-full finds. */
static void verify_full_fails_on_a_host_name_not_in_the_certificate(void **state) {
    (void)state;
    const char *ca = env_or_fail("CONNPOOL_TEST_SSL_CA");
    tls_through_both("sec_name", "localhost", "verify-full", ca,
                     "does not match host name \"localhost\"");
    tls_through_both("sec_vca", "localhost", "verify-ca", ca, NULL);
}

static void verify_full_with_a_missing_root_certificate_fails_clearly(void **state) {
    (void)state;
    const char *missing = "/nonexistent/connpool-test/root.crt";
    char why[128];
    snprintf(why, sizeof why, "root certificate file \"%s\" does not exist", missing);
    tls_through_both("sec_noroot", "127.0.0.1", "verify-full", missing, why);
}

/* ---------------------------------------------------------------- the password scan */

/* Every character that needs quoting in a URI, a conninfo string or an ODBC string, and
 * non-ASCII UTF-8 (A and O with diaeresis, sharp s, a check mark). Every four bytes in a row
 * hold an unusual pair of letters, so no piece of it turns up in a message by chance. */
#define SCAN_PASSWORD "Qz'Xv\\ Jk=Wq;Yb@Fj%Hx:Gk/Zv{Pq}Kw\"\xC3\x84\xC3\x96\xC3\x9F\xE2\x9C\x93Jq"
/* Wrong, with the right one's first 16 bytes. */
#define SCAN_WRONG_PASSWORD "Qz'Xv\\ Jk=Wq;Yb@Nm-Rt7Lw"

/* Everything the library emitted during the run, each piece labelled by where it came from;
 * the hooks may run on the maintenance thread, hence the lock. */
struct sink {
    pthread_mutex_t mu;
    char *text;
    size_t len, cap;
    int log_lines, errors, connects, closes;
    int refuse_connect; /* on_connect fails (set only while no pool runs) */
    char problem[512];  /* the first thing that went wrong during the run */
    int problems;
};

static void sink_add(struct sink *s, const char *source, const char *text) {
    pthread_mutex_lock(&s->mu);
    size_t need = s->len + strlen(source) + strlen(text) + 8;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < need) cap *= 2;
        char *grown = realloc(s->text, cap);
        if (!grown) abort();
        s->text = grown;
        s->cap = cap;
    }
    s->len += (size_t)sprintf(s->text + s->len, "[%s] %s\n", source, text);
    pthread_mutex_unlock(&s->mu);
}

static void expect(struct sink *s, int ok, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void expect(struct sink *s, int ok, const char *format, ...) {
    if (ok) return;
    if (s->problems++ == 0) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(s->problem, sizeof s->problem, format, ap);
        va_end(ap);
    }
}

/* Records a failure's detail message; the call must have failed with `want`. */
static void expect_failure(struct sink *s, int rc, int want, const char *call) {
    expect(s, rc == want, "%s returned %s, not %s", call, pool_error_name(rc),
           pool_error_name(want));
    sink_add(s, call, pool_last_error());
    s->errors++;
}

static void on_log(int level, const char *message, void *user_data) {
    struct sink *s = user_data;
    char source[16];
    snprintf(source, sizeof source, "log %d", level);
    sink_add(s, source, message ? message : "(null)");
    pthread_mutex_lock(&s->mu);
    s->log_lines++;
    pthread_mutex_unlock(&s->mu);
}

static int on_connect(void *conn, char *errbuf, size_t errbuf_len, void *user_data) {
    struct sink *s = user_data;
    (void)conn;
    pthread_mutex_lock(&s->mu);
    s->connects++;
    int refuse = s->refuse_connect;
    pthread_mutex_unlock(&s->mu);
    if (refuse) snprintf(errbuf, errbuf_len, "the test's on_connect refuses this connection");
    return refuse;
}

static void on_close(void *conn, void *user_data) {
    struct sink *s = user_data;
    (void)conn;
    pthread_mutex_lock(&s->mu);
    s->closes++;
    pthread_mutex_unlock(&s->mu);
}

/* A pool with every hook on; NULL (and the error recorded) if creation fails. */
static pool_t *scan_pool(struct sink *s, const char *conninfo, const char *options,
                         int want_create) {
    pool_t *pool = NULL;
    int rc = pool_create(&pool, conninfo, options);
    if (rc != POOL_OK) {
        expect_failure(s, rc, want_create, "pool_create");
        return NULL;
    }
    expect(s, want_create == POOL_OK, "pool_create succeeded; %s expected",
           pool_error_name(want_create));
    pool_hooks_t hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.on_connect = on_connect;
    hooks.on_close = on_close;
    hooks.log = on_log;
    hooks.log_level = POOL_LOG_DEBUG;
    hooks.user_data = s;
    rc = pool_set_hooks(pool, &hooks);
    expect(s, rc == POOL_OK, "pool_set_hooks: %s", pool_error_name(rc));
    return pool;
}

/* The statistics, every field, and the Prometheus text, into the sink. */
static void dump_metrics(struct sink *s, pool_t *pool, const char *label) {
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = pool_stats_get(pool, &st);
    expect(s, rc == POOL_OK, "pool_stats_get: %s", pool_error_name(rc));
    char dump[2048];
    size_t n = 0;
    const int64_t *field = &st.size;
    for (size_t i = 0; i < sizeof st / sizeof st.size; i++)
        n += (size_t)snprintf(dump + n, sizeof dump - n, "%lld ", (long long)field[i]);
    sink_add(s, "stats", dump);
    size_t len = 0;
    rc = pool_stats_prometheus(NULL, 0, &len, pool, label);
    expect(s, rc == POOL_ERANGE, "pool_stats_prometheus sizing: %s", pool_error_name(rc));
    sink_add(s, "pool_stats_prometheus sizing", pool_last_error());
    char *text = malloc(len + 1);
    if (!text) abort();
    rc = pool_stats_prometheus(text, len + 1, &len, pool, label);
    expect(s, rc == POOL_OK && strstr(text, "connpool_checkouts_total") != NULL,
           "pool_stats_prometheus: %s", pool_error_name(rc));
    sink_add(s, "prometheus", rc == POOL_OK ? text : "");
    free(text);
}

static void expect_query(struct sink *s, pool_lease_t *lease, const char *sql, const char *want) {
    char got[512];
    int rc = query_text(lease, sql, got, sizeof got);
    if (rc != POOL_OK) sink_add(s, "pool_query", got);
    expect(s, rc == POOL_OK && strcmp(got, want) == 0, "%s gave %s \"%s\", not \"%s\"", sql,
           pool_error_name(rc), rc == POOL_OK ? got : "(see the sink)", want);
}

/* The right password: three connects and three closes, through every call that reports. */
static void run_with_the_right_password(struct sink *s, const char *conninfo, const char *label,
                                        const char *role) {
    pool_t *pool = scan_pool(s, conninfo, "pool_size=2 max_overflow=0 pool_timeout=10", POOL_OK);
    if (!pool) return;
    pool_lease_t *a = NULL, *b = NULL, *c = NULL;
    int rc = pool_checkout_tagged(&a, pool, SERVER_WAIT_MS, label);
    expect(s, rc == POOL_OK, "%s: checkout: %s", label, pool_error_name(rc));
    if (rc != POOL_OK) sink_add(s, "pool_checkout", pool_last_error());
    rc = pool_checkout(&b, pool, SERVER_WAIT_MS);
    expect(s, rc == POOL_OK, "%s: second checkout: %s", label, pool_error_name(rc));
    if (rc != POOL_OK) sink_add(s, "pool_checkout", pool_last_error());
    if (a && b) {
        expect_query(s, a, "SELECT current_user", role);
        /* a NOTICE goes to the log hook (libpq would print it on stderr; psqlODBC keeps it as
         * a diagnostic): scanned like every log line, and absent from fds 1 and 2 */
        expect_query(s, a, "DO $$BEGIN RAISE NOTICE 'scan notice'; END$$", "");
        pool_result_t *r = NULL;
        expect_failure(s, pool_query(&r, a, "SELECT 1/0", 0, NULL), POOL_EQUERY, "pool_query");
        expect(s, strcmp(pool_last_sqlstate(), "22012") == 0, "%s: SQLSTATE %s, not 22012",
               label, pool_last_sqlstate());
        /* both connections out: a checkout times out, its message naming the holders */
        expect_failure(s, pool_checkout(&c, pool, 1), POOL_ETIMEDOUT, "pool_checkout");
        expect(s, pool_invalidate(b) == POOL_OK, "%s: pool_invalidate", label);
        expect(s, pool_checkin(b) == POOL_OK, "%s: checkin of b", label);
        expect(s, pool_reset(pool) == POOL_OK, "%s: pool_reset", label);
        expect(s, pool_checkin(a) == POOL_OK, "%s: checkin of a", label); /* retired: closed */
        expect_failure(s, pool_checkin(a), POOL_ESTATE, "pool_checkin");
        rc = pool_checkout(&c, pool, SERVER_WAIT_MS);
        expect(s, rc == POOL_OK, "%s: third checkout: %s", label, pool_error_name(rc));
        if (rc == POOL_OK) {
            expect_query(s, c, "SELECT current_user", role);
            expect(s, pool_checkin(c) == POOL_OK, "%s: checkin of c", label);
        } else {
            sink_add(s, "pool_checkout", pool_last_error());
        }
    }
    dump_metrics(s, pool, label);
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    pool_stats_get(pool, &st);
    expect(s, st.opened_total == 3 && st.checkouts_total == 3 && st.connect_failures_total == 0,
           "%s: %lld opened, %lld checkouts, %lld connect failures; want 3, 3, 0", label,
           (long long)st.opened_total, (long long)st.checkouts_total,
           (long long)st.connect_failures_total);
    expect(s, pool_dispose(pool) == POOL_OK, "%s: pool_dispose", label);
}

/* A string the server, the driver or the parser refuses: every call that reports, with the
 * error recorded. want_create: POOL_OK, or the code pool_create must fail with. */
static void run_refused(struct sink *s, const char *conninfo, const char *label,
                        int want_create, const char *why) {
    pool_t *pool = scan_pool(s, conninfo, "pool_size=1 max_overflow=0 pool_timeout=10",
                             want_create);
    if (!pool) {
        expect(s, !why || strstr(pool_last_error(), why) != NULL,
               "%s: pool_create's message does not say \"%s\"", label, why);
        return;
    }
    pool_lease_t *lease = NULL;
    for (int i = 0; i < 2; i++) {
        expect_failure(s, pool_checkout(&lease, pool, SERVER_WAIT_MS), POOL_ECONNECT,
                       "pool_checkout");
        expect(s, !why || strstr(pool_last_error(), why) != NULL,
               "%s: the checkout's message does not say \"%s\"", label, why);
    }
    dump_metrics(s, pool, label);
    expect(s, pool_dispose(pool) == POOL_OK, "%s: pool_dispose", label);
    /* min_idle: the maintenance thread connects, fails and logs; wait_ready reports */
    pool = scan_pool(s, conninfo, "pool_size=1 max_overflow=0 min_idle=1 pool_timeout=10",
                     POOL_OK);
    if (!pool) return;
    int rc = pool_wait_ready(pool, 300);
    expect_failure(s, rc, POOL_ETIMEDOUT, "pool_wait_ready");
    dump_metrics(s, pool, label);
    expect(s, pool_dispose(pool) == POOL_OK, "%s: pool_dispose", label);
}

/* The written forms of a password. */
enum { FORM_RAW, FORM_PERCENT, FORM_PERCENT_LOWER, FORM_CONNINFO, FORM_BRACED, FORM_SQL, FORMS };
static const char *const form_names[FORMS] = {"raw", "percent-encoded", "percent-encoded (lower case)",
                                              "conninfo-quoted", "ODBC-braced", "SQL-quoted"};

static void write_form(char *out, size_t len, const char *password, int form) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)password; *p && n + 8 < len; p++) {
        int unreserved = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                         (*p >= '0' && *p <= '9') || strchr("-._~", *p);
        switch (form) {
            case FORM_PERCENT:
            case FORM_PERCENT_LOWER:
                if (unreserved) out[n++] = (char)*p;
                else n += (size_t)sprintf(out + n, form == FORM_PERCENT ? "%%%02X" : "%%%02x", *p);
                break;
            case FORM_CONNINFO:
                if (*p == '\'' || *p == '\\') out[n++] = '\\';
                out[n++] = (char)*p;
                break;
            case FORM_BRACED:
                out[n++] = (char)*p;
                if (*p == '}') out[n++] = '}';
                break;
            case FORM_SQL:
                out[n++] = (char)*p;
                if (*p == '\'') out[n++] = '\'';
                break;
            default:
                out[n++] = (char)*p;
        }
    }
    out[n] = 0;
}

/* The password in a URI: percent-encoded (RFC 3986 unreserved characters stay). */
static void uri_with(char *buf, size_t len, const char *role, const char *password,
                     int encode, const char *app) {
    char pw[512];
    write_form(pw, sizeof pw, password, encode ? FORM_PERCENT : FORM_RAW);
    snprintf(buf, len, "postgresql://%s:%s@127.0.0.1:%s/%s?application_name=%s", role, pw,
             env_or_fail("PGPORT"), env_or_fail("PGDATABASE"), app);
}

/* In key=value: quoted with escapes (quote 1), bare (quote 0), or left open (quote -1). */
static void keyvalue_with(char *buf, size_t len, const char *role, const char *password,
                          int quote, const char *app) {
    char pw[512];
    write_form(pw, sizeof pw, password, quote ? FORM_CONNINFO : FORM_RAW);
    snprintf(buf, len, "host=127.0.0.1 port=%s dbname=%s user=%s application_name=%s password=%s%s%s",
             env_or_fail("PGPORT"), env_or_fail("PGDATABASE"), role, app, quote ? "'" : "", pw,
             quote > 0 ? "'" : "");
}

/* In ODBC: PWD={...} with "}}" (braced 1), or bare. */
static void odbc_with(char *buf, size_t len, const char *role, const char *password, int braced,
                      const char *app) {
    char pw[512];
    write_form(pw, sizeof pw, password, braced ? FORM_BRACED : FORM_RAW);
    snprintf(buf, len,
             "odbc:Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=%s;Database=%s;UID=%s;"
             "PWD=%s%s%s;Pqopt={application_name=%s}",
             env_or_fail("PGPORT"), env_or_fail("PGDATABASE"), role, braced ? "{" : "", pw,
             braced ? "}" : "", app);
}

/* Where in `text` a piece of `needle_form` (at least `piece` bytes) occurs first: its offset
 * in text, or -1; *from gets its offset in the form. */
static long find_piece(const char *text, const char *form, size_t piece, size_t *from) {
    size_t n = strlen(form);
    if (n < piece) return -1;
    for (size_t i = 0; i + piece <= n; i++) {
        for (const char *t = text; *t; t++) {
            if (strncmp(t, form + i, piece) == 0) {
                *from = i;
                return t - text;
            }
        }
    }
    return -1;
}

/* Reads what went to the temporary file behind fds 1 and 2. */
static char *read_all(FILE *f) {
    fflush(f);
    long size = ftell(f);
    if (size < 0) return NULL;
    char *text = malloc((size_t)size + 1);
    if (!text) return NULL;
    rewind(f);
    size_t got = fread(text, 1, (size_t)size, f);
    text[got] = 0;
    return text;
}

/* An excerpt of text around a match of form[from..] at text[at..], for a failure message:
 * the whole match (as far as it goes either way), and every byte outside printable ASCII,
 * masked: the message names the place, never the password. */
static void masked_excerpt(char *out, size_t len, const char *text, long at, const char *form,
                           size_t from) {
    long first = at, last = at; /* the match is text[first..last) */
    while (first > 0 && from > (size_t)(at - first) && text[first - 1] == form[from - (size_t)(at - first) - 1])
        first--;
    while (text[last] && form[from + (size_t)(last - at)] &&
           text[last] == form[from + (size_t)(last - at)])
        last++;
    long start = first > 60 ? first - 60 : 0;
    size_t n = 0;
    for (long i = start; text[i] && i < last + 60 && n + 1 < len; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = (i >= first && i < last) || c >= 0x80 || c < 0x20 ? '*' : (char)c;
    }
    out[n] = 0;
}

/* A role that logs in with SCAN_PASSWORD; CREATE ROLE gets it as an escaped literal. */
static void create_scan_role(PGconn *monitor, const char *role) {
    char *literal = PQescapeLiteral(monitor, SCAN_PASSWORD, strlen(SCAN_PASSWORD));
    assert_non_null(literal);
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN PASSWORD %s", role, literal);
    PQfreemem(literal);
    PGresult *r = PQexec(monitor, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) fail_msg("CREATE ROLE %s failed: %s", role, PQerrorMessage(monitor));
}

/* Once the pools' sessions are gone. */
static void drop_scan_role(PGconn *monitor, const char *role, const char *app) {
    await_sessions(monitor, app, 0);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP ROLE %s", role);
    PGresult *r = PQexec(monitor, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) fail_msg("DROP ROLE %s failed: %s", role, PQerrorMessage(monitor));
}

/* fds 1 and 2 pointed at a temporary file, and back. */
struct capture {
    FILE *out;
    int saved_stdout, saved_stderr;
};

static void capture_begin(struct capture *c) {
    c->out = tmpfile();
    assert_non_null(c->out);
    fflush(stdout);
    fflush(stderr);
    c->saved_stdout = dup(1);
    c->saved_stderr = dup(2);
    assert_true(c->saved_stdout >= 0 && c->saved_stderr >= 0);
    assert_true(dup2(fileno(c->out), 1) >= 0 && dup2(fileno(c->out), 2) >= 0);
}

/* Restores fds 1 and 2, and adds what was written to them to the sink. */
static void capture_end(struct capture *c, struct sink *s) {
    fflush(stdout);
    fflush(stderr);
    int restored = dup2(c->saved_stdout, 1) >= 0 && dup2(c->saved_stderr, 2) >= 0;
    close(c->saved_stdout);
    close(c->saved_stderr);
    assert_true(restored);
    char *printed = read_all(c->out);
    fclose(c->out);
    assert_non_null(printed);
    sink_add(s, "stdout and stderr", printed);
    free(printed);
}

static void sink_init(struct sink *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void sink_free(struct sink *s) {
    free(s->text);
    pthread_mutex_destroy(&s->mu);
}

/* No piece of four bytes of either password, in any written form, nor PGPASSWORD, is in
 * the sink. A failure names the place with the password masked. */
static void assert_no_password_in(const struct sink *s) {
    static const char *const passwords[] = {SCAN_PASSWORD, SCAN_WRONG_PASSWORD};
    static const char *const password_names[] = {"the password", "the wrong password"};
    for (int p = 0; p < 2; p++) {
        for (int f = 0; f < FORMS; f++) {
            char form[512];
            write_form(form, sizeof form, passwords[p], f);
            size_t from = 0;
            long at = find_piece(s->text, form, 4, &from);
            if (at >= 0) {
                char excerpt[200];
                masked_excerpt(excerpt, sizeof excerpt, s->text, at, form, from);
                fail_msg("bytes %zu-%zu of %s, %s, appear at offset %ld of what the library "
                         "emitted (masked): \"%s\"",
                         from, from + 3, password_names[p], form_names[f], at, excerpt);
            }
        }
    }
    if (strstr(s->text, env_or_fail("PGPASSWORD")))
        fail_msg("what the library emitted contains PGPASSWORD");
}

/* A sanitizer report written while fds 1 and 2 were captured: shown (the scan has passed, so
 * it holds no password) and failed on. */
static void assert_no_sanitizer_report(const char *captured) {
    if (strstr(captured, "Sanitizer") || strstr(captured, "runtime error:")) {
        print_error("%s\n", captured);
        fail_msg("a sanitizer report was written during the capture (above)");
    }
}

static void no_password_form_leaves_the_library_in_a_scripted_run(void **state) {
    (void)state;
    char role[64], app[64], conninfo[1024];
    test_app_name(role, sizeof role, "sec_scan_role");
    test_app_name(app, sizeof app, "sec_scan");
    PGconn *monitor = monitor_connect();
    create_scan_role(monitor, role);
    static struct sink s;
    sink_init(&s);
    struct capture c;
    capture_begin(&c); /* no cmocka assertion until capture_end */
    static const char marker[] = "capture marker\n";
    ssize_t written = write(1, marker, sizeof marker - 1) + write(2, marker, sizeof marker - 1);
    expect(&s, written == 2 * (ssize_t)(sizeof marker - 1), "could not write the markers");

    uri_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 1, app);
    run_with_the_right_password(&s, conninfo, "uri", role);
    keyvalue_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 1, app);
    run_with_the_right_password(&s, conninfo, "keyvalue", role);
    odbc_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 1, app);
    run_with_the_right_password(&s, conninfo, "odbc", role);
    int right_connects = s.connects, right_closes = s.closes;

    const char *refused = "password authentication failed";
    uri_with(conninfo, sizeof conninfo, role, SCAN_WRONG_PASSWORD, 1, app);
    run_refused(&s, conninfo, "uri, wrong password", POOL_OK, refused);
    keyvalue_with(conninfo, sizeof conninfo, role, SCAN_WRONG_PASSWORD, 1, app);
    run_refused(&s, conninfo, "keyvalue, wrong password", POOL_OK, refused);
    odbc_with(conninfo, sizeof conninfo, role, SCAN_WRONG_PASSWORD, 1, app);
    run_refused(&s, conninfo, "odbc, wrong password", POOL_OK, refused);
    /* bare: the backslash escapes the space, so libpq reads another password */
    keyvalue_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 0, app);
    run_refused(&s, conninfo, "keyvalue, unquoted", POOL_OK, refused);
    keyvalue_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, -1, app);
    run_refused(&s, conninfo, "keyvalue, unterminated", POOL_EINVAL, "unterminated quoted string");
    /* bare: the password ends at its ';' */
    odbc_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 0, app);
    run_refused(&s, conninfo, "odbc, unbraced", POOL_OK, refused);
    /* the right password, refused by the on_connect hook */
    s.refuse_connect = 1;
    keyvalue_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 1, app);
    pool_t *pool = scan_pool(&s, conninfo, "pool_size=1 max_overflow=0", POOL_OK);
    if (pool) {
        pool_lease_t *lease = NULL;
        expect_failure(&s, pool_checkout(&lease, pool, SERVER_WAIT_MS), POOL_ECONNECT,
                       "pool_checkout");
        expect(&s, strstr(pool_last_error(), "on_connect refuses") != NULL,
               "the refused connect's message does not carry on_connect's");
        dump_metrics(&s, pool, "refused by on_connect");
        expect(&s, pool_dispose(pool) == POOL_OK, "pool_dispose");
    }
    s.refuse_connect = 0;
    capture_end(&c, &s);

    if (s.problems) fail_msg("%d problem(s) in the run; first: %s", s.problems, s.problem);
    print_message("scan: %d log lines, %d errors, %d connects, %d closes, %zu bytes scanned\n",
                  s.log_lines, s.errors, s.connects, s.closes, s.len);
    /* the run did what it claims: 3 pools x 3 connects and 3 closes, logged, and failures */
    assert_int_equal(right_connects, 9);
    assert_int_equal(right_closes, 9);
    assert_true(s.log_lines >= 18);
    assert_true(s.errors >= 20);
    assert_contains(s.text, "password authentication failed");
    assert_contains(s.text, "invalid connection string");
    assert_contains(s.text, "QueuePool limit");
    assert_contains(s.text, "division by zero");
    assert_contains(s.text, "connpool_connections_opened_total");
    /* the capture saw both fds; the server's NOTICE reached the log (URI and key=value runs),
     * never stderr */
    const char *captured = strstr(s.text, "[stdout and stderr] ");
    assert_non_null(captured);
    assert_contains(captured, "capture marker\ncapture marker\n");
    assert_null(strstr(captured, "scan notice"));
    const char *logged = strstr(s.text, "server NOTICE: scan notice");
    assert_non_null(logged);
    assert_non_null(strstr(logged + 1, "server NOTICE: scan notice"));
    assert_no_password_in(&s);
    assert_no_sanitizer_report(captured); /* the capture would have hidden it */
    sink_free(&s);
    drop_scan_role(monitor, role, app);
    PQfinish(monitor);
}

/* The usual mistake: the password put into a URI without percent-encoding. Its '@' ends the
 * user info early, and libpq's parse error quotes the piece after it as the host it cannot
 * decode ("Fj%Hx"). The library masks the password it finds (up to the first '@') but not
 * that piece. */
static void a_password_left_unencoded_in_a_uri_is_not_quoted_back(void **state) {
    (void)state;
    char role[64], app[64], conninfo[1024];
    test_app_name(role, sizeof role, "sec_uri_role");
    test_app_name(app, sizeof app, "sec_uri");
    static struct sink s;
    sink_init(&s);
    struct capture c;
    capture_begin(&c);
    uri_with(conninfo, sizeof conninfo, role, SCAN_PASSWORD, 0, app);
    run_refused(&s, conninfo, "uri, unencoded", POOL_EINVAL, "invalid connection string");
    pool_t *pool = NULL;
    expect_failure(&s, pool_create_params(&pool, conninfo, NULL, NULL), POOL_EINVAL,
                   "pool_create_params");
    capture_end(&c, &s);
    if (s.problems) fail_msg("%d problem(s) in the run; first: %s", s.problems, s.problem);
    assert_int_equal(s.errors, 2);
    assert_no_password_in(&s);
    assert_no_sanitizer_report(strstr(s.text, "[stdout and stderr] "));
    sink_free(&s);
}

/* ---------------------------------------------------------------- leases and pools */

static int counts_differ(const pool_stats_t *a, const pool_stats_t *b) {
    return a->checked_out != b->checked_out || a->idle != b->idle ||
           a->opened_total != b->opened_total || a->closed_total != b->closed_total ||
           a->checkouts_total != b->checkouts_total ||
           a->invalidated_total != b->invalidated_total || a->dead_total != b->dead_total ||
           a->resets_total != b->resets_total;
}

/* A pool handle where a lease belongs is refused by every lease call, and neither pool
 * changes; the lease keeps working in its own pool, which alone gets it back. */
static void a_pool_is_not_a_lease_and_a_lease_goes_back_to_its_own_pool(void **state) {
    (void)state;
    char app_a[64], app_b[64], conninfo[256];
    test_app_name(app_a, sizeof app_a, "sec_owner_a");
    test_app_name(app_b, sizeof app_b, "sec_owner_b");
    pool_t *a = NULL, *b = NULL;
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app_a);
    assert_ok(pool_create(&a, conninfo, "pool_size=1 max_overflow=0"));
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app_b);
    assert_ok(pool_create(&b, conninfo, "pool_size=1 max_overflow=0"));
    pool_lease_t *la = checkout(a), *lb = checkout(b);
    pool_stats_t before_a = stats_of(a), before_b = stats_of(b);

    pool_t *const pools[] = {a, b};
    for (int i = 0; i < 2; i++) {
        pool_lease_t *not_a_lease = (pool_lease_t *)pools[i];
        pool_result_t *r = (pool_result_t *)&r;
        assert_int_equal(pool_checkin(not_a_lease), POOL_ESTATE);
        assert_contains(pool_last_error(), "not a lease");
        assert_int_equal(pool_query(&r, not_a_lease, "SELECT 1", 0, NULL), POOL_ESTATE);
        assert_contains(pool_last_error(), "not a lease");
        assert_null(r);
        assert_int_equal(pool_invalidate(not_a_lease), POOL_ESTATE);
        assert_int_equal(pool_report_error(not_a_lease, "08006"), POOL_ESTATE);
        assert_null(pool_lease_native(not_a_lease));
    }
    /* and a lease is not a pool: refused, never dereferenced */
    pool_lease_t *const leases[] = {la, lb};
    for (int i = 0; i < 2; i++) {
        pool_t *not_a_pool = (pool_t *)leases[i];
        pool_lease_t *l = NULL;
        pool_stats_t st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        assert_int_equal(pool_checkout(&l, not_a_pool, 0), POOL_EINVAL);
        assert_contains(pool_last_error(), "not a pool");
        assert_null(l);
        assert_int_equal(pool_stats_get(not_a_pool, &st), POOL_EINVAL);
        assert_int_equal(pool_reset(not_a_pool), POOL_EINVAL);
        assert_int_equal(pool_dispose(not_a_pool), POOL_EINVAL);
    }
    pool_stats_t after_a = stats_of(a), after_b = stats_of(b);
    assert_false(counts_differ(&before_a, &after_a));
    assert_false(counts_differ(&before_b, &after_b));

    /* the other pool's scope and disposal do not touch the lease */
    assert_ok(pool_scope_release(b));
    assert_ok(pool_checkin(lb));
    assert_ok(pool_dispose(b));
    char user[128];
    assert_ok(query_text(la, "SELECT current_setting('application_name')", user, sizeof user));
    assert_string_equal(user, app_a);
    assert_int_equal(stats_of(a).checked_out, 1);
    assert_ok(pool_checkin(la));
    pool_stats_t st = stats_of(a);
    assert_int_equal(st.checked_out, 0);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.closed_total, 0);
    assert_int_equal(st.checkouts_total, 1);
    /* the same connection comes back from its own pool */
    la = checkout(a);
    assert_int_equal(stats_of(a).opened_total, 1);
    assert_ok(pool_checkin(la));
    assert_ok(pool_dispose(a));
    PGconn *monitor = monitor_connect();
    await_sessions(monitor, app_a, 0);
    await_sessions(monitor, app_b, 0);
    PQfinish(monitor);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sslmode_require_encrypts_the_pooled_sessions),
        cmocka_unit_test(verify_full_with_the_test_ca_connects),
        cmocka_unit_test(verify_full_with_a_wrong_ca_fails_at_checkout_saying_why),
        cmocka_unit_test(verify_full_fails_on_a_host_name_not_in_the_certificate),
        cmocka_unit_test(verify_full_with_a_missing_root_certificate_fails_clearly),
        cmocka_unit_test(no_password_form_leaves_the_library_in_a_scripted_run),
        cmocka_unit_test(a_password_left_unencoded_in_a_uri_is_not_quoted_back),
        cmocka_unit_test(a_pool_is_not_a_lease_and_a_lease_goes_back_to_its_own_pool),
    };
    return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
