/* The fault-injecting TCP proxy (faultproxy.h).
 *
 * One thread owns every socket and every connection's state; other threads only queue a
 * command (under mu), poke the control pipe and wait on a condition variable until the
 * proxy thread says it is applied. So the connection state needs no lock, and a command
 * returns only once its effect is real (a reset connection is closed, a black hole is in
 * force).
 *
 * A connection is a pair of sockets and two directions (client to server, server to client).
 * Each direction queues what it read as chunks stamped with the time they may leave (now,
 * or now + the connection's chunk delay), and a FIN to pass on once the queue is empty.
 * Reading stops while a direction holds more than QUEUE_LIMIT bytes, so a slow reader slows
 * its writer (back-pressure) instead of growing memory. All sockets are non-blocking and
 * written with MSG_NOSIGNAL: a peer that vanished is an error to handle, never a SIGPIPE. */
/* accept4, pipe2: descriptors born close-on-exec, so no spawned process (the test's pg_ctl)
   inherits a proxied connection. (bench/soak.c's rule passes -D_GNU_SOURCE already.) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "faultproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_LIMIT (256 * 1024) /* bytes one direction may hold before reading stops */
#define READ_SIZE (16 * 1024)
#define ACCEPTS_PER_ROUND 64  /* so a connection storm cannot starve the others */
#define ACCEPT_PAUSE_MS 50    /* out of descriptors: retry the backlog after this */

struct chunk {
    struct chunk *next;
    int64_t due_ms; /* when it may be sent */
    size_t len, off;
    char data[];
};

/* One direction: bytes read from one socket, to be written to the other. */
struct direction {
    struct chunk *head, *tail;
    size_t queued;
    int eof;          /* the source sent FIN */
    int64_t eof_due_ms;
    int shut;         /* the FIN was passed on (shutdown of the destination's write side) */
};

enum conn_state {
    C_WAIT,       /* FP_DELAY: holding the client before connecting upstream */
    C_CONNECTING, /* non-blocking connect upstream in progress */
    C_OPEN,       /* forwarding */
    C_HOLE        /* black-holed: both sides read and discarded, nothing sent */
};

struct conn {
    int client, upstream; /* -1 once closed (or, upstream, not yet opened) */
    enum conn_state state;
    int64_t connect_at_ms; /* C_WAIT */
    int chunk_delay_ms;
    struct direction up;   /* client to server */
    struct direction down; /* server to client */
    int gone;              /* both sockets closed: to be freed */
};

enum command { CMD_NONE, CMD_MODE, CMD_RESET, CMD_STOP };

struct faultproxy {
    int listen_fd;
    int port;
    int ctl[2]; /* the control pipe: [0] read by the proxy thread */
    struct sockaddr_storage upstream_addr;
    socklen_t upstream_len;
    pthread_t thread;

    /* Callers take call_mu for a whole command, so one command is in flight at a time. */
    pthread_mutex_t call_mu;
    pthread_mutex_t mu; /* guards the fields down to `accepted` */
    pthread_cond_t done_cv;
    enum command cmd;
    enum fp_mode cmd_mode;
    int cmd_connect_delay_ms, cmd_chunk_delay_ms;
    unsigned long cmd_seq, done_seq;
    int open_clients;
    unsigned long accepted;

    /* The proxy thread's own. */
    enum fp_mode mode;
    int connect_delay_ms, chunk_delay_ms;
    struct conn **conns;
    size_t nconns, cap;
    struct pollfd *pfds;
    size_t pfd_cap;
    int64_t accept_paused_until_ms;
    char buf[READ_SIZE];
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No Nagle: the proxy must not add latency of its own to small protocol messages. */
static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Close with an RST instead of a FIN: the peer's next read fails with ECONNRESET. */
static void close_rst(int fd) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* ---------------------------------------------------------------- connections */

static void drop_queue(struct direction *d) {
    while (d->head) {
        struct chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void close_client(struct faultproxy *p, struct conn *c, int rst) {
    if (c->client < 0) return;
    if (rst) close_rst(c->client);
    else close(c->client);
    c->client = -1;
    pthread_mutex_lock(&p->mu);
    p->open_clients--;
    pthread_mutex_unlock(&p->mu);
}

static void close_upstream(struct conn *c, int rst) {
    if (c->upstream < 0) return;
    if (rst) close_rst(c->upstream);
    else close(c->upstream);
    c->upstream = -1;
}

/* Ends the connection: both sides closed (reset or not), queues freed. */
static void finish(struct faultproxy *p, struct conn *c, int rst) {
    close_client(p, c, rst);
    close_upstream(c, rst);
    drop_queue(&c->up);
    drop_queue(&c->down);
    c->gone = 1;
}

static void start_upstream_connect(struct faultproxy *p, struct conn *c) {
    int fd = socket(p->upstream_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        finish(p, c, 1);
        return;
    }
    set_nodelay(fd);
    c->upstream = fd;
    if (connect(fd, (struct sockaddr *)&p->upstream_addr, p->upstream_len) == 0) {
        c->state = C_OPEN;
    } else if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
    } else {
        finish(p, c, 1); /* the server refuses: so does the proxy, to its client */
    }
}

static void black_hole(struct conn *c) {
    if (c->state != C_OPEN) close_upstream(c, 0); /* never connected: leave no trace */
    c->state = C_HOLE;
    drop_queue(&c->up);
    drop_queue(&c->down);
}

static int add_conn(struct faultproxy *p, int client) {
    if (p->nconns == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct conn **grown = realloc(p->conns, cap * sizeof *grown);
        if (!grown) return -1;
        p->conns = grown;
        p->cap = cap;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->client = client;
    c->upstream = -1;
    p->conns[p->nconns++] = c;
    pthread_mutex_lock(&p->mu);
    p->open_clients++;
    pthread_mutex_unlock(&p->mu);
    int64_t now = mono_ms();
    switch (p->mode) {
        case FP_BLACKHOLE:
            c->state = C_HOLE;
            break;
        case FP_DELAY:
            c->state = C_WAIT;
            c->connect_at_ms = now + p->connect_delay_ms;
            c->chunk_delay_ms = p->chunk_delay_ms;
            break;
        default:
            start_upstream_connect(p, c);
            break;
    }
    return 0;
}

static void accept_new(struct faultproxy *p) {
    for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
        int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                p->accept_paused_until_ms = mono_ms() + ACCEPT_PAUSE_MS;
            return; /* EAGAIN: the backlog is empty; others: the client gave up already */
        }
        pthread_mutex_lock(&p->mu);
        p->accepted++;
        pthread_mutex_unlock(&p->mu);
        if (p->mode == FP_REFUSE) {
            close_rst(fd);
            continue;
        }
        set_nodelay(fd);
        if (add_conn(p, fd) < 0) close_rst(fd);
    }
}

/* Reads once from `fd` into direction d, stamping what it read `now`. Returns 0, or -1 if the
 * connection was reset. */
static int read_into(struct faultproxy *p, struct conn *c, int fd, struct direction *d,
                     int64_t now) {
    ssize_t n = recv(fd, p->buf, sizeof p->buf, 0);
    int64_t due = now + c->chunk_delay_ms;
    if (n > 0) {
        struct chunk *ch = malloc(sizeof *ch + (size_t)n);
        if (!ch) return -1;
        memcpy(ch->data, p->buf, (size_t)n);
        ch->len = (size_t)n;
        ch->off = 0;
        ch->due_ms = due;
        ch->next = NULL;
        if (d->tail) d->tail->next = ch;
        else d->head = ch;
        d->tail = ch;
        d->queued += (size_t)n;
        return 0;
    }
    if (n == 0) {
        d->eof = 1;
        d->eof_due_ms = due;
        return 0;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

/* Reads once and throws the bytes away. Returns 1 at EOF or on an error. */
static int read_discard(struct faultproxy *p, int fd) {
    ssize_t n = recv(fd, p->buf, sizeof p->buf, 0);
    if (n > 0) return 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return 1;
}

/* Sends what is due from d to fd. Returns 0, or -1 if the destination is gone. */
static int flush_due(struct direction *d, int fd, int64_t now) {
    while (d->head && d->head->due_ms <= now) {
        struct chunk *ch = d->head;
        ssize_t n = send(fd, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        ch->off += (size_t)n;
        d->queued -= (size_t)n;
        if (ch->off < ch->len) return 0;
        d->head = ch->next;
        if (!d->head) d->tail = NULL;
        free(ch);
    }
    if (!d->head && d->eof && !d->shut && d->eof_due_ms <= now) {
        shutdown(fd, SHUT_WR);
        d->shut = 1;
    }
    return 0;
}

static int wants_read(const struct direction *d) { return !d->eof && d->queued < QUEUE_LIMIT; }

/* The poll events each socket needs now, and the next time something falls due (or -1). */
static void events_for(const struct conn *c, int64_t now, short *client_ev, short *up_ev,
                       int64_t *next_due) {
    *client_ev = *up_ev = 0;
    *next_due = -1;
    switch (c->state) {
        case C_HOLE:
            *client_ev = POLLIN;
            if (c->upstream >= 0) *up_ev = POLLIN;
            return;
        case C_WAIT:
            if (wants_read(&c->up)) *client_ev = POLLIN;
            *next_due = c->connect_at_ms;
            return;
        case C_CONNECTING:
            if (wants_read(&c->up)) *client_ev = POLLIN;
            *up_ev = POLLOUT;
            return;
        case C_OPEN:
            break;
    }
    const struct direction *dirs[2] = {&c->up, &c->down};
    short *read_ev[2] = {client_ev, up_ev};
    short *write_ev[2] = {up_ev, client_ev};
    for (int i = 0; i < 2; i++) {
        const struct direction *d = dirs[i];
        if (wants_read(d)) *read_ev[i] |= POLLIN;
        int64_t due = -1;
        if (d->head) due = d->head->due_ms;
        else if (d->eof && !d->shut) due = d->eof_due_ms;
        if (due < 0) continue;
        if (due <= now && d->head) {
            *write_ev[i] |= POLLOUT;
        } else if (*next_due < 0 || due < *next_due) {
            /* (a FIN due already needs no readiness, only a turn: due <= now means at once) */
            *next_due = due;
        }
    }
}

/* Acts on one connection's poll results and on its timers. One `now` for the whole turn:
 * what is read is stamped with it, so with no delay it is due within this same turn (a FIN
 * stamped a millisecond after the flush's clock would otherwise wait for an event that may
 * never come). */
static void service(struct faultproxy *p, struct conn *c, short client_re, short up_re) {
    int64_t now = mono_ms();
    if (c->state == C_HOLE) {
        if (client_re && read_discard(p, c->client)) {
            finish(p, c, 0); /* the client left: let the server's backend end too */
            return;
        }
        if (up_re && c->upstream >= 0 && read_discard(p, c->upstream))
            close_upstream(c, 0); /* the client must not learn of it */
        return;
    }
    if (client_re && wants_read(&c->up) && read_into(p, c, c->client, &c->up, now) < 0) {
        finish(p, c, 1);
        return;
    }
    if (c->state == C_WAIT) {
        if (now >= c->connect_at_ms) start_upstream_connect(p, c);
        return;
    }
    if (c->state == C_CONNECTING) {
        if (!up_re) return;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            finish(p, c, 1);
            return;
        }
        c->state = C_OPEN;
    }
    if (up_re && wants_read(&c->down) && read_into(p, c, c->upstream, &c->down, now) < 0) {
        finish(p, c, 1);
        return;
    }
    if (flush_due(&c->up, c->upstream, now) < 0 || flush_due(&c->down, c->client, now) < 0) {
        finish(p, c, 1);
        return;
    }
    if (c->up.shut && c->down.shut) finish(p, c, 0);
}

/* ---------------------------------------------------------------- the proxy thread */

static void remove_gone(struct faultproxy *p) {
    size_t kept = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        if (p->conns[i]->gone) free(p->conns[i]);
        else p->conns[kept++] = p->conns[i];
    }
    p->nconns = kept;
}

/* Marks them gone; the main loop frees them (the poll slots still refer to them). */
static void finish_all(struct faultproxy *p, int rst) {
    for (size_t i = 0; i < p->nconns; i++) finish(p, p->conns[i], rst);
}

/* Applies the pending command; returns 1 if it was CMD_STOP. */
static int apply_command(struct faultproxy *p) {
    char drain[64];
    while (read(p->ctl[0], drain, sizeof drain) > 0) {
    }
    pthread_mutex_lock(&p->mu);
    enum command cmd = p->cmd;
    enum fp_mode mode = p->cmd_mode;
    int connect_delay = p->cmd_connect_delay_ms, chunk_delay = p->cmd_chunk_delay_ms;
    pthread_mutex_unlock(&p->mu);
    if (cmd == CMD_MODE) {
        p->mode = mode;
        p->connect_delay_ms = mode == FP_DELAY ? connect_delay : 0;
        p->chunk_delay_ms = mode == FP_DELAY ? chunk_delay : 0;
        if (mode == FP_BLACKHOLE)
            for (size_t i = 0; i < p->nconns; i++) black_hole(p->conns[i]);
    } else if (cmd == CMD_RESET) {
        finish_all(p, 1);
    } else if (cmd == CMD_STOP) {
        finish_all(p, 0);
    }
    pthread_mutex_lock(&p->mu);
    if (cmd != CMD_NONE) {
        p->cmd = CMD_NONE;
        p->done_seq = p->cmd_seq;
        pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return cmd == CMD_STOP;
}

static int grow_pfds(struct faultproxy *p, size_t n) {
    if (n <= p->pfd_cap) return 0;
    size_t cap = p->pfd_cap ? p->pfd_cap : 64;
    while (cap < n) cap *= 2;
    struct pollfd *grown = realloc(p->pfds, cap * sizeof *grown);
    if (!grown) return -1;
    p->pfds = grown;
    p->pfd_cap = cap;
    return 0;
}

static void *proxy_main(void *arg) {
    struct faultproxy *p = arg;
    for (;;) {
        int64_t now = mono_ms();
        size_t n = p->nconns;
        if (grow_pfds(p, 2 + 2 * n) < 0) {
            finish_all(p, 1); /* out of memory: shed every connection rather than hang */
            remove_gone(p);
            n = 0;
        }
        struct pollfd *pfds = p->pfds;
        int64_t next = -1;
        pfds[0] = (struct pollfd){p->ctl[0], POLLIN, 0};
        int paused = now < p->accept_paused_until_ms;
        pfds[1] = (struct pollfd){paused ? -1 : p->listen_fd, POLLIN, 0};
        if (paused) next = p->accept_paused_until_ms;
        for (size_t i = 0; i < n; i++) {
            const struct conn *c = p->conns[i];
            short cev, uev;
            int64_t due;
            events_for(c, now, &cev, &uev, &due);
            /* A socket nothing is wanted from is left out: poll reports a hang-up whatever
               the events, and would spin on one that is not being read. */
            pfds[2 + 2 * i] = (struct pollfd){cev ? c->client : -1, cev, 0};
            pfds[3 + 2 * i] = (struct pollfd){uev && c->upstream >= 0 ? c->upstream : -1, uev, 0};
            if (due >= 0 && (next < 0 || due < next)) next = due;
        }
        int timeout = -1;
        if (next >= 0) timeout = next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
        if (poll(pfds, 2 + 2 * n, timeout) < 0) {
            if (errno == EINTR) continue;
            finish_all(p, 1);
            remove_gone(p);
            continue;
        }
        /* First, so that a connection a command ended is skipped below. */
        if (pfds[0].revents && apply_command(p)) {
            remove_gone(p);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            struct conn *c = p->conns[i];
            if (!c->gone) service(p, c, pfds[2 + 2 * i].revents, pfds[3 + 2 * i].revents);
        }
        remove_gone(p);
        if (pfds[1].revents) accept_new(p);
    }
}

/* ---------------------------------------------------------------- the API */

static int resolve(struct faultproxy *p, const char *host, int port) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || !res) {
        errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    memcpy(&p->upstream_addr, res->ai_addr, res->ai_addrlen);
    p->upstream_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int open_listener(struct faultproxy *p) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, 512) < 0 || getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    p->listen_fd = fd;
    p->port = ntohs(addr.sin_port);
    return 0;
}

int fp_start(faultproxy_t **out, const char *upstream_host, int upstream_port) {
    if (!out || !upstream_host) {
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    struct faultproxy *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->listen_fd = p->ctl[0] = p->ctl[1] = -1;
    int e = 0;
    if (resolve(p, upstream_host, upstream_port) < 0 || open_listener(p) < 0 ||
        pipe2(p->ctl, O_NONBLOCK | O_CLOEXEC) < 0) {
        e = errno;
    } else {
        pthread_mutex_init(&p->call_mu, NULL);
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->done_cv, NULL);
        p->mode = FP_PASS;
        e = pthread_create(&p->thread, NULL, proxy_main, p);
        if (e == 0) {
            *out = p;
            return 0;
        }
        pthread_cond_destroy(&p->done_cv);
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->call_mu);
    }
    if (p->listen_fd >= 0) close(p->listen_fd);
    if (p->ctl[0] >= 0) close(p->ctl[0]);
    if (p->ctl[1] >= 0) close(p->ctl[1]);
    free(p);
    errno = e;
    return -1;
}

int fp_port(const faultproxy_t *p) { return p->port; }

/* Hands a command to the proxy thread and waits until it is applied. */
static void command(struct faultproxy *p, enum command cmd, enum fp_mode mode, int connect_delay,
                    int chunk_delay) {
    pthread_mutex_lock(&p->call_mu);
    pthread_mutex_lock(&p->mu);
    p->cmd = cmd;
    p->cmd_mode = mode;
    p->cmd_connect_delay_ms = connect_delay < 0 ? 0 : connect_delay;
    p->cmd_chunk_delay_ms = chunk_delay < 0 ? 0 : chunk_delay;
    unsigned long seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    char one = 1;
    while (write(p->ctl[1], &one, 1) < 0 && errno == EINTR) {
    }
    /* (EAGAIN: the pipe is full of earlier pokes, so the thread wakes anyway.) */
    pthread_mutex_lock(&p->mu);
    while (p->done_seq < seq) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->call_mu);
}

void fp_set_mode(faultproxy_t *p, enum fp_mode mode, int delay_ms) {
    command(p, CMD_MODE, mode, delay_ms, delay_ms);
}

void fp_set_delays(faultproxy_t *p, int connect_delay_ms, int chunk_delay_ms) {
    command(p, CMD_MODE, FP_DELAY, connect_delay_ms, chunk_delay_ms);
}

void fp_reset_all(faultproxy_t *p) { command(p, CMD_RESET, FP_PASS, 0, 0); }

int fp_connections(faultproxy_t *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->open_clients;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned long fp_accepted(faultproxy_t *p) {
    pthread_mutex_lock(&p->mu);
    unsigned long n = p->accepted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void fp_stop(faultproxy_t *p) {
    if (!p) return;
    command(p, CMD_STOP, FP_PASS, 0, 0);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->ctl[0]);
    close(p->ctl[1]);
    free(p->conns);
    free(p->pfds);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->call_mu);
    free(p);
}
