/* The healthy path costs no heap allocation (issue 15): a checkout and checkin of an idle libpq
 * connection in steady state, the fork check on the path, counted by interposing malloc for
 * the whole process. (System calls on that path are counted with strace in the closing note
 * of issue 15; make bench section 5 shows what one poll() costs.)
 *
 * Run under tests/with-postgres.sh (PG* variables). Under a sanitizer the allocator is the
 * sanitizer's, which this test must not replace: it skips, saying so. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REPLACES_MALLOC 0
#else
#define REPLACES_MALLOC 1
extern void *__libc_malloc(size_t), *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static atomic_long allocations;
void *malloc(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t count, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(count, n);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}
#endif

#define PAIRS 100000

static void a_checkout_and_checkin_of_an_idle_connection_allocate_nothing(void **state) {
    (void)state;
#if !REPLACES_MALLOC
    skip();
#else
    char app[64];
    test_app_name(app, sizeof app, "hotpath");
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "application_name=%s", app);
    pool_t *pool = NULL;
    assert_ok(pool_create(&pool, conninfo, "pool_size=2 max_overflow=0"));
    pool_lease_t *lease;
    for (int i = 0; i < 1000; i++) { /* the connection opened, every record and slot made */
        assert_ok(pool_checkout(&lease, pool, -1));
        assert_ok(pool_checkin(lease));
    }
    long before = atomic_load(&allocations);
    int failed = 0;
    for (int i = 0; i < PAIRS; i++) {
        failed |= pool_checkout(&lease, pool, -1) != POOL_OK;
        failed |= pool_checkin(lease) != POOL_OK;
    }
    long made = atomic_load(&allocations) - before;
    assert_false(failed);
    if (made != 0) fail_msg("%ld heap allocations in %d checkout+checkin pairs", made, PAIRS);
    assert_int_equal(stats_of(pool).opened_total, 1);
    assert_ok(pool_dispose(pool));
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_checkout_and_checkin_of_an_idle_connection_allocate_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
