// The query layer above the core: statements and streams on a lease, run by its connector
// under the pool's policy (the query timeout, what a lost server means for the pool, a lease
// that a timeout or a stream makes unusable meanwhile).
#include <string>

#include "error.hh"
#include "fork.hh"
#include "pool.hh"

namespace connpool {

void pool::check_may_start(const lease *l) {
  if (l->generation != fork_guard::generation())
    throw error(POOL_EFORKED, "the lease was checked out before fork: its connection belongs to "
                              "the parent process; check it in to drop it");
  if (l->streaming)
    throw error(POOL_ESTATE, "a stream is open on this lease: close it (pool_stream_close) "
                             "before running another statement");
}

namespace {

// The lease, if a statement may run on it now.
lease *ready_for_statement(lease *l) {
  if (l->generation != fork_guard::generation())
    throw error(POOL_EFORKED, "the lease was checked out before fork: its connection belongs to "
                              "the parent process; check it in to drop it");
  if (l->abandoned)
    throw error(POOL_ESTATE, "a query on this lease timed out and its connection was "
                             "abandoned: check the lease in");
  return l;
}

clock::time_point deadline_of(double limit_s) {
  return limit_s > 0 ? clock::now() + seconds(limit_s) : clock::time_point::max();
}

}  // namespace

// Runs `work` (a connector call) on the lease, applying what its failure means: a timeout
// abandons the connection; a lost server, or one that changed role, retires every connection
// opened before it (as pool_report_error()), and the message says so.
template <typename Work>
static auto with_statement_policy(pool_lease_t *handle, lease *l, Work work) -> decltype(work()) {
  try {
    return work();
  } catch (const error &e) {
    if (e.code() == POOL_ETIMEDOUT) {
      l->abandoned = l->invalidated = true;  // closed at checkin, never lent again
      throw;
    }
    if (e.code() != POOL_EQUERY || !means_server_gone(e.sqlstate().c_str())) throw;
    pool::report_error(handle, e.sqlstate().c_str());
    throw error(POOL_EQUERY,
                std::string(e.what()) + " (the connection is lost or read-only: check the "
                                        "lease in; connections older than it are retired)",
                e.sqlstate());
  }
}

std::unique_ptr<result> pool::query(pool_lease_t *handle, const statement &st,
                                    bool on_request) {
  lease *l = on_request ? lease_of(handle) : idle_lease(handle);
  check_may_start(l);
  ready_for_statement(l);
  l->ran_queries = true;
  clock::time_point deadline = deadline_of(l->owner->opts_.query_timeout_s);
  return with_statement_policy(handle, l, [&] {
    return l->owner->connector_->query(l->handle, st, deadline);
  });
}

std::unique_ptr<pending_statement> pool::send_statement(pool_lease_t *handle,
                                                       const statement &st,
                                                       clock::time_point &deadline) {
  lease *l = ready_for_statement(lease_of(handle));  // its request holds it already
  l->ran_queries = true;
  deadline = deadline_of(l->owner->opts_.query_timeout_s);
  return with_statement_policy(handle, l, [&] {
    return l->owner->connector_->send(l->handle, st, deadline);
  });
}

std::unique_ptr<result> pool::under_statement_policy(
    pool_lease_t *handle, const std::function<std::unique_ptr<result>()> &work) {
  return with_statement_policy(handle, lease_of(handle), work);
}

std::unique_ptr<row_stream> pool::stream_open(pool_lease_t *handle, const statement &st) {
  lease *l = ready_for_statement(idle_lease(handle));
  if (l->streaming)
    throw error(POOL_ESTATE, "a stream is open on this lease already: close it first");
  l->ran_queries = true;
  clock::time_point deadline = deadline_of(l->owner->opts_.query_timeout_s);
  auto stream = with_statement_policy(handle, l, [&] {
    return l->owner->connector_->stream(l->handle, st, deadline);
  });
  l->streaming = true;
  return stream;
}

std::unique_ptr<result> pool::stream_next(pool_lease_t *handle, row_stream &stream,
                                          int64_t max_rows) {
  lease *l = ready_for_statement(lease_of(handle));
  clock::time_point deadline = deadline_of(l->owner->opts_.query_timeout_s);
  return with_statement_policy(handle, l, [&] { return stream.next(max_rows, deadline); });
}

void pool::stream_close(pool_lease_t *handle, row_stream &stream) {
  lease *l = lease_of(handle);
  l->streaming = false;
  // Timed out: nothing more is sent on it. Opened before fork: the parent's statement, on
  // the parent's session, which the child must never touch (its memory is freed by the
  // caller, without a byte to the server).
  if (l->abandoned || l->generation != fork_guard::generation()) return;
  // The cancel and the rows on their way: bounded like a ping.
  if (!stream.close(clock::now() + seconds(l->owner->opts_.ping_timeout_s))) {
    l->invalidated = true;
    throw error(POOL_EQUERY, "the stream's connection was lost or did not answer its cancel "
                             "in time (ping_timeout): the lease is invalidated; check it in",
                "08006");
  }
}

}  // namespace connpool
