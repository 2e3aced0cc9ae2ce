// The maintenance thread: one per pool that needs it (min_idle, idle_timeout,
// leak_threshold). It sleeps until the next thing is due or it is woken, decides under the
// lock, and does its I/O (connects, closes, log calls) without it. It counts in inside_ for
// its whole life, so the pool cannot be released under it; pool_dispose() stops and joins
// it, except during a refill connect, which may wait on the network for up to pool_timeout:
// dispose never blocks on the network, so it detaches the thread, which finishes the
// connect, closes that connection, and releases the pool if it is the last one inside. In a forked child it does not exist: adopt_child() forgets it and the child's next
// checkout starts a new one.
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "error.hh"
#include "pool.hh"

namespace connpool {

int pool::start_maintenance() {
  // Signals are for the program's threads, never ours: block them all in the new thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&maint_thread_, nullptr, maintenance_main, this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) return rc;
  maint_running_ = true;
  maint_stop_ = false;
  inside_++;
  return 0;
}

void *pool::maintenance_main(void *self) {
  static_cast<pool *>(self)->maintain();
  return nullptr;
}

void pool::wake_maintenance() {
  if (maint_running_ && !maint_kicked_) {
    maint_kicked_ = true;
    maint_cv_.notify_one();
  }
}

void pool::stop_maintenance(lock_t &lock) {
  if (!maint_running_) return;
  maint_running_ = false;
  maint_stop_ = true;
  maint_cv_.notify_one();
  pthread_t thread = maint_thread_;
  // Dispose from a hook it runs, or while it waits for a connect: it ends once that returns,
  // and releases the pool if it leaves last.
  if (pthread_equal(thread, pthread_self()) || maint_connecting_) {
    pthread_detach(thread);
    return;
  }
  lock.unlock();
  pthread_join(thread, nullptr);
  lock.lock();
}

void pool::maintain() {
  lock_t lock(mu_);
  while (!maint_stop_) {
    maint_kicked_ = false;
    maint_due_ = clock::time_point::min();  // busy: a kick now is not needed
    close_hung_up_idle(lock);
    maint_due_ = maintenance_pass(lock);
    if (maint_stop_ || maint_kicked_) continue;
    maint_cv_.wait_until(lock, maint_due_, [this] { return maint_stop_ || maint_kicked_; });
  }
  release_if(lock, leave_and_check_release());
}

// Idle connections whose server hung up (a killed backend, a restart) are closed, so that
// min_idle counts only live ones. A zero-timeout poll of their sockets, outside the lock:
// connections taken meanwhile are left to their checkout's own checks.
void pool::close_hung_up_idle(lock_t &lock) {
  struct probe {
    lease *l;
    uint64_t seq;
  };
  std::vector<probe> probes;
  std::vector<struct pollfd> fds;
  for (lease *l : idle_) {
    int fd = connector_->socket(l->handle);  // asked now: a holder may have reconnected it
    if (fd < 0) continue;
    probes.push_back({l, l->seq});
    fds.push_back({fd, POLLRDHUP, 0});
  }
  if (fds.empty()) return;
  lock.unlock();
  int ready = poll(fds.data(), fds.size(), 0);
  lock.lock();
  if (ready <= 0) return;
  handles to_close;
  for (size_t i = 0; i < fds.size(); i++) {
    if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) continue;
    auto it = std::find(idle_.begin(), idle_.end(), probes[i].l);
    if (it == idle_.end() || probes[i].l->seq != probes[i].seq) continue;  // lent meanwhile
    idle_.erase(it);
    retire_record(probes[i].l, close_reason::dead, to_close);
  }
  if (to_close.empty()) return;
  size_t n = to_close.size();
  lock.unlock();
  for (void *handle : to_close) close_now(handle);
  log(POOL_LOG_WARN, "maintenance closed %zu idle connection(s) the server hung up", n);
  lock.lock();
}

// One round: report leaks, close expired and idle-too-long connections, open one connection
// toward min_idle. Returns when the next round is due.
clock::time_point pool::maintenance_pass(lock_t &lock) {
  clock::time_point now = clock::now();
  clock::time_point due = clock::time_point::max();
  auto due_at = [&due](clock::time_point t) { due = std::min(due, t); };
  handles to_close;
  std::vector<std::string> leaks;

  if (opts_.leak_threshold_s > 0) {
    clock::duration threshold = seconds(opts_.leak_threshold_s);
    due_at(now + threshold);  // a lease lent after this round is due no earlier
    for (const std::unique_ptr<lease> &l : records_) {
      if (!(l->state.load(std::memory_order_relaxed) & 1) || l->generation != generation_ ||
          l->leak_reported)
        continue;
      clock::time_point lent_at = l->lent_at.load(std::memory_order_relaxed);
      if (now - lent_at < threshold) {
        due_at(lent_at + threshold);
        continue;
      }
      l->leak_reported = true;
      leaks_total_++;
      char message[lease::tag_size + 160];
      std::snprintf(message, sizeof message,
                    "possible leak: lease '%s' held for %.2f s (leak_threshold %.2f s) by "
                    "thread %d",
                    l->tag[0] ? l->tag : "(untagged)",
                    std::chrono::duration<double>(now - lent_at).count(),
                    opts_.leak_threshold_s, int(l->thread));
      leaks.emplace_back(message);
    }
  }

  // Expired or retired idle connections.
  std::deque<lease *> keep;
  for (lease *l : idle_) {
    if (close_reason why = expiry(l, now); why != close_reason::none) {
      retire_record(l, why, to_close);
    } else {
      keep.push_back(l);
      if (l->expires != clock::time_point::max()) due_at(l->expires);
    }
  }
  idle_.swap(keep);

  // Idle too long, beyond min_idle: the front is the longest idle.
  if (opts_.idle_timeout_s > 0) {
    clock::duration timeout = seconds(opts_.idle_timeout_s);
    due_at(now + timeout);  // connections returned after this round
    while (int64_t(idle_.size()) > opts_.min_idle && now - idle_.front()->idle_since >= timeout) {
      lease *l = idle_.front();
      idle_.pop_front();
      retire_record(l, close_reason::idle_timeout, to_close);
    }
    if (int64_t(idle_.size()) > opts_.min_idle) due_at(idle_.front()->idle_since + timeout);
  }

  // Toward min_idle, by one connection per round; never beyond pool_size on its own, never
  // while a checkout waits (it opens its own), and within the fail-fast rules.
  // Never once stopping: a dispose that came while the lock was released (close_hung_up_idle)
  // saw no connect in progress and waits to join.
  bool refill = !maint_stop_ && int64_t(idle_.size()) < opts_.min_idle &&
                open_ + opening_ < opts_.pool_size && has_capacity() && waiters_.empty();
  if (refill && !may_connect(now)) {
    refill = false;  // the retry's end wakes us, or the window's
    if (!probe_in_flight_) due_at(fail_fast_until_);
  }
  if (refill) {
    opening_++;
    maint_connecting_ = true;
  }
  // Wake up at least once a second while short of min_idle, in case nothing else does (a
  // refill blocked by waiters or capacity, a failed connect without fail-fast); at least
  // hourly anyway, well inside the clock's range.
  if (int64_t(idle_.size()) < opts_.min_idle) due_at(now + std::chrono::seconds(1));
  // min_idle promises live connections: look at their sockets every few seconds.
  if (opts_.min_idle > 0) due_at(now + std::chrono::seconds(2));
  due_at(now + std::chrono::hours(1));
  lock.unlock();

  for (void *handle : to_close) close_now(handle);
  if (!to_close.empty() && logs(POOL_LOG_INFO))
    log(POOL_LOG_INFO, "maintenance closed %zu connection(s) (expired or idle)", to_close.size());
  for (const std::string &message : leaks) log(POOL_LOG_WARN, "%s", message.c_str());
  bool opened = false;
  if (refill) {
    try {
      // pool_timeout=0 means "never wait for another thread's connection", not "connect in
      // no time": the same bound as a checkout's own connect.
      lease *l = open_connection(clock::now() + seconds(opts_.io_bound_s()));
      give_back(l, close_reason::none, false);
      opened = true;
    } catch (...) {
      // Counted and logged by open_connection; the fail-fast window paces the retries.
    }
  }
  lock.lock();
  maint_connecting_ = false;
  return opened ? clock::now() : due;
}

void pool::wait_ready(int64_t timeout_ms) {
  lock_t lock(mu_);
  bool unlocked = sync_with_process(lock);
  if (closed_) {
    if (unlocked) release_if(lock, releasable());  // disposed meanwhile: the last one inside
    throw error(POOL_ECLOSED, "pool is disposed");
  }
  started_ = true;
  if (!maint_running_ && opts_.needs_maintenance()) {
    int rc = start_maintenance();  // min_idle is opened by it: no point waiting without it
    if (rc != 0)
      throw error(POOL_ERROR, std::string("could not start the pool's maintenance thread: ") +
                                  std::strerror(rc));
  }
  double timeout_s = timeout_ms < 0 ? opts_.pool_timeout_s : double(timeout_ms) / 1000.0;
  clock::time_point deadline = clock::now() + seconds(std::min(timeout_s, 1e8));
  inside_++;
  ready_waiters_++;
  while (!closed_ && int64_t(idle_.size()) < opts_.min_idle &&
         ready_cv_.wait_until(lock, deadline) != std::cv_status::timeout) {
  }
  ready_waiters_--;
  bool ready = int64_t(idle_.size()) >= opts_.min_idle;
  if (closed_) {
    release_if(lock, leave_and_check_release());
    throw error(POOL_ECLOSED, "pool was disposed while waiting for it to be ready");
  }
  inside_--;
  if (ready) return;
  char head[160];
  std::snprintf(head, sizeof head, "%lld of min_idle %d connections ready after %.2f s",
                (long long)idle_.size(), opts_.min_idle, timeout_s);
  throw error(POOL_ETIMEDOUT, std::string(head) +
                                  (last_connect_error_.empty() ? "" : "; last connect error: ") +
                                  last_connect_error_);
}

}  // namespace connpool
