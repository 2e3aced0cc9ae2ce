/* The test connector: connections that are plain memory, opened, reset and closed under the
 * test's control (opens and resets can be made to block or fail), so that tests drive pool
 * logic deterministically without a database. One instance, F. */
#ifndef CONNPOOL_TEST_FAKE_CONNECTOR_H
#define CONNPOOL_TEST_FAKE_CONNECTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "connpool.h"

struct fake_conn {
    int id;
    atomic_int held; /* set while a thread holds it: catches double lending */
};

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int block_opens;       /* opens wait while set */
    int opens_in_progress; /* opens currently inside the callback */
    int fail_opens;        /* this many next opens fail */
    int reset_fails;       /* resets report the connection broken */
    int block_resets;      /* resets wait while set */
    int resets_in_progress;
    int last_reset_mode;
    int64_t last_open_timeout_ms;
    atomic_int opened, closed, destroyed, next_id;
};

extern struct fake F;

void fake_init(void);
int fake_open(void **out, char *err, size_t len, int64_t timeout_ms, void *ud);
void fake_close(void *conn, void *ud);
int fake_reset(void *conn, int mode, void *ud);
void fake_destroy(void *ud);
/* Opens (resets) wait while blocking is on. */
void set_blocking(int on);
void set_reset_blocking(int on);
/* For await_true: exactly one open (reset) is inside the callback. */
int one_open_in_progress(void *arg);
int one_reset_in_progress(void *arg);
/* A pool over the test connector (F made anew), with these options. */
pool_t *fake_pool(const char *options);
/* The id of the fake connection a lease holds (1, 2... in opening order). */
int conn_id(const pool_lease_t *lease);

#endif
