// What the library knows about fork(): which process generation this is, the registry of
// live pools that the atfork handlers walk, and the gate that keeps forks out of connects.
// The facts behind every rule here are in ../shared/fork-safety.md; the contract is
// convention 8 of connpool.h.
#ifndef CONNPOOL_FORK_HH
#define CONNPOOL_FORK_HH

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace connpool {
namespace fork_guard {

// What an object (a pool) must do around every fork(), registered with the atfork handlers,
// which know nothing else of it. In registry order: before_fork() takes what must not change
// across the fork (the pool's lock), after_fork_in_parent() gives it back, and
// after_fork_in_child() makes it usable in the child, async-signal-safe only (the rest of
// the child's procedure is the participant's own business, at its next call).
class participant {
 public:
  virtual void before_fork() noexcept = 0;
  virtual void after_fork_in_parent() noexcept = 0;
  virtual void after_fork_in_child() noexcept = 0;

 protected:
  participant() = default;
  ~participant() = default;
  participant(const participant &) = delete;
  participant &operator=(const participant &) = delete;

 private:
  friend void enrol(participant *p);
  friend void withdraw(participant *p) noexcept;
  friend struct registry_walk;
  participant *registry_next_ = nullptr, *registry_prev_ = nullptr;  // the registry lock
};

// Adds a participant to the registry (installing the atfork handlers at the first call) and
// removes it. Lock order: the registry lock is never taken while a participant's lock is held.
void enrol(participant *p);
void withdraw(participant *p) noexcept;

// An fd open on /dev/null (close-on-exec): dup3'd over inherited sockets.
int devnull() noexcept;

// In the atfork child handler: makes a lock that a parent's thread held usable again.
void reinit_mutex_in_child(std::mutex &mu) noexcept;

namespace detail {
extern std::atomic<uint64_t> generation;
extern std::atomic<uint32_t> *wipe_flag;  // in a MADV_WIPEONFORK page, or nullptr
void notice_unhandled_fork() noexcept;
bool pid_changed() noexcept;
}  // namespace detail

// The process generation: it changes in every child. A memory load on the hot path: the
// atfork child handler bumps the counter; a fork that ran no handler (_Fork, a raw clone) is
// seen because the kernel zeroed the MADV_WIPEONFORK flag in the child (getpid() is the
// fallback where that page is not available).
#ifdef CONNPOOL_NO_FORK_CHECK
// Only for `make bench`, to measure what the check costs: a library that ignores forks.
inline uint64_t generation() noexcept { return 1; }
#else
inline uint64_t generation() noexcept {
  std::atomic<uint32_t> *flag = detail::wipe_flag;
  if (flag ? flag->load(std::memory_order_relaxed) == 0 : detail::pid_changed())
    detail::notice_unhandled_fork();
  return detail::generation.load(std::memory_order_acquire);
}
#endif

// Held (shared) by every connect the pool makes, and by connector calls that take a library's
// process-wide locks (unixODBC's handle allocation and freeing, connect, disconnect); the prepare handler takes it exclusive, so no
// child is born while such a call is inside OpenSSL's, GSSAPI's or unixODBC's global locks.
// Re-entrant within a thread.
class connect_gate {
 public:
  connect_gate() noexcept;
  ~connect_gate();
  connect_gate(const connect_gate &) = delete;
  connect_gate &operator=(const connect_gate &) = delete;
};

// Held (shared) by a statement of the pool's over a driver that takes its own process-wide
// locks for moments inside each call (psqlODBC's common_cs, at the start and end of every
// statement). A fork waits for these at most statement_wait_ms, then goes ahead: a statement
// still running by then is almost surely waiting for the server, inside no such lock, and a
// 10-minute report must not freeze every fork (and every connect behind the fork). New ones
// wait while a fork is pending, as connects do. Re-entrant within a thread; independent of
// connect_gate (a connect_gate taken inside one waits for a pending fork, which waits for
// this one no longer than the bound).
constexpr int statement_wait_ms = 100;
class statement_gate {
 public:
  statement_gate() noexcept;
  ~statement_gate();
  statement_gate(const statement_gate &) = delete;
  statement_gate &operator=(const statement_gate &) = delete;
};

// One connect at a time in the whole process, for drivers that cannot connect on two threads
// at once (psqlODBC calls setlocale(LC_CTYPE, "") in every connect, and glibc frees the name
// the other thread is reading). Lock order: taken only inside the connect gate, never the
// gate while holding or awaiting the turn; so a fork's prepare, which waits for the gate,
// waits for every holder and waiter of the turn to leave, and none of them waits for the fork.
// The child handler resets it. Not re-entrant.
class connect_turn {
 public:
  // Waits for the turn until `deadline` (time_point::max(): no limit); taken() says if it came.
  explicit connect_turn(std::chrono::steady_clock::time_point deadline) noexcept;
  ~connect_turn();
  connect_turn(const connect_turn &) = delete;
  connect_turn &operator=(const connect_turn &) = delete;
  bool taken() const noexcept { return taken_; }

 private:
  bool taken_ = false;
};

}  // namespace fork_guard
}  // namespace connpool

#endif
