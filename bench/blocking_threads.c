/* examples/epoll_server.c's work with the blocking API: one thread per request at once, each
 * running `rounds` checkout + SELECT 1 + checkin, on a pool of the same size. `make bench`
 * runs both and prints their lines one above the other.
 *
 *     blocking_threads [conninfo [requests_at_once [pool_size [rounds]]]]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "connpool.h"

static pool_t *pool;
static int rounds;

static void die(const char *what, int rc) {
    fprintf(stderr, "blocking_threads: %s: %s: %s\n", what, pool_error_name(rc), pool_last_error());
    exit(1);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *client(void *arg) {
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        pool_lease_t *lease;
        int rc = pool_checkout_tagged(&lease, pool, -1, "blocking_threads");
        if (rc != POOL_OK) die("pool_checkout", rc);
        pool_result_t *result;
        if ((rc = pool_query(&result, lease, "SELECT 1", 0, NULL)) != POOL_OK) die("SELECT 1", rc);
        pool_result_free(result);
        if ((rc = pool_checkin(lease)) != POOL_OK) die("pool_checkin", rc);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *conninfo = argc > 1 ? argv[1] : "";
    int at_once = argc > 2 ? atoi(argv[2]) : 1000;
    int pool_size = argc > 3 ? atoi(argv[3]) : 10;
    rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (at_once < 1 || pool_size < 1 || rounds < 1) return 2;
    char options[128];
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0 pool_timeout=60", pool_size);
    int rc = pool_create(&pool, conninfo, options);
    if (rc != POOL_OK) die("pool_create", rc);
    pthread_t *threads = calloc((size_t)at_once, sizeof *threads);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    double start = now_s();
    int started = 0;
    for (; started < at_once; started++)
        if (pthread_create(&threads[started], &attr, client, NULL) != 0) break;
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    double took = now_s() - start;
    if (started < at_once) fprintf(stderr, "blocking_threads: only %d threads started\n", started);
    long total = (long)started * rounds;
    printf("blocking, %d threads: %ld requests (%d at once, pool of %d) in %.3f s: %.0f "
           "requests/s\n", started, total, started, pool_size, took, (double)total / took);
    free(threads);
    return pool_dispose(pool) == POOL_OK ? 0 : 1;
}
