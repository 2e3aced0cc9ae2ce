/* Running part of a test in a forked child: a watchdog so that a hang is a failure, not a
 * stuck suite; checks that report through a pipe (cmocka must not run in the child); and the
 * parent's view of how the child ended. */
#ifndef CONNPOOL_TEST_CHILD_H
#define CONNPOOL_TEST_CHILD_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>
#include <cmocka.h>

#define CHILD_WATCHDOG_S 10   /* every child dies of SIGALRM after this long */
#define PARENT_WATCHDOG_S 120 /* the test process itself, per test */

/* The test process's own watchdog: install the handler once, then arm and disarm it around
 * each test (as cmocka setup and teardown), so a hang in the parent ends the run with a
 * message instead of stalling it. */
void install_parent_watchdog(void);
int arm_watchdog(void **state);
int disarm_watchdog(void **state);

/* Counters shared between threads (C99 has no <stdatomic.h> guarantee; GCC builtins). */
static inline int64_t atomic_get(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void atomic_set(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void atomic_inc(int64_t *p) { __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL); }

/* In a child: tells the parent something (a failure, or data it asked for). */
void child_say(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* A check in a child: on failure the parent learns which one, and the child ends with a code
 * of its own. */
#define CHILD_REQUIRE(cond, ...)                         \
    do {                                                 \
        if (!(cond)) {                                   \
            child_say("line %d: %s: ", __LINE__, #cond); \
            child_say(__VA_ARGS__);                      \
            _exit(1 + __LINE__ % 250);                   \
        }                                                \
    } while (0)

/* How to fork: fork() runs the atfork handlers; _Fork() and the raw system call do not. */
enum fork_kind { VIA_FORK, VIA__FORK, VIA_SYS_FORK };
/* How the child ends: exit() runs static destructors and atexit handlers, _exit() does not. */
enum child_end { END_EXIT, END__EXIT };

const char *fork_name(enum fork_kind kind);

struct child {
    pid_t pid;
    int fd; /* the read end of its pipe */
};

struct outcome {
    int status;
    char out[2048]; /* everything the child said */
};

/* Starts body(arg) in a child under a watchdog; the child ends with its result. Only the
 * test thread may fork, so that the pipe reaches no other child. */
struct child start_child(enum fork_kind kind, int watchdog_s, int (*body)(void *), void *arg,
                         enum child_end end);
/* Waits for the child and collects what it said. */
struct outcome finish_child(struct child c);
/* Both, with CHILD_WATCHDOG_S. */
struct outcome run_child(enum fork_kind kind, int (*body)(void *), void *arg, enum child_end end);

int child_hung(const struct outcome *o); /* killed by its watchdog */
int child_ok(const struct outcome *o);   /* exited with 0 */
const char *describe(const struct outcome *o, char *buf, size_t len);
/* A number the child reported as "key=<n>"; fails the test if it did not. */
long long child_said(const struct outcome *o, const char *key);

#define assert_child_ok(o, what)                                                          \
    do {                                                                                  \
        const struct outcome *o_ = (o);                                                   \
        if (!child_ok(o_)) {                                                              \
            char d_[96];                                                                  \
            fail_msg("%s: the child %s: %s", (what), describe(o_, d_, sizeof d_), o_->out); \
        }                                                                                 \
    } while (0)

#endif
