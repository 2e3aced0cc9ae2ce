/* A fault-injecting TCP proxy for tests and benchmarks: it sits between the pool and the test
 * server on loopback and, on command, passes traffic through, delays it, refuses new
 * connections, resets every connection, or black-holes traffic without a reset (a half-open
 * connection as the client sees it: the nastiest network fault, because nothing ever tells
 * the client that its peer is gone).
 *
 * In-process and thread-safe: one proxy thread driven by poll(), commanded through a pipe;
 * every function below may be called from any thread, any number at once. Commands are
 * applied in the order they reach the proxy thread and return once it has applied them.
 *
 * Each connection's fate is fixed when it is accepted (its delays, or a black hole), except
 * that FP_BLACKHOLE and fp_reset_all() also act on the connections open at the time.
 * Closes propagate: a client's FIN reaches the server (after the connection's delay) and the
 * other way round; a reset (RST) on one side resets the other. A black-holed connection is
 * closed on both sides once its client closes it, so its server backend ends then instead of
 * lingering; until then the server's side is held open and read, and the client hears
 * nothing. */
#ifndef CONNPOOL_TEST_FAULTPROXY_H
#define CONNPOOL_TEST_FAULTPROXY_H

typedef struct faultproxy faultproxy_t;

enum fp_mode { FP_PASS, FP_DELAY, FP_REFUSE, FP_BLACKHOLE };

/* Listens on 127.0.0.1 (ephemeral port) and forwards to upstream_host:upstream_port.
   0 on success, -1 with errno on failure. One thread, poll()-driven, plus a control pipe. */
int fp_start(faultproxy_t **out, const char *upstream_host, int upstream_port);

int fp_port(const faultproxy_t *p); /* the listening port */

/* FP_PASS: forward. FP_DELAY: new connections wait delay_ms before connecting upstream and
   each forwarded chunk is held delay_ms. FP_REFUSE: new connections are accepted and reset
   at once (existing ones keep working). FP_BLACKHOLE: new connections are accepted but never
   connected upstream; every existing connection stops forwarding in both directions
   (bytes are read and discarded, nothing is closed or reset: a half-open connection as the
   client sees it). Connections black-holed stay frozen after the mode changes back; only
   new connections see the new mode. Returns once the proxy thread has applied the mode.
   delay_ms is ignored except for FP_DELAY; a connection accepted under FP_DELAY keeps its
   delays after the mode changes (the delays belong to the connection, as in FP_BLACKHOLE). */
void fp_set_mode(faultproxy_t *p, enum fp_mode mode, int delay_ms);

/* FP_DELAY with the two delays set apart: connections accepted from now on wait
   connect_delay_ms before connecting upstream, and hold each chunk chunk_delay_ms.
   fp_set_mode(p, FP_DELAY, d) is fp_set_delays(p, d, d). A slow connect with no per-chunk
   delay (0) makes a login take about connect_delay_ms, not a dozen round trips of it. */
void fp_set_delays(faultproxy_t *p, int connect_delay_ms, int chunk_delay_ms);

/* Resets (RST: SO_LINGER 0 then close) every open connection, both sides; returns once done. */
void fp_reset_all(faultproxy_t *p);

int fp_connections(faultproxy_t *p);        /* client connections currently open */
unsigned long fp_accepted(faultproxy_t *p); /* connections accepted since start */

void fp_stop(faultproxy_t *p); /* closes everything, joins, frees; NULL is a no-op */

#endif
