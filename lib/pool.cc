// The pool core: records, checkin, retiring and closing connections, dispose, reset. Its
// other rooms: checkout.cc (checkout), wait_queue.* (waiters and the fairness rule),
// pool_fork.cc (the child's side of fork), pool_stats.cc (counters), maintenance.cc
// (background work).
#include "pool.hh"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include <time.h>
#include <unistd.h>

#include "error.hh"
#include "fork.hh"

namespace connpool {

void copy_tag(char (&dst)[lease::tag_size], const char *tag) {
  size_t n = tag ? strnlen(tag, sizeof dst) : 0;
  if (n == sizeof dst) {
    n = sizeof dst - 1;
    while (n > 0 && (static_cast<unsigned char>(tag[n]) & 0xC0) == 0x80) n--;
  }
  std::memcpy(dst, tag ? tag : "", n);
  dst[n] = '\0';
}

namespace {

uint64_t next_pool_id() noexcept {
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

clock::time_point coarse_now() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return clock::time_point(std::chrono::duration_cast<clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

pool::pool(std::unique_ptr<connector> conn, const options &opts)
    : opts_(opts),
      connector_(std::move(conn)),
      parking_(opts.use_lifo && !opts.null_pool && !opts.needs_maintenance()),
      id_(next_pool_id()),
      handoff_after_(std::chrono::duration_cast<clock::duration>(
          std::chrono::duration<double>(opts.handoff_after_s))),
      jitter_rng_(uint32_t(reinterpret_cast<uintptr_t>(this) ^
                           uint64_t(clock::now().time_since_epoch().count()))) {
  hooks_.size = sizeof hooks_;
  connector_->set_log(&pool::log_from_connector, this);
  fork_guard::enrol(this);  // first: it installs the fork tracking generation() reads
  generation_ = fork_guard::generation();
}

pool::~pool() {
  // Only inherited connections can be left here (everything else is closed before the
  // release): those lent before a fork to threads that do not exist in this child. They are
  // leaked, never discarded: their holder may have been inside a driver call on them at the
  // fork (mid-query, mid-TLS record), a state no driver call can be trusted with. About 37 KB
  // each, 107 KB with TLS (fork-safety.md, section 3).
  fork_guard::withdraw(this);
  magic_ = 0;
}

// The record's slot at the serial of its current checkout (lend() set it).
pool_lease_t *pool::encode(lease *l) noexcept {
  return reinterpret_cast<pool_lease_t *>(l->slot.handle());
}

pool *pool::of_handle(const pool_t *handle) noexcept {
  return static_cast<pool *>(
      handle_table::lookup(handle_table::kind::pool, reinterpret_cast<uintptr_t>(handle)));
}

// The slot says whether the handle's checkout is the one out now; only then is the record,
// which a checked-out lease keeps alive with its pool, read.
lease *pool::checked_out_lease(const pool_lease_t *handle) noexcept {
  auto *l = static_cast<lease *>(
      handle_table::lookup(handle_table::kind::lease, reinterpret_cast<uintptr_t>(handle)));
  return l && l->magic == lease::live_magic ? l : nullptr;
}

lease *pool::lease_of(const pool_lease_t *handle) {
  if (!handle) throw error(POOL_EINVAL, "lease is NULL");
  lease *l = checked_out_lease(handle);
  if (!l) throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  return l;
}

bool pool::has_capacity() const {
  if (opts_.null_pool || opts_.max_overflow < 0) return true;
  return open_ + opening_ < int64_t(opts_.pool_size) + opts_.max_overflow;
}

void pool::lend(lease *l, const char *tag, pid_t thread, pthread_t holder,
                clock::time_point now) {
  uint64_t serial = (l->state.load(std::memory_order_relaxed) >> 1) + 1;
  l->invalidated = false;
  l->scoped = false;
  l->ran_queries = false;
  l->abandoned = false;
  l->leak_reported = false;
  l->generation = generation_;
  l->lent_at.store(now, std::memory_order_relaxed);
  l->thread = thread;  // 0 unless leak_threshold: only leak reports name it
  l->holder = holder;
  copy_tag(l->tag, tag);
  l->state.store(serial << 1 | 1, std::memory_order_release);
  checked_out_++;
  checkouts_total_++;
}

// The kernel's id of the calling thread (what ps, top and gdb show), cached per thread and
// per process generation: a forked child's thread has a new one.
pid_t pool::current_thread() const noexcept {
  thread_local pid_t tid = 0;
  thread_local uint64_t tid_generation = 0;
  if (tid_generation != generation_) {
    tid = gettid();
    tid_generation = generation_;
  }
  return tid;
}

// A slot is rare news (a connection closed, a connect failed): posted under the lock.
void pool::grant_slot_to_next_waiter() {
  if (waiters_.empty() || !has_capacity()) return;
  waiter *w = waiters_.front();
  waiters_.unlink(w);
  w->may_open = true;
  opening_++;
  wait_queue::post_now(w);
}

void pool::hand_over(lease *l, waiter *w, clock::time_point now, bool will_post) {
  waiters_.unlink(w);
  lend(l, w->tag, w->thread, w->self, coarse_now());
  record_wait(std::chrono::duration_cast<std::chrono::microseconds>(now - w->since).count());
  inside_--;  // the waiter's: from here its lease keeps the pool alive
  if (will_post) wait_queue::owe(w);  // counted before `handed` tells the waiter to look
  w->handed.store(l, std::memory_order_release);
}

waiter *pool::head_to_watch() {
  if (idle_.empty() || waiters_.empty()) return nullptr;
  waiter *head = waiters_.front();
  if (head->woken || (head->watching && idle_.size() < 2)) return nullptr;
  head->woken = true;
  wait_queue::owe(head);
  return head;
}

bool pool::releasable() const {
  return closed_ && inside_ == 0 && checked_out_ == 0 && inherited_out_ == 0;
}

bool pool::leave_and_check_release() {
  inside_--;
  return releasable();
}

void pool::release_if(lock_t &lock, bool release) {
  lock.unlock();
  if (release) delete this;
}

// ---------------------------------------------------------------- connections leaving

void pool::retire_record(lease *l, close_reason why, handles &to_close) {
  to_close.push_back(l->handle);
  l->handle = nullptr;
  free_records_.push_back(l);
  open_--;
  closed_total_++;
  switch (why) {
    case close_reason::dead: dead_total_++; break;
    case close_reason::invalidated: invalidated_total_++; break;
    case close_reason::recycled: recycled_total_++; break;
    case close_reason::retired: reset_closed_total_++; break;
    case close_reason::idle_timeout: idle_closed_total_++; break;
    case close_reason::none:
    case close_reason::other: break;
  }
  grant_slot_to_next_waiter();
  if (int64_t(idle_.size()) < opts_.min_idle) wake_maintenance();
}

void pool::retire_below(uint64_t seq, handles &to_close) {
  if (seq <= retired_below_) return;
  retired_below_ = seq;  // before the collect: a lease parked from here on is seen retired
  collect_parked();
  std::deque<lease *> keep;
  for (lease *l : idle_) {
    if (l->seq < seq) retire_record(l, close_reason::retired, to_close);
    else keep.push_back(l);
  }
  idle_.swap(keep);
  if (int64_t(idle_.size()) < opts_.min_idle) wake_maintenance();
}

void pool::close_now(void *handle) noexcept {
  if (hooks_.on_close) hooks_.on_close(connector_->native(handle), hooks_.user_data);
  connector_->close(handle);
}

void pool::close_unlocked(lock_t &lock, handles &to_close) {
  if (!to_close.empty()) outside_lock(lock, to_close, [] {});
}

void pool::give_back(lease *l, close_reason why, bool was_out, bool retry) {
  handles to_close;
  lock_t lock(mu_);
  if (was_out) checked_out_--;
  if (retry) {  // the checkout goes on with another connection: this one was no checkout
    checkouts_total_--;
    inside_++;
  }
  clock::time_point now = coarse_now();
  bool late = was_out && l->leak_reported;
  double held_s = 0;
  char tag[lease::tag_size];
  if (late) {
    held_s = std::chrono::duration<double>(now - l->lent_at.load(std::memory_order_relaxed))
                 .count();
    std::memcpy(tag, l->tag, sizeof tag);
  }

  if (why == close_reason::none) why = reuse_verdict(l, now);
  uint64_t retired_before = retired_below_;
  size_t retired = 0;
  if (why == close_reason::dead) {
    // A server that dropped this connection has usually dropped every older one too.
    retire_below(l->seq + 1, to_close);
    if (retired_below_ != retired_before) resets_total_++;
    retired = to_close.size();
  }
  waiter *to_wake = nullptr;  // posted once the lock is released
  if (why == close_reason::none) {
    l->idle_since = now;
    if (open_ > opts_.pool_size) collect_parked();  // the rule below counts every idle one
    if (!waiters_.empty()) {
      clock::time_point precise = clock::now();
      if (handoff_due(precise)) {  // straight to the longest waiter
        to_wake = waiters_.front();
        hand_over(l, to_wake, precise, true);
        // Connections left idle for the old head (a race between a checkin and the head's
        // timer): the new head must watch them.
        if (waiter *next = head_to_watch()) wait_queue::post(next);
      } else {
        // Not yet its turn to be served first: the connection is idle for whoever comes
        // first, this thread again most likely; the head looks itself when it comes due.
        idle_.push_back(l);
        to_wake = head_to_watch();
      }
    } else if (int64_t(idle_.size()) < opts_.pool_size) {
      // SQLAlchemy's rule: keep it while fewer than pool_size wait idle. Overflow
      // connections survive a burst (no close-and-reopen churn while demand lasts), and the
      // pool shrinks back to pool_size as the burst's connections come home.
      idle_.push_back(l);
      if (ready_waiters_) ready_cv_.notify_all();
      if (l->expires < maint_due_) wake_maintenance();  // it closes expired idle ones
    } else {
      why = close_reason::other;
    }
  }
  if (why != close_reason::none) retire_record(l, why, to_close);
  // Logged before this thread leaves: once it no longer counts, another thread's checkin may
  // release the pool, hooks_ with it (issue 14).
  bool say_late = late && logs(POOL_LOG_WARN);
  bool say_dead = why == close_reason::dead && logs(POOL_LOG_WARN);
  if (!to_close.empty() || say_late || say_dead)
    outside_lock(lock, to_close, [&] {
      if (say_late)
        log(POOL_LOG_WARN, "lease '%s' checked in after %.2f s (it was reported as a leak)",
            tag[0] ? tag : "(untagged)", held_s);
      if (say_dead)
        log(POOL_LOG_WARN,
            "a connection was found dead; %zu idle connection(s) opened before it closed too, "
            "and the checked-out ones will be at checkin",
            retired);
    });
  bool release = !retry && releasable();
  lock.unlock();
  if (to_wake) wait_queue::post(to_wake);
  if (release) delete this;
}

// ---------------------------------------------------------------- checkin and friends

void pool::checkin(pool_lease_t *handle, bool allow_scoped) {
  lease *l = lease_of(handle);
  if (l->generation != fork_guard::generation()) return drop_inherited(l);
  if (l->scoped && !allow_scoped)
    throw error(POOL_ESTATE,
                "lease is scoped to its thread: give it back with pool_scope_release()");
  if (l->streaming)
    throw error(POOL_ESTATE, "a stream is open on this lease: close it (pool_stream_close) "
                             "before the checkin");
  for (int use = l->async.load(std::memory_order_acquire); use != lease::no_request;) {
    if (use == lease::request_running)
      throw error(POOL_ESTATE, "a request is running on this lease (pool_query_start): take "
                               "its result or cancel it before the checkin");
    if (use == lease::checkin_deferred)
      throw error(POOL_ESTATE, "lease is not checked out (checked in twice)");
    // Cancelled, still ending on the server: checked in by its I/O thread when it has.
    if (l->async.compare_exchange_strong(use, lease::checkin_deferred, std::memory_order_acq_rel))
      return;
  }
  uint64_t state = l->state.load(std::memory_order_acquire);
  // Two racing checkins of one lease: only one clears the out bit.
  if (!l->state.compare_exchange_strong(state, state & ~uint64_t(1), std::memory_order_acq_rel))
    throw error(POOL_ESTATE, "lease is not checked out (checked in twice, or not a lease)");
  pool *p = l->owner;
  const pool_hooks_t &hooks = p->hooks_;
  bool hook_refuses = hooks.on_checkin && hooks.on_checkin(l->native, hooks.user_data) != 0;
  close_reason why = close_reason::none;
  clock::time_point now = coarse_now();
  if (l->invalidated || hook_refuses) why = close_reason::invalidated;
  else if (p->opts_.null_pool) why = close_reason::other;
  else if (!p->connector_->reset(l->handle, p->opts_.reset, l->ran_queries,
                                 now == l->lent_at.load(std::memory_order_relaxed),
                                 seconds(p->opts_.ping_timeout_s)))
    why = close_reason::dead;
  if (why == close_reason::none && p->park(l, now)) return;  // parked.cc: no lock
  p->give_back(l, why, true);
}

void pool::invalidate(pool_lease_t *handle) {
  lease *l = idle_lease(handle);
  if (l->generation != fork_guard::generation())
    throw error(POOL_EFORKED, "the lease was checked out before fork: its connection belongs to "
                              "the parent process; check it in to drop it");
  l->invalidated = true;
}

void pool::mark_scoped(pool_lease_t *handle) { lease_of(handle)->scoped = true; }

void pool::report_error(pool_lease_t *handle, const char *sqlstate) {
  if (!sqlstate || std::strlen(sqlstate) != 5)
    throw error(POOL_EINVAL, "sqlstate must be a five-character SQLSTATE code");
  lease *l = lease_of(handle);
  if (l->generation != fork_guard::generation())
    throw error(POOL_EFORKED, "the lease was checked out before fork");
  if (!means_server_gone(sqlstate)) return;
  l->invalidated = true;
  pool *p = l->owner;
  handles to_close;
  lock_t lock(p->mu_);
  uint64_t before = p->retired_below_;
  p->retire_below(p->next_seq_, to_close);
  if (p->retired_below_ != before) p->resets_total_++;
  size_t closed = to_close.size();
  p->close_unlocked(lock, to_close);  // the caller's lease keeps the pool alive
  lock.unlock();
  p->log(POOL_LOG_WARN,
         "SQLSTATE %s: the server went away or changed role; retiring every connection "
         "opened before now (%zu idle closed)",
         sqlstate, closed);
}

void *pool::native(const pool_lease_t *handle) noexcept {
  lease *l = checked_out_lease(handle);
  return l && l->generation == fork_guard::generation() ? l->native : nullptr;
}

// ---------------------------------------------------------------- pool-wide operations

void pool::reset() {
  handles to_close;
  lock_t lock(mu_);
  bool unlocked = sync_with_process(lock);
  if (closed_) {
    if (unlocked) release_if(lock, releasable());  // disposed meanwhile: the last one inside
    throw error(POOL_ECLOSED, "pool is disposed");
  }
  retire_below(next_seq_, to_close);
  resets_total_++;
  size_t closed = to_close.size();
  if (!to_close.empty() || logs(POOL_LOG_INFO))  // logged while still counted inside
    outside_lock(lock, to_close, [&] {
      log(POOL_LOG_INFO, "pool_reset: %zu idle connection(s) closed; checked-out ones close at "
                         "checkin", closed);
    });
  bool release = releasable();  // disposed while the closes ran
  lock.unlock();
  if (release) delete this;
}

void pool::set_hooks(const pool_hooks_t *hooks) {
  lock_t lock(mu_);
  if (started_)
    throw error(POOL_ESTATE, "hooks can only be set before the pool's first checkout");
  pool_hooks_t h{};
  if (hooks) {
    if (hooks->size < int64_t(sizeof hooks->size) + int64_t(sizeof(void *)))
      throw error(POOL_EINVAL, "hooks->size is not set to sizeof(pool_hooks_t)");
    std::memcpy(&h, hooks, std::min(size_t(hooks->size), sizeof h));
  }
  h.size = sizeof h;
  hooks_ = h;
}

void pool::log(int level, const char *format, ...) const noexcept {
  if (!logs(level)) return;
  char message[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(message, sizeof message, format, ap);
  va_end(ap);
  hooks_.log(level, message, hooks_.user_data);
}

void pool::log_from_connector(void *self, int level, const char *message) noexcept {
  static_cast<const pool *>(self)->log(level, "%s", message);
}

int pool::dispose() {
  handles to_close;
  lock_t lock(mu_);
  bool unlocked = sync_with_process(lock);
  if (closed_) {
    if (unlocked) release_if(lock, releasable());  // disposed meanwhile: the last one inside
    throw error(POOL_ECLOSED, "pool is already disposed");
  }
  closed_ = true;  // before the collect: nothing is parked from here on
  collect_parked();
  while (!waiters_.empty()) {
    waiter *w = waiters_.front();
    waiters_.unlink(w);
    w->closed = true;
    wait_queue::post_now(w);
  }
  ready_cv_.notify_all();
  while (!idle_.empty()) {
    lease *l = idle_.front();
    idle_.pop_front();
    retire_record(l, close_reason::other, to_close);
  }
  inside_++;  // this call, until it has closed everything
  stop_maintenance(lock);
  int64_t leases_out = checked_out_ + inherited_out_;
  int64_t inherited_out = inherited_out_;
  close_unlocked(lock, to_close);
  bool release = leave_and_check_release();
  release_if(lock, release);
  if (release || leases_out == 0) return POOL_OK;  // else a leaving thread releases it
  return set_errorf(POOL_EBUSY,
                    "pool disposed with %lld lease(s) still out (%lld of them inherited across "
                    "fork); it is released when the last one is checked in",
                    (long long)leases_out, (long long)inherited_out);
}

}  // namespace connpool
