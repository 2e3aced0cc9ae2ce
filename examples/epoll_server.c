/* One thread, one epoll loop, many requests at once on a small pool: what an event-loop server
 * does with connpool's asynchronous calls. Each "client request" checks a connection out,
 * runs a statement and checks it in, without ever blocking the loop; every request in the
 * pool's care tells the loop it has ended through one pipe (pool_request_notify), so the loop
 * watches one fd however many requests are pending.
 *
 *     epoll_server [conninfo [requests_at_once [pool_size [rounds]]]]
 *
 * Defaults: "" (libpq's PG* variables), 1000 requests at once, a pool of 10, 5 rounds (each
 * of the 1000 slots runs `rounds` requests one after another). Prints how long it took;
 * `make bench` compares it with the blocking API on one thread per request.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "connpool.h"

/* One client request in flight: checking out, then running its statement. */
struct job {
    pool_request_t *request;
    pool_lease_t *lease; /* NULL while checking out */
    int rounds_left;
};

static void die(const char *what, int rc) {
    fprintf(stderr, "epoll_server: %s: %s: %s\n", what, pool_error_name(rc), pool_last_error());
    exit(1);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Starts the job's next step and asks for its token (its index) on the pipe when it ends. */
static void start_checkout(pool_t *pool, struct job *job, uint64_t index, int pipe_w) {
    int rc = pool_checkout_start(&job->request, pool, -1, "epoll_server");
    if (rc != POOL_OK) die("pool_checkout_start", rc);
    if ((rc = pool_request_notify(job->request, pipe_w, index)) != POOL_OK)
        die("pool_request_notify", rc);
}

static void start_statement(struct job *job, uint64_t index, int pipe_w) {
    int rc = pool_query_start(&job->request, job->lease, "SELECT 1", 0, NULL);
    if (rc != POOL_OK) die("pool_query_start", rc);
    if ((rc = pool_request_notify(job->request, pipe_w, index)) != POOL_OK)
        die("pool_request_notify", rc);
}

/* The job's request has ended: take its outcome and start what comes next. Returns 1 when
 * the job has run all its rounds. */
static int step(pool_t *pool, struct job *job, uint64_t index, int pipe_w) {
    int rc;
    if (!job->lease) {
        if ((rc = pool_request_lease(&job->lease, job->request)) != POOL_OK)
            die("checkout", rc);
        start_statement(job, index, pipe_w);
        return 0;
    }
    pool_result_t *result;
    if ((rc = pool_request_result(&result, job->request)) != POOL_OK) die("SELECT 1", rc);
    pool_result_free(result);
    if ((rc = pool_checkin(job->lease)) != POOL_OK) die("pool_checkin", rc);
    job->lease = NULL;
    if (--job->rounds_left == 0) return 1;
    start_checkout(pool, job, index, pipe_w);
    return 0;
}

int main(int argc, char **argv) {
    const char *conninfo = argc > 1 ? argv[1] : "";
    int at_once = argc > 2 ? atoi(argv[2]) : 1000;
    int pool_size = argc > 3 ? atoi(argv[3]) : 10;
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (at_once < 1 || pool_size < 1 || rounds < 1) {
        fprintf(stderr, "usage: epoll_server [conninfo [requests_at_once [pool_size [rounds]]]]\n");
        return 2;
    }
    char options[128];
    snprintf(options, sizeof options, "pool_size=%d max_overflow=0 pool_timeout=60", pool_size);
    pool_t *pool;
    int rc = pool_create(&pool, conninfo, options);
    if (rc != POOL_OK) die("pool_create", rc);

    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return perror("pipe"), 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pipe_fds[0]};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pipe_fds[0], &ev) != 0) return perror("epoll"), 1;

    struct job *jobs = calloc((size_t)at_once, sizeof *jobs);
    if (!jobs) return perror("calloc"), 1;
    double start = now_s();
    for (int i = 0; i < at_once; i++) {
        jobs[i].rounds_left = rounds;
        start_checkout(pool, &jobs[i], (uint64_t)i, pipe_fds[1]);
    }
    int running = at_once;
    while (running > 0) {
        struct epoll_event events[1];
        int n = epoll_wait(ep, events, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return perror("epoll_wait"), 1;
        uint64_t tokens[256]; /* the indexes of the jobs whose request ended */
        ssize_t got = read(pipe_fds[0], tokens, sizeof tokens);
        for (ssize_t k = 0; k < got / (ssize_t)sizeof tokens[0]; k++)
            running -= step(pool, &jobs[tokens[k]], tokens[k], pipe_fds[1]);
    }
    double took = now_s() - start;
    long total = (long)at_once * rounds;
    printf("epoll loop, 1 thread: %ld requests (%d at once, pool of %d) in %.3f s: %.0f "
           "requests/s\n", total, at_once, pool_size, took, (double)total / took);
    free(jobs);
    close(ep);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return pool_dispose(pool) == POOL_OK ? 0 : 1;
}
