// PostgreSQL through libpq.
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <unistd.h>

#include "connector.hh"
#include "error.hh"
#include "fork.hh"
#include "pq_cancel.hh"
#include "pq_result.hh"
#include "pq_statements.hh"
#include "scrub.hh"
#include "wait_for.hh"

namespace connpool {

namespace {

using std::chrono::milliseconds;

class pq_connector;

// Unique to this process and connection: through PgBouncer, clients share server
// connections, and one must never run (or DEALLOCATE) another's statement.
std::string statement_prefix() {
  static thread_local std::mt19937_64 random{std::random_device{}() ^ uint64_t(getpid())};
  return "connpool_" + std::to_string(getpid()) + "_" + std::to_string(random() >> 16) + "_";
}

// One connection: libpq's handle, and what its notice receiver learnt. The pool's handle is a
// session; the application sees the PGconn (native()).
struct session {
  session(PGconn *c, const pq_connector *o, size_t statement_cache_size)
      : conn(c), owner(o), statements(statement_cache_size, statement_prefix()) {}
  PGconn *conn;
  const pq_connector *owner;
  prepared_statements statements;  // POOL_QUERY_PREPARE
  PQnoticeReceiver libpq_receiver = nullptr;  // libpq's default: calls the notice processor
  // The backend whose session an unsolicited error ended (a FATAL such as 57P01, sent just
  // before the server closes the socket), or 0. By process id, so that a PQreset by the
  // application to a new backend clears it.
  int ended_backend = 0;
};

PGconn *conn_of(void *handle) { return static_cast<session *>(handle)->conn; }

// Installed at connect, so that libpq's default processor never prints on the application's
// stderr. A user's own processor replaces it; the receiver then calls theirs.
void silent_processor(void *, const char *) {}

int level_of(const char *severity) {
  if (!severity) return POOL_LOG_INFO;
  for (const char *s : {"ERROR", "FATAL", "PANIC"})
    if (std::strcmp(severity, s) == 0) return POOL_LOG_ERROR;
  if (std::strcmp(severity, "WARNING") == 0) return POOL_LOG_WARN;
  if (std::strcmp(severity, "DEBUG") == 0 || std::strcmp(severity, "LOG") == 0)
    return POOL_LOG_DEBUG;
  return POOL_LOG_INFO;  // NOTICE, INFO, and libpq's own notices
}

class pq_connector final : public connector {
 public:
  pq_connector(const char *conninfo, double cancel_timeout_s, size_t statement_cache_size)
      : conninfo_(conninfo),
        secrets_(secrets_in_connection_string(conninfo)),
        cancel_timeout_(seconds(cancel_timeout_s)),
        statement_cache_size_(statement_cache_size) {
    char *parse_error = nullptr;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &parse_error);
    if (!parsed) {
      std::string why = parse_error ? trimmed(parse_error) : "out of memory";
      PQfreemem(parse_error);
      throw error(POOL_EINVAL, "invalid connection string: " + scrub(why, secrets_));
    }
    // Unset in the string, libpq takes these from the environment (PGHOST and so on).
    const char *timeout = std::getenv("PGCONNECT_TIMEOUT");
    const char *host = std::getenv("PGHOST"), *hostaddr = std::getenv("PGHOSTADDR");
    const char *port = std::getenv("PGPORT");
    for (PQconninfoOption *o = parsed; o->keyword; o++) {
      if (!o->val) continue;
      if (std::strcmp(o->keyword, "password") == 0) secrets_.emplace_back(o->val);
      if (std::strcmp(o->keyword, "connect_timeout") == 0) timeout = o->val;
      if (std::strcmp(o->keyword, "host") == 0) host = o->val;
      if (std::strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
      if (std::strcmp(o->keyword, "port") == 0) port = o->val;
    }
    if (timeout) {
      // libpq's own rule: a connect_timeout below 2 seconds counts as 2; 0 means none.
      int seconds = std::atoi(timeout);
      if (seconds > 0) connect_timeout_ = milliseconds(1000 * std::max(seconds, 2));
    }
    hosts_ = split_hosts(host, hostaddr, port);
    PQconninfoFree(parsed);
    if (const char *env = std::getenv("PGPASSWORD")) secrets_.emplace_back(env);
  }

  // libpq applies connect_timeout to each host of a multi-host string in turn, but only in
  // its blocking connect: PQconnectPoll, which we drive to honour the checkout's deadline,
  // never times out, and cannot be told to move on. So with several hosts and a
  // connect_timeout we try them one by one, each for at most connect_timeout, and a host that
  // never answers (hung, or a network that drops packets) costs that much instead of the
  // whole checkout. Hosts that refuse, or do not match target_session_attrs, fail at once,
  // as in libpq.
  void *open(clock::time_point deadline) override {
    if (hosts_.size() < 2 || connect_timeout_.count() == 0) return open_one(deadline, nullptr);
    std::string why;
    for (const host_entry &h : hosts_) {
      clock::time_point now = clock::now();
      if (now >= deadline && !why.empty()) break;
      try {
        return open_one(deadline, &h);  // bounded by connect_timeout too
      } catch (const error &e) {
        if (e.code() != POOL_ECONNECT) throw;
        std::string text = e.what();
        const std::string prefix = "connect failed: ";
        if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
        why += (why.empty() ? "" : "; ") + h.label + ": " + text;
      }
    }
    throw error(POOL_ECONNECT, "connect failed: " + why);
  }

  // Under the connect gate: freeing a TLS connection releases OpenSSL objects, which can take
  // OpenSSL's global locks, the ones a child's first TLS connect needs.
  void close(void *handle) noexcept override {
    fork_guard::connect_gate gate;
    PQfinish(conn_of(handle));
    delete static_cast<session *>(handle);
  }

  void *native(void *handle) noexcept override { return conn_of(handle); }

  // Called by libpq for every notice and warning, and for an error that arrives while no
  // query runs, which is how a server announces that it is ending the session
  // (pg_terminate_backend, shutdown, idle_session_timeout): the session is marked as ended
  // before the socket even closes.
  static void on_notice(void *arg, const PGresult *res) {
    auto *s = static_cast<session *>(arg);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!severity) severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
    int level = level_of(severity);
    if (level == POOL_LOG_ERROR) s->ended_backend = PQbackendPID(s->conn);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    std::string text = "server " + std::string(severity ? severity : "NOTICE") + ": " +
                       trimmed(primary ? primary : PQresultErrorMessage(res));
    if (sqlstate && std::strcmp(sqlstate, "00000") != 0) text += std::string(" (SQLSTATE ") + sqlstate + ")";
    s->owner->log(level, scrub(text, s->owner->secrets_).c_str());
    if (PQsetNoticeProcessor(s->conn, nullptr, nullptr) != silent_processor && s->libpq_receiver)
      s->libpq_receiver(nullptr, res);  // the application's processor, with its argument
  }

  // libpq knows the transaction status whatever opened it: ran_queries changes nothing.
  // discard: the transaction is rolled back, then DISCARD ALL drops what a borrower left in
  // the session (SET, prepared statements, temporary tables, advisory locks, LISTEN).
  // A connection that comes back idle and just used is kept without a look at its socket:
  // the poll() would only catch a death of the last few milliseconds, which the next
  // checkout's pre-ping catches as well (issue 15: that poll() was a third of an uncontended
  // checkout+checkin). One held longer is looked at: a server that hung up on it meanwhile
  // is seen here, not by the next holder.
  bool reset(void *handle, pool_reset_mode mode, bool, bool just_used,
             clock::duration timeout) noexcept override {
    auto *s = static_cast<session *>(handle);
    PGconn *conn = s->conn;
    if (PQstatus(conn) != CONNECTION_OK || ended(s)) return false;
    PGTransactionStatusType status = PQtransactionStatus(conn);
    if (status == PQTRANS_IDLE && mode != POOL_RESET_DISCARD && just_used) return true;
    liveness seen = look(s);
    if (seen == liveness::dead) return false;
    // One deadline for every round trip below, read from the clock only if one is due.
    clock::time_point deadline{};
    auto by = [&] {
      if (deadline == clock::time_point{}) deadline = clock::now() + timeout;
      return deadline;
    };
    if (status != PQTRANS_IDLE && status != PQTRANS_INTRANS && status != PQTRANS_INERROR)
      return false;  // a query still running, or a status libpq cannot tell
    if (status != PQTRANS_IDLE && mode != POOL_RESET_NONE) {
      if (!exchange(conn, mode == POOL_RESET_COMMIT ? "COMMIT" : "ROLLBACK", PGRES_COMMAND_OK,
                    by()) ||
          PQtransactionStatus(conn) != PQTRANS_IDLE)
        return false;
      seen = liveness::quiet;  // it just answered
    }
    if (mode == POOL_RESET_DISCARD) {
      s->statements.clear();  // whatever the answer: a connection that fails it is closed
      return exchange(conn, "DISCARD ALL", PGRES_COMMAND_OK, by()) &&
             PQtransactionStatus(conn) == PQTRANS_IDLE;
    }
    return seen == liveness::quiet || round_trip(conn, by());
  }

  liveness looks_alive(void *handle) noexcept override {
    return look(static_cast<session *>(handle));
  }

  // An empty query, sent and awaited without blocking past the deadline: a black-holed
  // server must not hold a checkout longer than it allows. A late answer finds the
  // connection dead (the pool closes it).
  // The caller has looked at the connection already (looks_alive): this is the round trip.
  bool ping(void *handle, clock::time_point deadline) noexcept override {
    auto *s = static_cast<session *>(handle);
    return !ended(s) && PQtransactionStatus(s->conn) == PQTRANS_IDLE && round_trip(s->conn, deadline);
  }

  // Read from libpq each time: an application's PQreset gives the connection a new socket.
  int socket(void *handle) noexcept override { return PQsocket(conn_of(handle)); }
  bool cancel(void *handle, clock::time_point deadline) noexcept override {
    return cancel_statement(conn_of(handle), deadline);
  }

  // PQexecParams (or, with POOL_QUERY_PREPARE, PQexecPrepared after a PQprepare the first
  // time), sent and awaited without blocking past the deadline.
  std::unique_ptr<result> query(void *handle, const statement &st,
                                clock::time_point deadline) override {
    auto *s = static_cast<session *>(handle);
    PGconn *conn = s->conn;
    pq_params p(st);
    clock::time_point start{};  // for a timeout's message: read only if there is a deadline
    if (deadline != clock::time_point::max()) start = clock::now();
    auto unnamed = [&] {
      return PQsendQueryParams(conn, st.sql, st.nparams, p.types.data(), p.values.data(),
                               p.lengths.data(), p.formats.data(), 0);
    };
    if (!st.prepare || s->statements.capacity() == 0)
      return make_pq_result(checked(conn, run(conn, unnamed, start, deadline)));
    std::string key(st.sql);
    key.push_back('\0');
    key.append(reinterpret_cast<const char *>(p.types.data()), p.types.size() * sizeof(Oid));
    const std::string *name = s->statements.find(key);
    if (!name) {
      name = &s->statements.add(key);
      pq_result_ptr prepared = run(conn, [&] {
        return PQsendPrepare(conn, name->c_str(), st.sql, st.nparams, p.types.data());
      }, start, deadline);
      if (!succeeded(prepared)) {
        s->statements.forget(key);
        checked(conn, std::move(prepared));  // throws
      }
    }
    pq_result_ptr res = run(conn, [&] {
      return PQsendQueryPrepared(conn, name->c_str(), st.nparams, p.values.data(),
                                 p.lengths.data(), p.formats.data(), 0);
    }, start, deadline);
    // The server does not know it (26000: the application ran DEALLOCATE, or PgBouncer moved
    // the session to another server connection), or it no longer fits (0A000, "cached plan
    // must not change result type": a table it reads was altered): forget it, and outside a
    // transaction run the statement unnamed (Parse, Bind, Execute in one message train: never
    // split by PgBouncer); the next run prepares it afresh. Inside one, the server has failed
    // the transaction already.
    if (!succeeded(res) && (sqlstate_is(res, "26000") || sqlstate_is(res, "0A000"))) {
      s->statements.forget(key);
      if (PQtransactionStatus(conn) == PQTRANS_IDLE) res = run(conn, unnamed, start, deadline);
    }
    drop_evicted(s, deadline);
    return make_pq_result(checked(conn, std::move(res)));
  }

  std::unique_ptr<row_stream> stream(void *handle, const statement &st,
                                     clock::time_point deadline) override;
  std::unique_ptr<pending_statement> send(void *handle, const statement &st,
                                          clock::time_point deadline) override;

  // Safe only because the socket now points at /dev/null: PQfinish's Terminate message (and
  // TLS close_notify) fail with ENOTSOCK instead of ending the parent's session. Measured to
  // free everything and never hang (fork-safety.md §3); a plain PQfinish would kill the
  // parent's session, and close() before it would let the fd number be reused.
  void discard_inherited(void *handle) noexcept override {
    PQfinish(conn_of(handle));
    delete static_cast<session *>(handle);
  }

  enum class outcome { ready, timed_out, lost };

  // Flushes what libpq holds (non-blocking mode) and reads until the results are complete,
  // never waiting past `deadline` (max(): no limit).
  static outcome await_results(PGconn *conn, clock::time_point deadline) {
    for (;;) {
      int unsent = PQflush(conn);
      if (unsent < 0 || !PQconsumeInput(conn)) return outcome::lost;
      if (unsent == 0 && !PQisBusy(conn)) return outcome::ready;
      int ready = wait_for(PQsocket(conn), short(POLLIN | (unsent ? POLLOUT : 0)), deadline);
      if (ready == 0) return outcome::timed_out;
      if (ready < 0) return outcome::lost;
    }
  }

  // A statement still running at its deadline holds its locks on the server: the server is
  // asked to cancel it, and the connection is abandoned (an answer may still come: it stays
  // in non-blocking mode, so closing it never waits on the socket).
  error timed_out(PGconn *conn, clock::time_point start, clock::time_point deadline) const {
    bool cancelled = cancel_statement(conn, clock::now() + cancel_timeout_);
    char msg[224];
    std::snprintf(msg, sizeof msg,
                  "query did not finish within %.2f s (query_timeout); %s; its connection "
                  "is abandoned: check the lease in",
                  std::chrono::duration<double>(deadline - start).count(),
                  cancelled ? "the server was asked to cancel it"
                            : "the cancel request went unanswered");
    return error(POOL_ETIMEDOUT, msg);
  }

  // Results are read without blocking only if they are complete: a connection lost (or a
  // poll() that failed) while they were awaited must not end in a wait without a deadline.
  error lost(PGconn *conn) const {
    std::string why = trimmed(PQerrorMessage(conn));
    return error(POOL_EQUERY,
                 "connection lost while awaiting the result" +
                     (why.empty() ? "" : ": " + scrub(why, secrets_)),
                 "08006");
  }

  error failed_to_send(PGconn *conn) const {
    std::string why = trimmed(PQerrorMessage(conn));
    return error(POOL_EQUERY, "the statement could not be sent" +
                                  (why.empty() ? "" : ": " + scrub(why, secrets_)),
                 PQstatus(conn) == CONNECTION_BAD ? "08006" : "");
  }

  // Reads every result of what was sent, before the deadline; false if they did not come.
  static bool drain(PGconn *conn, clock::time_point deadline) {
    for (;;) {
      if (await_results(conn, deadline) != outcome::ready) return false;
      PGresult *res = PQgetResult(conn);
      if (!res) {
        PQsetnonblocking(conn, 0);
        return true;
      }
      PQclear(res);
    }
  }

  // A statement that failed: its message and SQLSTATE.
  pq_result_ptr checked(PGconn *conn, pq_result_ptr res) const {
    if (succeeded(res)) return res;
    const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string why = trimmed(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
    if (why.empty()) why = trimmed(PQerrorMessage(conn));
    // libpq gives no SQLSTATE for a connection lost on the client's side.
    std::string sqlstate = state ? state : PQstatus(conn) == CONNECTION_BAD ? "08006" : "";
    throw error(POOL_EQUERY, scrub(why, secrets_), sqlstate);
  }

 private:
  static bool succeeded(const pq_result_ptr &res) {
    ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    return status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ||
           status == PGRES_EMPTY_QUERY;
  }

  static bool sqlstate_is(const pq_result_ptr &res, const char *sqlstate) {
    const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    return state && std::strcmp(state, sqlstate) == 0;
  }

  // Sends a statement and awaits its results without blocking past the deadline; as
  // PQexecParams, the last result, unless an earlier one failed.
  template <typename Send>
  pq_result_ptr run(PGconn *conn, Send send, clock::time_point start,
                    clock::time_point deadline) const {
    outcome sent = outcome::lost;
    if (PQsetnonblocking(conn, 1) == 0 && send()) sent = await_results(conn, deadline);
    if (sent == outcome::timed_out) throw timed_out(conn, start, deadline);
    if (sent == outcome::lost && PQisBusy(conn)) throw lost(conn);
    return collect(conn);
  }

 public:
  // The results once complete: as PQexecParams, the last one, unless an earlier one failed.
  static pq_result_ptr collect(PGconn *conn) {
    PQsetnonblocking(conn, 0);
    pq_result_ptr res = own(nullptr);
    while (PGresult *next = PQgetResult(conn)) {
      if (!res || succeeded(res)) res = own(next);
      else PQclear(next);
    }
    return res;
  }

 private:

  // Prepared statements the cache dropped, deallocated once the connection is outside a
  // transaction (where a failure cannot abort the application's work). Failures are
  // ignored: the statement is gone either way, or the connection is, which the next use sees.
  static void drop_evicted(session *s, clock::time_point deadline) {
    std::vector<std::string> &names = s->statements.dropped();
    if (names.empty() || PQtransactionStatus(s->conn) != PQTRANS_IDLE) return;
    for (const std::string &name : names) {
      std::string sql = "DEALLOCATE \"" + name + "\"";
      if (!exchange(s->conn, sql.c_str(), PGRES_COMMAND_OK, deadline) &&
          PQstatus(s->conn) != CONNECTION_OK)
        break;
    }
    names.clear();
  }

  struct host_entry {
    std::string host, hostaddr, port;  // "" = not overridden
    std::string label;                 // for messages: host or hostaddr, and the port
  };

  static std::vector<std::string> split(const char *list) {
    std::vector<std::string> items;
    if (!list) return items;
    std::string s = list;
    size_t from = 0;
    for (;;) {
      size_t comma = s.find(',', from);
      items.push_back(s.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    return items;
  }

  // One entry per host, as libpq pairs them: host and hostaddr lists of the same length, and
  // a port list of that length or a single port for all. Anything libpq would reject is left
  // to libpq (a single entry: one plain attempt).
  static std::vector<host_entry> split_hosts(const char *host, const char *hostaddr,
                                             const char *port) {
    std::vector<std::string> hosts = split(host), addrs = split(hostaddr), ports = split(port);
    size_t n = std::max(hosts.size(), addrs.size());
    if (n < 2 || (!hosts.empty() && hosts.size() != n) || (!addrs.empty() && addrs.size() != n) ||
        (ports.size() > 1 && ports.size() != n))
      return {};
    std::vector<host_entry> entries(n);
    for (size_t i = 0; i < n; i++) {
      host_entry &e = entries[i];
      if (!hosts.empty()) e.host = hosts[i];
      if (!addrs.empty()) e.hostaddr = addrs[i];
      if (ports.size() == n) e.port = ports[i];
      e.label = !e.host.empty() ? e.host : e.hostaddr;
      std::string p = ports.size() == n ? ports[i] : ports.size() == 1 ? ports[0] : "";
      if (!p.empty()) e.label += ":" + p;
    }
    return entries;
  }

  void *open_one(clock::time_point deadline, const host_entry *only) {
    clock::time_point start = clock::now();
    if (connect_timeout_.count() > 0) deadline = std::min(deadline, start + connect_timeout_);
    // The caller's string comes last, so it overrides every default placed before it.
    // gssencmode=disable: with GSSAPI probing on (libpq's default), a child forked while
    // another thread was inside libgssapi_krb5's global lock deadlocks on its first connect.
    // client_encoding=UTF8: pool_query promises UTF-8 text (unless PGCLIENTENCODING asks
    // for another encoding; the string can override it too).
    const char *encoding = std::getenv("PGCLIENTENCODING") ? nullptr : "UTF8";
    // One host of a list: after dbname, so it overrides the string's lists (a NULL value is
    // skipped, like an absent key, so unset parts stay the string's).
    auto part = [only](const std::string host_entry::*field) -> const char * {
      return only && !(only->*field).empty() ? (only->*field).c_str() : nullptr;
    };
    const char *const keys[] = {"fallback_application_name", "gssencmode", "client_encoding",
                                "dbname", "host", "hostaddr", "port", nullptr};
    const char *const values[] = {"connpool", "disable", encoding, conninfo_.c_str(),
                                  part(&host_entry::host), part(&host_entry::hostaddr),
                                  part(&host_entry::port), nullptr};
    PGconn *conn = PQconnectStartParams(keys, values, 1);
    if (!conn) throw std::bad_alloc();
    PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && polling != PGRES_POLLING_OK &&
           polling != PGRES_POLLING_FAILED) {
      int ready =
          wait_for(PQsocket(conn), polling == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
      if (ready == 0) {
        PQfinish(conn);
        char msg[128];
        std::snprintf(msg, sizeof msg, "connect failed: timed out after %.2f s",
                      std::chrono::duration<double>(clock::now() - start).count());
        throw error(POOL_ECONNECT, msg);
      }
      if (ready < 0) break;
      polling = PQconnectPoll(conn);
    }
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string why = scrub(trimmed(PQerrorMessage(conn)), secrets_);
      PQfinish(conn);
      throw error(POOL_ECONNECT, "connect failed: " + why);
    }
    // Notices that arrived during the connect went to libpq's default processor, which
    // prints them: PQconnectStartParams gives no earlier moment to install ours. (A server
    // sends none during a normal connect.)
    session *s = new (std::nothrow) session(conn, this, statement_cache_size_);
    if (!s) {
      PQfinish(conn);
      throw std::bad_alloc();
    }
    s->libpq_receiver = PQsetNoticeReceiver(conn, on_notice, s);
    PQsetNoticeProcessor(conn, silent_processor, nullptr);
    return s;
  }

  static std::string trimmed(const char *text) {
    std::string s = text ? text : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  // Without a round trip. Nothing to read: quiet (the cheap path: one poll()). Otherwise what
  // arrived is read and parsed now: a hang-up, or an error announcing the session's end
  // (on_notice), is dead; anything else (a NOTIFY, a ParameterStatus, a notice, or part of a
  // message) is unsure: libpq cannot say whether it parsed all of it, so only a round trip
  // can vouch for the connection.
  static liveness look(session *s) {
    PGconn *conn = s->conn;
    if (PQstatus(conn) != CONNECTION_OK || ended(s)) return liveness::dead;
    struct pollfd pfd = {PQsocket(conn), POLLIN | POLLRDHUP, 0};
    if (poll(&pfd, 1, 0) <= 0) return liveness::quiet;
    bool hung_up = pfd.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL);
    bool read = false;
    // Read even from a socket that hung up: its last message says why (and reaches the log).
    if (pfd.revents & POLLIN) {
      read = PQconsumeInput(conn);
      if (read) PQisBusy(conn);  // parses it: notices reach on_notice, NOTIFYs PQnotifies()
    }
    if (hung_up || !read || PQstatus(conn) != CONNECTION_OK || ended(s)) return liveness::dead;
    return liveness::unsure;
  }

  static bool ended(const session *s) {
    return s->ended_backend != 0 && s->ended_backend == PQbackendPID(s->conn);
  }

  // An empty query: a round trip that changes nothing, in a transaction too.
  static bool round_trip(PGconn *conn, clock::time_point deadline) {
    return exchange(conn, "", PGRES_EMPTY_QUERY, deadline);
  }


  // Sends a command and reads its answer, never waiting past the deadline: true if it came
  // in time and every result has status `want`. On a timeout the connection is left in
  // non-blocking mode: the pool closes it, and closing must not wait on the socket either.
  static bool exchange(PGconn *conn, const char *sql, ExecStatusType want,
                       clock::time_point deadline) {
    if (PQsetnonblocking(conn, 1) != 0 || !PQsendQuery(conn, sql) ||
        await_results(conn, deadline) != outcome::ready)
      return false;
    PQsetnonblocking(conn, 0);
    bool answered = false, ok = true;
    while (PGresult *res = PQgetResult(conn)) {
      answered = true;
      ok = ok && PQresultStatus(res) == want;
      PQclear(res);
    }
    return answered && ok && PQstatus(conn) == CONNECTION_OK;
  }

  std::string conninfo_;
  std::vector<std::string> secrets_;
  milliseconds connect_timeout_{0};
  std::vector<host_entry> hosts_;  // empty unless the string names several hosts
  clock::duration cancel_timeout_;  // ping_timeout: how long a cancel request may take
  size_t statement_cache_size_;
};

// A statement in single-row mode: each piece gathers the rows libpq has parsed, up to
// max_rows, one PGresult a row, awaiting more without blocking past the deadline. The
// connection stays in non-blocking mode until the last result is read.
class pq_stream final : public row_stream {
 public:
  pq_stream(const pq_connector &owner, PGconn *conn) : owner_(owner), conn_(conn) {}

  std::unique_ptr<result> next(int64_t max_rows, clock::time_point deadline) override {
    clock::time_point start{};
    if (deadline != clock::time_point::max()) start = clock::now();
    std::vector<pq_result_ptr> rows;
    pq_result_ptr shape = own(nullptr), failure = own(nullptr);
    // After a failure, the results up to the end are read too, so the connection is free.
    while (!done_ && (failure || int64_t(rows.size()) < max_rows)) {
      // Rows already read are parsed first: reading more each time would grow libpq's
      // buffer to the whole result, and move what is left in it at every read.
      pq_connector::outcome o = pq_connector::outcome::ready;
      if (PQisBusy(conn_)) o = pq_connector::await_results(conn_, deadline);
      if (o != pq_connector::outcome::ready && (o == pq_connector::outcome::timed_out ||
                                                PQisBusy(conn_))) {
        done_ = broken_ = true;
        if (o == pq_connector::outcome::timed_out)
          throw owner_.timed_out(conn_, start, deadline);
        throw owner_.lost(conn_);
      }
      PGresult *res = PQgetResult(conn_);
      if (!res) {
        done_ = true;
        PQsetnonblocking(conn_, 0);
        break;
      }
      ExecStatusType status = PQresultStatus(res);
      if (status == PGRES_SINGLE_TUPLE) rows.push_back(own(res));
      else if (failure) PQclear(res);
      else if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ||
               status == PGRES_EMPTY_QUERY)
        shape = own(res);
      else failure = own(res);
    }
    if (failure) owner_.checked(conn_, std::move(failure));  // throws
    if (!rows.empty()) {
      given_ = true;
      return make_pq_piece(std::move(rows), own(nullptr));
    }
    if (given_) return nullptr;
    given_ = true;
    if (!shape) throw owner_.lost(conn_);
    return make_pq_result(std::move(shape));
  }

  // Rows left: the server is asked to cancel the statement (else it would send them all),
  // and what is on its way is read and dropped.
  bool close(clock::time_point deadline) noexcept override {
    if (broken_) return false;
    if (done_) return true;
    cancel_statement(conn_, deadline);
    return pq_connector::drain(conn_, deadline) && PQstatus(conn_) == CONNECTION_OK;
  }

 private:
  const pq_connector &owner_;
  PGconn *conn_;
  bool done_ = false;    // the last result was read
  bool given_ = false;   // a piece was returned
  bool broken_ = false;  // timed out, or the connection was lost
};

std::unique_ptr<row_stream> pq_connector::stream(void *handle, const statement &st,
                                                 clock::time_point) {
  PGconn *conn = conn_of(handle);
  pq_params p(st);
  if (PQsetnonblocking(conn, 1) != 0 ||
      !PQsendQueryParams(conn, st.sql, st.nparams, p.types.data(), p.values.data(),
                         p.lengths.data(), p.formats.data(), 0))
    throw failed_to_send(conn);
  if (!PQsetSingleRowMode(conn)) {
    drain(conn, clock::now() + cancel_timeout_);
    throw error(POOL_EQUERY, "libpq refused single-row mode for the stream");
  }
  return std::make_unique<pq_stream>(*this, conn);
}

// An unnamed statement sent in non-blocking mode, moved on by the dispatcher: the steps of
// pq_connector::run() with the waiting taken out.
class pq_pending final : public pending_statement {
 public:
  pq_pending(const pq_connector &owner, PGconn *conn, const statement &st,
             clock::time_point deadline)
      : owner_(owner), conn_(conn), deadline_(deadline) {
    if (deadline != clock::time_point::max()) start_ = clock::now();
    pq_params p(st);
    lost_ = !(PQsetnonblocking(conn, 1) == 0 &&
              PQsendQueryParams(conn, st.sql, st.nparams, p.types.data(), p.values.data(),
                                p.lengths.data(), p.formats.data(), 0));
  }
  int socket() const noexcept override { return PQsocket(conn_); }
  need advance() noexcept override {
    if (lost_) return need::done;
    int unsent = PQflush(conn_);
    if (unsent < 0 || !PQconsumeInput(conn_)) {
      lost_ = true;
      return need::done;
    }
    if (unsent == 0 && !PQisBusy(conn_)) return need::done;
    return unsent ? need::write : need::read;
  }
  std::unique_ptr<result> finish() override {
    if (lost_ && PQisBusy(conn_)) throw owner_.lost(conn_);
    return make_pq_result(owner_.checked(conn_, pq_connector::collect(conn_)));
  }
  error timed_out() override { return owner_.timed_out(conn_, start_, deadline_); }

 private:
  const pq_connector &owner_;
  PGconn *conn_;
  clock::time_point start_{}, deadline_;
  bool lost_ = false;
};

std::unique_ptr<pending_statement> pq_connector::send(void *handle, const statement &st,
                                                      clock::time_point deadline) {
  auto *s = static_cast<session *>(handle);
  // Prepared: several round trips (and the cache's bookkeeping) run on an I/O thread.
  if (st.prepare && s->statements.capacity() != 0) return nullptr;
  return std::make_unique<pq_pending>(*this, s->conn, st, deadline);
}

}  // namespace

std::unique_ptr<connector> make_pq_connector(const char *conninfo, double cancel_timeout_s,
                                             size_t statement_cache_size) {
  return std::make_unique<pq_connector>(conninfo, cancel_timeout_s, statement_cache_size);
}

}  // namespace connpool
