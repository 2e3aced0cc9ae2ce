// The asynchronous checkout: the blocking checkout's rules (checkout.cc), in steps that never
// block the caller. A request that must wait joins the pool's one queue as a waiter like any
// blocking checkout; where a blocking waiter's thread would wake up and look, the dispatcher
// runs the request's turn (async_runtime.hh); a connect, a pre-ping and the on_checkout hook
// run on an I/O thread.
//
// Cancellation loses nothing: a cancelled request that was handed a connection, or whose
// connect or checks were under way, gives the connection back to the pool (to the next
// waiter) instead of closing it; one that was granted a slot to open a connection passes the
// slot on.
#include <cstdio>

#include "async_requests.hh"
#include "error.hh"

namespace connpool {

namespace {

// Every post owed to w has landed (wait_queue.hh): the request's memory may go.
void settle(waiter &w) { w.signal.wait_for_count(w.owed.load(std::memory_order_relaxed)); }

}  // namespace

checkout_request::checkout_request(pool *p, double timeout, double io, const char *t)
    : request(kind::checkout),
      owner(p),
      timeout_s(timeout),
      io_s(io),
      deadline(clock::now() + seconds(io)) {
  copy_tag(tag, t);
  w.async = this;
}

void checkout_request::step() {
  if (phase.load(std::memory_order_acquire) == waiting) owner->async_turn(*this);
}

request *pool::checkout_start(int64_t timeout_ms, const char *tag) {
  async_runtime_api::prepare();
  double timeout_s = checkout_timeout_s(timeout_ms);
  double io_s = timeout_s > 0 ? timeout_s : opts_.io_bound_s();
  auto *r = new checkout_request(this, timeout_s, io_s, tag);
  r->w.thread = holder_thread();  // w.self: this thread, the lease's holder
  async_begin(*r, false);
  return r;
}

void pool::checkout_cancelled(checkout_request &r) noexcept {
  // A waiting request leaves the queue at its next turn, now; one on an I/O thread sees the
  // cancel when its connection is ready, and gives it back.
  async_runtime_api::kick(&r);
}

void pool::close_later(lock_t &lock, handles &to_close) {
  if (to_close.empty()) return;
  inside_++;  // the job's: the pool outlives the closes
  try {
    auto closing = std::make_shared<handles>();
    closing->swap(to_close);
    async_runtime_api::run_blocking([this, closing] {
      for (void *handle : *closing) close_now(handle);
      lock_t relock(mu_);
      release_if(relock, leave_and_check_release());
    });
  } catch (...) {  // no I/O thread: closed here after all
    inside_--;
    close_unlocked(lock, to_close);
  }
}

void pool::async_begin(checkout_request &r, bool retried) {
  handles to_close;
  lock_t lock(mu_);
  if (retried) inside_--;  // counted by give_back() for the retry
  for (;;) {
    sync_with_process(lock);
    if (closed_) {
      release_if(lock, releasable());
      r.complete_with_error(error(POOL_ECLOSED, "pool is disposed"));
      return;
    }
    if (!first_use(lock)) break;
  }
  if (r.cancelled()) return;
  lease *l = nullptr;
  bool open = false;
  try {
    // As acquire(): an idle connection to whoever asks first until the longest waiter comes
    // due; a connect never jumps the queue.
    bool queued = !waiters_.empty();
    if (!queued || (!idle_.empty() && !handoff_due(clock::now()))) {
      if (idle_.empty()) collect_parked();
      clock::time_point now = coarse_now();
      l = idle_.empty() ? nullptr : take_usable_idle(now, to_close);
      if (l) {
        lend(l, r.tag, r.w.thread, r.w.self, now);
      } else if (!queued && has_capacity()) {
        clock::duration first = overflow_wait();
        bool wait_first = first > clock::duration::zero() && seconds(r.timeout_s) > first &&
                          (opts_.max_waiting < 0 || waiters_.size() < opts_.max_waiting);
        if (!wait_first) {
          check_fail_fast();
          opening_++;
          inside_++;
          open = true;
        }
      }
    }
    if (!l && !open) {
      check_may_queue(r.timeout_s);
      enqueue(r.w, r.tag, r.w.thread, r.deadline);
      inside_++;
      r.phase.store(checkout_request::waiting, std::memory_order_release);
    }
  } catch (...) {
    error e = current_error();
    close_later(lock, to_close);
    lock.unlock();
    r.complete_with_error(e);
    return;
  }
  close_later(lock, to_close);
  lock.unlock();
  if (l) async_deliver(r, l, false);
  else if (open) async_open(r);
  else async_runtime_api::kick(&r);  // its first turn, on the dispatcher
}

void pool::async_turn(checkout_request &r) {
  handles to_close;
  waiter &w = r.w;
  lock_t lock(mu_);
  w.watching = w.woken = false;
  bool cancelled = r.cancelled();
  clock::time_point now = clock::now();
  if (!cancelled) {
    clock::time_point wake_at = look_for_connection(w, now, r.deadline, to_close);
    if (!w.done() && now < r.deadline) {
      close_later(lock, to_close);
      async_runtime_api::set_timer(&r, wake_at);
      return;
    }
  }
  // Its wait ends: done, past its deadline, or cancelled (then whatever it was given is
  // passed on).
  async_runtime_api::set_timer(&r, clock::time_point::max());
  r.phase.store(checkout_request::idle, std::memory_order_release);
  wait_end end;
  try {
    end = end_wait(w, r.deadline);
  } catch (...) {  // failing fast; the slot it was granted is passed on
    error e = current_error();
    close_later(lock, to_close);
    inside_--;
    lock.unlock();
    settle(w);
    r.complete_with_error(e);
    return;
  }
  close_later(lock, to_close);
  switch (end) {
    case wait_end::handed: {  // inside_ uncounted by hand_over(): the lease keeps the pool
      lease *l = w.handed.load(std::memory_order_relaxed);
      lock.unlock();
      settle(w);
      async_deliver(r, l, false);
      return;
    }
    case wait_end::open:
      if (cancelled) {  // nobody needs the connection: the slot goes to the next waiter
        opening_--;
        grant_slot_to_next_waiter();
        release_if(lock, leave_and_check_release());
        settle(w);
        return;
      }
      lock.unlock();
      settle(w);
      async_open(r);
      return;
    case wait_end::closed:
      release_if(lock, leave_and_check_release());
      settle(w);
      r.complete_with_error(error(POOL_ECLOSED, "pool was disposed while waiting for a connection"));
      return;
    case wait_end::timed_out:
      break;
  }
  inside_--;  // not closed: no release
  if (cancelled) {
    lock.unlock();
    settle(w);
    return;
  }
  error e = timeout_error(r.timeout_s);
  lock.unlock();
  settle(w);
  r.complete_with_error(e);
}

void pool::async_open(checkout_request &r) {
  r.ref();  // the job's
  try {
    async_runtime_api::run_blocking([this, &r] {
      lease *l = nullptr;
      try {
        l = open_for_checkout(r.deadline, r.tag, r.w.thread, r.w.self);
      } catch (...) {  // counted and the pool left by open_for_checkout()
        r.complete_with_error(current_error());
        r.unref();
        return;
      }
      async_deliver(r, l, true);
      r.unref();
    });
  } catch (...) {
    error e = current_error();
    r.unref();
    lock_t lock(mu_);
    opening_--;
    grant_slot_to_next_waiter();
    release_if(lock, leave_and_check_release());
    r.complete_with_error(e);
  }
}

void pool::async_deliver(checkout_request &r, lease *l, bool on_io_thread) {
  if (r.cancelled()) {  // to the next waiter, or idle
    give_back(l, close_reason::none, true);
    return;
  }
  ping_need need = ping_needed(l);
  if (!on_io_thread && (need == ping_need::ping || hooks_.on_checkout)) {
    r.ref();  // the job's
    try {
      async_runtime_api::run_blocking([this, &r, l, need] {
        async_vet(r, l, need);
        r.unref();
      });
      return;
    } catch (...) {  // no I/O thread: checked here after all
      r.unref();
    }
  }
  async_vet(r, l, need);
}

void pool::async_vet(checkout_request &r, lease *l, ping_need need) {
  close_reason why;
  try {
    why = vet(l, need, r.deadline, r.rejections);
  } catch (...) {
    why = close_reason::invalidated;
  }
  if (why == close_reason::none) {
    if (!r.complete_with_lease(encode(l))) give_back(l, close_reason::none, true);  // cancelled
    return;
  }
  give_back(l, why, true, true);  // counted in inside_ for the next try
  try {
    check_retry(why, r.rejections, r.deadline, r.io_s);
  } catch (const error &e) {
    lock_t lock(mu_);
    inside_--;
    if (e.code() == POOL_ETIMEDOUT) timeouts_total_++;
    release_if(lock, releasable());
    r.complete_with_error(e);
    return;
  }
  async_begin(r, true);
}

}  // namespace connpool
