#define _GNU_SOURCE /* strsignal, syscall */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

pid_t _Fork(void); /* glibc 2.34+: a fork that runs no atfork handler */

static int child_msg_fd = -1; /* in a child: the write end of the pipe to the parent */


/* Under LeakSanitizer (make check SAN=address), which calls this at its exit-time check: a
 * forked child's heap holds the parent's memory that only the parent's other threads (absent
 * in the child) referred to, and the connections it abandons on purpose. Children skip the
 * check; the parent keeps it. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return child_msg_fd >= 0; }

/* In a child: tells the parent something (a failure, or data it asked for). */
void child_say(const char *format, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, sizeof buf, format, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    ssize_t w = write(child_msg_fd, buf, (size_t)n);
    (void)w;
}



const char *fork_name(enum fork_kind kind) {
    return kind == VIA_FORK ? "fork()" : kind == VIA__FORK ? "_Fork()" : "syscall(SYS_fork)";
}

static pid_t do_fork(enum fork_kind kind) {
    switch (kind) {
    case VIA__FORK:
        return _Fork();
    case VIA_SYS_FORK:
#ifdef SYS_fork
        return (pid_t)syscall(SYS_fork);
#else
        return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
    default:
        return fork();
    }
}

/* Starts body(arg) in a child under a watchdog; the child ends with its result, through exit()
 * or _exit(). Only the test thread forks, so the pipe reaches no other child. */
struct child start_child(enum fork_kind kind, int watchdog_s, int (*body)(void *),
                                void *arg, enum child_end end) {
    int fds[2];
    if (pipe(fds) != 0) fail_msg("pipe: %s", strerror(errno));
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL); /* or the child's exit() prints the parent's buffered output again */
    pid_t pid = do_fork(kind);
    if (pid < 0) fail_msg("%s: %s", fork_name(kind), strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        child_msg_fd = fds[1];
        /* cmocka's handlers would longjmp into the parent's test runner, in the child */
        static const int defaults[] = {SIGALRM, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) signal(defaults[i], SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        alarm((unsigned)watchdog_s);
        int rc = body(arg);
        if (end == END__EXIT) _exit(rc);
        exit(rc);
    }
    close(fds[1]);
    struct child c = {pid, fds[0]};
    return c;
}

struct outcome finish_child(struct child c) {
    struct outcome o;
    memset(&o, 0, sizeof o);
    pid_t got;
    while ((got = waitpid(c.pid, &o.status, 0)) < 0 && errno == EINTR) {
    }
    if (got != c.pid) fail_msg("waitpid(%d): %s", (int)c.pid, strerror(errno));
    size_t used = 0;
    for (;;) {
        ssize_t n = read(c.fd, o.out + used, sizeof o.out - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += (size_t)n;
        if (used == sizeof o.out - 1) break;
    }
    o.out[used] = 0;
    close(c.fd);
    return o;
}

struct outcome run_child(enum fork_kind kind, int (*body)(void *), void *arg,
                                enum child_end end) {
    return finish_child(start_child(kind, CHILD_WATCHDOG_S, body, arg, end));
}

int child_hung(const struct outcome *o) {
    return WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGALRM;
}

int child_ok(const struct outcome *o) {
    return WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0;
}

const char *describe(const struct outcome *o, char *buf, size_t len) {
    if (WIFEXITED(o->status))
        snprintf(buf, len, "exited with %d", WEXITSTATUS(o->status));
    else if (child_hung(o))
        snprintf(buf, len, "hung (killed by its watchdog)");
    else if (WIFSIGNALED(o->status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(o->status),
                 strsignal(WTERMSIG(o->status)));
    else
        snprintf(buf, len, "ended with status 0x%x", o->status);
    return buf;
}


/* A number the child reported as "key=<n>". */
long long child_said(const struct outcome *o, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%s=", key);
    const char *at = strstr(o->out, pattern);
    if (!at) fail_msg("the child did not report %s: \"%s\"", key, o->out);
    return strtoll(at + strlen(pattern), NULL, 10);
}

static void parent_watchdog(int sig) {
    (void)sig;
    static const char msg[] = "\nthe test process itself hung (parent watchdog)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(99);
}

void install_parent_watchdog(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = parent_watchdog;
    sigaction(SIGALRM, &sa, NULL);
}

int arm_watchdog(void **state) {
    (void)state;
    alarm(PARENT_WATCHDOG_S);
    return 0;
}

int disarm_watchdog(void **state) {
    (void)state;
    alarm(0);
    return 0;
}
