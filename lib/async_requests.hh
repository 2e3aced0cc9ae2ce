// The two kinds of asynchronous request: a checkout (checkout_async.cc) and a statement on a
// lease (query_async.cc).
#ifndef CONNPOOL_ASYNC_REQUESTS_HH
#define CONNPOOL_ASYNC_REQUESTS_HH

#include <mutex>
#include <string>
#include <vector>

#include "pool.hh"
#include "request.hh"

namespace connpool {

class checkout_request final : public request {
 public:
  checkout_request(pool *p, double timeout_s, double io_s, const char *tag);
  void step() override;  // the dispatcher: its turn in the pool's queue

  pool *const owner;
  const double timeout_s;  // as the blocking checkout's
  const double io_s;
  const clock::time_point deadline;  // its wait's and its own I/O's
  char tag[lease::tag_size];
  int rejections = 0;  // on_checkout refusals
  waiter w;
  // waiting while it is in the pool's queue, else not: set to waiting under the pool lock,
  // and ended only by the dispatcher (async_turn), so a step that reads waiting knows the
  // request still counts in the pool's inside_ (the pool is alive).
  enum phase : int { idle = 0, waiting = 1 };
  std::atomic<int> phase{idle};
};

// A statement and what it owns: the SQL and the parameters are copied at the start.
class query_request final : public request {
 public:
  query_request(pool_lease_t *lease, const char *sql, int nparams, const pool_param_t *params,
                int flags);
  // Sends the statement without waiting if the connector can (then the dispatcher moves it
  // on: step()); false if it cannot, and run() must run it on an I/O thread. Throws as
  // pool_query() for a statement that could not be sent.
  bool send();
  void step() override;  // the dispatcher: its socket is ready, or its deadline passed
  void run() noexcept;   // on an I/O thread: the blocking query
  // The outcome: the lease is the holder's again (or checked in, if that was deferred), then
  // the request completes.
  void conclude(std::unique_ptr<result> res, const error &failure) noexcept;

  pool_lease_t *const lease_handle;
  statement st;
  // A cancel request being sent (pool::query_cancelled): run() waits for it before the lease
  // is the holder's again.
  std::atomic<bool> cancel_pending{false};
  wake_signal cancel_sent;

 private:
  std::unique_ptr<pending_statement> pending_;  // sent without waiting (send())
  clock::time_point deadline_ = clock::time_point::max();  // query_timeout
  int fd_ = -1;
  std::mutex step_mu_;
  bool finished_ = false;  // step_mu_: the answer is in (or the deadline passed)
  bool timer_set_ = false;  // step_mu_

 public:
 private:
  std::string sql_;
  std::vector<std::string> values_;
  std::vector<pool_param_t> params_;
};

}  // namespace connpool

#endif
