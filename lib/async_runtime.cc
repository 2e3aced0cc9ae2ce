// The dispatcher and the I/O threads of asynchronous requests (async_runtime.hh).
#include "async_runtime.hh"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cstring>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <queue>
#include <vector>

#include "error.hh"
#include "fork.hh"

namespace connpool {

// One process generation's threads and queues. A child makes its own (current()); the copy
// it inherited is never touched again, whatever state a parent's thread left it in.
class async_runtime {
 public:
  explicit async_runtime(uint64_t generation) : generation_(generation) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake-up
    if (epoll_ < 0 || wake_ < 0 || epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
      int e = errno;
      if (epoll_ >= 0) ::close(epoll_);
      if (wake_ >= 0) ::close(wake_);
      throw error(POOL_ENOMEM, std::string("cannot make the dispatcher's epoll: ") +
                                   std::strerror(e));
    }
  }

  static async_runtime &current();

  void kick(dispatched *item) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (item->kicked_) return;
    item->ref();
    push_kick(item);
    start_dispatcher_locked();
    wake_locked();
  }

  void watch(dispatched *item, int fd, bool for_write) {
    std::lock_guard<std::mutex> lock(mu_);
    struct epoll_event ev = {};
    ev.events = uint32_t(EPOLLONESHOT) | uint32_t(EPOLLIN) | (for_write ? uint32_t(EPOLLOUT) : 0u);
    ev.data.ptr = item;
    // A fd seen before stays registered, disabled, after its one shot: re-armed.
    if (epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev) != 0 &&
        (errno != ENOENT || epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0))
      throw error(POOL_ERROR, std::string("cannot watch a connection's socket: ") +
                                  std::strerror(errno));
    if (!item->watched_) {
      item->ref();  // the watch's, until its event is stepped
      watches_++;
      item->watched_ = true;
    }
    start_dispatcher_locked();
  }

  void unwatch(dispatched *item, int fd) noexcept {
    struct epoll_event ev = {};
    bool armed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, &ev);
      armed = item->watched_;
      if (armed) watches_--;
      item->watched_ = false;
    }
    if (armed) item->unref();
  }

  // Dispatcher thread only (steps run there), or a kick's first step.
  void set_timer(dispatched *item, clock::time_point at) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t stamp = ++item->timer_stamp_;
    if (at == clock::time_point::max()) return;
    item->ref();
    timers_.push(timer{at, stamp, item});
    start_dispatcher_locked();
    wake_locked();
  }

  void run_blocking(std::function<void()> job) {
    std::unique_lock<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
    if (idle_io_ > 0) {
      io_cv_.notify_one();
      return;
    }
    int rc = start_thread(io_main);
    if (rc == 0) {
      io_threads_++;
      return;
    }
    if (io_threads_ > 0) return;  // a busy one takes it when it is done
    jobs_.pop_back();
    throw error(POOL_ENOMEM, std::string("could not start an I/O thread for an asynchronous "
                                         "request: ") + std::strerror(rc));
  }

 private:
  struct timer {
    clock::time_point at;
    uint64_t stamp;
    dispatched *item;
    bool operator>(const timer &o) const { return at > o.at; }
  };

  // mu_: the dispatcher, if asleep in epoll_wait, looks again.
  void wake_locked() noexcept {
    if (!dispatcher_sleeping_) return;
    uint64_t one = 1;
    ssize_t n = ::write(wake_, &one, sizeof one);
    (void)n;
    dispatcher_sleeping_ = false;  // one write is enough until it sleeps again
  }

  // mu_
  void push_kick(dispatched *item) noexcept {
    item->kicked_ = true;
    item->next_kick_ = nullptr;
    (kicks_tail_ ? kicks_tail_->next_kick_ : kicks_head_) = item;
    kicks_tail_ = item;
  }
  dispatched *pop_kick() noexcept {
    dispatched *item = kicks_head_;
    if (!item) return nullptr;
    kicks_head_ = item->next_kick_;
    if (!kicks_head_) kicks_tail_ = nullptr;
    item->kicked_ = false;
    return item;
  }

  int start_thread(void *(*main)(void *)) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, main, this);
    pthread_attr_destroy(&attr);
    return rc;
  }

  // mu_. If the dispatcher cannot start, kicks wait for the next try (the next kick or
  // timer): a request then ends late, at worst, never wrongly.
  void start_dispatcher_locked() {
    if (dispatcher_running_) return;
    if (start_thread(dispatcher_main) == 0) dispatcher_running_ = true;
  }

  static void *dispatcher_main(void *self) {
    static_cast<async_runtime *>(self)->dispatch();
    return nullptr;
  }

  void dispatch() {
    std::vector<dispatched *> due;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (generation_ != fork_guard::generation()) return;  // (never: threads do not fork)
      clock::time_point now = clock::now();
      while (!timers_.empty() && timers_.top().at <= now) {
        timer t = timers_.top();
        timers_.pop();
        if (t.stamp == t.item->timer_stamp_ && !t.item->kicked_) {
          push_kick(t.item);  // runs like a kick, holding the timer's reference
        } else {
          due.push_back(t.item);  // stale: only its reference to drop
        }
      }
      if (!kicks_head_ && due.empty()) {
        int timeout_ms = -1;
        if (!timers_.empty())
          timeout_ms = int(std::min<int64_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(timers_.top().at - now)
                      .count() / 1000 + 1,
              60000));
        else if (watches_ == 0)
          timeout_ms = int(std::chrono::milliseconds(idle_exit).count());
        dispatcher_sleeping_ = true;
        lock.unlock();
        struct epoll_event events[64];
        int n = epoll_wait(epoll_, events, 64, timeout_ms);
        lock.lock();
        dispatcher_sleeping_ = false;
        for (int i = 0; i < n; i++) {
          auto *item = static_cast<dispatched *>(events[i].data.ptr);
          if (!item) {
            uint64_t count;
            ssize_t r = ::read(wake_, &count, sizeof count);
            (void)r;
            continue;
          }
          if (!item->watched_) continue;  // unwatched meanwhile: its reference is gone
          item->watched_ = false;
          watches_--;
          if (item->kicked_) due.push_back(item);  // merged with its kick: drop the watch's ref
          else push_kick(item);                    // the watch's reference goes with the kick
        }
        // Nothing to do for a while: the thread ends (the next kick starts another), so a
        // process that stopped using requests can dlclose the library safely.
        if (n == 0 && timeout_ms >= 0 && timers_.empty() && watches_ == 0 && !kicks_head_) {
          dispatcher_running_ = false;
          return;
        }
        if (!kicks_head_ && due.empty()) continue;
      }
      while (dispatched *item = pop_kick()) {
        lock.unlock();
        item->step();
        item->unref();
        lock.lock();
      }
      lock.unlock();
      for (dispatched *item : due) item->unref();
      due.clear();
      lock.lock();
    }
  }

  static void *io_main(void *self) {
    static_cast<async_runtime *>(self)->serve_io();
    return nullptr;
  }

  void serve_io() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      while (jobs_.empty()) {
        idle_io_++;
        bool woken = io_cv_.wait_for(lock, idle_exit) == std::cv_status::no_timeout;
        idle_io_--;
        if (!woken && jobs_.empty()) {
          io_threads_--;
          return;
        }
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();  // noexcept by contract: a job reports its own errors
      job = nullptr;
      lock.lock();
    }
  }

  // How long an idle thread lives on.
  static constexpr std::chrono::seconds idle_exit{5};
  const uint64_t generation_;
  std::mutex mu_;
  dispatched *kicks_head_ = nullptr, *kicks_tail_ = nullptr;
  std::priority_queue<timer, std::vector<timer>, std::greater<timer>> timers_;
  bool dispatcher_running_ = false;
  bool dispatcher_sleeping_ = false;  // in epoll_wait, to be woken through wake_
  int epoll_ = -1, wake_ = -1;        // the dispatcher's: sockets watched, and the wake-up
  int64_t watches_ = 0;               // sockets armed and not yet stepped
  std::deque<std::function<void()>> jobs_;
  int64_t io_threads_ = 0, idle_io_ = 0;
  std::condition_variable io_cv_;
};

async_runtime &async_runtime::current() {
  static std::atomic<async_runtime *> runtime{nullptr};
  uint64_t generation = fork_guard::generation();
  async_runtime *r = runtime.load(std::memory_order_acquire);
  while (!r || r->generation_ != generation) {
    // Never freed: its threads run for the life of the process, and a child's inherited
    // copy may be in any state.
    auto *made = new async_runtime(generation);
    if (runtime.compare_exchange_strong(r, made, std::memory_order_acq_rel)) return *made;
    delete made;  // another thread of this generation won
  }
  return *r;
}

namespace async_runtime_api {

void prepare() { async_runtime::current(); }
void kick(dispatched *item) noexcept { async_runtime::current().kick(item); }
void set_timer(dispatched *item, clock::time_point at) {
  async_runtime::current().set_timer(item, at);
}
void watch(dispatched *item, int fd, bool for_write) {
  async_runtime::current().watch(item, fd, for_write);
}
void unwatch(dispatched *item, int fd) noexcept { async_runtime::current().unwatch(item, fd); }
void run_blocking(std::function<void()> job) {
  async_runtime::current().run_blocking(std::move(job));
}

}  // namespace async_runtime_api

}  // namespace connpool
