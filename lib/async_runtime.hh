// The threads that carry asynchronous requests (pool_*_start) in this process, so that the
// caller's thread never blocks:
//
//   - the dispatcher, one thread on an epoll: runs the steps of requests that wait (a waiting
//     checkout's turn in the pool's queue, under the pool lock: short, never blocking I/O),
//     when they are kicked (a checkin handed them a connection, a slot freed, dispose), when
//     a timer they set comes due (their deadline, the queue's hand-off rule,
//     pool_overflow_after), or when a socket they watch is ready (a libpq statement sent
//     without waiting: its answer is read here, without a thread of its own);
//   - I/O threads: run what blocks (a connect, a pre-ping, an on_checkout hook, a statement,
//     a cancel request), one job each. They are started when no idle one is left and end after
//     a few idle seconds, so there are only as many as there are jobs at once: never more than
//     the connections of the pools (a job holds a connection or a slot to open one).
//
// Every thread ends after 5 idle seconds, so a process that stopped using requests holds none
// (and may dlclose the library: not while requests are pending or within those seconds).
//
// Waiting requests hold no thread: a thousand checkouts queued on a pool of ten are a
// thousand entries in its wait queue, and ten I/O threads at most.
//
// Fork: the threads exist in the parent only. The state they use is made anew in a child at
// its first use (the child's copy of the parent's may be mid-change: it is left alone), so no
// atfork handler is needed and no lock can be inherited held.
//
// Lock order: the runtime's locks are leaves. kick() may be called under a pool's lock; the
// runtime never takes a pool's lock while holding one of its own.
#ifndef CONNPOOL_ASYNC_RUNTIME_HH
#define CONNPOOL_ASYNC_RUNTIME_HH

#include <atomic>
#include <cstdint>
#include <functional>

#include "connector.hh"  // clock

namespace connpool {

// Something the dispatcher runs: step() is called on the dispatcher thread once per kick (or
// fewer: kicks that come while one is pending merge) and when the timer it set comes due.
// Reference-counted: the runtime holds a reference while a kick or a timer is pending.
class dispatched {
 public:
  virtual ~dispatched() = default;
  virtual void step() = 0;
  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  friend class async_runtime;
  std::atomic<int32_t> refs_{1};
  bool kicked_ = false;   // the runtime's lock: in the kick list
  dispatched *next_kick_ = nullptr;  // the runtime's lock: the kick list (no allocation)
  bool watched_ = false;  // the runtime's lock: a watch is armed (and holds a reference)
  uint64_t timer_stamp_ = 0;  // dispatcher thread: which of its timers is the current one
};

namespace async_runtime_api {

// Makes this process's runtime if it is not made yet: before anything that may kick().
// Throws std::bad_alloc.
void prepare();
// Runs `item->step()` on the dispatcher soon. Safe under a pool's lock; allocates nothing.
void kick(dispatched *item) noexcept;
// Called by a step: runs `item->step()` again at `at` unless kicked before (a later call
// replaces the timer; max(): none).
void set_timer(dispatched *item, clock::time_point at);
// Runs `item->step()` once `fd` is readable (or, for_write, writable too): one shot, armed
// again by another call. Throws error(POOL_ERROR) if epoll refuses the fd.
void watch(dispatched *item, int fd, bool for_write);
// Forgets item's fd (before it is closed or used elsewhere), and its watch if one is armed.
void unwatch(dispatched *item, int fd) noexcept;
// Runs `job` on an I/O thread. Throws std::bad_alloc or error(POOL_ENOMEM) if no thread can
// be started (the caller has not given the job away then).
void run_blocking(std::function<void()> job);

}  // namespace async_runtime_api

}  // namespace connpool

#endif
