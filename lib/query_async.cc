// Asynchronous statements: pool_query_start() copies the statement and runs it on an I/O
// thread (async_runtime.hh) through the same query layer as pool_query() (pool_query.cc), so
// the outcome is exactly the blocking call's. There is one I/O thread per statement in
// flight, so never more than the leases out.
//
// While the statement runs the lease belongs to that thread: the holder's other calls on it
// get POOL_ESTATE. Cancelling the request asks the server to cancel the statement (libpq;
// other connectors let it run to its end) and ends the request at once; the lease stays busy
// until the statement has ended on the server: pool_query() and pool_query_start() wait for
// that, and a pool_checkin() meanwhile is carried out when it has.
#include <cstring>

#include "async_requests.hh"
#include "error.hh"
#include "fork.hh"

namespace connpool {


query_request::query_request(pool_lease_t *lease, const char *sql, int nparams,
                             const pool_param_t *params, int flags)
    : request(kind::query), lease_handle(lease), sql_(sql) {
  values_.resize(size_t(nparams));
  params_.resize(size_t(nparams));
  for (size_t i = 0; i < size_t(nparams); i++) {
    const pool_param_t &p = params[i];
    params_[i] = p;
    if (!p.value) continue;
    const char *bytes = static_cast<const char *>(p.value);
    values_[i].assign(bytes, p.length < 0 ? std::strlen(bytes) : size_t(p.length));
    params_[i].value = values_[i].c_str();  // NUL-terminated, as a text parameter must be
  }
  st = {sql_.c_str(), params_.data(), nparams, (flags & POOL_QUERY_PREPARE) != 0};
}

lease *pool::idle_lease(pool_lease_t *handle) {
  lease *l = lease_of(handle);
  for (;;) {
    uint32_t seen = l->async_ended.seen();
    int use = l->async.load(std::memory_order_acquire);
    if (use == lease::no_request) return l;
    if (use == lease::request_running)
      throw error(POOL_ESTATE, "a request is running on this lease (pool_query_start): take "
                               "its result or cancel it first");
    // Cancelled, ending on the server: bounded by the cancel (ping_timeout) and query_timeout.
    l->async_ended.wait(seen, clock::time_point::max());
  }
}

request *pool::query_start(pool_lease_t *handle, const char *sql, int nparams,
                           const pool_param_t *params, int flags) {
  lease *l = lease_of(handle);
  check_may_start(l);  // (abandoned: read by the statement's own thread, send or query)
  async_runtime_api::prepare();
  auto *r = new query_request(handle, sql, nparams, params, flags);
  // A cancelled statement still ending: this one follows it, on its I/O thread.
  int idle = lease::no_request;
  bool follows = false;
  if (!l->async.compare_exchange_strong(idle, lease::request_running,
                                        std::memory_order_acq_rel)) {
    if (idle == lease::request_running) {
      r->unref();
      throw error(POOL_ESTATE, "a request is running on this lease already: take its result "
                               "or cancel it first");
    }
    follows = true;
  }
  if (!follows) {
    try {
      if (r->send()) return r;  // on its way; the dispatcher reads the answer
    } catch (...) {
      r->conclude(nullptr, current_error());  // failed to send: done already
      return r;
    }
  }
  r->ref();  // the job's
  try {
    async_runtime_api::run_blocking([r, l, follows] {
      if (follows) {
        int expected = lease::no_request;
        for (;;) {
          uint32_t seen = l->async_ended.seen();
          expected = lease::no_request;
          if (l->async.compare_exchange_strong(expected, lease::request_running,
                                               std::memory_order_acq_rel))
            break;
          l->async_ended.wait(seen, clock::time_point::max());
        }
      }
      r->run();
      r->unref();
    });
  } catch (...) {
    if (!follows) l->async.store(lease::no_request, std::memory_order_release);
    r->unref();
    r->unref();
    throw;
  }
  return r;
}

void query_request::run() noexcept {
  std::unique_ptr<result> res;
  error failure(POOL_OK, "");
  try {
    res = pool::query(lease_handle, st, true);
  } catch (...) {
    failure = current_error();
  }
  conclude(std::move(res), failure);
}

bool query_request::send() {
  pending_ = pool::send_statement(lease_handle, st, deadline_);
  if (!pending_) return false;
  fd_ = pending_->socket();
  step();  // sends what the socket takes now, and watches it for the rest (and its deadline)
  return true;
}

void query_request::step() {
  // The dispatcher, and the first step on the starting thread: one at a time.
  std::lock_guard<std::mutex> lock(step_mu_);
  if (!pending_ || finished_) return;  // on an I/O thread, or a stale timer or event
  std::unique_ptr<result> res;
  error failure(POOL_OK, "");
  if (clock::now() >= deadline_) {  // the cancel waits for the server: not on the dispatcher
    finished_ = true;
    async_runtime_api::unwatch(this, fd_);
    ref();  // the job's
    try {
      async_runtime_api::run_blocking([this] {
        error timeout = pending_->timed_out();
        std::unique_ptr<result> none;
        error outcome(POOL_OK, "");
        try {
          none = pool::under_statement_policy(lease_handle, [&]() -> std::unique_ptr<result> {
            throw timeout;
          });
        } catch (...) {
          outcome = current_error();
        }
        conclude(nullptr, outcome);
        unref();
      });
    } catch (...) {
      unref();
      conclude(nullptr, pending_->timed_out());
    }
    return;
  }
  pending_statement::need next = pending_->advance();
  if (next != pending_statement::need::done) {
    try {
      if (!timer_set_ && deadline_ != clock::time_point::max()) {
        async_runtime_api::set_timer(this, deadline_);
        timer_set_ = true;
      }
      async_runtime_api::watch(this, fd_, next == pending_statement::need::write);
      return;
    } catch (...) {
      failure = current_error();
    }
  } else {
    try {
      res = pool::under_statement_policy(lease_handle, [this] { return pending_->finish(); });
    } catch (...) {
      failure = current_error();
    }
  }
  finished_ = true;
  async_runtime_api::unwatch(this, fd_);
  async_runtime_api::set_timer(this, clock::time_point::max());
  if (!cancel_pending.load(std::memory_order_acquire)) return conclude(std::move(res), failure);
  // Cancelled: the cancel request being sent is waited for, on an I/O thread.
  ref();
  auto *held = res.release();
  try {
    async_runtime_api::run_blocking([this, held, failure] {
      conclude(std::unique_ptr<result>(held), failure);
      unref();
    });
  } catch (...) {
    unref();
    conclude(std::unique_ptr<result>(held), failure);
  }
}

void query_request::conclude(std::unique_ptr<result> res, const error &failure) noexcept {
  lease *l = pool::checked_out_lease(lease_handle);
  // The lease is the holder's again before the outcome is seen: a pool_query() right after
  // pool_request_result() must not find it busy. If the request was cancelled, the cancel
  // request on its way lands first: it must not reach a later statement.
  int use = lease::request_running;
  if (l && !l->async.compare_exchange_strong(use, lease::no_request, std::memory_order_acq_rel)) {
    for (uint32_t seen = cancel_sent.seen(); cancel_pending.load(std::memory_order_acquire);
         seen = cancel_sent.seen())
      cancel_sent.wait(seen, clock::time_point::max());
    use = l->async.exchange(lease::no_request, std::memory_order_acq_rel);
  }
  if (l) l->async_ended.post();
  if (use == lease::checkin_deferred) {
    try {
      pool::checkin(lease_handle);
    } catch (...) {  // the connection is closed by the checkin whatever it met
    }
    return;
  }
  if (failure.code() == POOL_OK) complete_with_result(std::move(res));
  else complete_with_error(failure);
}

void pool::query_cancelled(query_request &r) noexcept {
  lease *l = checked_out_lease(r.lease_handle);
  if (!l) return;
  r.cancel_pending.store(true, std::memory_order_release);  // before run() can see the cancel
  auto sent = [&r] {
    r.cancel_pending.store(false, std::memory_order_release);
    r.cancel_sent.post();
  };
  int running = lease::request_running;
  if (!l->async.compare_exchange_strong(running, lease::request_cancelled,
                                        std::memory_order_acq_rel))
    return sent();  // ended just now
  pool *p = l->owner;
  void *connection = l->handle;
  clock::time_point deadline = clock::now() + seconds(p->opts_.ping_timeout_s);
  r.ref();  // the job's
  try {
    // run() waits for it: the cancel cannot reach a later statement.
    async_runtime_api::run_blocking([&r, p, connection, deadline, sent] {
      p->connector_->cancel(connection, deadline);
      sent();
      r.unref();
    });
  } catch (...) {  // no I/O thread: the statement runs to its end (or query_timeout)
    sent();
    r.unref();
  }
}

}  // namespace connpool
