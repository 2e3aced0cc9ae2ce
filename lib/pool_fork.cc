// The child's side of fork, as the pool sees it: what the atfork child handler does to the
// pool (after_fork_in_child, async-signal-safe), and the child's procedure at its first call
// into the pool (sync_with_process: forget the parent's waiters, counts and connections, and
// discard the inherited ones without a byte to the server). fork.cc knows the pool only as a
// fork_guard::participant; the rules are in ../shared/fork-safety.md.
#include <algorithm>
#include <iterator>
#include <new>

#include <fcntl.h>
#include <unistd.h>

#include "error.hh"
#include "fork.hh"
#include "pool.hh"

namespace connpool {

// In the atfork child handler: async-signal-safe only. The lock prepare took belongs to a
// thread that does not exist here: re-initialise it, never unlock it.
void pool::after_fork_in_child() noexcept {
  fork_guard::reinit_mutex_in_child(mu_);
  forked_by_ = pthread_self();
  forked_by_known_ = true;
  neutralise_sockets();
}

// Points every socket the pool knows at /dev/null. Idempotent: the socket number stays ours
// until the connection is discarded, so a second dup3 finds /dev/null there already. The
// number is asked of the connector now, not taken from the record: an application's PQreset
// on a lent connection moves it to a new socket (libpq's PQsocket only reads a field, safe in
// the child handler).
void pool::neutralise_sockets() noexcept {
  for (const std::unique_ptr<lease> &l : records_) {
    if (!l->handle) continue;
    int fd = connector_->socket(l->handle);
    if (fd >= 0) dup3(fork_guard::devnull(), fd, O_CLOEXEC);
  }
}

bool pool::sync_with_process(lock_t &lock) {
  if (generation_ == fork_guard::generation()) return false;
  handles inherited = adopt_child();
  if (inherited.empty()) return false;
  // discard_inherited() sends nothing (the socket is /dev/null), but it is a driver call
  // (PQfinish), and none runs under the pool lock.
  inside_++;
  lock.unlock();
  for (void *handle : inherited) connector_->discard_inherited(handle);
  lock.lock();
  inside_--;
  return true;
}

// The child's procedure, at its first call into the pool. Idle inherited connections are
// returned for the caller to discard. A lease lent before the fork to the forking thread
// (the only one of the parent's threads that exists here) may still come back: it is counted
// in inherited_out_ and discarded at its checkin. One lent to any other thread cannot: it
// does not hold the pool (pool_dispose() releases it regardless), and its connection is
// discarded at its checkin if one ever comes (a lease moved to the forking thread), else
// leaked (~pool).
pool::handles pool::adopt_child() {
  handles inherited_idle;
  inherited_idle.reserve(records_.size());  // nothing below throws
  neutralise_sockets();  // a fork that ran no handler has not done it yet
  // Without the handler (_Fork, a raw clone) the child's first call comes from the thread
  // that forked, the only one a child of such a fork may run before it execs.
  pthread_t survivor = forked_by_known_ ? forked_by_ : pthread_self();
  forked_by_known_ = false;
  // Every record with a connection: idle, lent, being opened or closed by a parent's thread
  // (that thread does not exist here).
  int64_t inherited = 0;
  idle_.clear();
  inherited_out_ = 0;
  for (const std::unique_ptr<lease> &l : records_) {
    // Parked by a parent's thread, or on its way (parked.cc): idle, inherited.
    l->parked.store(0, std::memory_order_relaxed);
    l->parked_checkouts.store(0, std::memory_order_relaxed);
    if (!l->handle) continue;
    inherited++;
    if (l->state.load(std::memory_order_relaxed) & 1) {
      l->inherited_blocks = pthread_equal(l->holder, survivor) != 0;
      if (l->inherited_blocks) inherited_out_++;
    } else {
      inherited_idle.push_back(l->handle);
      l->handle = nullptr;
      free_records_.push_back(l.get());
    }
  }
  // Waiters, connects, the maintenance thread and the counts were the parent's threads' and
  // the parent's history. Condition variables a parent's thread waited on are made anew.
  waiters_.forget();
  open_ = opening_ = checked_out_ = inside_ = 0;
  maint_running_ = maint_stop_ = maint_kicked_ = maint_connecting_ = false;
  maint_due_ = clock::time_point::max();
  new (&maint_cv_) std::condition_variable();
  new (&ready_cv_) std::condition_variable();
  ready_waiters_ = 0;
  failures_in_row_ = 0;
  probe_in_flight_ = false;
  opened_total_ = closed_total_ = connect_failures_total_ = 0;
  checkouts_total_ = timeouts_total_ = wait_total_us_ = wait_max_us_ = 0;
  connect_time_total_us_ = connect_time_max_us_ = waits_total_ = 0;
  std::fill(std::begin(wait_le_us_), std::end(wait_le_us_), 0);
  pings_total_ = 0;
  dead_total_ = recycled_total_ = idle_closed_total_ = invalidated_total_ = 0;
  reset_closed_total_ = resets_total_ = leaks_total_ = fast_fails_total_ = rejected_total_ = 0;
  inherited_total_ = inherited;
  generation_ = fork_guard::generation();
  return inherited_idle;
}

// A lease lent before a fork, checked in by the child: it never reaches the pool again.
void pool::drop_inherited(lease *l) {
  pool *p = l->owner;
  lock_t lock(p->mu_);
  p->sync_with_process(lock);  // counts this lease among the inherited ones if not done yet
  uint64_t state = l->state.load(std::memory_order_acquire);
  if (!(state & 1) ||
      !l->state.compare_exchange_strong(state, state & ~uint64_t(1), std::memory_order_acq_rel))
    throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  void *handle = l->handle;
  l->handle = nullptr;
  p->free_records_.push_back(l);
  if (l->inherited_blocks) p->inherited_out_--;
  l->inherited_blocks = false;
  // Outside the lock (a driver call), still counted inside; no network I/O: see adopt_child()
  p->inside_++;
  lock.unlock();
  p->connector_->discard_inherited(handle);
  lock.lock();
  p->inside_--;
  p->release_if(lock, p->releasable());
}

}  // namespace connpool
