/*
 * dlopen_smoke LIBRARY [CONNINFO]: loads LIBRARY (an installed libconnpool.so.1) the way
 * Python's ctypes does, with dlopen(RTLD_NOW | RTLD_LOCAL), looks its functions up by name,
 * checks a connection out of a pool on CONNINFO (default "": libpq's PG* variables) and
 * back in, disposes of the pool and unloads the library. Links only libdl: connpool.h is
 * included for its types and version macros, so the header and the library must agree.
 * Prints one line per check; exits 1 on the first failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <connpool.h>

static void *lib;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) exit(1);
}

/* dlsym returns an object pointer; copying its bytes into a function pointer is the form
 * ISO C accepts (POSIX guarantees the representations match). */
static void lookup(void *fn, size_t size, const char *name) {
    dlerror();
    void *sym = dlsym(lib, name);
    const char *why = sym ? NULL : dlerror();
    char what[256];
    snprintf(what, sizeof what, "dlsym(\"%s\")%s%s", name, why ? ": " : "", why ? why : "");
    check(sym != NULL, what);
    memcpy(fn, &sym, size);
}
#define LOOKUP(var, name) lookup(&(var), sizeof(var), name)

static void check_rc(int rc, const char *call, const char *(*last_error)(void)) {
    char what[640];
    if (rc == POOL_OK) snprintf(what, sizeof what, "%s returns POOL_OK", call);
    else snprintf(what, sizeof what, "%s returns POOL_OK (got %d: %s)", call, rc, last_error());
    check(rc == POOL_OK, what);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: dlopen_smoke LIBRARY [CONNINFO]\n");
        return 2;
    }
    const char *conninfo = argc > 2 ? argv[2] : "";

    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) fprintf(stderr, "dlopen: %s\n", dlerror());
    check(lib != NULL, "dlopen(RTLD_NOW | RTLD_LOCAL)");

    int (*version)(void);
    int (*create)(pool_t **, const char *, const char *);
    int (*checkout)(pool_lease_t **, pool_t *, int64_t);
    void *(*lease_native)(const pool_lease_t *);
    int (*checkin)(pool_lease_t *);
    int (*dispose)(pool_t *);
    const char *(*last_error)(void);
    LOOKUP(version, "pool_version");
    LOOKUP(create, "pool_create");
    LOOKUP(checkout, "pool_checkout");
    LOOKUP(lease_native, "pool_lease_native");
    LOOKUP(checkin, "pool_checkin");
    LOOKUP(dispose, "pool_dispose");
    LOOKUP(last_error, "pool_last_error");

    int want = CONNPOOL_VERSION_MAJOR * 10000 + CONNPOOL_VERSION_MINOR * 100 +
               CONNPOOL_VERSION_PATCH;
    int got = version();
    char what[128];
    snprintf(what, sizeof what, "pool_version() == %d (got %d)", want, got);
    check(got == want, what);

    pool_t *pool = NULL;
    pool_lease_t *lease = NULL;
    check_rc(create(&pool, conninfo, NULL), "pool_create", last_error);
    check_rc(checkout(&lease, pool, -1), "pool_checkout", last_error);
    check(lease_native(lease) != NULL, "pool_lease_native() is not NULL");
    check_rc(checkin(lease), "pool_checkin", last_error);
    check_rc(dispose(pool), "pool_dispose", last_error);

    check(dlclose(lib) == 0, "dlclose");
    return 0;
}
