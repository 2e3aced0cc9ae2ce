#include "pool.hh"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "error.hh"
#include "fork.hh"

namespace connpool {

// A thread blocked in checkout. Lives on that thread's stack; linked under mu_. Whoever ends
// the wait (checkin, a freed slot, dispose) sets the outcome and unlinks it under mu_, so the
// waiter never needs to search for itself.
struct pool::waiter {
  waiter *prev = nullptr, *next = nullptr;
  std::condition_variable cv;
  lease *handed = nullptr;  // a connection passed straight from a checkin
  bool may_open = false;    // a slot reserved for this waiter (opening_ counts it)
  bool closed = false;      // the pool was disposed
  bool linked = false;
  bool done() const { return handed || may_open || closed; }
};

namespace {

// Lease handles carry 16 bits of the record's serial above the 48-bit address space.
constexpr unsigned tag_shift = 48;
constexpr uint64_t address_mask = (uint64_t(1) << tag_shift) - 1;

uint64_t serial_tag(uint64_t state) { return ((state >> 1) % 0xFFFF) + 1; }

int64_t micros_between(clock::time_point from, clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

}  // namespace

pool::pool(std::unique_ptr<connector> conn, const options &opts)
    : opts_(opts), connector_(std::move(conn)) {
  fork_guard::register_pool(this);  // first: it installs the fork tracking generation() reads
  generation_ = fork_guard::generation();
}

pool::~pool() {
  fork_guard::unregister_pool(this);
  magic_ = 0;
}

// In the atfork child handler: async-signal-safe only. The lock prepare took belongs to a
// thread that does not exist here: re-initialise it, never unlock it.
void pool::reinit_in_child() noexcept {
  fork_guard::reinit_mutex_in_child(mu_);
  neutralise_sockets();
}

// Points every socket the pool knows at /dev/null. Idempotent: the socket number stays ours
// until the connection is discarded, so a second dup3 finds /dev/null there already.
void pool::neutralise_sockets() noexcept {
  for (const std::unique_ptr<lease> &l : records_)
    if (l->handle && l->socket >= 0) dup3(fork_guard::devnull(), l->socket, O_CLOEXEC);
}

void pool::sync_with_process() {
  if (generation_ != fork_guard::generation()) adopt_child();
}

// The child's procedure, at its first call into the pool. Idle inherited connections are
// discarded here, under the lock: discard_inherited() does no network I/O (the socket is
// /dev/null). Leases lent before the fork are counted and discarded at their checkin.
void pool::adopt_child() {
  neutralise_sockets();  // a fork that ran no handler has not done it yet
  // Every record with a connection: idle, lent, or between a parent thread's checkin and
  // its return to the pool (that thread does not exist here).
  int64_t inherited = 0;
  idle_.clear();
  inherited_out_ = 0;
  for (const std::unique_ptr<lease> &l : records_) {
    if (!l->handle) continue;
    inherited++;
    if (l->state.load(std::memory_order_relaxed) & 1) {
      inherited_out_++;
    } else {
      connector_->discard_inherited(l->handle);
      l->handle = nullptr;
      free_records_.push_back(l.get());
    }
  }
  // Waiters, connects and counts were the parent's threads' and the parent's history.
  waiters_head_ = waiters_tail_ = nullptr;
  open_ = opening_ = checked_out_ = waiting_ = inside_ = 0;
  opened_total_ = closed_total_ = connect_failures_total_ = 0;
  checkouts_total_ = timeouts_total_ = wait_total_us_ = wait_max_us_ = 0;
  inherited_total_ = inherited;
  generation_ = fork_guard::generation();
}

pool_lease_t *pool::encode(lease *l) noexcept {
  uint64_t address = reinterpret_cast<uintptr_t>(l);
  if ((address >> tag_shift) == 0)
    address |= serial_tag(l->state.load(std::memory_order_relaxed)) << tag_shift;
  return reinterpret_cast<pool_lease_t *>(static_cast<uintptr_t>(address));
}

lease *pool::checked_out_lease(const pool_lease_t *handle) noexcept {
  uint64_t bits = reinterpret_cast<uintptr_t>(handle);
  uint64_t tag = bits >> tag_shift;
  auto *l = reinterpret_cast<lease *>(static_cast<uintptr_t>(tag ? bits & address_mask : bits));
  if (!l || l->magic != lease::live_magic) return nullptr;
  uint64_t state = l->state.load(std::memory_order_acquire);
  if (!(state & 1) || (tag && tag != serial_tag(state))) return nullptr;
  return l;
}

bool pool::has_capacity() const {
  if (opts_.null_pool || opts_.max_overflow < 0) return true;
  return open_ + opening_ < int64_t(opts_.pool_size) + opts_.max_overflow;
}

lease *pool::take_idle() {
  lease *l;
  if (opts_.use_lifo) {
    l = idle_.back();
    idle_.pop_back();
  } else {
    l = idle_.front();
    idle_.pop_front();
  }
  return l;
}

pool_lease_t *pool::lend(lease *l) {
  uint64_t serial = (l->state.load(std::memory_order_relaxed) >> 1) + 1;
  l->invalidated = false;
  l->generation = generation_;
  l->state.store(serial << 1 | 1, std::memory_order_release);
  checked_out_++;
  checkouts_total_++;
  return encode(l);
}

void pool::unlink(waiter *w) {
  (w->prev ? w->prev->next : waiters_head_) = w->next;
  (w->next ? w->next->prev : waiters_tail_) = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
  waiting_--;
}

void pool::grant_slot_to_next_waiter() {
  if (!waiters_head_ || !has_capacity()) return;
  waiter *w = waiters_head_;
  unlink(w);
  w->may_open = true;
  opening_++;
  w->cv.notify_one();
}

bool pool::releasable() const {
  return closed_ && inside_ == 0 && checked_out_ == 0 && inherited_out_ == 0;
}

bool pool::leave_and_check_release() {
  inside_--;
  return releasable();
}

void pool::throw_timeout(double timeout_s) {
  timeouts_total_++;
  char msg[256];
  std::snprintf(msg, sizeof msg,
                "QueuePool limit of size %d overflow %d reached, connection timed out, "
                "timeout %.2f (checked out %lld, idle %lld, waiting %lld)",
                opts_.pool_size, opts_.max_overflow, timeout_s, (long long)checked_out_,
                (long long)idle_.size(), (long long)waiting_);
  throw error(POOL_ETIMEDOUT, msg);
}

pool_lease_t *pool::checkout(int64_t timeout_ms) {
  // Capped at about three years, far inside the clock's range.
  double timeout_s = timeout_ms < 0 ? opts_.pool_timeout_s : double(timeout_ms) / 1000.0;
  timeout_s = std::min(timeout_s, 1e8);
  // The clock is read only off the fast path: an idle connection needs no deadline.
  auto deadline_from = [timeout_s](clock::time_point start) {
    return start + std::chrono::duration_cast<clock::duration>(
                       std::chrono::duration<double>(timeout_s));
  };

  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) throw error(POOL_ECLOSED, "pool is disposed");
  sync_with_process();
  // No barging: while anyone waits, newcomers queue behind them.
  if (!waiters_head_) {
    if (!idle_.empty()) return lend(take_idle());
    if (has_capacity()) {
      opening_++;
      inside_++;
      lock.unlock();
      return open_new(deadline_from(clock::now()));
    }
  }
  if (timeout_s <= 0) throw_timeout(timeout_s);
  clock::time_point start = clock::now();
  clock::time_point deadline = deadline_from(start);

  waiter w;
  w.prev = waiters_tail_;
  (waiters_tail_ ? waiters_tail_->next : waiters_head_) = &w;
  waiters_tail_ = &w;
  w.linked = true;
  waiting_++;
  inside_++;
  while (!w.done() && w.cv.wait_until(lock, deadline) != std::cv_status::timeout) {
  }
  if (w.linked) unlink(&w);
  int64_t waited = micros_between(start, clock::now());
  wait_total_us_ += waited;
  if (waited > wait_max_us_) wait_max_us_ = waited;

  if (w.handed) {  // lend() already ran in the checkin that handed it over
    inside_--;
    return encode(w.handed);
  }
  if (w.may_open && clock::now() < deadline) {
    lock.unlock();
    return open_new(deadline);
  }
  if (w.may_open) {  // granted just as the deadline passed: pass the slot on
    opening_--;
    grant_slot_to_next_waiter();
  }
  bool release = leave_and_check_release();
  if (w.closed || closed_) {
    lock.unlock();
    if (release) delete this;
    throw error(POOL_ECLOSED, "pool was disposed while waiting for a connection");
  }
  throw_timeout(timeout_s);
}

// Runs with opening_ and inside_ already counted for this thread. The connect gate is held
// until the connection is published in records_, so no fork happens between the connect and
// the moment the pool can neutralise the connection in a child.
pool_lease_t *pool::open_new(clock::time_point deadline) {
  fork_guard::connect_gate gate;
  void *handle = nullptr;
  try {
    handle = connector_->open(deadline);
  } catch (...) {
    std::unique_lock<std::mutex> lock(mu_);
    opening_--;
    connect_failures_total_++;
    grant_slot_to_next_waiter();
    bool release = leave_and_check_release();
    lock.unlock();
    if (release) delete this;
    throw;
  }

  std::unique_lock<std::mutex> lock(mu_);
  opening_--;
  if (closed_) {
    closed_total_++;
    opened_total_++;
    lock.unlock();
    connector_->close(handle);
    lock.lock();
    bool release = leave_and_check_release();
    lock.unlock();
    if (release) delete this;
    throw error(POOL_ECLOSED, "pool was disposed while a connection was being opened");
  }
  lease *l;
  if (free_records_.empty()) {
    records_.push_back(std::make_unique<lease>());
    l = records_.back().get();
    l->owner = this;
  } else {
    l = free_records_.back();
    free_records_.pop_back();
  }
  l->handle = handle;
  l->socket = connector_->socket(handle);
  open_++;
  opened_total_++;
  inside_--;
  return lend(l);
}

void pool::checkin(pool_lease_t *handle) {
  if (!handle) throw error(POOL_EINVAL, "lease is NULL");
  lease *l = checked_out_lease(handle);
  if (!l) throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  if (l->generation != fork_guard::generation()) return drop_inherited(l);
  uint64_t state = l->state.load(std::memory_order_acquire);
  // Two racing checkins of one lease: only one clears the out bit.
  if (!l->state.compare_exchange_strong(state, state & ~uint64_t(1), std::memory_order_acq_rel))
    throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  pool *p = l->owner;
  bool reusable = !l->invalidated && !p->opts_.null_pool &&
                  p->connector_->reset(l->handle, p->opts_.reset);
  p->give_back(l, reusable);
}

// A lease lent before a fork, checked in by the child: it never reaches the pool again.
void pool::drop_inherited(lease *l) {
  pool *p = l->owner;
  std::unique_lock<std::mutex> lock(p->mu_);
  p->sync_with_process();  // counts this lease among the inherited ones if not done yet
  uint64_t state = l->state.load(std::memory_order_acquire);
  if (!(state & 1) ||
      !l->state.compare_exchange_strong(state, state & ~uint64_t(1), std::memory_order_acq_rel))
    throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  p->connector_->discard_inherited(l->handle);  // no network I/O: see adopt_child()
  l->handle = nullptr;
  p->free_records_.push_back(l);
  p->inherited_out_--;
  bool release = p->releasable();
  lock.unlock();
  if (release) delete p;
}

void pool::give_back(lease *l, bool reusable) {
  std::unique_lock<std::mutex> lock(mu_);
  checked_out_--;
  if (reusable && !closed_) {
    if (waiters_head_) {  // direct hand-off to the longest waiter
      waiter *w = waiters_head_;
      unlink(w);
      lend(l);
      w->handed = l;
      w->cv.notify_one();
      return;
    }
    // SQLAlchemy's rule: keep it while fewer than pool_size wait idle. Overflow connections
    // survive a burst (no close-and-reopen churn while demand lasts), and the pool shrinks
    // back to pool_size as the burst's connections come home.
    if (int64_t(idle_.size()) < opts_.pool_size) {
      idle_.push_back(l);
      return;
    }
  }
  // Broken, invalidated, beyond pool_size idle, or the pool is closing: close it.
  void *handle = l->handle;
  l->handle = nullptr;
  free_records_.push_back(l);
  open_--;
  closed_total_++;
  grant_slot_to_next_waiter();
  inside_++;
  lock.unlock();
  connector_->close(handle);
  lock.lock();
  bool release = leave_and_check_release();
  lock.unlock();
  if (release) delete this;
}

void pool::invalidate(pool_lease_t *handle) {
  if (!handle) throw error(POOL_EINVAL, "lease is NULL");
  lease *l = checked_out_lease(handle);
  if (!l) throw error(POOL_ESTATE, "lease is not checked out");
  if (l->generation != fork_guard::generation())
    throw error(POOL_EFORKED, "the lease was checked out before fork: its connection belongs to "
                              "the parent process; check it in to drop it");
  l->invalidated = true;
}

void *pool::native(const pool_lease_t *handle) noexcept {
  lease *l = checked_out_lease(handle);
  return l && l->generation == fork_guard::generation() ? l->handle : nullptr;
}

int pool::dispose() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) throw error(POOL_ECLOSED, "pool is already disposed");
  sync_with_process();
  closed_ = true;
  while (waiters_head_) {
    waiter *w = waiters_head_;
    unlink(w);
    w->closed = true;
    w->cv.notify_one();
  }
  std::deque<lease *> to_close;
  to_close.swap(idle_);
  for (lease *l : to_close) free_records_.push_back(l);
  open_ -= int64_t(to_close.size());
  closed_total_ += int64_t(to_close.size());
  int64_t leases_out = checked_out_ + inherited_out_;
  int64_t inherited_out = inherited_out_;
  inside_++;
  lock.unlock();
  for (lease *l : to_close) connector_->close(l->handle);
  lock.lock();
  bool release = leave_and_check_release();
  lock.unlock();
  if (release) {
    delete this;
    return POOL_OK;
  }
  if (leases_out == 0) return POOL_OK;  // a waking waiter releases it
  return set_errorf(POOL_EBUSY,
                    "pool disposed with %lld lease(s) still out (%lld of them inherited across "
                    "fork); it is released when the last one is checked in",
                    (long long)leases_out, (long long)inherited_out);
}

void pool::stats(pool_stats_t *out) {
  pool_stats_t s{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    sync_with_process();
    s.pool_size = opts_.pool_size;
    s.max_overflow = opts_.max_overflow;
    s.checked_out = checked_out_;
    s.idle = int64_t(idle_.size());
    s.opening = opening_;
    int64_t beyond = open_ + opening_ - opts_.pool_size;
    s.overflow = beyond > 0 ? beyond : 0;
    s.waiting = waiting_;
    s.opened_total = opened_total_;
    s.closed_total = closed_total_;
    s.connect_failures_total = connect_failures_total_;
    s.checkouts_total = checkouts_total_;
    s.timeouts_total = timeouts_total_;
    s.wait_total_us = wait_total_us_;
    s.wait_max_us = wait_max_us_;
    s.inherited_total = inherited_total_;
  }
  size_t n = size_t(out->size) < sizeof s ? size_t(out->size) : sizeof s;
  s.size = int64_t(n);
  std::memcpy(out, &s, n);
}

}  // namespace connpool
