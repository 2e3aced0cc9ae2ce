// Checkout: find or open a connection under the pool's rules (no barging, FIFO waiters,
// capacity, fail fast), then check it outside the lock (expiry, pre-ping, the on_checkout
// hook) and try again within the same deadline if it does not pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "error.hh"
#include "fork.hh"
#include "pool.hh"

namespace connpool {

namespace {

constexpr int max_hook_rejections = 3;

int64_t micros_between(clock::time_point from, clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

}  // namespace

double pool::checkout_timeout_s(int64_t timeout_ms) const {
  // Capped at about three years, far inside the clock's range.
  double timeout_s = timeout_ms < 0 ? opts_.pool_timeout_s : double(timeout_ms) / 1000.0;
  return std::min(timeout_s, 1e8);
}

pool::ping_need pool::ping_needed(lease *l) noexcept {
  if (l->fresh || !opts_.pre_ping) return ping_need::none;
  // Something unsolicited on an idle connection is never taken as a sign of life.
  liveness seen = connector_->looks_alive(l->handle);
  if (seen == liveness::dead) return ping_need::dead;
  if (seen == liveness::unsure ||
      coarse_now() - l->idle_since >= seconds(opts_.pre_ping_interval_s))
    return ping_need::ping;
  return ping_need::none;
}

close_reason pool::vet(lease *l, ping_need need, clock::time_point deadline, int &rejections) {
  close_reason why = close_reason::none;
  if (need == ping_need::dead) why = close_reason::dead;
  if (need == ping_need::ping) {
    pings_total_.fetch_add(1, std::memory_order_relaxed);
    if (!connector_->ping(l->handle,
                          std::min(deadline, clock::now() + seconds(opts_.ping_timeout_s))))
      why = close_reason::dead;
  }
  l->fresh = false;
  if (why == close_reason::none && hooks_.on_checkout &&
      hooks_.on_checkout(l->native, hooks_.user_data) != 0) {
    why = close_reason::invalidated;
    rejections++;
  }
  return why;
}

void pool::check_retry(close_reason why, int rejections, clock::time_point deadline,
                       double io_s) const {
  // A ping that used up the deadline leaves no time to open another connection: starting
  // one anyway would only fail as a "connect timed out after 0.00 s", count as a connect
  // failure (feeding fail-fast though no connect was refused) and touch the server for
  // nothing.
  if (why == close_reason::dead && clock::now() >= deadline) {
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "no live connection within the timeout: pool_pre_ping found the connection "
                  "dead (no answer before the checkout's deadline, %.2f s) and no time was "
                  "left to open another",
                  io_s);
    throw error(POOL_ETIMEDOUT, msg);
  }
  if (rejections >= max_hook_rejections)
    throw error(POOL_ECONNECT, "the on_checkout hook rejected 3 connections in a row");
}

pool_lease_t *pool::checkout(int64_t timeout_ms, const char *tag) {
  double timeout_s = checkout_timeout_s(timeout_ms);
  // The deadline of this checkout's own I/O: its timeout, or if it may not wait at all,
  // pool_timeout (30 s when that is 0 too).
  double io_s = timeout_s > 0 ? timeout_s : opts_.io_bound_s();
  lazy_deadline deadline(io_s);
  handles to_close;
  int rejections = 0;
  bool inside = false;  // counted in inside_ between tries
  close_reason why = close_reason::none;
  lease *l = take_parked(tag, why);  // this thread's own connection, without the lock
  lock_t lock(mu_, std::defer_lock);
  for (;;) {
    if (!l) {
      l = acquire_locked(lock, timeout_s, deadline, tag, to_close, inside);
      why = close_reason::none;
    }
    if (why == close_reason::none) {
      ping_need need = ping_needed(l);
      why = vet(l, need, need == ping_need::ping ? deadline.get() : clock::time_point{},
                rejections);
    }
    if (why == close_reason::none) return encode(l);
    give_back(l, why, true, true);
    l = nullptr;
    inside = true;
    try {
      check_retry(why, rejections, why == close_reason::dead ? deadline.get() : clock::time_point::max(),
                  io_s);
    } catch (const error &e) {
      // Leaving with an error: this thread no longer counts as inside, so the pool may be
      // freed by release_if(): nothing of it may be touched after.
      lock.lock();
      inside_--;
      if (e.code() == POOL_ETIMEDOUT) timeouts_total_++;
      release_if(lock, releasable());
      throw;
    }
  }
}

// Takes the lock and returns a lease lent to this thread under the pool's rules, with the
// lock released, or throws with it released. inside: this thread is counted in inside_ from
// a previous try (uncounted here).
lease *pool::acquire_locked(lock_t &lock, double timeout_s, lazy_deadline &deadline,
                            const char *tag, handles &to_close, bool &inside) {
  lock.lock();
  for (;;) {
    if (inside) {
      inside_--;
      inside = false;
    }
    sync_with_process(lock);
    if (closed_) {
      release_if(lock, releasable());
      throw error(POOL_ECLOSED, "pool is disposed");
    }
    if (first_use(lock)) continue;  // the lock was released: look again
    return acquire(lock, timeout_s, deadline, tag, to_close);  // returns unlocked
  }
}

bool pool::first_use(lock_t &lock) {
  started_ = true;
  if (maint_running_ || !opts_.needs_maintenance() || coarse_now() < maint_retry_at_)
    return false;
  // A checkout does not need the maintenance thread: without it the pool only loses
  // min_idle, idle_timeout and leak reports until a later checkout (a second on) starts it.
  int rc = start_maintenance();
  if (rc == 0) return false;
  maint_retry_at_ = coarse_now() + std::chrono::seconds(1);
  if (maint_start_warned_) return false;
  maint_start_warned_ = true;
  inside_++;  // logged outside the lock
  lock.unlock();
  log(POOL_LOG_WARN,
      "could not start the pool's maintenance thread (%s): checkouts go on without it "
      "(no min_idle, idle_timeout or leak reports) and retry it at most once a second",
      std::strerror(rc));
  lock.lock();
  inside_--;
  return true;
}

// With mu_ held; returns a lease lent to this thread with mu_ released, or throws with mu_
// released.
lease *pool::acquire(lock_t &lock, double timeout_s, lazy_deadline &deadline, const char *tag,
                     handles &to_close) {
  for (;;) {
    // An idle connection goes to whoever asks first until the longest waiter comes due
    // (wait_queue.hh); a connect never jumps the queue.
    bool queued = !waiters_.empty();
    if (queued && (idle_.empty() || handoff_due(clock::now()))) break;
    if (idle_.empty()) collect_parked();  // (none is parked while anyone waits)
    clock::time_point now = coarse_now();
    lease *l = idle_.empty() ? nullptr : take_usable_idle(now, to_close);
    if (l) lend(l, tag, holder_thread(), pthread_self(), now);
    if (!to_close.empty()) {  // expired idle connections: close them, then look again
      close_unlocked(lock, to_close);
      if (!l && closed_) {
        release_if(lock, releasable());
        throw error(POOL_ECLOSED, "pool is disposed");
      }
    }
    if (l) {
      lock.unlock();
      return l;
    }
    if (!idle_.empty()) continue;  // returned while the closes ran
    if (queued || !has_capacity()) break;
    clock::duration first = overflow_wait();
    if (first > clock::duration::zero() && seconds(timeout_s) > first &&
        (opts_.max_waiting < 0 || waiters_.size() < opts_.max_waiting))
      break;  // waits for a connection to come back first; opens one if none does in time
    check_fail_fast();
    opening_++;
    inside_++;
    lock.unlock();
    return open_for_checkout(deadline.get(), tag, holder_thread(), pthread_self());
  }

  check_may_queue(timeout_s);
  clock::time_point until = deadline.get();  // timeout_s > 0 here: the queue's own deadline

  waiter w;
  enqueue(w, tag, holder_thread(), until);
  inside_++;
  // Leaving: every post owed to w lands before w's memory goes (wait_queue.hh).
  auto settle = [&w] { w.signal.wait_for_count(w.owed.load(std::memory_order_relaxed)); };
  for (;;) {
    clock::time_point now = clock::now();
    clock::time_point wake_at = look_for_connection(w, now, until, to_close);
    if (w.done() || now >= until) break;
    uint32_t seen = w.signal.seen();
    lock.unlock();
    w.signal.wait(seen, wake_at);
    if (lease *l = w.handed.load(std::memory_order_acquire)) {  // lent by hand_over()
      settle();
      // Expired idle connections met on the way: this lease keeps the pool alive.
      for (void *handle : to_close) close_now(handle);
      to_close.clear();
      return l;
    }
    lock.lock();
    w.watching = w.woken = false;  // awake: it looks now, and arms its timer again if it sleeps
  }
  wait_end end;
  try {
    end = end_wait(w, until);
  } catch (...) {  // failing fast: the slot it was granted is passed on
    inside_--;
    lock.unlock();  // not closed: no release
    settle();
    throw;
  }
  switch (end) {
    case wait_end::handed: {  // inside_ uncounted by hand_over()
      lease *l = w.handed.load(std::memory_order_relaxed);
      if (!to_close.empty()) close_unlocked(lock, to_close);
      lock.unlock();
      settle();
      return l;
    }
    case wait_end::open:
      lock.unlock();
      settle();
      return open_for_checkout(until, tag, w.thread, w.self);
    case wait_end::closed:
      release_if(lock, leave_and_check_release());
      settle();
      throw error(POOL_ECLOSED, "pool was disposed while waiting for a connection");
    case wait_end::timed_out:
      break;
  }
  inside_--;
  try {
    throw_timeout(timeout_s);
  } catch (...) {
    lock.unlock();
    settle();
    throw;
  }
}

void pool::enqueue(waiter &w, const char *tag, pid_t thread, clock::time_point until) {
  w.tag = tag;
  w.thread = thread;
  w.since = clock::now();
  // With room for an overflow connection, it opens one if none came back by then (at once
  // if its own deadline comes first).
  clock::duration first = has_capacity() ? overflow_wait() : no_overflow_rule;
  if (first >= clock::duration::zero())
    w.open_at = w.since + first < until ? w.since + first : w.since;
  waiters_.push_back(&w);
  collect_parked();  // after the push, which stops parking (parked.cc)
}

clock::time_point pool::look_for_connection(waiter &w, clock::time_point now,
                                            clock::time_point until, handles &to_close) {
  if (w.done()) return now;
  // Idle connections while waiters wait (a thread took none back, or one came due): served
  // in the queue's order, this waiter when its turn comes. Others are posted under the
  // lock: a rare path.
  while (!idle_.empty() && !waiters_.empty() && (waiters_.front() == &w || handoff_due(now))) {
    lease *l = take_usable_idle(coarse_now(), to_close);
    if (!l) break;
    waiter *first = waiters_.front();
    hand_over(l, first, now, first != &w);
    if (first != &w) wait_queue::post(first);
  }
  // Left idle for a head that is not due (this waiter was served before it): it must
  // watch them. (At the head itself, this waiter took what was idle.)
  if (waiters_.front() != &w)
    if (waiter *next = head_to_watch()) wait_queue::post(next);
  if (!w.done() && now >= w.open_at) {  // nothing came back in time
    w.open_at = clock::time_point::max();  // once: a slot freed later is granted in order
    if (has_capacity()) {
      waiters_.unlink(&w);
      w.may_open = true;
      opening_++;
      if (waiter *next = head_to_watch()) wait_queue::post(next);
    }
  }
  // Asleep until posted, or, at the head of the queue, until it comes due: then it looks
  // at the idle connections itself (no connection stays idle past that while it waits).
  // Only the head needs the timer: it is the oldest, the first to come due.
  clock::time_point due = w.since + handoff_after_;
  w.watching = waiters_.front() == &w && now < due;
  return std::min(w.watching ? std::min(until, due) : until, w.open_at);
}

pool::wait_end pool::end_wait(waiter &w, clock::time_point until) {
  if (w.linked) waiters_.unlink(&w);
  // Leaving with connections idle (it timed out): the next waiter watches them.
  if (waiter *next = head_to_watch()) wait_queue::post(next);
  if (w.handed.load(std::memory_order_relaxed)) return wait_end::handed;
  record_wait(micros_between(w.since, clock::now()));
  if (w.may_open && clock::now() < until) {
    try {
      check_fail_fast();
    } catch (...) {
      opening_--;
      grant_slot_to_next_waiter();  // it fails fast too: nobody waits a connect out
      throw;
    }
    return wait_end::open;
  }
  if (w.may_open) {  // granted just as the deadline passed: pass the slot on
    opening_--;
    grant_slot_to_next_waiter();
  }
  return w.closed || closed_ ? wait_end::closed : wait_end::timed_out;
}

// How long a checkout that could open an overflow connection first waits for one to come
// back: no_overflow_rule (pool_overflow_after=0, SQLAlchemy's rule, opens at once; also while
// the pool fills up to pool_size, and without a limit), or pool_overflow_after, by default
// (auto) three times the pool's mean connect time. A connect costs the server much more than
// a short burst's queries, and far more than its own time when the server is busy: the peer
// bench's seed (300 threads on 5 + 10, 3 SELECT 1 each; a connect takes 17 ms alone, 70 to
// 170 ms in the burst) took 190 ms with every overflow connection opened at once, 50 ms with
// none. A sustained overload still grows the pool, one connection per waiter that waited
// that long.
clock::duration pool::overflow_wait() const {
  if (opts_.overflow_after_s == 0 || opts_.max_overflow < 0 || opts_.null_pool ||
      open_ + opening_ < opts_.pool_size || opened_total_ == 0)
    return no_overflow_rule;
  if (opts_.overflow_after_s > 0) return seconds(opts_.overflow_after_s);
  return std::chrono::microseconds(3 * connect_time_total_us_ / opened_total_);
}

lease *pool::take_usable_idle(clock::time_point now, handles &to_close) {
  while (!idle_.empty()) {
    lease *l = take_idle();
    if (int64_t(idle_.size()) < opts_.min_idle) wake_maintenance();
    close_reason why = expiry(l, now);
    if (why == close_reason::none) return l;
    retire_record(l, why, to_close);
  }
  return nullptr;
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

// Runs with opening_ and inside_ counted for this thread, no lock held.
lease *pool::open_for_checkout(clock::time_point deadline, const char *tag, pid_t thread,
                               pthread_t holder) {
  lease *l;
  try {
    l = open_connection(deadline);
  } catch (...) {
    lock_t lock(mu_);
    release_if(lock, leave_and_check_release());
    throw;
  }
  lock_t lock(mu_);
  inside_--;
  if (closed_) {
    handles to_close;
    retire_record(l, close_reason::other, to_close);
    close_unlocked(lock, to_close);
    release_if(lock, releasable());
    throw error(POOL_ECLOSED, "pool was disposed while a connection was being opened");
  }
  lend(l, tag, thread, holder, coarse_now());
  l->fresh = true;
  return l;
}

// With fail_fast_after connects failed in a row, a new connect is allowed once per back-off
// window (the probe); every other checkout that needs one fails at once with the last error.
bool pool::may_connect(clock::time_point now) {
  if (opts_.fail_fast_after == 0 || failures_in_row_ < opts_.fail_fast_after) return true;
  if (now < fail_fast_until_ || probe_in_flight_) return false;
  probe_in_flight_ = true;  // this connect is the window's one retry
  return true;
}

void pool::check_fail_fast() {
  // Tested here first so that the clock is read only while failing fast.
  if (opts_.fail_fast_after == 0 || failures_in_row_ < opts_.fail_fast_after) return;
  clock::time_point now = clock::now();
  if (may_connect(now)) return;
  fast_fails_total_++;
  char head[160];
  int n = std::snprintf(head, sizeof head,
                        "connect failed (failing fast: %lld connects failed in a row; ",
                        (long long)failures_in_row_);
  if (probe_in_flight_)
    std::snprintf(head + n, sizeof head - size_t(n), "a retry is in progress): ");
  else
    std::snprintf(head + n, sizeof head - size_t(n), "next retry in %.2f s): ",
                  std::chrono::duration<double>(fail_fast_until_ - now).count());
  throw error(POOL_ECONNECT, head + last_connect_error_);
}

std::string pool::longest_holders(clock::time_point now) const {
  std::vector<const lease *> held;
  for (const std::unique_ptr<lease> &l : records_)
    if ((l->state.load(std::memory_order_acquire) & 1) && l->generation == generation_)
      held.push_back(l.get());
  size_t n = std::min<size_t>(held.size(), 3);
  std::partial_sort(held.begin(), held.begin() + long(n), held.end(),
                    [](const lease *a, const lease *b) {
                      return a->lent_at.load(std::memory_order_relaxed) <
                             b->lent_at.load(std::memory_order_relaxed);
                    });
  std::string out;
  for (size_t i = 0; i < n; i++) {
    char item[lease::tag_size + 48];
    std::snprintf(item, sizeof item, "%s'%s' %.2f s", i ? ", " : "; longest held: ",
                  held[i]->tag[0] ? held[i]->tag : "(untagged)",
                  std::chrono::duration<double>(
                      now - held[i]->lent_at.load(std::memory_order_relaxed)).count());
    out += item;
  }
  return out;
}

void pool::check_may_queue(double timeout_s) {
  if (timeout_s <= 0) throw_timeout(timeout_s);
  if (opts_.max_waiting >= 0 && waiters_.size() >= opts_.max_waiting) {
    rejected_total_++;
    throw error(POOL_ETOOMANYWAITERS,
                "max_waiting " + std::to_string(opts_.max_waiting) +
                    " threads are waiting for a connection already; not queued");
  }
}

error pool::timeout_error(double timeout_s) {
  timeouts_total_++;
  lent_and_idle counts = current_counts();
  char msg[256];
  std::snprintf(msg, sizeof msg,
                "QueuePool limit of size %d overflow %d reached, connection timed out, "
                "timeout %.2f (checked out %lld, idle %lld, waiting %lld)",
                opts_.pool_size, opts_.max_overflow, timeout_s, (long long)counts.lent,
                (long long)counts.idle, (long long)waiters_.size());
  return error(POOL_ETIMEDOUT, msg + longest_holders(coarse_now()));
}

// ---------------------------------------------------------------- opening

// No lock held; opening_ counted for this connect (uncounted again here, whatever happens).
// The connect gate is held until the connection is published in records_, so no fork happens
// between the connect and the moment the pool can neutralise the connection in a child.
// Returns the record, open and past on_connect, neither idle nor lent.
lease *pool::open_connection(clock::time_point deadline) {
  clock::time_point start = clock::now();
  lease *l;
  {
    fork_guard::connect_gate gate;
    void *handle;
    try {
      handle = connector_->open(deadline);
    } catch (const error &e) {
      lock_t lock(mu_);
      connect_failed(e);
      lock.unlock();
      log(POOL_LOG_ERROR, "%s", e.what());
      throw;
    } catch (...) {
      lock_t lock(mu_);
      connect_failed(error(POOL_ERROR, "connect failed"));
      throw;
    }
    lock_t lock(mu_);
    if (free_records_.empty()) {
      try {
        auto record = std::make_unique<lease>();
        // free_records_ never holds more than records_: with room for all of them, giving a
        // record back (under the lock, in paths that must not fail) never allocates.
        free_records_.reserve(records_.size() + 1);
        records_.push_back(std::move(record));
      } catch (...) {  // bad_alloc: the connection and its slot must not leak
        opening_--;
        grant_slot_to_next_waiter();
        lock.unlock();
        connector_->close(handle);  // no on_close: on_connect never ran
        throw;
      }
      l = records_.back().get();
      l->owner = this;
    } else {
      l = free_records_.back();
      free_records_.pop_back();
    }
    opening_--;
    open_++;  // counted as open from here: capacity does not change
    l->handle = handle;
    l->native = connector_->native(handle);
    l->invalidated = l->leak_reported = false;
    l->seq = next_seq_++;
    l->expires = clock::time_point::max();
    if (opts_.recycle_s > 0) {
      double jitter = std::uniform_real_distribution<double>(0, opts_.recycle_jitter_s)(jitter_rng_);
      l->expires = coarse_now() + seconds(opts_.recycle_s - jitter);
    }
  }

  if (hooks_.on_connect) {
    char message[256] = "";
    int rc = hooks_.on_connect(l->native, message, sizeof message, hooks_.user_data);
    message[sizeof message - 1] = '\0';
    if (rc != 0) {
      error e(POOL_ECONNECT, std::string("connect failed: the on_connect hook failed: ") +
                                 (message[0] ? message : "(no message)"));
      lock_t lock(mu_);
      void *handle = l->handle;
      l->handle = nullptr;
      free_records_.push_back(l);
      open_--;
      opening_++;  // connect_failed() uncounts it
      connect_failed(e);
      lock.unlock();
      connector_->close(handle);  // no on_close: on_connect never passed
      log(POOL_LOG_ERROR, "%s", e.what());
      throw e;
    }
  }

  int64_t took = micros_between(start, clock::now());
  lock_t lock(mu_);
  opened_total_++;
  connect_time_total_us_ += took;
  connect_time_max_us_ = std::max(connect_time_max_us_, took);
  bool recovered = failures_in_row_ >= std::max(opts_.fail_fast_after, 1);
  int64_t failures = failures_in_row_;
  failures_in_row_ = 0;
  probe_in_flight_ = false;
  lock.unlock();
  if (recovered) log(POOL_LOG_INFO, "connected again after %lld failed connects", (long long)failures);
  log(POOL_LOG_DEBUG, "connection opened in %.3f s", double(took) / 1e6);
  return l;
}

void pool::connect_failed(const error &e) {
  opening_--;
  connect_failures_total_++;
  failures_in_row_++;
  last_connect_error_ = e.what();
  probe_in_flight_ = false;
  int64_t beyond = failures_in_row_ - opts_.fail_fast_after;
  if (opts_.fail_fast_after > 0 && beyond >= 0) {
    double window = std::min(opts_.fail_fast_backoff_max_s, 0.25 * std::ldexp(1.0, int(std::min<int64_t>(beyond, 30))));
    fail_fast_until_ = clock::now() + seconds(window);
    wake_maintenance();  // it retries when the window ends
  }
  grant_slot_to_next_waiter();
}

}  // namespace connpool
