// The wait queue's links and the futex under wake_signal.
#include "wait_queue.hh"

#include <cerrno>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace connpool {

namespace {

// FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: the same clock as
// std::chrono::steady_clock, so no conversion drifts.
void futex_wait(std::atomic<uint32_t> *word, uint32_t seen, const struct timespec *at) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_BITSET_PRIVATE, seen, at,
          nullptr, FUTEX_BITSET_MATCH_ANY);
}

}  // namespace

void wake_signal::wait(uint32_t seen, clock::time_point deadline) noexcept {
  if (posts_.load(std::memory_order_acquire) != seen) return;
  if (deadline == clock::time_point::max()) return futex_wait(&posts_, seen, nullptr);
  auto since_epoch = deadline.time_since_epoch();
  if (since_epoch.count() < 0) return;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  struct timespec at;
  at.tv_sec = time_t(secs.count());
  at.tv_nsec = long(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  futex_wait(&posts_, seen, &at);
}

void wake_signal::wait_for_count(uint32_t count) noexcept {
  for (uint32_t now = posts_.load(std::memory_order_acquire); int32_t(now - count) < 0;
       now = posts_.load(std::memory_order_acquire))
    futex_wait(&posts_, now, nullptr);
}

// The store is the last write to the waiter; the wake that follows touches no memory of it
// (a futex wake on an address whose waiter has gone wakes nobody, or is a spurious wake of
// whoever sleeps there now, which every wait here tolerates).
void wake_signal::post() noexcept {
  posts_.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&posts_), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

void wait_queue::push_back(waiter *w) noexcept {
  w->prev = tail_;
  w->next = nullptr;
  (tail_ ? tail_->next : head_) = w;
  tail_ = w;
  w->linked = true;
  size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
}

void wait_queue::unlink(waiter *w) noexcept {
  (w->prev ? w->prev->next : head_) = w->next;
  (w->next ? w->next->prev : tail_) = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
  size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

}  // namespace connpool
