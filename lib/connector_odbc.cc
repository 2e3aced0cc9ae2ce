// Any ODBC data source, through unixODBC.
//
// Thread-safety: unixODBC serialises its own handle lists, and each connection handle is
// used by one thread at a time (the lease's holder, or the pool thread opening, resetting or
// closing it), which is what the driver manager requires. One environment handle per pool.
//
// Fork: unixODBC has process-wide mutexes (mutex_lists, mutex_env, mutex_iconv) and no fork
// handlers, so a child forked while another thread holds one deadlocks on its first ODBC call
// (fork-safety.md §4: 27-42% of such children). The connect gate (fork.hh) keeps forks out of
// the calls that hold them for long: handle allocation and freeing (the handle lists; the
// environment lock), connect (the pool holds the gate across open) and disconnect. At
// unixODBC's default Threading level (0; 1 and 2 alike) a statement call (SQLExecDirect,
// SQLFetch, SQLGetData, SQLEndTran...) takes no process-wide mutex of unixODBC's while the
// driver works, only mutex_lists for a few instructions to validate the handle
// (DriverManager/__handles.c, thread_protect and __validate_stmt, 2.3.11) and the
// connection's or statement's own mutex, which a child never touches. psqlODBC, though, takes
// its process-wide common_cs for moments at the start and end of every statement
// (SC_SetExecuting; a TSan-slowed fork storm caught a child deadlocked there, 1 in 150). So the
// pool's statements hold the statement gate, which a fork awaits at most
// fork_guard::statement_wait_ms: short statements finish first, and a long one (waiting for
// the server, outside common_cs) no longer freezes every fork and every connect behind it.
// At Threading=3 every call holds mutex_env for its whole length: then statements hold the
// connect gate throughout. Calls the application makes on a lease's SQLHDBC are beyond the
// pool's reach.
#include <sql.h>
#include <sqlext.h>
#include <odbcinst.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <strings.h>

#include "connector.hh"
#include "error.hh"
#include "fork.hh"
#include "odbc_result.hh"
#include "scrub.hh"

namespace connpool {

namespace {

// "[SQLSTATE] message" for every diagnostic record of a handle, passwords removed.
std::string diagnostics(SQLSMALLINT type, SQLHANDLE handle, const std::vector<std::string> &secrets) {
  std::string all;
  for (SQLSMALLINT i = 1;; i++) {
    SQLCHAR state[6] = "", text[1024] = "";
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    SQLRETURN rc = SQLGetDiagRec(type, handle, i, state, &native, text, sizeof text, &len);
    if (!SQL_SUCCEEDED(rc)) break;
    if (!all.empty()) all += "; ";
    all += "[";
    all += reinterpret_cast<char *>(state);
    all += "] ";
    all += reinterpret_cast<char *>(text);
  }
  if (all.empty()) all = "no diagnostic record";
  return scrub(all, secrets);
}

// unixODBC's own pooling ([ODBC] Pooling=Yes in odbcinst.ini) keeps "closed" connections in
// the driver manager, where a forked child finds and reuses the parent's sessions.
bool driver_manager_pools() {
  char value[32] = "";
  SQLGetPrivateProfileString("ODBC", "Pooling", "No", value, sizeof value, "ODBCINST.INI");
  return strcasecmp(value, "yes") == 0 || strcasecmp(value, "on") == 0 ||
         strcasecmp(value, "true") == 0 || std::strcmp(value, "1") == 0;
}

// File-based drivers (SQLite) answer a missing directory with a bare "connect failed": name
// the cause when the connection string's Database= lies in a directory that does not exist.
std::string missing_directory_hint(const std::string &s) {
  size_t at = 0;
  while ((at = s.find('=', at)) != std::string::npos) {
    size_t key_start = s.find_last_of(";", at);
    key_start = key_start == std::string::npos ? 0 : key_start + 1;
    std::string key = s.substr(key_start, at - key_start);
    at++;
    if (strcasecmp(key.c_str(), "Database") != 0) continue;
    std::string path = s.substr(at, s.find(';', at) - at);
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return "";
    std::string dir = path.substr(0, slash);
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return " (the directory of Database=" + path + " does not exist)";
    return "";
  }
  return "";
}

// The value of `key` in an ODBC connection string (braces removed), or "".
std::string value_of(const std::string &s, const char *key) {
  size_t at = 0;
  while (at < s.size()) {
    size_t eq = s.find('=', at);
    if (eq == std::string::npos) break;
    std::string k = s.substr(at, eq - at);
    k.erase(0, k.find_first_not_of(" \t"));
    size_t start = eq + 1, end;
    if (start < s.size() && s[start] == '{') {
      end = s.find('}', start);
      if (end == std::string::npos) end = s.size();
      std::string v = s.substr(start + 1, end - start - 1);
      if (strcasecmp(k.c_str(), key) == 0) return v;
      end = s.find(';', end);
    } else {
      end = s.find(';', start);
      if (end == std::string::npos) end = s.size();
      if (strcasecmp(k.c_str(), key) == 0) return s.substr(start, end - start);
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "";
}

// unixODBC's Threading level for this connection string's driver, as __connect_part_one
// reads it: [driver] Threading in odbcinst.ini, else [ODBC] Threading, else 0. True for 3,
// where every call holds the process-wide mutex_env throughout.
bool driver_manager_serialises(const std::string &connection_string) {
  std::string driver = value_of(connection_string, "DRIVER");
  if (driver.empty()) {
    std::string dsn = value_of(connection_string, "DSN");
    char buf[512] = "";
    if (!dsn.empty())
      SQLGetPrivateProfileString(dsn.c_str(), "Driver", "", buf, sizeof buf, "ODBC.INI");
    driver = buf;
  }
  char level[32] = "99";
  if (!driver.empty() && driver.find('/') == std::string::npos)
    SQLGetPrivateProfileString(driver.c_str(), "Threading", "99", level, sizeof level,
                               "ODBCINST.INI");
  if (std::atoi(level) == 99)
    SQLGetPrivateProfileString("ODBC", "Threading", "0", level, sizeof level, "ODBCINST.INI");
  return std::atoi(level) == 3;
}

// What a statement of the pool's holds (see the top of this file): the connect gate
// throughout at Threading=3, else the statement gate, which a fork awaits only briefly.
class statement_scope {
 public:
  explicit statement_scope(bool serialised) noexcept {
    if (serialised) hard_.emplace();
    else soft_.emplace();
  }

 private:
  std::optional<fork_guard::connect_gate> hard_;
  std::optional<fork_guard::statement_gate> soft_;
};

class odbc_connector final : public connector {
 public:
  odbc_connector(const char *connection_string, bool allow_dm_pooling, pool_reset_mode reset)
      : connection_string_(connection_string),
        secrets_(secrets_in_connection_string(std::string("odbc:") + connection_string)),
        discard_(reset == POOL_RESET_DISCARD),
        serialised_(driver_manager_serialises(connection_string_)) {
    if (!allow_dm_pooling && driver_manager_pools())
      throw error(POOL_EINVAL,
                  "unixODBC connection pooling is on ([ODBC] Pooling=Yes in odbcinst.ini): it "
                  "hands a forked child the parent's sessions; turn it off, or set "
                  "odbc_dm_pooling=allow if this process never forks");
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env_)))
      throw error(POOL_ERROR, "ODBC: could not allocate an environment handle");
    SQLRETURN rc = SQLSetEnvAttr(env_, SQL_ATTR_ODBC_VERSION,
                                 reinterpret_cast<SQLPOINTER>(SQL_OV_ODBC3), 0);
    if (!SQL_SUCCEEDED(rc)) {
      std::string why = diagnostics(SQL_HANDLE_ENV, env_, secrets_);
      SQLFreeHandle(SQL_HANDLE_ENV, env_);
      throw error(POOL_ERROR, "ODBC: could not select ODBC 3: " + why);
    }
  }

  ~odbc_connector() override { SQLFreeHandle(SQL_HANDLE_ENV, env_); }

  void *open(clock::time_point deadline) override {
    SQLHDBC dbc = SQL_NULL_HDBC;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, env_, &dbc)))
      throw error(POOL_ECONNECT, "connect failed: ODBC: " +
                                     diagnostics(SQL_HANDLE_ENV, env_, secrets_));
    SQLRETURN rc;
    {
      // One SQLDriverConnect at a time in the process, whatever the driver: psqlODBC's
      // connect calls setlocale(LC_CTYPE, ""), which frees the locale name another thread's
      // connect is reading (an ASan use-after-free in the fork storm), and setlocale is
      // process-wide, so even two different drivers race. unixODBC does not serialise it at
      // its default Threading=0. The cost is paid only when connects overlap (a pool's warm-up
      // or a burst); the turn is awaited no longer than the connect's own deadline.
      fork_guard::connect_turn turn(deadline);
      if (!turn.taken()) {
        SQLFreeHandle(SQL_HANDLE_DBC, dbc);
        throw error(POOL_ECONNECT,
                    "connect failed: timed out waiting for another thread's ODBC connect to "
                    "finish (the pool opens one ODBC connection at a time)");
      }
      // ODBC's login timeout is in whole seconds; round up so it never cuts a connect short.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      SQLULEN seconds = SQLULEN(std::max<int64_t>(1, (left.count() + 999) / 1000));
      SQLSetConnectAttr(dbc, SQL_ATTR_LOGIN_TIMEOUT, reinterpret_cast<SQLPOINTER>(seconds), 0);
      rc = SQLDriverConnect(
          dbc, nullptr, reinterpret_cast<SQLCHAR *>(const_cast<char *>(connection_string_.c_str())),
          SQL_NTS, nullptr, 0, nullptr, SQL_DRIVER_NOPROMPT);
    }
    if (!SQL_SUCCEEDED(rc)) {
      std::string why = diagnostics(SQL_HANDLE_DBC, dbc, secrets_);
      SQLFreeHandle(SQL_HANDLE_DBC, dbc);
      throw error(POOL_ECONNECT,
                  "connect failed: " + why + scrub(missing_directory_hint(connection_string_), secrets_));
    }
    remember_dbms(dbc);
    if (discard_ && !remember_session(dbc)) {
      bool pg = dbms_.load(std::memory_order_relaxed) == dbms::postgresql;
      std::string why = pg ? diagnostics(SQL_HANDLE_DBC, dbc, secrets_) : "";
      close(dbc);
      if (pg)
        throw error(POOL_ECONNECT, "connect failed: could not read the session settings "
                                   "that reset_on_return=discard restores: " + why);
      throw error(POOL_EINVAL,
                  "reset_on_return=discard: this ODBC data source is not PostgreSQL, and only "
                  "PostgreSQL has DISCARD ALL; use rollback, commit or none");
    }
    // The pool's promise to the next user: autocommit on. reset() restores it.
    rc = SQLSetConnectAttr(dbc, SQL_ATTR_AUTOCOMMIT,
                           reinterpret_cast<SQLPOINTER>(SQL_AUTOCOMMIT_ON), 0);
    if (!SQL_SUCCEEDED(rc)) {
      std::string why = diagnostics(SQL_HANDLE_DBC, dbc, secrets_);
      close(dbc);
      throw error(POOL_ECONNECT, "connect failed: could not turn autocommit on: " + why);
    }
    return dbc;
  }

  void close(void *handle) noexcept override {
    fork_guard::connect_gate gate;
    SQLDisconnect(handle);
    SQLFreeHandle(SQL_HANDLE_DBC, handle);
  }

  // The timeout bounds the textual ROLLBACK/COMMIT (the driver's query timeout); ODBC has
  // no bound for SQLEndTran.
  // With autocommit on, a BEGIN sent as text (through pool_query or the lease's own SQLHDBC)
  // opens a transaction that the autocommit attribute does not show. psqlODBC follows the
  // server's transaction status after every statement (PQtransactionStatus) and SQLEndTran
  // ends what is open, sending nothing when nothing is: so it is called at every checkin.
  // SQLite's driver knows only the transactions it began itself: ROLLBACK or COMMIT as text,
  // always (no I/O beyond the file; outside a transaction it merely fails). Another driver
  // gets SQLEndTran, and the text only if pool_query ran statements (a round trip per
  // checkin otherwise).
  // Lock order: statement handles are allocated and freed (connect gate) outside any
  // statement scope (statement gate), never inside one.
  bool reset(void *handle, pool_reset_mode mode, bool ran_queries, bool,
             clock::duration timeout) noexcept override {
    bool as_text = false;
    {
      statement_scope scope(serialised_);
      if (dead(handle)) return false;
      SQLUINTEGER autocommit = SQL_AUTOCOMMIT_ON;
      if (!SQL_SUCCEEDED(SQLGetConnectAttr(handle, SQL_ATTR_AUTOCOMMIT, &autocommit, 0, nullptr)))
        return false;
      if (mode == POOL_RESET_NONE) return true;
      SQLSMALLINT how = mode == POOL_RESET_COMMIT ? SQL_COMMIT : SQL_ROLLBACK;
      if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, handle, how))) return false;
      if (autocommit == SQL_AUTOCOMMIT_ON) {
        dbms kind = dbms_.load(std::memory_order_relaxed);
        as_text = kind == dbms::sqlite || (kind == dbms::other && ran_queries);
      } else if (!SQL_SUCCEEDED(SQLSetConnectAttr(handle, SQL_ATTR_AUTOCOMMIT,
                                                  reinterpret_cast<SQLPOINTER>(SQL_AUTOCOMMIT_ON),
                                                  0))) {
        return false;
      }
    }
    if (as_text)
      run_ignoring_errors(handle, mode == POOL_RESET_COMMIT ? "COMMIT" : "ROLLBACK",
                          clock::now() + timeout);
    return alive(handle) && (mode != POOL_RESET_DISCARD || discard_all(handle, timeout));
  }

  // discard, PostgreSQL (open() refuses any other DBMS): the transaction is rolled back
  // already; DISCARD ALL drops what the borrower left (SET, temporary tables, prepared
  // statements, advisory locks, LISTEN), and also what psqlODBC itself SET at connect, which
  // its conversions rely on (client_encoding, DateStyle): those are set again as they were
  // after the connect. Settings of the connection string's ConnSettings are gone too (use
  // Pqopt={options=-c...}, which are session defaults). One deadline for both statements.
  bool discard_all(SQLHDBC dbc, clock::duration timeout) noexcept {
    clock::time_point deadline = clock::now() + timeout;
    return run_checked(dbc, "DISCARD ALL", deadline) &&
           run_checked(dbc, session_sql_.c_str(), deadline) && alive(dbc);
  }

  // At each connect with discard on: what DISCARD ALL would undo of psqlODBC's own SETs, as
  // one statement that sets it again (the same for every connection of this connector: same
  // driver, same connection string). False if this is not PostgreSQL, or the query failed.
  bool remember_session(SQLHDBC dbc) {
    if (dbms_.load(std::memory_order_relaxed) != dbms::postgresql) return false;
    SQLHSTMT stmt = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(alloc_stmt(dbc, &stmt))) return false;
    std::unique_ptr<void, void (*)(void *)> guard(stmt, free_stmt);
    const char *sql = "SELECT current_setting('client_encoding'), current_setting('DateStyle')";
    if (!SQL_SUCCEEDED(SQLExecDirect(stmt, reinterpret_cast<SQLCHAR *>(const_cast<char *>(sql)),
                                     SQL_NTS)) ||
        !SQL_SUCCEEDED(SQLFetch(stmt)))
      return false;
    std::string set;
    const char *names[] = {"client_encoding", "DateStyle"};
    for (SQLUSMALLINT c = 1; c <= 2; c++) {
      char value[128] = "";
      SQLLEN len = 0;
      if (!SQL_SUCCEEDED(SQLGetData(stmt, c, SQL_C_CHAR, value, sizeof value, &len)) ||
          len == SQL_NULL_DATA)
        return false;
      std::string quoted;
      for (const char *p = value; *p; p++) quoted += *p == '\'' ? "''" : std::string(1, *p);
      set += std::string(set.empty() ? "" : "; ") + "SET " + names[c - 1] + " TO '" + quoted + "'";
    }
    std::lock_guard<std::mutex> lock(session_mu_);
    if (session_sql_.empty()) session_sql_ = set;
    return true;
  }

  // Never quiet: SQL_ATTR_CONNECTION_DEAD reads a flag that psqlODBC sets only when a
  // statement failed on a lost connection (no I/O), so a terminated backend's idle connection
  // still reads alive. Unsure makes pre-ping's checkout ping every time, whatever
  // pre_ping_interval says (SELECT 1: one round trip; on SQLite, no I/O at all).
  liveness looks_alive(void *handle) noexcept override {
    statement_scope scope(serialised_);
    return dead(handle) ? liveness::dead : liveness::unsure;
  }

  // SELECT 1 (valid in PostgreSQL and SQLite) with a query timeout: ODBC has no portable
  // empty statement, and psqlODBC learns of a dead server only by talking to it.
  bool ping(void *handle, clock::time_point deadline) noexcept override {
    if (!alive(handle)) return false;
    SQLHSTMT stmt = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(alloc_stmt(handle, &stmt))) return false;
    bool ok;
    {
      statement_scope scope(serialised_);
      limit_to(stmt, deadline);
      ok = SQL_SUCCEEDED(SQLExecDirect(
               stmt, reinterpret_cast<SQLCHAR *>(const_cast<char *>("SELECT 1")), SQL_NTS)) &&
           !dead(handle);
    }
    free_stmt(stmt);
    return ok;
  }

  std::unique_ptr<result> query(void *handle, const statement &st,
                                clock::time_point deadline) override {
    statement_handle stmt = execute(handle, st, deadline);
    statement_scope scope(serialised_);  // ends before stmt is freed
    bool ended = false;
    return fetch(handle, stmt.get(), describe_columns(stmt.get(), sqlite()), INT64_MAX, &ended);
  }

  std::unique_ptr<row_stream> stream(void *handle, const statement &st,
                                     clock::time_point deadline) override;

  // ODBC exposes no socket: an inherited connection cannot be neutralised, only abandoned.
  int socket(void *) noexcept override { return -1; }

  // No SQL* call at all on an inherited handle: SQLDisconnect kills the parent's psqlODBC
  // session, an SQLite rollback deletes the parent's journal (fork-safety.md §4, §5), and
  // the driver manager's own mutexes may be held by a thread that does not exist here.
  void discard_inherited(void *) noexcept override {}

 private:
  friend class odbc_stream;
  using statement_handle = std::unique_ptr<void, void (*)(void *)>;  // freed under the gate

  bool sqlite() const noexcept { return dbms_.load(std::memory_order_relaxed) == dbms::sqlite; }

  // A statement allocated, its parameters bound and run. A bool parameter is sent as ODBC's
  // bit ("1" or "0"); bytea as binary; text with its length (so NULs need no terminator).
  statement_handle execute(SQLHDBC dbc, const statement &st, clock::time_point deadline) {
    SQLHSTMT raw = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(alloc_stmt(dbc, &raw))) {
      statement_scope scope(serialised_);
      throw failure(SQL_HANDLE_DBC, dbc);
    }
    statement_handle stmt(raw, free_stmt);
    statement_scope scope(serialised_);  // ends before stmt can be freed
    if (deadline != clock::time_point::max()) limit_to(raw, deadline);
    size_t n = size_t(st.nparams);
    std::vector<SQLLEN> lengths(n);
    std::vector<char> bits(n);
    for (size_t i = 0; i < n; i++) {
      const pool_param_t &p = st.params[i];
      check_param(i, p);
      odbc_binding b = binding_of(p.type);
      const char *value = static_cast<const char *>(p.value);
      size_t len = !value ? 0 : p.length < 0 ? std::strlen(value) : size_t(p.length);
      if (value && p.type == POOL_TYPE_BOOL) {
        bits[i] = std::strchr("tTyY1", len > 0 ? value[0] : 'f') ? '1' : '0';
        value = &bits[i];
        len = 1;
      }
      lengths[i] = value ? SQLLEN(len) : SQL_NULL_DATA;
      SQLSMALLINT digits = b.sql_type == SQL_TYPE_TIMESTAMP ? 6 : 0;  // keep microseconds
      SQLRETURN rc = SQLBindParameter(raw, SQLUSMALLINT(i + 1), SQL_PARAM_INPUT, b.c_type,
                                      b.sql_type, std::max<SQLULEN>(1, len), digits,
                                      const_cast<char *>(value), SQLLEN(len), &lengths[i]);
      if (!SQL_SUCCEEDED(rc)) throw failure(SQL_HANDLE_STMT, raw);
    }
    SQLRETURN rc = SQLExecDirect(raw, reinterpret_cast<SQLCHAR *>(const_cast<char *>(st.sql)),
                                 SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) {
      error e = failure(SQL_HANDLE_STMT, raw, dbc);
      // Our query timeout expired: HYT00, or psqlODBC's statement_timeout cancel (57014).
      bool ours = deadline != clock::time_point::max() &&
                  (e.sqlstate() == "HYT00" || e.sqlstate() == "57014");
      if (ours) throw error(POOL_ETIMEDOUT, e.what(), e.sqlstate());
      throw e;
    }
    return stmt;
  }

  // Up to max_rows rows of an executed statement (the caller holds its statement scope);
  // *ended once SQLFetch has none left. A statement without columns gives its row count.
  std::unique_ptr<odbc_result> fetch(SQLHDBC dbc, SQLHSTMT stmt,
                                     std::shared_ptr<const odbc_columns> cols,
                                     int64_t max_rows, bool *ended) const {
    size_t columns = cols->names.size();
    if (columns == 0) {
      SQLLEN affected = -1;
      if (!SQL_SUCCEEDED(SQLRowCount(stmt, &affected))) affected = -1;
      *ended = true;
      return std::make_unique<odbc_result>(std::move(cols), affected);
    }
    auto r = std::make_unique<odbc_result>(cols, -1);
    *ended = false;
    for (int64_t row = 0; row < max_rows; row++) {
      SQLRETURN rc = SQLFetch(stmt);
      if (rc == SQL_NO_DATA) {
        *ended = true;
        break;
      }
      if (!SQL_SUCCEEDED(rc)) throw failure(SQL_HANDLE_STMT, stmt, dbc);
      for (SQLUSMALLINT c = 1; c <= columns; c++) {
        bool binary = cols->types[c - 1] == POOL_TYPE_BYTEA;
        bool null = false;
        for (;;) {  // in pieces: a value may be longer than the buffer
          char piece[4096];
          size_t room = binary ? sizeof piece : sizeof piece - 1;  // text ends with a NUL
          SQLLEN len = 0;
          rc = SQLGetData(stmt, c, binary ? SQL_C_BINARY : SQL_C_CHAR, piece, sizeof piece,
                          &len);
          if (rc == SQL_NO_DATA) break;
          if (!SQL_SUCCEEDED(rc)) throw failure(SQL_HANDLE_STMT, stmt, dbc);
          if (len == SQL_NULL_DATA) {
            null = true;
            break;
          }
          bool more = rc == SQL_SUCCESS_WITH_INFO && (len == SQL_NO_TOTAL || len > SQLLEN(room));
          r->append(piece, more ? room : size_t(len));
          if (!more) break;
        }
        r->end_value(null);
      }
    }
    return r;
  }

  // ODBC's only bound on a statement: the driver's query timeout, in whole seconds (at least
  // one). Drivers enforce it as they can (psqlODBC and SQLite ODBC: on the server's or the
  // engine's side), so it cannot bound a connection that stopped answering.
  static void limit_to(SQLHSTMT stmt, clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    SQLULEN seconds = SQLULEN(std::max<int64_t>(1, (left.count() + 999) / 1000));
    SQLSetStmtAttr(stmt, SQL_ATTR_QUERY_TIMEOUT, reinterpret_cast<SQLPOINTER>(seconds), 0);
  }

  // Statement handles are linked into unixODBC's process-wide lists (mutex_lists) and, for
  // the driver's part, allocated under the environment lock: under the gate.
  static SQLRETURN alloc_stmt(SQLHDBC dbc, SQLHSTMT *stmt) noexcept {
    fork_guard::connect_gate gate;
    return SQLAllocHandle(SQL_HANDLE_STMT, dbc, stmt);
  }
  static void free_stmt(void *stmt) noexcept {
    fork_guard::connect_gate gate;
    SQLFreeHandle(SQL_HANDLE_STMT, stmt);
  }

  bool run_checked(SQLHDBC dbc, const char *sql, clock::time_point deadline) noexcept {
    SQLHSTMT stmt = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(alloc_stmt(dbc, &stmt))) return false;
    SQLRETURN rc;
    {
      statement_scope scope(serialised_);
      limit_to(stmt, deadline);
      rc = SQLExecDirect(stmt, reinterpret_cast<SQLCHAR *>(const_cast<char *>(sql)), SQL_NTS);
    }
    free_stmt(stmt);
    return SQL_SUCCEEDED(rc) || rc == SQL_NO_DATA;
  }

  void run_ignoring_errors(SQLHDBC dbc, const char *sql, clock::time_point deadline) noexcept {
    run_checked(dbc, sql, deadline);
  }

  bool alive(SQLHDBC dbc) const noexcept {
    statement_scope scope(serialised_);
    return !dead(dbc);
  }

  // A failed statement: the first diagnostic record's SQLSTATE (class 08 also when the
  // driver flags the connection dead), and every record's text.
  error failure(SQLSMALLINT type, SQLHANDLE handle, SQLHDBC dbc = SQL_NULL_HDBC) const {
    SQLCHAR state[6] = "";
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    SQLCHAR text[8];
    SQLGetDiagRec(type, handle, 1, state, &native, text, sizeof text, &len);
    std::string sqlstate = reinterpret_cast<char *>(state);
    if (dbc != SQL_NULL_HDBC && dead(dbc) && sqlstate.compare(0, 2, "08") != 0)
      sqlstate = "08006";
    return error(POOL_EQUERY, diagnostics(type, handle, secrets_), sqlstate);
  }

  // What the driver says it talks to (SQL_DBMS_NAME), from the first connect: every
  // connection of this connector goes through the same connection string, so the same driver.
  enum class dbms { other, postgresql, sqlite };
  void remember_dbms(SQLHDBC dbc) noexcept {
    SQLCHAR name[64] = "";
    SQLSMALLINT len = 0;
    if (!SQL_SUCCEEDED(SQLGetInfo(dbc, SQL_DBMS_NAME, name, sizeof name, &len))) return;
    const char *n = reinterpret_cast<const char *>(name);
    dbms_.store(strcasecmp(n, "PostgreSQL") == 0 ? dbms::postgresql
                : strncasecmp(n, "SQLite", 6) == 0 ? dbms::sqlite
                                                  : dbms::other,
                std::memory_order_relaxed);
  }

  static bool dead(SQLHDBC dbc) {
    SQLUINTEGER dead = SQL_CD_FALSE;
    SQLRETURN rc = SQLGetConnectAttr(dbc, SQL_ATTR_CONNECTION_DEAD, &dead, 0, nullptr);
    return SQL_SUCCEEDED(rc) && dead == SQL_CD_TRUE;
  }

  std::string connection_string_;
  std::vector<std::string> secrets_;
  SQLHENV env_ = SQL_NULL_HENV;
  std::atomic<dbms> dbms_{dbms::other};
  const bool discard_;
  const bool serialised_;  // unixODBC Threading=3: every call holds its environment lock
  std::mutex session_mu_;
  std::string session_sql_;  // session_mu_ while written; written once, before its first use
};

// A statement whose rows are fetched a piece at a time. Never closed (a fork child's: the
// statement belongs to the parent's session), its handle is left alone.
class odbc_stream final : public row_stream {
 public:
  odbc_stream(odbc_connector &owner, SQLHDBC dbc, odbc_connector::statement_handle stmt)
      : owner_(owner), dbc_(dbc), stmt_(std::move(stmt)) {
    statement_scope scope(owner_.serialised_);
    cols_ = describe_columns(stmt_.get(), owner_.sqlite());
  }
  ~odbc_stream() override { stmt_.release(); }  // NOLINT: deliberately leaked (see above)

  std::unique_ptr<result> next(int64_t max_rows, clock::time_point) override {
    if (ended_) return nullptr;  // only after a piece: the first fetch sets it
    statement_scope scope(owner_.serialised_);
    std::unique_ptr<odbc_result> piece =
        owner_.fetch(dbc_, stmt_.get(), cols_, max_rows, &ended_);
    if (piece->rows() == 0 && given_) return nullptr;
    given_ = true;
    return piece;
  }

  bool close(clock::time_point) noexcept override {
    {
      statement_scope scope(owner_.serialised_);
      SQLCloseCursor(stmt_.get());
    }
    stmt_.reset();
    return owner_.alive(dbc_);
  }

 private:
  odbc_connector &owner_;
  SQLHDBC dbc_;
  odbc_connector::statement_handle stmt_;
  std::shared_ptr<const odbc_columns> cols_;
  bool ended_ = false, given_ = false;
};

std::unique_ptr<row_stream> odbc_connector::stream(void *handle, const statement &st,
                                                   clock::time_point deadline) {
  return std::make_unique<odbc_stream>(*this, handle, execute(handle, st, deadline));
}

}  // namespace

std::unique_ptr<connector> make_odbc_connector(const char *connection_string,
                                               bool allow_dm_pooling, pool_reset_mode reset) {
  return std::make_unique<odbc_connector>(connection_string, allow_dm_pooling, reset);
}

}  // namespace connpool
