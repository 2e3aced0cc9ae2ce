// What a statement gives back through the C API (pool_result_t), and what a statement is:
// the connectors' side of pool_query, pool_query_params and the streams. A result keeps
// the driver's own form where it can (libpq's PGresult) and is read in place.
#ifndef CONNPOOL_RESULT_HH
#define CONNPOOL_RESULT_HH

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "connpool.h"

namespace connpool {

// A statement to run: its SQL and its parameters (pool_param_t, lengths already resolved:
// never -1 for a non-NULL value).
struct statement {
  const char *sql = nullptr;
  const pool_param_t *params = nullptr;
  int nparams = 0;
  bool prepare = false;  // POOL_QUERY_PREPARE
};

// Read by any thread at once (pool_result_* are const): implementations keep nothing mutable
// but what lazy_values guards.
class result {
 public:
  virtual ~result() = default;
  virtual int64_t rows() const noexcept = 0;
  virtual int columns() const noexcept = 0;
  virtual int64_t affected() const noexcept = 0;  // rows written, or -1
  virtual const char *name(int column) const noexcept = 0;
  virtual pool_type type(int column) const noexcept = 0;
  virtual int64_t backend_type(int column) const noexcept = 0;
  // In range (the caller checks). The value's bytes (raw for bytea, the text form for any
  // other type), NUL-terminated, nullptr for SQL NULL; *len their number. May throw
  // bad_alloc (a bytea decoded on first access).
  virtual const char *bytes(int64_t row, int column, size_t *len) const = 0;
  // The text form: bytea as "\x..." hex. nullptr for SQL NULL.
  virtual const char *text(int64_t row, int column) const = 0;
  virtual size_t memory() const noexcept = 0;
};

// Values a result derives from its own on first access (a bytea's raw bytes from libpq's hex
// text, or the hex text from ODBC's raw bytes), each made once and kept: the pointers handed
// out stay valid as long as the result, whichever thread asked first.
class lazy_values {
 public:
  template <typename Make>
  const std::string &get(size_t key, Make make) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(key);
    if (it == values_.end()) it = values_.emplace(key, make()).first;
    return it->second;
  }
  size_t memory() const noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto &v : values_) n += v.second.capacity() + 48;
    return n;
  }

 private:
  mutable std::mutex mu_;
  mutable std::unordered_map<size_t, std::string> values_;  // node-based: stable addresses
};

// bytea's text form: "\x" and two lowercase hex digits a byte.
std::string hex_of(const char *bytes, size_t len);

// A parameter's type and length, checked (POOL_EINVAL): i counts from 0.
void check_param(size_t i, const pool_param_t &p);

// The C API's reads of any result (result.cc). Each throws POOL_ERANGE for a cell out of
// range and POOL_ETYPE for a NULL or a value of another type.
inline bool holds_cell(const result &r, int64_t row, int column) noexcept {
  return row >= 0 && row < r.rows() && column >= 0 && column < r.columns();
}
void check_cell(const result &r, int64_t row, int column);  // POOL_ERANGE unless it holds it
int64_t int64_at(const result &r, int64_t row, int column);
double double_at(const result &r, int64_t row, int column);
bool bool_at(const result &r, int64_t row, int column);
// pool_result_read: returns the bytes rows [first_row, first_row + nrows) need (first_row in
// range, nrows >= 0 and clipped here); writes them and their lengths only if they fit
// (*fits).
size_t read_rows(const result &r, int64_t first_row, int64_t nrows, char *buf, size_t buf_len,
                 int64_t *lengths, bool *fits);

// A statement's result read in pieces (pool_stream_*). Destroyed without close() (a fork
// child, or a failure), it frees its memory and sends nothing.
class row_stream {
 public:
  virtual ~row_stream() = default;
  // The next piece of at most max_rows rows; the first call always returns one (maybe with
  // no rows), later calls nullptr once every row was read. Errors as connector::query.
  virtual std::unique_ptr<result> next(int64_t max_rows,
                                       std::chrono::steady_clock::time_point deadline) = 0;
  // Ends the statement, discarding rows not read. False: the connection is no longer usable.
  virtual bool close(std::chrono::steady_clock::time_point deadline) noexcept = 0;
};

}  // namespace connpool

#endif
