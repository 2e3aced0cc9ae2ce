/*
 * dlopen_query [LIBRARY [CONNINFO]]: uses connpool the way a language without a C compiler
 * does (Python's ctypes, Node's koffi, a JIT's FFI): dlopen() the library, dlsym() each
 * function by name, and run a query through the C ABI's text-only query API. It needs no
 * header at build time beyond what it declares itself, and links only libdl.
 *
 * LIBRARY defaults to "libconnpool.so.1" (found on the library path); CONNINFO to "" (libpq's
 * PG* environment variables). With libpq the parameter is $1; with an odbc: string write ?.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The C ABI as an FFI sees it: opaque pointers, ints, strings. */
typedef int (*create_fn)(void **pool, const char *conninfo, const char *options);
typedef int (*checkout_fn)(void **lease, void *pool, int64_t timeout_ms);
typedef int (*query_fn)(void **result, void *lease, const char *sql, int nparams,
                        const char *const *params);
typedef int64_t (*rows_fn)(const void *result);
typedef int (*columns_fn)(const void *result);
typedef const char *(*name_fn)(const void *result, int column);
typedef const char *(*value_fn)(const void *result, int64_t row, int column);
typedef void (*free_fn)(void *result);
typedef int (*lease_fn)(void *lease);
typedef int (*pool_fn)(void *pool);
typedef const char *(*text_fn)(void);

static void *lib;

static void *symbol(const char *name) {
    void *sym = dlsym(lib, name);
    if (!sym) fprintf(stderr, "dlsym(%s): %s\n", name, dlerror());
    return sym;
}
/* dlsym returns an object pointer; copying its bytes into a function pointer is the form ISO
 * C accepts (POSIX guarantees the representations match). */
#define LOAD(var, name)                          \
    do {                                         \
        void *sym_ = symbol(name);               \
        if (!sym_) return 1;                     \
        memcpy(&(var), &sym_, sizeof(var));      \
    } while (0)

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "libconnpool.so.1";
    const char *conninfo = argc > 2 ? argv[2] : "";
    const char *sql = strncmp(conninfo, "odbc:", 5) == 0
                          ? "SELECT ? AS greeting, NULL AS missing"
                          : "SELECT $1 AS greeting, NULL AS missing";
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    create_fn create;
    checkout_fn checkout;
    query_fn query;
    rows_fn rows;
    columns_fn columns;
    name_fn column_name;
    value_fn value;
    free_fn result_free;
    lease_fn checkin;
    pool_fn dispose;
    text_fn last_error, last_sqlstate;
    LOAD(create, "pool_create");
    LOAD(checkout, "pool_checkout");
    LOAD(query, "pool_query");
    LOAD(rows, "pool_result_rows");
    LOAD(columns, "pool_result_columns");
    LOAD(column_name, "pool_result_column_name");
    LOAD(value, "pool_result_value");
    LOAD(result_free, "pool_result_free");
    LOAD(checkin, "pool_checkin");
    LOAD(dispose, "pool_dispose");
    LOAD(last_error, "pool_last_error");
    LOAD(last_sqlstate, "pool_last_sqlstate");

    void *pool = NULL, *lease = NULL, *result = NULL;
    int status = 1;
    if (create(&pool, conninfo, "pool_size=2") != 0) {
        fprintf(stderr, "pool_create: %s\n", last_error());
        goto out;
    }
    if (checkout(&lease, pool, -1) != 0) {
        fprintf(stderr, "pool_checkout: %s\n", last_error());
        goto out;
    }
    const char *params[] = {"hello through dlopen"};
    if (query(&result, lease, sql, 1, params) != 0) {
        fprintf(stderr, "pool_query: %s (SQLSTATE %s)\n", last_error(), last_sqlstate());
        goto out;
    }
    for (int64_t r = 0; r < rows(result); r++)
        for (int c = 0; c < columns(result); c++) {
            const char *v = value(result, r, c);
            printf("%s = %s\n", column_name(result, c), v ? v : "NULL");
        }
    status = 0;
out:
    result_free(result);
    if (lease) checkin(lease);
    if (pool) dispose(pool);
    dlclose(lib);
    return status;
}
