/*
 * connpool: a database connection pool behind a plain C ABI.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 *  1. Handles are opaque. pool_t is created by pool_create*() and released by
 *     pool_dispose(); pool_lease_t is one checked-out connection, created by
 *     pool_checkout() and ended by pool_checkin().
 *  2. Fallible functions return an int: POOL_OK (0) or a negative POOL_E* code. Signatures use
 *     int, not the enum, so a binding never meets a value outside its type. Codes are
 *     append-only and never renumbered.
 *  3. Every fallible call clears this thread's detail message on entry and sets it on failure
 *     (pool_last_error()). The message says what happened and why and never contains a
 *     password.
 *  4. Strings are UTF-8, NUL-terminated, and copied before the call returns: nothing the caller
 *     passes must outlive the call. Returned strings are owned by the library; each function
 *     says how long they live.
 *  5. Out-parameters come first, then the handle, then inputs; callbacks and their user_data
 *     come last. Callbacks run on the thread that called into connpool, or on the pool's
 *     maintenance thread where the text of the options says so (never on any other thread),
 *     never with a pool lock held, and must not unwind (no C++ exception, Rust panic or
 *     longjmp may leave them).
 *  6. Misuse is an error, never a crash: NULL handles, a lease checked in twice, garbage
 *     options. Handles are not addresses but a table slot and a serial, checked without
 *     reading the memory they might point at: a value that was never a handle, a lease
 *     checked in already (however many checkouts ago), or a pool already released gives
 *     POOL_EINVAL (as a pool) or POOL_ESTATE (as a lease). A call racing with the release of
 *     its pool by another thread is still undefined behaviour.
 *  7. Thread-safety: a pool_t may be used from any number of threads at once. A lease belongs
 *     to one thread at a time (it may move between threads, but must not be used by two at
 *     once); its native connection is the caller's alone until pool_checkin().
 *  8. Fork: a child process never touches the connections it inherited from its parent (it
 *     neither queries, rolls back, cancels nor closes them through the driver, any of which
 *     would kill or corrupt the parent's sessions). The pool notices the fork (pthread_atfork
 *     handlers, and a check at checkout for forks that bypass them, like _Fork() or a raw
 *     clone), neutralises the inherited sockets, and then works normally in the child with
 *     fresh connections opened on demand. A lease checked out before the fork is dead in the
 *     child: pool_lease_native() returns NULL, pool_invalidate() returns POOL_EFORKED, and
 *     pool_checkin() disposes of it safely. A fork waits for the connects (and closes) the pool
 *     has in flight, at most their timeout, so no child is born inside the TLS, GSSAPI or
 *     unixODBC library's global locks; for the pool's ODBC statements it waits at most
 *     100 ms (all of them with unixODBC's Threading=3).
 *     Do not fork from inside a connector callback, nor from a signal handler that may have
 *     interrupted a connpool call on the same thread: the fork handler waits for locks that
 *     call may hold, and fork() never returns. See README, "Fork".
 *  9. Symbols carry the version node CONNPOOL_1. libsolv also exports pool_create and friends,
 *     unversioned names in a different node: dynamic linking keeps them apart, but linking
 *     both libraries statically into one program cannot work.
 */
#ifndef CONNPOOL_H
#define CONNPOOL_H

#include <stddef.h>
#include <stdint.h>

#define CONNPOOL_VERSION_MAJOR 1
#define CONNPOOL_VERSION_MINOR 2
#define CONNPOOL_VERSION_PATCH 0

#if defined(__GNUC__)
#define CONNPOOL_API __attribute__((visibility("default")))
#else
#define CONNPOOL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pool_s pool_t;             /* a pool of connections to one database */
typedef struct pool_lease_s pool_lease_t; /* one checked-out connection */
typedef struct pool_result_s pool_result_t; /* the result of pool_query() */
typedef struct pool_stream_s pool_stream_t; /* a result read in pieces (since 1.2) */

/* Status codes. Append-only: a code is never renumbered or reused. */
typedef enum pool_status {
    POOL_OK = 0,
    POOL_ERROR = -1,     /* internal failure (see pool_last_error()) */
    POOL_EINVAL = -2,    /* bad argument: NULL handle, unknown option key, bad value */
    POOL_ENOMEM = -3,    /* out of memory */
    POOL_ETIMEDOUT = -4, /* no connection became free within the timeout */
    POOL_ECONNECT = -5,  /* the driver failed to open a connection */
    POOL_EBUSY = -6,     /* pool_dispose() with leases still out: closed, released later */
    POOL_ECLOSED = -7,   /* the pool is disposed or being disposed */
    POOL_ESTATE = -8,    /* lease not checked out: checked in twice, or not a lease */
    POOL_ENOTSUP = -9,   /* the connection string names a connector not built in */
    POOL_EFORKED = -10,  /* the lease's connection was inherited across fork: unusable here */
    POOL_ETOOMANYWAITERS = -11, /* max_waiting threads wait already: not queued (since 1.1) */
    POOL_ERANGE = -12,   /* the caller's buffer is too small; the size needed is returned
                            (since 1.1) */
    POOL_EQUERY = -13,   /* the statement failed: pool_last_error() has the driver's message,
                            pool_last_sqlstate() its SQLSTATE (since 1.1) */
    POOL_ETYPE = -14     /* a typed getter met SQL NULL or a value of another type (since
                            1.2) */
} pool_status;

/*
 * Options: the `options` argument of pool_create() is a string of key=value pairs in libpq's
 * conninfo grammar (whitespace-separated; a value may be 'single quoted'; backslash escapes
 * a quote or a backslash). NULL or "" means all defaults. Names and defaults follow
 * SQLAlchemy's pool:
 *
 *   key              default   meaning
 *   pool_size        5         connections kept open; at least 1
 *   max_overflow     10        extra connections allowed in a burst, closed at checkin;
 *                              -1 = unlimited
 *   pool_timeout     30        seconds a checkout waits for a free connection (fractions
 *                              allowed); also bounds the connect a checkout performs. 0: never
 *                              wait (a full pool fails at once), while a connect or pre-ping
 *                              of the checkout's own gets 30 s (libpq's connect_timeout, if
 *                              shorter, still applies)
 *   pool_use_lifo    true      reuse the most recently returned connection first (true) or
 *                              the least recently returned (false, SQLAlchemy's default);
 *                              true/false, on/off, 1/0. Since 1.2 the default is true: it
 *                              keeps as few server backends busy as the load needs. With
 *                              true, a connection checked in while nobody waits is kept for
 *                              the thread that returned it, whose next untagged checkout
 *                              takes it back without the pool's lock (unless min_idle,
 *                              idle_timeout or leak_threshold is set); it stays idle to
 *                              every other thread and rule meanwhile
 *   pool_handoff_after 0.002   seconds a waiter waits before every connection checked in goes
 *                              straight to it (see pool_checkout); 0: always (strict FIFO
 *                              hand-off, the behaviour before 1.2). Since 1.2
 *   pool_overflow_after auto   seconds a checkout that could open an overflow connection
 *                              (beyond pool_size) first waits for one to come back; auto:
 *                              three times the pool's mean connect time; 0: opens at once
 *                              (SQLAlchemy; the behaviour before 1.2). Since 1.2
 *   reset_on_return  rollback  at checkin: rollback, commit, discard, or none
 *   poolclass        queue     queue: the pool above; null: every checkout opens a new
 *                              connection and every checkin closes it (no limit, no wait)
 *   odbc_dm_pooling  refuse    ODBC only: refuse, or allow, unixODBC's own connection
 *                              pooling ([ODBC] Pooling=Yes), which hands a forked child the
 *                              parent's sessions; allow it only in a process that never forks
 *
 * Health and lifecycle (since 1.1; seconds accept fractions; 0 turns a feature off):
 *
 *   pool_pre_ping          false  test a connection at checkout before handing it out; a
 *                                 dead one is closed and replaced within the checkout's
 *                                 deadline. Every checkout looks at the socket (no round
 *                                 trip); a round trip is made for a connection idle longer
 *                                 than pre_ping_interval, and for any connection on which
 *                                 something arrived while it was idle (a NOTIFY, a notice):
 *                                 only a server's announced end of the session (libpq) or a
 *                                 hang-up is read as dead without one, and nothing that
 *                                 arrived is ever read as a sign of life
 *   pre_ping_interval      0.5    see pool_pre_ping
 *   ping_timeout           5      the longest a ping may take (also bounded by the checkout's
 *                                 deadline); a ping that takes longer finds the connection dead.
 *                                 It also bounds the rollback (or commit, or DISCARD ALL) at
 *                                 checkin: one not answered in time closes the connection;
 *                                 and the cancel request of a query past query_timeout
 *   pool_recycle           0      close a connection older than this at checkout or checkin
 *                                 (SQLAlchemy's pool_recycle; -1 is accepted for 0)
 *   pool_recycle_jitter    10% of pool_recycle: each connection's lifetime is shortened by a
 *                                 random amount up to this, fixed when it opens, so
 *                                 connections opened together do not expire together
 *   idle_timeout           0      close connections idle longer than this, down to min_idle
 *   min_idle               0      connections the pool keeps open and idle, opened in the
 *                                 background (at most pool_size)
 *   max_waiting            -1     at most this many threads wait in checkout; the next one
 *                                 gets POOL_ETOOMANYWAITERS at once. -1: no limit
 *   leak_threshold         0      report a lease held longer than this through the log hook,
 *                                 once, and again when it comes back
 *   fail_fast_after        3      after this many connects failed in a row, checkouts that
 *                                 need a new connection fail at once with the last connect
 *                                 error during a back-off window (0.25 s, doubling per further
 *                                 failure up to fail_fast_backoff_max); one checkout per
 *                                 window tries again, and one success ends it. 0: never
 *   fail_fast_backoff_max  5      see fail_fast_after
 *   query_timeout          0      a pool_query() still running after this long fails with
 *                                 POOL_ETIMEDOUT; its connection is abandoned (closed at
 *                                 checkin). libpq: enforced by the pool, also against a server
 *                                 that stopped answering, and the statement is cancelled on
 *                                 the server (a cancel request awaited at most ping_timeout;
 *                                 the message says whether the server took it), so it stops
 *                                 and frees its locks; ODBC: the driver's query timeout, in
 *                                 whole seconds. 0: no limit
 *   statement_cache_size   100    prepared statements kept per connection for
 *                                 POOL_QUERY_PREPARE (libpq), least recently used dropped
 *                                 first. 0: the flag prepares nothing (since 1.2)
 *
 * The background work (min_idle, idle_timeout, leak_threshold, and recycling idle
 * connections) runs on one maintenance thread per pool, started at the pool's first checkout
 * or pool_wait_ready() and only if one of those options is on. It holds no lock across I/O,
 * is joined by pool_dispose(), and is started afresh in a forked child when the child first
 * uses the pool. pool_dispose() never waits for the network: if the thread is opening a
 * min_idle connection then, dispose returns at once and the thread ends by itself when that
 * connect does (within the connect's bound: pool_timeout, or 30 s when that is 0), closing
 * the connection; only after that may the library be unloaded with dlclose(). It runs the connector's open and close callbacks and the on_connect,
 * on_close and log hooks (see pool_hooks_t); no other user code.
 */

/* What the connector's reset does at checkin (reset_on_return). */
typedef enum pool_reset_mode {
    POOL_RESET_NONE = 0,     /* check the connection is usable, change nothing */
    POOL_RESET_ROLLBACK = 1, /* roll back any open or failed transaction */
    POOL_RESET_COMMIT = 2,   /* commit any open transaction (a failed one rolls back) */
    POOL_RESET_DISCARD = 3   /* roll back, then drop all session state: libpq sends DISCARD
                                ALL (SET, prepared statements, temporary tables, advisory
                                locks, LISTEN), and so does ODBC to PostgreSQL; with another
                                ODBC database checkouts fail with POOL_EINVAL; a custom
                                reset callback gets this mode */
} pool_reset_mode;

/* ---------------------------------------------------------------- lifecycle */

/**
 * Create a pool. No connection is opened until the first checkout.
 *
 * conninfo selects the connector:
 *  - "odbc:" followed by an ODBC connection string ("odbc:DSN=mydb;UID=u;PWD=p",
 *    "odbc:Driver=SQLite3;Database=/path/app.db") selects ODBC through unixODBC; the rest is
 *    passed to SQLDriverConnect untouched. No libpq string can start with "odbc:" (a libpq
 *    string starts with a keyword and "=", or with a URI scheme), so the rule is unambiguous.
 *    Each connection is opened with autocommit on, and the pool restores that at checkin.
 *  - a "postgresql://" or "postgres://" URI, a libpq "key=value ..." string, or "" (libpq's
 *    PG* environment variables) selects libpq; the string is passed to libpq untouched (connpool only adds defaults the string may override:
 * fallback_application_name=connpool, gssencmode=disable because a child forked while
 * another thread was inside the GSSAPI library can deadlock on its first connect, and since
 * 1.1 client_encoding=UTF8 unless PGCLIENTENCODING is set, so that text is UTF-8).
 *
 * Returns POOL_OK and stores the pool in *out.
 * Errors:  POOL_EINVAL (NULL out or conninfo, unknown option, bad value, a conninfo libpq
 *          cannot parse, unixODBC pooling on; the message names the key and the value),
 *          POOL_ENOTSUP (conninfo names no connector built in), POOL_ENOMEM. *out is NULL on
 *          error.
 * Ownership: the caller owns *out and releases it with pool_dispose().
 * Thread-safety: any thread. Since 1.0.
 */
CONNPOOL_API int pool_create(pool_t **out, const char *conninfo, const char *options);

/**
 * Create a pool with options as parallel NULL-terminated arrays, like PQconnectdbParams:
 * keys[i] = values[i]. No quoting is needed; keys or values may be NULL (no options).
 * Returns and errors as pool_create(). Since 1.0.
 */
CONNPOOL_API int pool_create_params(pool_t **out, const char *conninfo,
                                    const char *const *keys, const char *const *values);

/* A custom connector: any backend can be pooled through these callbacks. See convention 5. */

/** Open a connection and store its handle in *conn_out. On failure return nonzero and write a
 *  message (no password) into errbuf, at most errbuf_len bytes including the NUL. timeout_ms
 *  is what remains of the checkout's deadline: honour it. */
typedef int (*pool_open_cb)(void **conn_out, char *errbuf, size_t errbuf_len,
                            int64_t timeout_ms, void *user_data);
/** Close a connection opened by the open callback. */
typedef void (*pool_close_cb)(void *conn, void *user_data);
/** At checkin: apply `mode` (a pool_reset_mode) and return 0 if the connection may be reused,
 *  nonzero to have it closed. NULL means every connection is reused as it is. */
typedef int (*pool_reset_cb)(void *conn, int mode, void *user_data);
/** Return 0 if the connection is alive, nonzero if it is not. NULL means always alive. */
typedef int (*pool_ping_cb)(void *conn, void *user_data);
/** Called once when the pool no longer needs user_data. May be NULL. */
typedef void (*pool_destroy_cb)(void *user_data);

/**
 * Create a pool whose connections come from the callbacks above. open and close are required.
 * Returns and errors as pool_create() (POOL_EINVAL for a NULL open or close).
 * Ownership: user_data passes to the pool at this call: destroy(user_data) runs exactly once,
 * when the pool is released, or before this function returns if it fails.
 * Thread-safety: the callbacks may run on several threads at once, for different
 * connections. Since 1.0.
 */
CONNPOOL_API int pool_create_custom(pool_t **out, const char *options, pool_open_cb open,
                                    pool_close_cb close, pool_reset_cb reset,
                                    pool_ping_cb ping, pool_destroy_cb destroy,
                                    void *user_data);

/**
 * Dispose of a pool. Never blocks on the network for leases and never frees memory under a
 * live lease: threads waiting in pool_checkout() wake with POOL_ECLOSED, idle connections are
 * closed now, new checkouts fail with POOL_ECLOSED, and leases still out keep working until
 * they are checked in, which closes their connection. The memory is released when the last
 * lease is back. The handle belongs to the library after this call, whatever it returns.
 *
 * Returns POOL_OK when no lease is out (the pool is released now, or as soon as threads still
 * inside it, waking waiters or a connect in progress, leave), POOL_OK for NULL (a no-op), or
 * POOL_EBUSY when leases are still out (the message says how many); the pool is then
 * released at the last checkin.
 * Errors:  POOL_EINVAL (not a pool), POOL_ECLOSED (already disposed, leases still out).
 * Thread-safety: any thread, but no other call may use the handle once this returns.
 * Since 1.0.
 */
CONNPOOL_API int pool_dispose(pool_t *pool);

/* ---------------------------------------------------------------- leases */

/**
 * Check a connection out. Serves an idle connection (the one this thread returned last if
 * it is still idle, else the newest; the oldest with pool_use_lifo=false); else opens a new one while fewer than pool_size + max_overflow exist
 * and nobody waits (beyond pool_size, only once it has waited pool_overflow_after for a
 * connection to come back); else waits. Waiters are served first come first served, and the rule
 * between waiters and newcomers is: a waiter that has waited pool_handoff_after (2 ms) is
 * served before any later checkout, since every connection checked in from then on goes
 * straight to the longest waiter; before that, a thread that checks a connection in may take
 * it again at once (which spares both threads a context switch). So no checkout waits more
 * than pool_handoff_after while connections come back, beyond its place in the queue.
 * The pool's lock is never held while connecting. A checkout that
 * opens a connection does so itself, within its own deadline (libpq's connect is abandoned
 * at the deadline), so no connect outlives the checkout that asked for it.
 *
 * timeout_ms: how long to wait; -1 means the pool's pool_timeout, 0 means do not wait for
 * another thread's connection (a connect or pre-ping of its own is still bounded by
 * pool_timeout, or by 30 s if pool_timeout is 0).
 * Returns POOL_OK and stores the lease in *out.
 * A connection older than pool_recycle, retired by pool_reset(), or found dead (with
 * pool_pre_ping) is closed and replaced within the same deadline, unseen by the caller.
 *
 * Errors:  POOL_ETIMEDOUT ("QueuePool limit of size 5 overflow 10 reached, connection timed
 *          out, timeout 30.00" followed by the pool's counts and its longest holders, by tag
 *          and age), POOL_ECONNECT (the driver's message, password removed; the slot is freed
 *          for the next caller; during a fail-fast back-off, at once, with the last connect
 *          error), POOL_ETOOMANYWAITERS (since 1.1), POOL_ECLOSED, POOL_EINVAL, POOL_ENOMEM.
 *          *out is NULL on error.
 * Ownership: the caller must give the lease back with pool_checkin().
 * Thread-safety: any thread. Since 1.0.
 */
CONNPOOL_API int pool_checkout(pool_lease_t **out, pool_t *pool, int64_t timeout_ms);

/**
 * The driver's connection behind a lease: a PGconn * for libpq, an SQLHDBC for ODBC, the open
 * callback's handle for a custom connector. Returns NULL for a lease that is not checked out, or that this
 * process inherited across fork.
 * Ownership: borrowed; valid until pool_checkin(). Do not close it; use pool_invalidate().
 * Thread-safety: the lease's thread. Since 1.0.
 */
CONNPOOL_API void *pool_lease_native(const pool_lease_t *lease);

/**
 * Give a connection back. It is reset (reset_on_return) and handed to the longest waiter or
 * kept idle for the next checkout; it is closed when it is broken (which also retires every
 * connection opened before it: a server that dropped one has usually dropped them all),
 * invalidated, older than pool_recycle, retired by pool_reset(), when pool_size connections
 * are idle already (so the pool shrinks back after a burst), or when the pool is disposed. A lease
 * inherited across fork is dropped without a word to the server.
 * Returns POOL_OK; the lease handle is invalid afterwards.
 * Errors:  POOL_EINVAL (NULL), POOL_ESTATE (not checked out: a second checkin).
 * Thread-safety: any thread holding the lease. Since 1.0.
 */
CONNPOOL_API int pool_checkin(pool_lease_t *lease);

/**
 * Mark a lease's connection as unusable: pool_checkin() will close it instead of reusing it.
 * Returns POOL_OK. Errors: POOL_EINVAL (NULL), POOL_ESTATE (not checked out), POOL_EFORKED
 * (inherited across fork: it is dropped at checkin anyway).
 * Thread-safety: the lease's thread. Since 1.0.
 */
CONNPOOL_API int pool_invalidate(pool_lease_t *lease);

/**
 * pool_checkout() that labels the lease with `tag` (a function name, a request id): leak
 * reports and the timeout message name the holders by their tags. The tag is copied; at most
 * 63 bytes are kept; NULL means no tag. Returns and errors as pool_checkout(), and also
 * POOL_ETOOMANYWAITERS (max_waiting threads wait already). Since 1.1.
 */
CONNPOOL_API int pool_checkout_tagged(pool_lease_t **out, pool_t *pool, int64_t timeout_ms,
                                      const char *tag);

/**
 * The calling thread's scoped lease: the first call checks a connection out (as
 * pool_checkout_tagged()), every further call from the same thread returns the same lease
 * until pool_scope_release(). When the thread exits without releasing it, the lease is
 * checked in for it (reset_on_return applies), so a thread that forgets cannot leak a
 * connection. Use it where code deep in a call stack needs "the" connection of the current
 * thread (a request handler, a worker in a thread pool) and threading a lease through every
 * call is not practical; prefer pool_checkout() where the lease can be passed around. A
 * scoped lease must not be given to pool_checkin() (POOL_ESTATE) or used by another thread.
 * Errors: as pool_checkout_tagged(). Since 1.1.
 */
CONNPOOL_API int pool_checkout_scoped(pool_lease_t **out, pool_t *pool, int64_t timeout_ms,
                                      const char *tag);

/**
 * Check in the calling thread's scoped lease in `pool`, if it has one.
 * Returns POOL_OK (also when there is none). Errors: POOL_EINVAL. Since 1.1.
 */
CONNPOOL_API int pool_scope_release(pool_t *pool);

/**
 * Tell the pool that a statement on this lease failed with SQLSTATE `sqlstate` (five
 * characters). Codes that mean the server went away or changed role (class 08 connection
 * exceptions, 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 25006
 * read_only_sql_transaction after a failover) invalidate the lease and every connection the
 * pool opened before now (as pool_reset()); other codes change nothing.
 * Returns POOL_OK. Errors: POOL_EINVAL (NULL or not five characters), POOL_ESTATE,
 * POOL_EFORKED. Thread-safety: the lease's thread. Since 1.1.
 */
CONNPOOL_API int pool_report_error(pool_lease_t *lease, const char *sqlstate);

/* ---------------------------------------------------------------- queries */

/*
 * A backend-neutral way to run statements on a lease: enough for a binding to be a driver
 * (typed columns, binary-exact values, bulk access, prepared statements, streaming), while
 * pool_lease_native() stays available for everything else.
 *
 * Values. Every value has a text form, the one PostgreSQL prints (bool "t"/"f", dates
 * "YYYY-MM-DD" in the server's DateStyle, numeric, intervals and arrays as PostgreSQL writes
 * them); ODBC values are brought to the same forms where the types are the same (a bit column
 * reads "t"/"f"). bytea is the exception: pool_result_bytes() and pool_result_read() give its
 * raw bytes, pool_result_value() its hex text ("\\x..."), as in 1.1.
 *
 * Memory. A libpq result keeps libpq's PGresult and nothing else: values are read in place,
 * never copied (a bytea's raw bytes are decoded once, on first access). An ODBC result holds
 * the values fetched, in one block. pool_result_memory() says how much either costs.
 */
/**
 * Run one SQL statement on a lease, with `nparams` positional text parameters ($1, $2... for
 * libpq; ? for ODBC); a NULL entry is SQL NULL. Parameters are passed to the driver
 * separately from the text (libpq's PQexecParams, ODBC's bound SQL_C_CHAR parameters), never
 * interpolated.
 * Returns POOL_OK and stores the result in *out (free it with pool_result_free()).
 * Errors:  POOL_EQUERY: the statement failed; the message is the driver's and
 *          pool_last_sqlstate() gives its SQLSTATE. The lease is still usable, unless the
 *          connection was lost (SQLSTATE class 08, or a server shutdown code; the message says
 *          so): then the lease is invalidated, every older connection retired as by
 *          pool_report_error(), and it must be checked in.
 *          POOL_EINVAL (NULL, nparams < 0, params NULL with nparams > 0), POOL_ESTATE,
 *          POOL_EFORKED, POOL_ENOTSUP (a custom connector), POOL_ENOMEM. *out is NULL on error.
 * A transaction opened with a BEGIN statement is ended at checkin by reset_on_return, with
 * ODBC too (where the driver's autocommit mode does not show it); for psqlODBC and SQLite also
 * one sent through the lease's own SQLHDBC.
 * Thread-safety: the lease's thread. Since 1.1.
 */
CONNPOOL_API int pool_query(pool_result_t **out, pool_lease_t *lease, const char *sql,
                            int nparams, const char *const *params);

/** Rows in the result (0 for a statement that returns none). Since 1.1. */
CONNPOOL_API int64_t pool_result_rows(const pool_result_t *result);
/** Columns in the result. Since 1.1. */
CONNPOOL_API int pool_result_columns(const pool_result_t *result);
/** The name of column `column` (from 0), or NULL if out of range. Owned by the result.
 *  Since 1.1. */
CONNPOOL_API const char *pool_result_column_name(const pool_result_t *result, int column);
/** The value at (row, column) as UTF-8 text, or NULL for SQL NULL or out of range (tell them
 *  apart with pool_result_rows()/pool_result_columns()). Owned by the result. Since 1.1. */
CONNPOOL_API const char *pool_result_value(const pool_result_t *result, int64_t row,
                                           int column);
/** Rows the statement inserted, updated or deleted (INSERT, UPDATE, DELETE, MERGE), or -1
 *  for other statements and when the driver does not say. Since 1.1. */
CONNPOOL_API int64_t pool_result_affected(const pool_result_t *result);
/** Free a result; NULL is a no-op. Since 1.1. */
CONNPOOL_API void pool_result_free(pool_result_t *result);

/** The SQLSTATE of this thread's last failed pool_query() (five characters), or "" if the
 *  last call did not fail with one. Same lifetime as pool_last_error(). Since 1.1. */
CONNPOOL_API const char *pool_last_sqlstate(void);

/* ---------------------------------------------------------------- typed results (since 1.2) */

/* What a column holds, whatever the backend: a stable code for bindings to convert values
 * by. Append-only. The backend's own type id comes with it (pool_result_column_type()). */
typedef enum pool_type {
    POOL_TYPE_UNKNOWN = 0,     /* anything else: use the text form */
    POOL_TYPE_BOOL = 1,        /* "t" or "f" */
    POOL_TYPE_INT16 = 2,
    POOL_TYPE_INT32 = 3,
    POOL_TYPE_INT64 = 4,
    POOL_TYPE_FLOAT32 = 5,     /* text as PostgreSQL prints it: "1.5", "Infinity", "NaN" */
    POOL_TYPE_FLOAT64 = 6,
    POOL_TYPE_NUMERIC = 7,     /* exact decimal text, or "NaN" */
    POOL_TYPE_TEXT = 8,        /* text, varchar, char, name */
    POOL_TYPE_BYTEA = 9,       /* binary: raw bytes from pool_result_bytes() */
    POOL_TYPE_DATE = 10,
    POOL_TYPE_TIME = 11,       /* time and timetz */
    POOL_TYPE_TIMESTAMP = 12,
    POOL_TYPE_TIMESTAMPTZ = 13,
    POOL_TYPE_INTERVAL = 14,
    POOL_TYPE_UUID = 15,
    POOL_TYPE_JSON = 16,       /* json and jsonb, as text */
    POOL_TYPE_ARRAY = 17       /* any array, as PostgreSQL's array literal text */
} pool_type;

/** The connpool type (a pool_type) of column `column`, and in *backend_type (if not NULL)
 *  the backend's own type id: the PostgreSQL type OID for libpq, the ODBC SQL data type
 *  (SQL_INTEGER...) for ODBC. Returns -1 (and leaves *backend_type alone) if the result is
 *  NULL or the column out of range. Since 1.2. */
CONNPOOL_API int pool_result_column_type(const pool_result_t *result, int column,
                                         int64_t *backend_type);
/** 1 if the value at (row, column) is SQL NULL, 0 if not, -1 if out of range. Since 1.2. */
CONNPOOL_API int pool_result_is_null(const pool_result_t *result, int64_t row, int column);
/** The value at (row, column), binary-exact: its bytes (a bytea's raw bytes; the text form of
 *  any other type), NUL-terminated for convenience, with their number in *len (if not NULL;
 *  the NUL not counted). NULL for SQL NULL or out of range (*len 0); an empty value is "" and
 *  0. Owned by the result. Since 1.2. */
CONNPOOL_API const void *pool_result_bytes(const pool_result_t *result, int64_t row,
                                           int column, size_t *len);
/** The byte length of pool_result_bytes()'s value, or -1 for SQL NULL or out of range.
 *  Since 1.2. */
CONNPOOL_API int64_t pool_result_length(const pool_result_t *result, int64_t row, int column);

/**
 * Typed getters: the value at (row, column) as a C type. An integer column (or any value
 * whose whole text is a decimal integer in range) reads as int64; integer, float and numeric
 * values read as double; bool as 0 or 1.
 * Returns POOL_OK. Errors: POOL_ETYPE (the value is SQL NULL, or not of that type: the
 * message says which), POOL_ERANGE (row or column out of range), POOL_EINVAL (NULL result or
 * out). *out is untouched on error. Thread-safety: any thread, for a result no thread frees.
 * Since 1.2.
 */
CONNPOOL_API int pool_result_int64(const pool_result_t *result, int64_t row, int column,
                                   int64_t *out);
CONNPOOL_API int pool_result_double(const pool_result_t *result, int64_t row, int column,
                                    double *out);
CONNPOOL_API int pool_result_bool(const pool_result_t *result, int64_t row, int column,
                                  int *out);

/**
 * Bulk access: rows [first_row, first_row + nrows) in one call, for bindings that would
 * otherwise make a call per value. Into `buf` go the values of those rows, row by row, each
 * as pool_result_bytes() gives it and followed by one NUL byte (so a NULL or an empty value
 * is a lone NUL); into lengths[nrows * columns] each value's length without the NUL, or -1
 * for SQL NULL. The value of row r, column c starts at the sum of (lengths + 1) of the values
 * before it (NULLs count 0 + 1). *needed (if not NULL) is set to the bytes the rows need.
 * nrows is clipped to the rows there are.
 * Returns POOL_OK. Errors: POOL_ERANGE (buf_len < *needed: nothing is written to buf or
 * lengths; call again with a buffer that large; buf and lengths may be NULL with buf_len 0
 * to ask), POOL_EINVAL (NULL result, lengths NULL with values to write, first_row out of
 * range or nrows negative). Since 1.2.
 */
CONNPOOL_API int pool_result_read(const pool_result_t *result, int64_t first_row,
                                  int64_t nrows, void *buf, size_t buf_len, int64_t *lengths,
                                  size_t *needed);

/** Bytes of memory the result holds (libpq's PGresult, or the ODBC values and their
 *  bookkeeping), or 0 for NULL. Since 1.2. */
CONNPOOL_API size_t pool_result_memory(const pool_result_t *result);

/* A parameter with its length and type (pool_query_params()). */
typedef struct pool_param {
    const void *value; /* NULL: SQL NULL */
    int64_t length;    /* bytes of value, or -1: NUL-terminated text */
    int type;          /* a pool_type: POOL_TYPE_BYTEA sends the bytes as binary data;
                          POOL_TYPE_UNKNOWN (0) sends text and lets the server infer its type;
                          any other declares that type for the text (libpq: its OID, but
                          an array is sent undeclared; ODBC: its SQL type for numbers, bool,
                          date and timestamp, characters for the rest) */
} pool_param_t;

/* Flags of pool_query_params() and pool_stream_open(). */
#define POOL_QUERY_PREPARE 1 /* prepare the statement once per connection and reuse it */

/**
 * pool_query() with binary-safe parameters and flags. Parameters: as pool_param_t says; a
 * bytea parameter may hold any bytes, NULs included.
 * POOL_QUERY_PREPARE: the lease's connection keeps the statement prepared (libpq: a named
 * server-side statement, keyed by the SQL text and the parameters' types; at most
 * statement_cache_size per connection, the least recently used dropped with DEALLOCATE), so
 * later runs of the same SQL on that connection send only its parameters. The first run
 * prepares it (one round trip more). The cache dies with the connection and is emptied when
 * reset_on_return=discard runs DISCARD ALL. A cached statement the server no longer knows
 * (SQLSTATE 26000: the application ran DEALLOCATE, or PgBouncer in transaction mode gave the
 * session another server connection) is forgotten and the run is sent unprepared, which
 * always works, outside a transaction; inside one, the server has failed the transaction
 * already and the error is returned (POOL_EQUERY, 26000). So the flag is safe through
 * PgBouncer in transaction mode but saves nothing there: set statement_cache_size=0 (or use
 * PgBouncer 1.21's max_prepared_statements). Names carry the process id and a random
 * number ("connpool_<pid>_<random>_<n>"), so two clients sharing a server connection through
 * PgBouncer never run each other's statements. ODBC: the flag is accepted and the statement
 * runs unprepared.
 * Returns and errors as pool_query(). Since 1.2.
 */
CONNPOOL_API int pool_query_params(pool_result_t **out, pool_lease_t *lease, const char *sql,
                                   int nparams, const pool_param_t *params, int flags);

/**
 * Streaming: a result read in pieces of at most `max_rows` rows, for results too big to hold
 * (libpq's single-row mode; ODBC fetches row by row). Memory stays that of one piece
 * (psqlODBC: only with UseDeclareFetch=1 in its connection string; by default it reads the
 * whole result at execute, and pool_stream_open() reports the statement's errors).
 * pool_stream_open() sends the statement (parameters and flags as pool_query_params();
 * POOL_QUERY_PREPARE is ignored) and returns once it is sent: errors of the statement itself
 * come from pool_stream_next(). While a stream is open its lease runs nothing else: pool_query()
 * and pool_checkin() fail with POOL_ESTATE. pool_stream_next() stores the next piece in *out
 * (a pool_result_t like any other, with the same columns; free it with pool_result_free()),
 * or NULL once every row was read. The first call always gives a piece, which may have no
 * rows (an empty result, or a statement that returns none: its columns and affected count are
 * there); later pieces have at least one row. pool_stream_close() ends the stream: rows not
 * read are discarded (libpq: the statement is cancelled on the server if rows remain), and
 * the lease is usable again, unless the connection was lost (then it is invalidated, as
 * pool_invalidate() does). NULL is a no-op. In a child process after fork, a stream opened in
 * the parent is freed without a byte to the server, and its lease must be checked in.
 * query_timeout bounds each pool_stream_next() call.
 * Returns POOL_OK. Errors: as pool_query() (pool_stream_next() reports the statement's
 * failure with POOL_EQUERY, and the stream stays open until closed), POOL_EINVAL (max_rows
 * < 1). Thread-safety: the lease's thread. Since 1.2.
 */
CONNPOOL_API int pool_stream_open(pool_stream_t **out, pool_lease_t *lease, const char *sql,
                                  int nparams, const pool_param_t *params, int flags);
CONNPOOL_API int pool_stream_next(pool_result_t **out, pool_stream_t *stream, int64_t max_rows);
CONNPOOL_API int pool_stream_close(pool_stream_t *stream);

/* ---------------------------------------------------------------- asynchronous requests (since 1.2) */

/*
 * For event loops (asyncio, Node, Rust futures, epoll servers): a checkout or a statement that
 * never blocks the calling thread. A *_start call returns at once with a request; the
 * request's fd becomes readable when it is done; the finishing call (pool_request_lease(),
 * pool_request_result()) returns exactly what the blocking call would have returned (code,
 * message, SQLSTATE) and ends the request.
 *
 * Where the waiting happens: nowhere, for a checkout that waits for a connection: it is a
 * place in the pool's one queue, served in the same order and by the same rule as blocking
 * checkouts (no thread per waiting request: a thousand of them on a pool of ten hold no
 * thread). A libpq statement is sent at once and its answer read by the library's one
 * dispatcher thread, which watches every such socket. What blocks runs on threads the
 * library starts and stops itself: a connect (including the DNS lookup, which no driver can
 * make without blocking), a pre-ping, the on_checkout hook, a prepared statement
 * (POOL_QUERY_PREPARE) and every statement of ODBC and custom connectors, one thread per
 * operation in flight. So there are at most as many such threads as connections, and every
 * thread ends after 5 idle seconds.
 *
 * Cancellation (pool_request_cancel()) ends a request at once and loses nothing: a checkout
 * that was handed a connection, or whose connect was in flight, gives the connection back to
 * the pool (the next waiter gets it; it is neither closed nor leaked); a statement is
 * cancelled on the server (libpq; with ODBC and custom connectors it runs to its end) and the
 * lease stays usable: until the statement has ended there, pool_query() waits for it,
 * pool_query_start() runs after it, and a pool_checkin() is carried out when it has.
 *
 * While a statement request runs, its lease runs nothing else: pool_query(), streams,
 * pool_invalidate() and pool_checkin() fail with POOL_ESTATE.
 *
 * Fork: in a child process, a request started in the parent is done at once and its
 * finishing call returns POOL_EFORKED.
 */
typedef struct pool_request_s pool_request_t; /* one pending operation */

/**
 * Starts a checkout: as pool_checkout_tagged() (timeout_ms -1 for pool_timeout, 0 not to
 * wait), without blocking. Returns POOL_OK and stores the request in *out; errors of the
 * checkout itself (timeout, connect failure, a disposed pool) come from pool_request_lease().
 * Errors here: POOL_EINVAL (NULL out or pool), POOL_ENOMEM. Thread-safety: any thread.
 */
CONNPOOL_API int pool_checkout_start(pool_request_t **out, pool_t *pool, int64_t timeout_ms,
                                     const char *tag);
/**
 * Starts a statement on a lease: as pool_query() / pool_query_params() (the SQL and the
 * parameters are copied: they may be freed on return). Errors here: as pool_query() for the
 * arguments and the lease (POOL_EINVAL, POOL_ESTATE: not checked out, a stream open, a request
 * running on it already; POOL_EFORKED); the statement's own come from pool_request_result().
 * Thread-safety: the lease's thread.
 */
CONNPOOL_API int pool_query_start(pool_request_t **out, pool_lease_t *lease, const char *sql,
                                  int nparams, const char *const *params);
CONNPOOL_API int pool_query_params_start(pool_request_t **out, pool_lease_t *lease,
                                         const char *sql, int nparams,
                                         const pool_param_t *params, int flags);
/** A file descriptor that becomes readable (POLLIN) once the request is done, for poll(),
 *  epoll or an event loop; owned by the request (do not close or read it), made on the first
 *  call. -1 (errno set) if none can be made, or for a NULL request. */
CONNPOOL_API int pool_request_fd(const pool_request_t *request);
/**
 * Another way to learn of completion, for a loop that watches many requests through one fd
 * (and for runtimes that can watch a pipe but not an eventfd, such as Node's): when the
 * request is done (at once if it is done already), the 8 bytes of `token` (host order) are
 * written to `fd` (a pipe's write end, say), in one write; so the reader learns which
 * request ended. Once per request. If the pipe is full, the pool's thread waits for room:
 * read it promptly (a pipe holds 8192 tokens by default; F_SETPIPE_SZ makes room for more).
 * Returns POOL_OK. Errors: POOL_EINVAL (NULL request, fd < 0), POOL_ESTATE (called twice).
 */
CONNPOOL_API int pool_request_notify(pool_request_t *request, int fd, uint64_t token);
/** 1 once the request is done (its finishing call will not say POOL_ESTATE), 0 while it is
 *  pending, -1 for NULL. */
CONNPOOL_API int pool_request_done(const pool_request_t *request);
/**
 * Ends a done checkout request: POOL_OK and the lease in *out, or the checkout's error
 * (*out NULL). A request still pending gets POOL_ESTATE and is not ended. POOL_EINVAL: NULL,
 * or a statement request.
 */
CONNPOOL_API int pool_request_lease(pool_lease_t **out, pool_request_t *request);
/** Ends a done statement request: POOL_OK and the result in *out (free it with
 *  pool_result_free()), or the statement's error as pool_query() returns it. Pending:
 *  POOL_ESTATE, not ended. POOL_EINVAL: NULL, or a checkout request. */
CONNPOOL_API int pool_request_result(pool_result_t **out, pool_request_t *request);
/** Ends a request, pending or done, whose outcome is not wanted (see Cancellation above): a
 *  lease it obtained is checked in, a result freed. NULL is a no-op. Returns POOL_OK. */
CONNPOOL_API int pool_request_cancel(pool_request_t *request);

/* ---------------------------------------------------------------- lifecycle and hooks */

/**
 * Retire every connection open now: idle ones are closed at once, checked-out ones when
 * they are checked in. Connections opened after the call are not affected. For a database
 * that restarted, failed over, or changed credentials. Returns POOL_OK. Errors: POOL_EINVAL,
 * POOL_ECLOSED. Thread-safety: any thread. Since 1.1.
 */
CONNPOOL_API int pool_reset(pool_t *pool);

/**
 * Start the pool's background work now (it starts at the first checkout otherwise) and wait
 * until min_idle connections are open and idle, at most timeout_ms (-1: pool_timeout).
 * Returns POOL_OK (at once if min_idle is 0). Errors: POOL_ETIMEDOUT (the message carries the
 * last connect error, if any), POOL_ECLOSED, POOL_EINVAL. Since 1.1.
 */
CONNPOOL_API int pool_wait_ready(pool_t *pool, int64_t timeout_ms);

/* Log levels: a message is passed to the log hook if its level is <= log_level. */
typedef enum pool_log_level {
    POOL_LOG_OFF = 0,
    POOL_LOG_ERROR = 1, /* the pool cannot serve: connects failing, fail-fast entered */
    POOL_LOG_WARN = 2,  /* leaks, late checkins, dead connections, reset triggered */
    POOL_LOG_INFO = 3,  /* recovery, connections recycled or closed idle */
    POOL_LOG_DEBUG = 4  /* every connect and close */
} pool_log_level;

/*
 * Hooks: every member may be NULL. `conn` is the native connection (as pool_lease_native()).
 * They run with no pool lock held, on the thread that does the work: the checkout, checkin or
 * dispose caller, or the maintenance thread for background connects and closes, and for leak
 * reports. Their failures have these effects:
 *   on_connect   after a connection opens, before anyone uses it (run SET statements here).
 *                Nonzero: the connect failed (POOL_ECONNECT with the message written into
 *                errbuf, at most errbuf_len bytes with the NUL); the connection is closed
 *                without on_close.
 *   on_checkout  before a checkout returns. Nonzero: the connection is closed and the
 *                checkout tries another within its deadline (three at most).
 *   on_checkin   at checkin, before reset_on_return. Nonzero: the connection is closed.
 *   on_close     before a connection that passed on_connect is closed (not for connections
 *                inherited across fork, which are dropped without a word).
 *   log          a message (never a password) at `level`; see pool_log_level. What a
 *                PostgreSQL server says on its own (RAISE NOTICE, warnings, the notice that
 *                ends a session) comes here too, as "server SEVERITY: text (SQLSTATE x)":
 *                ERROR, FATAL and PANIC at POOL_LOG_ERROR, WARNING at POOL_LOG_WARN, NOTICE
 *                and INFO at POOL_LOG_INFO, DEBUG and LOG at POOL_LOG_DEBUG. libpq never
 *                prints them on stderr: without a log hook they are dropped. A notice
 *                processor or receiver you install on the native handle is kept (a
 *                processor gets every notice; a receiver of your own replaces the pool's,
 *                which then pings such a connection whenever something arrived).
 */
typedef struct pool_hooks {
    int64_t size; /* sizeof(pool_hooks_t): members are only ever appended */
    int (*on_connect)(void *conn, char *errbuf, size_t errbuf_len, void *user_data);
    int (*on_checkout)(void *conn, void *user_data);
    int (*on_checkin)(void *conn, void *user_data);
    void (*on_close)(void *conn, void *user_data);
    void (*log)(int level, const char *message, void *user_data);
    int log_level; /* a pool_log_level; POOL_LOG_OFF (silent) by default */
    void *user_data;
} pool_hooks_t;

/**
 * Install hooks (copied; NULL removes them). Only before the pool's first checkout or
 * pool_wait_ready(), so every connection sees the same hooks.
 * Returns POOL_OK. Errors: POOL_EINVAL (NULL pool, size not set), POOL_ESTATE (the pool is in
 * use already). Since 1.1.
 */
CONNPOOL_API int pool_set_hooks(pool_t *pool, const pool_hooks_t *hooks);

/* ---------------------------------------------------------------- introspection */

/* The wait histogram's upper bounds, in microseconds (cumulative, like Prometheus buckets;
 * waits_total is the +Inf bucket). */
#define POOL_WAIT_BUCKETS 6
#define POOL_WAIT_BUCKET_US {100, 1000, 10000, 100000, 1000000, 10000000}

/* Counters and gauges of one pool, read in one consistent snapshot. Only int64_t fields, only
 * ever appended: set `size` to sizeof(pool_stats_t) before the call; the library fills
 * min(size, its own size) bytes and stores its own size in `size`. */
typedef struct pool_stats {
    int64_t size;             /* in: sizeof the caller's struct; out: bytes filled */
    int64_t pool_size;        /* the options, as configured */
    int64_t max_overflow;
    int64_t checked_out;      /* leases out now */
    int64_t idle;             /* open connections waiting in the pool */
    int64_t opening;          /* connects in progress */
    int64_t overflow;         /* open or opening connections beyond pool_size */
    int64_t waiting;          /* threads waiting in pool_checkout() */
    int64_t opened_total;     /* connections opened successfully, ever */
    int64_t closed_total;     /* connections closed, ever */
    int64_t connect_failures_total;
    int64_t checkouts_total;  /* successful checkouts */
    int64_t timeouts_total;   /* checkouts that failed with POOL_ETIMEDOUT */
    int64_t wait_total_us;    /* time spent waiting in checkouts that had to wait */
    int64_t wait_max_us;
    int64_t inherited_total;  /* connections inherited across fork and dropped unused */
    /* since 1.1 */
    int64_t connect_time_total_us; /* time spent in successful connects (with on_connect) */
    int64_t connect_time_max_us;
    int64_t waits_total;      /* checkouts that had to wait (whatever the outcome) */
    int64_t wait_le_us[POOL_WAIT_BUCKETS]; /* waits that took <= POOL_WAIT_BUCKET_US[i] */
    int64_t pings_total;      /* round-trip pings made at checkout */
    int64_t dead_total;       /* connections found dead: at checkout, by ping, at checkin,
                                 or hung up while idle (seen by the maintenance thread) */
    int64_t recycled_total;   /* closed for being older than pool_recycle */
    int64_t idle_closed_total; /* closed by idle_timeout */
    int64_t invalidated_total; /* closed after pool_invalidate(), pool_report_error() or a hook */
    int64_t reset_closed_total; /* closed because a reset retired them */
    int64_t resets_total;     /* pool_reset() calls and automatic resets */
    int64_t leaks_total;      /* leases reported as held longer than leak_threshold */
    int64_t fast_fails_total; /* checkouts failed at once during a connect back-off */
    int64_t rejected_total;   /* checkouts refused with POOL_ETOOMANYWAITERS */
} pool_stats_t;

/**
 * Read a pool's statistics in one consistent snapshot.
 * Returns POOL_OK. Errors: POOL_EINVAL (NULL, or size smaller than one field).
 * Thread-safety: any thread. Since 1.0.
 */
CONNPOOL_API int pool_stats_get(pool_t *pool, pool_stats_t *stats);

/**
 * Render the pool's statistics in the Prometheus text exposition format (version 0.0.4):
 * HELP and TYPE lines, metric names prefixed connpool_, counters ending in _total, times in
 * seconds, the wait histogram as connpool_checkout_wait_seconds. `name`, if not NULL, becomes
 * a pool="name" label on every sample (so several pools can share one scrape).
 * Writes the text and its NUL into buf and stores its length (without the NUL) in *len.
 * Errors: POOL_ERANGE when buf_len is too small (buf may be NULL with buf_len 0): nothing is
 * written and *len is set to the length needed, without the NUL. POOL_EINVAL.
 * Thread-safety: any thread; one consistent snapshot. Since 1.1.
 */
CONNPOOL_API int pool_stats_prometheus(char *buf, size_t buf_len, size_t *len, pool_t *pool,
                                       const char *name);

/** Run-time version: MAJOR*10000 + MINOR*100 + PATCH. Since 1.0. */
CONNPOOL_API int pool_version(void);
/** Run-time version as "MAJOR.MINOR.PATCH"; a static string. Since 1.0. */
CONNPOOL_API const char *pool_version_string(void);

/* ---------------------------------------------------------------- errors */

/** A static description of a status code ("unknown error" for codes it does not know).
 *  Never NULL; never freed. Since 1.0. */
CONNPOOL_API const char *pool_strerror(int code);

/** The code's name ("POOL_ETIMEDOUT"), for bindings that map codes to exception classes;
 *  "POOL_UNKNOWN" for codes it does not know. Static; never NULL. Since 1.0. */
CONNPOOL_API const char *pool_error_name(int code);

/** This thread's detail message for the last failed call, "" after a success. Never NULL.
 *  Valid until this thread's next connpool call; copy it at once. Since 1.0. */
CONNPOOL_API const char *pool_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CONNPOOL_H */
