/* Fork and the library loaded with dlopen (fork-safety.md §6 and §E.11), against the real
 * server of tests/with-postgres.sh, with sslmode=disable and with sslmode=require.
 *
 * This program links nothing of connpool nor libpq: it loads libconnpool.so.1 with dlopen, so
 * that dlclose really unmaps it, and reaches libpq's functions through the library's handle
 * (dlsym searches the object's dependencies). connpool.h and libpq-fe.h are included for
 * their types only. The atfork handlers the library registers must go with it at dlclose:
 * a fork afterwards would otherwise jump into unmapped code, in the parent (prepare) and in
 * the child.
 *
 * The library is $CONNPOOL_LIB, or the first argument, or ../libconnpool.so.1 next to this
 * binary (build/tests/ -> build/).
 *
 * Every child runs under an alarm() watchdog and reports through its exit status (0: all
 * held; otherwise the line of the failed check, whose text goes to the parent in a pipe). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "connpool.h"

#define CHILD_WATCHDOG_S 10
#define PARENT_WATCHDOG_S 60

static char lib_path[PATH_MAX];
static const char *sslmode;

/* ---------------------------------------------------------------- the library, by name */

struct api {
    void *handle;
    int (*create)(pool_t **, const char *, const char *);
    int (*checkout)(pool_lease_t **, pool_t *, int64_t);
    void *(*lease_native)(const pool_lease_t *);
    int (*checkin)(pool_lease_t *);
    int (*dispose)(pool_t *);
    int (*stats_get)(pool_t *, pool_stats_t *);
    const char *(*last_error)(void);
    const char *(*error_name)(int);
    /* libpq, through the library's dependencies */
    int (*backend_pid)(const PGconn *);
    PGresult *(*exec)(PGconn *, const char *);
    ExecStatusType (*result_status)(const PGresult *);
    int (*ntuples)(const PGresult *);
    char *(*getvalue)(const PGresult *, int, int);
    void (*clear)(PGresult *);
    char *(*error_message)(const PGconn *);
    int (*ssl_in_use)(PGconn *);
};

/* dlsym returns an object pointer; copying its bytes into a function pointer is the form ISO C
 * accepts (POSIX guarantees the representations match). */
static void *lookup(void *handle, void *fn, size_t size, const char *name) {
    dlerror();
    void *sym = dlsym(handle, name);
    if (sym) memcpy(fn, &sym, size);
    return sym;
}

#define LOOKUP(a, field, name)                                                        \
    do {                                                                              \
        if (!lookup((a)->handle, &(a)->field, sizeof((a)->field), name))              \
            fail_msg("dlsym(\"%s\") in %s: %s", name, lib_path, dlerror());           \
    } while (0)

static struct api load(void) {
    struct api a;
    memset(&a, 0, sizeof a);
    a.handle = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!a.handle) fail_msg("dlopen(\"%s\"): %s", lib_path, dlerror());
    LOOKUP(&a, create, "pool_create");
    LOOKUP(&a, checkout, "pool_checkout");
    LOOKUP(&a, lease_native, "pool_lease_native");
    LOOKUP(&a, checkin, "pool_checkin");
    LOOKUP(&a, dispose, "pool_dispose");
    LOOKUP(&a, stats_get, "pool_stats_get");
    LOOKUP(&a, last_error, "pool_last_error");
    LOOKUP(&a, error_name, "pool_error_name");
    LOOKUP(&a, backend_pid, "PQbackendPID");
    LOOKUP(&a, exec, "PQexec");
    LOOKUP(&a, result_status, "PQresultStatus");
    LOOKUP(&a, ntuples, "PQntuples");
    LOOKUP(&a, getvalue, "PQgetvalue");
    LOOKUP(&a, clear, "PQclear");
    LOOKUP(&a, error_message, "PQerrorMessage");
    LOOKUP(&a, ssl_in_use, "PQsslInUse");
    return a;
}

static int is_loaded(void) {
    void *again = dlopen(lib_path, RTLD_NOW | RTLD_NOLOAD);
    if (!again) return 0;
    dlclose(again); /* undo the reference RTLD_NOLOAD just took */
    return 1;
}

/* dlclose, and the library's code really is gone from this process. */
static void unload(struct api *a) {
    if (dlclose(a->handle) != 0) fail_msg("dlclose: %s", dlerror());
    a->handle = NULL;
    if (is_loaded()) fail_msg("%s is still loaded after dlclose: nothing was unmapped", lib_path);
}

#define assert_pool_ok(a, expr)                                                            \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_ != POOL_OK)                                                                \
            fail_msg("%s returned %s: %s", #expr, (a)->error_name(rc_), (a)->last_error()); \
    } while (0)

static pool_t *make_pool(struct api *a) {
    char conninfo[64];
    snprintf(conninfo, sizeof conninfo, "sslmode=%s", sslmode);
    pool_t *pool = NULL;
    assert_pool_ok(a, a->create(&pool, conninfo, "pool_size=2 max_overflow=0"));
    return pool;
}

/* pg_backend_pid() through the lease, or -1 with the reason in why. No cmocka: children use it. */
static int server_pid(struct api *a, pool_lease_t *lease, char *why, size_t len) {
    PGconn *conn = a->lease_native(lease);
    if (!conn) {
        snprintf(why, len, "the lease has no connection");
        return -1;
    }
    if (!!a->ssl_in_use(conn) != (strcmp(sslmode, "require") == 0)) {
        snprintf(why, len, "sslmode=%s but PQsslInUse() = %d", sslmode, a->ssl_in_use(conn));
        return -1;
    }
    PGresult *r = a->exec(conn, "SELECT pg_backend_pid()");
    int pid = -1;
    if (a->result_status(r) == PGRES_TUPLES_OK && a->ntuples(r) == 1)
        pid = atoi(a->getvalue(r, 0, 0));
    else
        snprintf(why, len, "SELECT pg_backend_pid(): %s", a->error_message(conn));
    a->clear(r);
    if (pid >= 0 && pid != a->backend_pid(conn)) {
        snprintf(why, len, "the server says backend %d, libpq %d", pid, a->backend_pid(conn));
        return -1;
    }
    return pid;
}

/* ---------------------------------------------------------------- children */

static int child_fd = -1; /* in a child: the write end of the pipe to the parent */

/* Sanitizer builds (make check SAN=address) read these at startup; other builds never call
 * them. Up to GCC 13 the runtime's __tls_get_addr interceptor misreads the dynamic TLS of a
 * dlopen'ed library, and LeakSanitizer's exit-time check then crashes ("Tracer caught signal
 * 11"). OpenSSL, unloaded with libpq at dlclose, leaves its few allocations unreachable. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_tls_get_addr=0"; }
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcrypto.so\n"; }

/* Under LeakSanitizer (make check SAN=address), which calls this at its exit-time check:
 * children skip it (they abandon what they inherited on purpose); the parent keeps it. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return child_fd >= 0; }

static void child_fail(int line, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void child_fail(int line, const char *format, ...) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "line %d: ", line);
    va_list ap;
    va_start(ap, format);
    vsnprintf(buf + n, sizeof buf - (size_t)n, format, ap);
    va_end(ap);
    ssize_t w = write(child_fd, buf, strlen(buf));
    (void)w;
    _exit(1 + line % 250);
}

#define CHILD_REQUIRE(cond, ...)                                 \
    do {                                                         \
        if (!(cond)) child_fail(__LINE__, __VA_ARGS__);          \
    } while (0)

/* Forks; the child runs body(arg) under a watchdog and exit()s with its result. The parent
 * waits and fails the test unless the child exited with 0. */
static void run_child(int (*body)(void *), void *arg, const char *what) {
    int fds[2];
    if (pipe(fds) != 0) fail_msg("pipe: %s", strerror(errno));
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        child_fd = fds[1];
        static const int defaults[] = {SIGALRM, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) signal(defaults[i], SIG_DFL);
        alarm(CHILD_WATCHDOG_S);
        exit(body(arg));
    }
    close(fds[1]);
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    char out[512];
    ssize_t n, used = 0;
    while (used < (ssize_t)sizeof out - 1 &&
           (n = read(fds[0], out + used, sizeof out - 1 - (size_t)used)) > 0)
        used += n;
    out[used] = 0;
    close(fds[0]);
    if (got != pid) fail_msg("waitpid: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    if (WIFSIGNALED(status))
        fail_msg("%s: the child was killed by signal %d (%s)%s %s", what, WTERMSIG(status),
                 strsignal(WTERMSIG(status)),
                 WTERMSIG(status) == SIGALRM ? ", its watchdog: it hung;" : ";", out);
    fail_msg("%s: the child exited with %d: %s", what, WEXITSTATUS(status), out);
}

static int child_exits(void *arg) {
    (void)arg;
    return 0;
}

struct alive {
    struct api *a;
    pool_t *pool;
    int parent_pid; /* the backend idle in the parent's pool */
};

/* The child of a process with the library loaded and a pool alive: the inherited connection
 * is dropped, and the child opens its own. */
static int child_uses_the_pool(void *arg) {
    struct alive *s = arg;
    struct api *a = s->a;
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = a->stats_get(s->pool, &st);
    CHILD_REQUIRE(rc == POOL_OK, "pool_stats_get: %s", a->error_name(rc));
    CHILD_REQUIRE(st.inherited_total == 1 && st.idle == 0 && st.opened_total == 0,
                  "in the child: inherited %lld idle %lld opened %lld", (long long)st.inherited_total,
                  (long long)st.idle, (long long)st.opened_total);
    pool_lease_t *lease = NULL;
    rc = a->checkout(&lease, s->pool, 10000);
    CHILD_REQUIRE(rc == POOL_OK, "checkout: %s: %s", a->error_name(rc), a->last_error());
    char why[256];
    int pid = server_pid(a, lease, why, sizeof why);
    CHILD_REQUIRE(pid > 0, "%s", why);
    CHILD_REQUIRE(pid != s->parent_pid, "the child was handed the parent's backend %d", pid);
    rc = a->checkin(lease);
    CHILD_REQUIRE(rc == POOL_OK, "checkin: %s", a->error_name(rc));
    rc = a->dispose(s->pool);
    CHILD_REQUIRE(rc == POOL_OK, "dispose: %s: %s", a->error_name(rc), a->last_error());
    return 0;
}

/* ---------------------------------------------------------------- tests */

static int arm_watchdog(void **state) {
    (void)state;
    alarm(PARENT_WATCHDOG_S); /* default action: a hung parent ends the program */
    return 0;
}

static int disarm_watchdog(void **state) {
    (void)state;
    alarm(0);
    return 0;
}

/* Loads the library, uses a pool (one connection checked out and in), disposes of it. */
static void use_and_dispose_a_pool(struct api *a) {
    pool_t *pool = make_pool(a);
    pool_lease_t *lease = NULL;
    assert_pool_ok(a, a->checkout(&lease, pool, 10000));
    char why[256];
    if (server_pid(a, lease, why, sizeof why) <= 0) fail_msg("%s", why);
    assert_pool_ok(a, a->checkin(lease));
    assert_pool_ok(a, a->dispose(pool));
}

static void a_fork_after_dlclose_runs_none_of_the_unloaded_handlers(void **state) {
    (void)state;
    assert_false(is_loaded());
    struct api a = load();
    use_and_dispose_a_pool(&a); /* the first pool registered the atfork handlers */
    unload(&a);
    run_child(child_exits, NULL, "fork after dlclose");
    /* and again, the library loaded and unloaded a second time */
    a = load();
    use_and_dispose_a_pool(&a);
    unload(&a);
    run_child(child_exits, NULL, "fork after the second dlclose");
}

static void a_fork_with_the_library_loaded_and_a_pool_alive_works_on_both_sides(void **state) {
    (void)state;
    struct api a = load();
    pool_t *pool = make_pool(&a);
    pool_lease_t *lease = NULL;
    assert_pool_ok(&a, a.checkout(&lease, pool, 10000));
    char why[256];
    int pid = server_pid(&a, lease, why, sizeof why);
    if (pid <= 0) fail_msg("%s", why);
    assert_pool_ok(&a, a.checkin(lease));

    struct alive s = {&a, pool, pid};
    run_child(child_uses_the_pool, &s, "fork with a pool alive");

    /* the parent's connection is untouched */
    lease = NULL;
    assert_pool_ok(&a, a.checkout(&lease, pool, 0));
    int again = server_pid(&a, lease, why, sizeof why);
    if (again <= 0) fail_msg("the parent's connection after the fork: %s", why);
    assert_int_equal(again, pid);
    assert_pool_ok(&a, a.checkin(lease));
    pool_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_pool_ok(&a, a.stats_get(pool, &st));
    assert_int_equal(st.inherited_total, 0);
    assert_int_equal(st.opened_total, 1);
    assert_pool_ok(&a, a.dispose(pool));

    unload(&a);
    run_child(child_exits, NULL, "fork after dlclose");
}

static int find_library(int argc, char **argv) {
    const char *given = getenv("CONNPOOL_LIB");
    if (!given && argc > 1) given = argv[1];
    if (given) {
        snprintf(lib_path, sizeof lib_path, "%s", given);
        return 1;
    }
    char exe[PATH_MAX - 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    for (int up = 0; up < 2; up++) { /* build/tests/test_dlclose_fork -> build */
        char *slash = strrchr(exe, '/');
        if (!slash) return 0;
        *slash = 0;
    }
    snprintf(lib_path, sizeof lib_path, "%s/libconnpool.so.%d", exe, CONNPOOL_VERSION_MAJOR);
    return 1;
}

int main(int argc, char **argv) {
    if (!find_library(argc, argv)) {
        fprintf(stderr, "test_dlclose_fork: cannot tell where libconnpool is: set CONNPOOL_LIB\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_fork_after_dlclose_runs_none_of_the_unloaded_handlers,
                                        arm_watchdog, disarm_watchdog),
        cmocka_unit_test_setup_teardown(
            a_fork_with_the_library_loaded_and_a_pool_alive_works_on_both_sides, arm_watchdog,
            disarm_watchdog),
    };
    static const char *const modes[] = {"disable", "require"};
    int failed = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        sslmode = modes[i];
        printf("=== dlclose and fork, sslmode=%s\n", sslmode);
        fflush(stdout);
        failed += cmocka_run_group_tests_name("dlclose and fork", tests, NULL, NULL);
    }
    return failed;
}
