// The C surface: every extern "C" function, each noexcept and run through guard(), so no
// exception ever crosses into the caller.
#include "connpool.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <memory>
#include <vector>

#include "async_requests.hh"
#include "connector.hh"
#include "error.hh"
#include "fork.hh"
#include "metrics.hh"
#include "options.hh"
#include "pool.hh"
#include "result.hh"
#include "scope.hh"

using connpool::guard;

namespace {

// A handle is looked up in the pool table, never dereferenced: a lease, a released pool or
// any other value is refused whatever its bits.
connpool::pool *live_pool(pool_t *handle) {
  if (!handle) throw connpool::error(POOL_EINVAL, "pool is NULL");
  connpool::pool *p = connpool::pool::of_handle(handle);
  if (!p || !p->valid())
    throw connpool::error(POOL_EINVAL, "not a pool (a lease, or a pool already released)");
  return p;
}

int create(pool_t **out, std::unique_ptr<connpool::connector> connector,
           const connpool::options &opts) {
  *out = (new connpool::pool(std::move(connector), opts))->handle();
  return POOL_OK;
}

connpool::key_values params_pairs(const char *const *keys, const char *const *values) {
  connpool::key_values pairs;
  if (!keys) return pairs;
  if (!values) throw connpool::error(POOL_EINVAL, "option keys given without values");
  for (size_t i = 0; keys[i]; i++) {
    if (!values[i])
      throw connpool::error(POOL_EINVAL, std::string("option \"") + keys[i] + "\" has a NULL value");
    pairs.emplace_back(keys[i], values[i]);
  }
  return pairs;
}

int create_from_pairs(pool_t **out, const char *conninfo, const connpool::key_values &pairs) {
  if (!conninfo) throw connpool::error(POOL_EINVAL, "conninfo is NULL");
  connpool::options opts = connpool::parse_options(pairs);
  return create(out, connpool::make_connector(conninfo, opts), opts);
}

}  // namespace

extern "C" {

int pool_create(pool_t **out, const char *conninfo, const char *options) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    return create_from_pairs(out, conninfo, connpool::split_key_values(options));
  });
}

int pool_create_params(pool_t **out, const char *conninfo, const char *const *keys,
                       const char *const *values) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] { return create_from_pairs(out, conninfo, params_pairs(keys, values)); });
}

int pool_create_custom(pool_t **out, const char *options, pool_open_cb open,
                       pool_close_cb close, pool_reset_cb reset, pool_ping_cb ping,
                       pool_destroy_cb destroy, void *user_data) {
  connpool::clear_error();
  if (out) *out = nullptr;
  // user_data is ours from this call on: once a connector holds it, the connector's
  // destructor destroys it; until then, a failure destroys it here.
  bool connector_owns = false;
  int rc = guard([&] {
    if (!out) throw connpool::error(POOL_EINVAL, "out is NULL");
    if (!open || !close)
      throw connpool::error(POOL_EINVAL, "a custom connector needs open and close callbacks");
    connpool::options opts = connpool::parse_options(connpool::split_key_values(options));
    auto connector =
        connpool::make_custom_connector(open, close, reset, ping, destroy, user_data);
    connector_owns = true;
    return create(out, std::move(connector), opts);
  });
  if (rc != POOL_OK && !connector_owns && destroy) destroy(user_data);
  return rc;
}

int pool_dispose(pool_t *pool) {
  connpool::clear_error();
  if (!pool) return POOL_OK;
  return guard([&] { return live_pool(pool)->dispose(); });
}

int pool_checkout(pool_lease_t **out, pool_t *pool, int64_t timeout_ms) {
  return pool_checkout_tagged(out, pool, timeout_ms, nullptr);
}

int pool_checkout_tagged(pool_lease_t **out, pool_t *pool, int64_t timeout_ms,
                         const char *tag) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    *out = live_pool(pool)->checkout(timeout_ms, tag);
    return POOL_OK;
  });
}

int pool_checkout_scoped(pool_lease_t **out, pool_t *pool, int64_t timeout_ms,
                         const char *tag) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    *out = connpool::scoped_checkout(live_pool(pool), timeout_ms, tag);
    return POOL_OK;
  });
}

int pool_scope_release(pool_t *pool) {
  connpool::clear_error();
  return guard([&] {
    connpool::scope_release(live_pool(pool));
    return POOL_OK;
  });
}

int pool_report_error(pool_lease_t *lease, const char *sqlstate) {
  connpool::clear_error();
  return guard([&] {
    connpool::pool::report_error(lease, sqlstate);
    return POOL_OK;
  });
}

}  // extern "C"

// What pool_query() hands out: the connector's result, owned by the caller.
struct pool_result_s {
  std::unique_ptr<connpool::result> r;
};

// A stream and the lease it runs on.
struct pool_stream_s {
  pool_lease_t *lease;
  std::unique_ptr<connpool::row_stream> rows;
};

namespace {

// A statement from the C arguments: checked, with pool_query()'s text parameters as
// NUL-terminated pool_param_t.
struct statement_args {
  statement_args(const char *sql, int nparams, const pool_param_t *params, int flags) {
    check(sql, nparams, params);
    if (flags & ~POOL_QUERY_PREPARE)
      throw connpool::error(POOL_EINVAL, "unknown flags (known: POOL_QUERY_PREPARE)");
    st = {sql, params, nparams, (flags & POOL_QUERY_PREPARE) != 0};
  }
  statement_args(const char *sql, int nparams, const char *const *texts) {
    check(sql, nparams, texts);
    params.resize(size_t(nparams));
    for (int i = 0; i < nparams; i++) params[size_t(i)] = {texts[i], -1, POOL_TYPE_UNKNOWN};
    st = {sql, params.data(), nparams, false};
  }
  connpool::statement st;
  std::vector<pool_param_t> params;

 private:
  static void check(const char *sql, int nparams, const void *params) {
    if (!sql) throw connpool::error(POOL_EINVAL, "sql is NULL");
    if (nparams < 0 || (nparams > 0 && !params))
      throw connpool::error(POOL_EINVAL, "nparams is negative, or params is NULL");
  }
};

int hand_out(pool_result_t **out, std::unique_ptr<connpool::result> r) {
  auto result = std::make_unique<pool_result_s>();
  result->r = std::move(r);
  *out = result.release();
  return POOL_OK;
}

bool in_range(const pool_result_t *result, int64_t row, int column) {
  return result && connpool::holds_cell(*result->r, row, column);
}

// A typed getter's frame: arguments checked, the value read, errors as codes.
template <typename T, typename Read>
int typed_get(const pool_result_t *result, int64_t row, int column, T *out, Read read) {
  connpool::clear_error();
  return guard([&] {
    if (!result || !out) throw connpool::error(POOL_EINVAL, "result or out is NULL");
    *out = T(read(*result->r, row, column));
    return int(POOL_OK);
  });
}

}  // namespace

extern "C" {

int pool_query(pool_result_t **out, pool_lease_t *lease, const char *sql, int nparams,
               const char *const *params) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    statement_args args(sql, nparams, params);
    return hand_out(out, connpool::pool::query(lease, args.st));
  });
}

int pool_query_params(pool_result_t **out, pool_lease_t *lease, const char *sql, int nparams,
                      const pool_param_t *params, int flags) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    statement_args args(sql, nparams, params, flags);
    return hand_out(out, connpool::pool::query(lease, args.st));
  });
}

int64_t pool_result_rows(const pool_result_t *result) { return result ? result->r->rows() : 0; }
int pool_result_columns(const pool_result_t *result) {
  return result ? result->r->columns() : 0;
}
int64_t pool_result_affected(const pool_result_t *result) {
  return result ? result->r->affected() : -1;
}

const char *pool_result_column_name(const pool_result_t *result, int column) {
  if (!result || column < 0 || column >= result->r->columns()) return nullptr;
  return result->r->name(column);
}

int pool_result_column_type(const pool_result_t *result, int column, int64_t *backend_type) {
  if (!result || column < 0 || column >= result->r->columns()) return -1;
  if (backend_type) *backend_type = result->r->backend_type(column);
  return result->r->type(column);
}

const char *pool_result_value(const pool_result_t *result, int64_t row, int column) {
  if (!in_range(result, row, column)) return nullptr;
  return result->r->text(row, column);
}

int pool_result_is_null(const pool_result_t *result, int64_t row, int column) {
  if (!in_range(result, row, column)) return -1;
  return result->r->text(row, column) ? 0 : 1;
}

const void *pool_result_bytes(const pool_result_t *result, int64_t row, int column,
                              size_t *len) {
  if (len) *len = 0;
  if (!in_range(result, row, column)) return nullptr;
  const void *value = nullptr;
  size_t n = 0;
  // Only a bytea decoded on first access can fail (out of memory): NULL, message set.
  guard([&] {
    value = result->r->bytes(row, column, &n);
    return int(POOL_OK);
  });
  if (len && value) *len = n;
  return value;
}

int64_t pool_result_length(const pool_result_t *result, int64_t row, int column) {
  size_t n = 0;
  return pool_result_bytes(result, row, column, &n) ? int64_t(n) : -1;
}

int pool_result_int64(const pool_result_t *result, int64_t row, int column, int64_t *out) {
  return typed_get(result, row, column, out, connpool::int64_at);
}

int pool_result_double(const pool_result_t *result, int64_t row, int column, double *out) {
  return typed_get(result, row, column, out, connpool::double_at);
}

int pool_result_bool(const pool_result_t *result, int64_t row, int column, int *out) {
  return typed_get(result, row, column, out, connpool::bool_at);
}

int pool_result_read(const pool_result_t *result, int64_t first_row, int64_t nrows, void *buf,
                     size_t buf_len, int64_t *lengths, size_t *needed) {
  connpool::clear_error();
  if (needed) *needed = 0;
  return guard([&] {
    if (!result) throw connpool::error(POOL_EINVAL, "result is NULL");
    int64_t rows = result->r->rows();
    if (first_row < 0 || first_row > rows || nrows < 0)
      throw connpool::error(POOL_EINVAL, "first_row " + std::to_string(first_row) +
                                             " is out of range (the result has " +
                                             std::to_string(rows) +
                                             " rows), or nrows is negative");
    if (!buf && buf_len > 0) throw connpool::error(POOL_EINVAL, "buf is NULL but buf_len is not 0");
    bool fits = false;
    size_t n = connpool::read_rows(*result->r, first_row, nrows, static_cast<char *>(buf),
                                   buf_len, lengths, &fits);
    if (needed) *needed = n;
    if (!fits)
      return connpool::set_errorf(POOL_ERANGE, "the rows need %zu bytes; the buffer has %zu",
                                  n, buf_len);
    return int(POOL_OK);
  });
}

size_t pool_result_memory(const pool_result_t *result) {
  return result ? sizeof *result + result->r->memory() : 0;
}

void pool_result_free(pool_result_t *result) { delete result; }

int pool_stream_open(pool_stream_t **out, pool_lease_t *lease, const char *sql, int nparams,
                     const pool_param_t *params, int flags) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    statement_args args(sql, nparams, params, flags & ~POOL_QUERY_PREPARE);
    auto stream = std::make_unique<pool_stream_s>();
    stream->lease = lease;
    stream->rows = connpool::pool::stream_open(lease, args.st);
    *out = stream.release();
    return int(POOL_OK);
  });
}

int pool_stream_next(pool_result_t **out, pool_stream_t *stream, int64_t max_rows) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    if (!stream) throw connpool::error(POOL_EINVAL, "stream is NULL");
    if (max_rows < 1) throw connpool::error(POOL_EINVAL, "max_rows must be at least 1");
    auto piece = connpool::pool::stream_next(stream->lease, *stream->rows, max_rows);
    return piece ? hand_out(out, std::move(piece)) : int(POOL_OK);
  });
}

int pool_stream_close(pool_stream_t *stream) {
  connpool::clear_error();
  if (!stream) return POOL_OK;
  std::unique_ptr<pool_stream_s> owned(stream);  // freed whatever happens
  return guard([&] {
    connpool::pool::stream_close(owned->lease, *owned->rows);
    return int(POOL_OK);
  });
}

const char *pool_last_sqlstate(void) { return connpool::last_sqlstate(); }

// ---------------------------------------------------------------- asynchronous requests

int pool_checkout_start(pool_request_t **out, pool_t *pool, int64_t timeout_ms,
                        const char *tag) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    *out = live_pool(pool)->checkout_start(timeout_ms, tag)->handle();
    return POOL_OK;
  });
}

int pool_query_start(pool_request_t **out, pool_lease_t *lease, const char *sql, int nparams,
                     const char *const *params) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    statement_args args(sql, nparams, params);
    *out = connpool::pool::query_start(lease, sql, nparams, args.st.params, 0)->handle();
    return POOL_OK;
  });
}

int pool_query_params_start(pool_request_t **out, pool_lease_t *lease, const char *sql,
                            int nparams, const pool_param_t *params, int flags) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    statement_args args(sql, nparams, params, flags);
    *out = connpool::pool::query_start(lease, sql, nparams, params, flags)->handle();
    return POOL_OK;
  });
}

int pool_request_fd(const pool_request_t *request) {
  connpool::clear_error();
  if (!request) {
    errno = EINVAL;
    return -1;
  }
  try {
    return connpool::request::of_handle(request)->fd();
  } catch (...) {
    errno = EINVAL;
    return -1;
  }
}

int pool_request_notify(pool_request_t *request, int fd, uint64_t token) {
  connpool::clear_error();
  return guard([&] {
    if (fd < 0) throw connpool::error(POOL_EINVAL, "fd is negative");
    connpool::request::of_handle(request)->notify(fd, token);
    return POOL_OK;
  });
}

int pool_request_done(const pool_request_t *request) {
  connpool::clear_error();
  try {
    return connpool::request::of_handle(request)->done() ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

namespace {

// The request a finishing call may end: of kind k, else POOL_EINVAL.
connpool::request *request_of(pool_request_t *handle, connpool::request::kind k) {
  connpool::request *r = connpool::request::of_handle(handle);
  if (r->what != k)
    throw connpool::error(POOL_EINVAL, k == connpool::request::kind::checkout
                                           ? "not a checkout request (use pool_request_result)"
                                           : "not a statement request (use pool_request_lease)");
  return r;
}

// Ends the caller's hold on r (after the finishing call took the outcome). In a child after
// fork, no thread of this process refers to a parent's request: it is freed now.
void end_request(connpool::request *r) {
  if (r->generation != connpool::fork_guard::generation()) delete r;
  else r->unref();
}

}  // namespace

int pool_request_lease(pool_lease_t **out, pool_request_t *request) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    connpool::request *r = request_of(request, connpool::request::kind::checkout);
    int rc = r->take_lease(out);
    if (rc != POOL_ESTATE || r->done()) end_request(r);
    return rc;
  });
}

int pool_request_result(pool_result_t **out, pool_request_t *request) {
  connpool::clear_error();
  if (!out) return connpool::set_error(POOL_EINVAL, "out is NULL");
  *out = nullptr;
  return guard([&] {
    connpool::request *r = request_of(request, connpool::request::kind::query);
    std::unique_ptr<connpool::result> res;
    int rc = r->take_result(&res);
    if (rc != POOL_ESTATE || r->done()) end_request(r);
    return rc == POOL_OK ? hand_out(out, std::move(res)) : rc;
  });
}

int pool_request_cancel(pool_request_t *request) {
  connpool::clear_error();
  if (!request) return POOL_OK;
  return guard([&] {
    connpool::request *r = connpool::request::of_handle(request);
    if (r->generation != connpool::fork_guard::generation()) {
      delete r;  // the parent's: nothing of it is touched
      return POOL_OK;
    }
    if (r->cancel()) {  // pending: whoever completes it disposes of the outcome
      if (r->what == connpool::request::kind::checkout)
        connpool::pool::checkout_cancelled(*static_cast<connpool::checkout_request *>(r));
      else
        connpool::pool::query_cancelled(*static_cast<connpool::query_request *>(r));
    } else if (r->what == connpool::request::kind::checkout) {  // done: the outcome is ours
      pool_lease_t *lease = nullptr;
      if (r->take_lease(&lease) == POOL_OK && lease) pool_checkin(lease);
    }  // a result is freed with the request
    r->unref();
    connpool::clear_error();
    return POOL_OK;
  });
}

int pool_reset(pool_t *pool) {
  connpool::clear_error();
  return guard([&] {
    live_pool(pool)->reset();
    return POOL_OK;
  });
}

int pool_wait_ready(pool_t *pool, int64_t timeout_ms) {
  connpool::clear_error();
  return guard([&] {
    live_pool(pool)->wait_ready(timeout_ms);
    return POOL_OK;
  });
}

int pool_set_hooks(pool_t *pool, const pool_hooks_t *hooks) {
  connpool::clear_error();
  return guard([&] {
    live_pool(pool)->set_hooks(hooks);
    return POOL_OK;
  });
}

void *pool_lease_native(const pool_lease_t *lease) {
  return connpool::pool::native(lease);
}

int pool_checkin(pool_lease_t *lease) {
  connpool::clear_error();
  return guard([&] {
    connpool::pool::checkin(lease);
    return POOL_OK;
  });
}

int pool_invalidate(pool_lease_t *lease) {
  connpool::clear_error();
  return guard([&] {
    connpool::pool::invalidate(lease);
    return POOL_OK;
  });
}

int pool_stats_get(pool_t *pool, pool_stats_t *stats) {
  connpool::clear_error();
  return guard([&] {
    if (!stats) throw connpool::error(POOL_EINVAL, "stats is NULL");
    if (stats->size < int64_t(sizeof stats->size) + int64_t(sizeof(int64_t)))
      throw connpool::error(POOL_EINVAL, "stats->size is not set to sizeof(pool_stats_t)");
    live_pool(pool)->stats(stats);
    return POOL_OK;
  });
}

int pool_stats_prometheus(char *buf, size_t buf_len, size_t *len, pool_t *pool,
                          const char *name) {
  connpool::clear_error();
  return guard([&] {
    if (!len) throw connpool::error(POOL_EINVAL, "len is NULL");
    if (!buf && buf_len > 0) throw connpool::error(POOL_EINVAL, "buf is NULL but buf_len is not 0");
    pool_stats_t stats;
    stats.size = sizeof stats;
    live_pool(pool)->stats(&stats);
    std::string text = connpool::prometheus_text(stats, name);
    *len = text.size();
    if (buf_len <= text.size())
      return connpool::set_errorf(POOL_ERANGE, "the metrics text needs %zu bytes and a NUL; "
                                               "the buffer has %zu", text.size(), buf_len);
    std::memcpy(buf, text.c_str(), text.size() + 1);
    return int(POOL_OK);
  });
}

int pool_version(void) {
  return CONNPOOL_VERSION_MAJOR * 10000 + CONNPOOL_VERSION_MINOR * 100 + CONNPOOL_VERSION_PATCH;
}

#define CONNPOOL_STR2(x) #x
#define CONNPOOL_STR(x) CONNPOOL_STR2(x)
const char *pool_version_string(void) {
  return CONNPOOL_STR(CONNPOOL_VERSION_MAJOR) "." CONNPOOL_STR(
      CONNPOOL_VERSION_MINOR) "." CONNPOOL_STR(CONNPOOL_VERSION_PATCH);
}

const char *pool_strerror(int code) { return connpool::status_text(code); }
const char *pool_error_name(int code) { return connpool::status_name(code); }
const char *pool_last_error(void) { return connpool::last_error(); }

}  // extern "C"
