// What the pool needs from a backend. The pool calls these without holding its lock, from the
// thread that called into connpool, possibly from several threads at once for different
// connections.
#ifndef CONNPOOL_CONNECTOR_HH
#define CONNPOOL_CONNECTOR_HH

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "connpool.h"
#include "error.hh"
#include "options.hh"
#include "result.hh"

namespace connpool {

using clock = std::chrono::steady_clock;

// An option's seconds as a clock duration.
inline clock::duration seconds(double s) {
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s));
}

// What a connector's cheap look at an idle connection found.
enum class liveness {
  dead,   // known dead without a round trip: hung up, or the server announced its end
  quiet,  // nothing arrived since it was last used: as alive as it was then
  unsure  // something arrived that the connector cannot vouch for: only a round trip can tell
};

// Where a connector sends what it has for the pool's log: what a server says on its own
// (notices, warnings, the announcement of a session's end), already free of passwords.
// Called on the thread that uses the connection, never under the pool lock.
using log_fn = void (*)(void *context, int level, const char *message) noexcept;

// A statement sent without waiting for its answer (connector::send), moved on by whoever
// watches its socket: the dispatcher of asynchronous requests (async_runtime.hh).
class pending_statement {
 public:
  enum class need { read, write, done };  // what it waits for next
  virtual ~pending_statement() = default;
  virtual int socket() const noexcept = 0;
  // Takes what arrived, sends what it can, never waits: what it needs next.
  virtual need advance() noexcept = 0;
  // Once advance() said done: the result, or throws as query() does.
  virtual std::unique_ptr<result> finish() = 0;
  // The deadline passed first: asks the server to cancel it (waiting at most the cancel
  // timeout) and returns query()'s timeout error; the connection is abandoned.
  virtual error timed_out() = 0;
};

class connector {
 public:
  virtual ~connector() = default;
  // Set once, before the first connect.
  void set_log(log_fn fn, void *context) noexcept {
    log_ = fn;
    log_context_ = context;
  }
  // Opens a connection before `deadline` and returns its handle (never NULL). Throws
  // error(POOL_ECONNECT) with the driver's message, passwords removed.
  virtual void *open(clock::time_point deadline) = 0;
  virtual void close(void *handle) noexcept = 0;
  // What the application sees of a connection (pool_lease_native, the hooks): the driver's
  // own handle (PGconn *, SQLHDBC), which a connector may wrap in state of its own.
  virtual void *native(void *handle) noexcept { return handle; }
  // Applies `mode` at checkin; false means the connection is broken and must be closed, as
  // is one whose rollback or commit is not answered within `timeout` (a server that stopped
  // answering must not hold a checkin forever; a duration, not a deadline, so that a checkin
  // with nothing to send reads no clock). ran_queries: query() ran statements on it since its
  // checkout, which may have opened a transaction (BEGIN as text) that autocommit mode does
  // not show. just_used: the lease came back within a tick of the coarse clock (a few
  // milliseconds): its holder has just used the connection, so a connector may skip looking
  // at its socket (a system call on the hot path) when nothing else is due.
  virtual bool reset(void *handle, pool_reset_mode mode, bool ran_queries, bool just_used,
                     clock::duration timeout) noexcept = 0;
  // Without a round trip: whether the server hung up or announced the end of the session
  // (dead), sent nothing (quiet), or sent something the connector cannot vouch for (unsure:
  // the caller pings, whatever pre_ping_interval says).
  virtual liveness looks_alive(void *handle) noexcept = 0;
  // True if the connection answered a round trip before `deadline`.
  virtual bool ping(void *handle, clock::time_point deadline) noexcept = 0;
  // The connection's socket, or -1 if the connector cannot tell: a forked child points it at
  // /dev/null so that nothing it does can reach the parent's session.
  virtual int socket(void *handle) noexcept = 0;
  // Frees a connection this process inherited across fork, without a byte to the server (its
  // socket, if known, already points at /dev/null). A connector that cannot promise that
  // leaves the connection alone: leaking it is the only safe way.
  virtual void discard_inherited(void *handle) noexcept = 0;
  // Runs one statement. A failed statement throws error(POOL_EQUERY, the driver's message,
  // its SQLSTATE), SQLSTATE class 08 if the connection is lost. A statement still running at
  // `deadline` (max(): no limit) throws error(POOL_ETIMEDOUT) and leaves the connection
  // unusable (the pool abandons it). A connector that runs no statements throws POOL_ENOTSUP.
  virtual std::unique_ptr<result> query(void *handle, const statement &st,
                                        clock::time_point deadline) = 0;
  // Sends one statement whose rows are read in pieces (row_stream); the connection runs
  // nothing else until the stream is closed. Errors as query().
  virtual std::unique_ptr<row_stream> stream(void *handle, const statement &st,
                                             clock::time_point deadline) = 0;
  // Sends one statement as query() would and returns at once (query() then runs as
  // advance() and finish() say), or nullptr if this connector (or this statement) has no such
  // way: the caller runs query() on a thread of its own instead. Errors as query().
  virtual std::unique_ptr<pending_statement> send(void *handle, const statement &st,
                                                  clock::time_point deadline) {
    (void)handle;
    (void)st;
    (void)deadline;
    return nullptr;
  }
  // Asks the server to cancel the statement that query() runs on `handle` now, from another
  // thread; true if the request was taken before `deadline`. The query then fails (57014)
  // and the connection stays usable. A connector that cannot returns false: the statement
  // runs to its end.
  virtual bool cancel(void *handle, clock::time_point deadline) noexcept {
    (void)handle;
    (void)deadline;
    return false;
  }

 protected:
  void log(int level, const char *message) const noexcept {
    if (log_) log_(log_context_, level, message);
  }

 private:
  log_fn log_ = nullptr;
  void *log_context_ = nullptr;
};

// SQLSTATEs that mean the server went away or changed role: every connection opened before
// the error is suspect (pool_report_error).
bool means_server_gone(const char *sqlstate) noexcept;

// libpq; throws error(POOL_EINVAL) for a conninfo libpq cannot parse. A query that timed out
// is cancelled, the cancel request awaited at most cancel_timeout_s (ping_timeout).
// statement_cache_size: prepared statements kept per connection (POOL_QUERY_PREPARE).
std::unique_ptr<connector> make_pq_connector(const char *conninfo, double cancel_timeout_s,
                                             size_t statement_cache_size);

std::unique_ptr<connector> make_custom_connector(pool_open_cb open, pool_close_cb close,
                                                 pool_reset_cb reset, pool_ping_cb ping,
                                                 pool_destroy_cb destroy, void *user_data);

// unixODBC; throws error(POOL_EINVAL) if the driver manager's own pooling is on and not
// allowed. reset_on_return=discard works with PostgreSQL only; with another DBMS every
// connect fails with POOL_EINVAL, saying so.
std::unique_ptr<connector> make_odbc_connector(const char *connection_string,
                                               bool allow_dm_pooling, pool_reset_mode reset);

// Which connector a connection string selects; throws POOL_ENOTSUP or POOL_EINVAL.
std::unique_ptr<connector> make_connector(const char *conninfo, const options &opts);

}  // namespace connpool

#endif
