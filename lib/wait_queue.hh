// The checkouts waiting for a connection: who waits, in which order, and how a waiter is
// woken without the lock. One fairness rule serves every kind of waiter (issue 15):
//
//   A waiter that has waited `handoff_after` is served before any checkout that came later:
//   from then on every connection returned goes straight to the longest waiter. Before that,
//   a thread that returns a connection may take it again at once, which spares both threads a
//   context switch and keeps the server's caches warm (Go's sync.Mutex: barging until a
//   waiter has waited 1 ms, then hand-off).
//
// Waking: whoever ends a wait (a checkin that hands over a connection, a freed slot, dispose)
// decides the waiter's outcome under the pool lock and posts its signal after releasing the
// lock, so the woken thread runs without queueing for the lock the waker still holds. A post
// is counted (owed) under the lock before it is made, and a waiter never leaves before every
// post owed to it has landed: the waker's post is its last touch of the waiter's memory.
#ifndef CONNPOOL_WAIT_QUEUE_HH
#define CONNPOOL_WAIT_QUEUE_HH

#include <atomic>
#include <cstdint>
#include <pthread.h>
#include <sys/types.h>

#include "async_runtime.hh"
#include "connector.hh"  // clock

namespace connpool {

struct lease;

// A counting wake-up on a futex: post() adds one and wakes the waiting thread; the waiting
// side sleeps while the count is still the one it saw. No allocation, no lock.
class wake_signal {
 public:
  uint32_t seen() const noexcept { return posts_.load(std::memory_order_acquire); }
  // Sleeps while the count is `seen`, at most until `deadline` (max(): no limit). May return
  // early (a spurious wake): the caller looks at what it waits for and sleeps again.
  void wait(uint32_t seen, clock::time_point deadline) noexcept;
  // Sleeps until `count` posts have been made.
  void wait_for_count(uint32_t count) noexcept;
  void post() noexcept;

 private:
  std::atomic<uint32_t> posts_{0};
};

// A checkout waiting for a connection. Lives on the waiting thread's stack, or in an
// asynchronous checkout request (then `async` is that request, which the dispatcher steps
// when it is posted); every field but the atomics is the pool lock's.
struct waiter {
  dispatched *async = nullptr;
  waiter *prev = nullptr, *next = nullptr;
  const char *tag = nullptr;  // for lend() at a hand-off: the waiting checkout's tag
  pid_t thread = 0;
  pthread_t self = pthread_self();
  clock::time_point since;  // when it started waiting
  // When it may open a connection itself if none came back (pool_overflow_after); max(): never
  clock::time_point open_at = clock::time_point::max();
  bool may_open = false;    // a slot reserved for this waiter (the pool's opening_ counts it)
  bool closed = false;      // the pool was disposed
  bool watching = false;  // asleep at the head with a timer set for when it comes due
  bool woken = false;     // a post is on its way: it will look at the idle connections
  bool linked = false;
  // A connection passed straight from a checkin, lent to it already. Set under the lock
  // before the post that announces it, read by the waiter without the lock.
  std::atomic<lease *> handed{nullptr};
  std::atomic<uint32_t> owed{0};  // posts promised to it (written under the lock)
  wake_signal signal;
  bool done() const { return handed.load(std::memory_order_relaxed) || may_open || closed; }
};

// FIFO of waiters (pool lock).
class wait_queue {
 public:
  bool empty() const noexcept { return !head_; }
  waiter *front() const noexcept { return head_; }
  int64_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  // Read without the pool lock by a checkin that parks its lease (parked.cc). A waiter's
  // push_back is a sequentially consistent store, followed by pool::collect_parked(): either
  // the checkin sees the waiter and does not park, or the waiter's collect finds the lease.
  int64_t size_unlocked() const noexcept { return size_.load(std::memory_order_seq_cst); }
  void push_back(waiter *w) noexcept;
  void unlink(waiter *w) noexcept;
  // After fork, in the child: the waiters were the parent's threads.
  void forget() noexcept {
    head_ = tail_ = nullptr;
    size_.store(0, std::memory_order_relaxed);
  }
  // Counts one post for w (under the lock): the caller makes it with w->signal.post() once
  // the lock is released, or at once with post_now().
  static void owe(waiter *w) noexcept {
    w->owed.store(w->owed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Makes a post counted with owe(): wakes the waiting thread, or has the dispatcher step the
  // asynchronous request (kicked first: the signal's post is the last touch of w's memory).
  static void post(waiter *w) noexcept {
    if (w->async) async_runtime_api::kick(w->async);
    w->signal.post();
  }
  static void post_now(waiter *w) noexcept {
    owe(w);
    post(w);
  }

 private:
  waiter *head_ = nullptr, *tail_ = nullptr;
  std::atomic<int64_t> size_{0};  // written under the pool lock
};

}  // namespace connpool

#endif
