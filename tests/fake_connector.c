/* The test connector (fake_connector.h). */
#include "fake_connector.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"

struct fake F;

void fake_init(void) {
    memset(&F, 0, sizeof F);
    pthread_mutex_init(&F.mu, NULL);
    pthread_cond_init(&F.cv, NULL);
    F.last_reset_mode = -1;
}

int fake_open(void **out, char *err, size_t len, int64_t timeout_ms, void *ud) {
    struct fake *f = ud;
    pthread_mutex_lock(&f->mu);
    f->last_open_timeout_ms = timeout_ms;
    f->opens_in_progress++;
    while (f->block_opens) pthread_cond_wait(&f->cv, &f->mu);
    f->opens_in_progress--;
    int fail = f->fail_opens > 0;
    if (fail) f->fail_opens--;
    pthread_mutex_unlock(&f->mu);
    if (fail) {
        snprintf(err, len, "fake server refused (test)");
        return -1;
    }
    struct fake_conn *c = calloc(1, sizeof *c);
    c->id = ++f->next_id;
    f->opened++;
    *out = c;
    return 0;
}

void fake_close(void *conn, void *ud) {
    struct fake *f = ud;
    struct fake_conn *c = conn;
    assert_int_equal(atomic_load(&c->held), 0); /* never closed while a thread holds it */
    free(c);
    f->closed++;
}

int fake_reset(void *conn, int mode, void *ud) {
    (void)conn;
    struct fake *f = ud;
    pthread_mutex_lock(&f->mu);
    f->last_reset_mode = mode;
    f->resets_in_progress++;
    while (f->block_resets) pthread_cond_wait(&f->cv, &f->mu);
    f->resets_in_progress--;
    int fails = f->reset_fails;
    pthread_mutex_unlock(&f->mu);
    return fails;
}

void fake_destroy(void *ud) { ((struct fake *)ud)->destroyed++; }

void set_blocking(int on) {
    pthread_mutex_lock(&F.mu);
    F.block_opens = on;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

int one_open_in_progress(void *arg) {
    (void)arg;
    pthread_mutex_lock(&F.mu);
    int n = F.opens_in_progress;
    pthread_mutex_unlock(&F.mu);
    return n == 1;
}

int one_reset_in_progress(void *arg) {
    (void)arg;
    pthread_mutex_lock(&F.mu);
    int n = F.resets_in_progress;
    pthread_mutex_unlock(&F.mu);
    return n == 1;
}

void set_reset_blocking(int on) {
    pthread_mutex_lock(&F.mu);
    F.block_resets = on;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

pool_t *fake_pool(const char *options) {
    fake_init();
    pool_t *pool;
    assert_ok(pool_create_custom(&pool, options, fake_open, fake_close, fake_reset, NULL,
                                 fake_destroy, &F));
    return pool;
}

int conn_id(const pool_lease_t *lease) {
    struct fake_conn *c = pool_lease_native(lease);
    assert_non_null(c);
    return c->id;
}
