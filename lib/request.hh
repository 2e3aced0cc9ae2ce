// An asynchronous request (pool_request_t): its completion, seen through a flag, an eventfd
// made on demand, and the outcome its finishing call hands over. Who completes it (the
// dispatcher, an I/O thread, the starting call itself) and who ends it (the caller's
// finishing call or pool_request_cancel) race by design; one atomic state decides:
//
//   pending --complete()--> done --end()--> (the caller took the outcome)
//   pending --cancel()----> cancelled         (the completer disposes of the outcome)
//
// A cancelled request's outcome is never lost: whoever finds it cancelled gives a connection
// back to the pool (checkout) or frees a result (query) and ends what the request started.
#ifndef CONNPOOL_REQUEST_HH
#define CONNPOOL_REQUEST_HH

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "async_runtime.hh"
#include "connpool.h"
#include "error.hh"
#include "result.hh"

namespace connpool {

class request : public dispatched {
 public:
  enum class kind : uint8_t { checkout, query };
  static constexpr uint32_t live_magic = 0x52455155;  // "REQU"

  explicit request(kind k);
  ~request() override;
  pool_request_t *handle() noexcept { return reinterpret_cast<pool_request_t *>(this); }
  // The request a handle names, or throws POOL_EINVAL (NULL, or not a live request).
  static request *of_handle(const pool_request_t *handle);

  const kind what;
  const uint64_t generation;  // the process generation it was started in

  // Completing side. Returns false if the caller cancelled it first: the outcome is the
  // completer's to dispose of (and was not stored).
  bool complete_with_lease(pool_lease_t *lease);
  bool complete_with_result(std::unique_ptr<result> r);
  bool complete_with_error(const error &e);
  bool cancelled() const noexcept { return state_.load(std::memory_order_acquire) == cancelled_; }

  // Caller's side.
  bool done() const noexcept;
  int fd();  // -1 with errno if no eventfd can be made
  // At completion (now, if it is done already), writes `token` to `fd` once.
  void notify(int fd, uint64_t token);
  // Takes the outcome: POOL_OK and the lease or result, or the error (message and SQLSTATE
  // set for this thread). The caller then unrefs the request.
  int take_lease(pool_lease_t **out);
  int take_result(std::unique_ptr<result> *out);
  // Marks it cancelled if it is pending; false if it is done already (then the caller
  // disposes of the outcome: take_lease/take_result).
  bool cancel() noexcept;

 private:
  static constexpr int pending_ = 0, done_ = 1, cancelled_ = 2;
  bool finish() noexcept;  // pending -> done, then the fd is told
  int take_error();

  uint32_t magic_ = live_magic;
  std::atomic<int> state_{pending_};
  std::mutex fd_mu_;  // the fd's creation against complete()
  int fd_ = -1;
  uint64_t fd_generation_ = 0;
  int notify_fd_ = -1;  // fd_mu_: pool_request_notify()
  uint64_t token_ = 0;
  // The outcome, written before state_ becomes done (release) and read after (acquire).
  error failure_{POOL_OK, ""};
  pool_lease_t *lease_ = nullptr;
  std::unique_ptr<result> result_;
};

}  // namespace connpool

#endif
