// The atfork handlers and their lock protocol (fork-safety.md §D):
//   prepare: the connect gate (exclusive; connects awaited without limit, statements at most
//            statement_wait_ms), then the registry lock, then every participant's
//            before_fork() in registry order (a pool takes its lock); the connect turn is never
//            held outside the gate, so it is free by then;
//   parent:  release them all (after_fork_in_parent());
//   child:   re-initialise them all (their owner is a thread that does not exist here; a
//            pool also neutralises its inherited sockets), and start a new generation.
// The handlers know the participants only through fork_guard::participant.
// The child handler runs only async-signal-safe code: no malloc, no logging, no driver call.
#include "fork.hh"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <mutex>


namespace connpool {
namespace fork_guard {

namespace detail {
std::atomic<uint64_t> generation{1};
std::atomic<uint32_t> *wipe_flag = nullptr;
}  // namespace detail

// Walks the registry for the handlers, which hold the registry lock (prepare, parent) or run
// alone in the child.
struct registry_walk {
  static void each(void (participant::*step)() noexcept) noexcept;
};

namespace {

pthread_once_t once = PTHREAD_ONCE_INIT;
int devnull_fd = -1;
std::atomic<pid_t> known_pid{0};

// std::mutex is trivially destructible here, so this static needs no destructor at exit.
std::mutex registry_mu;
participant *registry_head = nullptr;  // registry_mu

// The connect gate: shared by connects, exclusive for fork. A counter under a plain mutex
// rather than a pthread rwlock, so that nothing stays locked across fork() (prepare leaves
// only gate_forks raised), and so that a fork waiting for it stops new connects from
// starting: a stream of connects cannot starve it.
pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
int gate_connects = 0;  // gate_mu: connects in progress
int gate_forks = 0;     // gate_mu: forks waiting for the gate or holding it
int gate_statements = 0;  // gate_mu: statements in progress (awaited a bounded time)
thread_local int this_thread_statements = 0;
// Per thread: two threads may fork at once, one of them from inside a connect (which must not
// wait for itself), and each parent handler must undo only what its own prepare did.
thread_local bool gate_taken_by_prepare = false;
// How many times this thread holds the gate: it is re-entrant (an ODBC connect that fails
// closes its handle, which takes the gate again), and a fork from inside a connect (a custom
// open callback) must not wait for itself.
thread_local int this_thread_holds_gate = 0;

// The connect turn: a flag under a mutex, awaited on a CLOCK_MONOTONIC condvar (steady_clock's
// clock), which init_turn_cv makes (once, and again in the child).
pthread_mutex_t turn_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t turn_cv;
pthread_once_t turn_once = PTHREAD_ONCE_INIT;
bool turn_busy = false;  // turn_mu
thread_local bool this_thread_has_turn = false;

void init_turn_cv() {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&turn_cv, &attr);
  pthread_condattr_destroy(&attr);
}

void new_generation_in_child() noexcept {
  detail::generation.fetch_add(1, std::memory_order_acq_rel);
  known_pid.store(getpid(), std::memory_order_relaxed);
  if (detail::wipe_flag) detail::wipe_flag->store(1, std::memory_order_relaxed);
}

void prepare() {
  gate_taken_by_prepare = !this_thread_holds_gate;
  if (gate_taken_by_prepare) {
    pthread_mutex_lock(&gate_mu);
    gate_forks++;
    while (gate_connects > 0) pthread_cond_wait(&gate_cv, &gate_mu);
    // gate_cv runs on CLOCK_REALTIME: a clock step can only lengthen or shorten this bound.
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = int64_t(until.tv_nsec) + int64_t(statement_wait_ms) * 1000000;
    until.tv_sec += time_t(ns / 1000000000);
    until.tv_nsec = long(ns % 1000000000);
    int rc = 0;
    while (gate_connects > 0 || (gate_statements > 0 && rc == 0)) {
      if (gate_connects > 0) pthread_cond_wait(&gate_cv, &gate_mu);
      else rc = pthread_cond_timedwait(&gate_cv, &gate_mu, &until);
    }
    pthread_mutex_unlock(&gate_mu);
  }
  registry_mu.lock();
  registry_walk::each(&participant::before_fork);
}

void parent() {
  registry_walk::each(&participant::after_fork_in_parent);
  registry_mu.unlock();
  if (gate_taken_by_prepare) {
    pthread_mutex_lock(&gate_mu);
    gate_forks--;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
  }
}

void child() {
  registry_walk::each(&participant::after_fork_in_child);
  reinit_mutex_in_child(registry_mu);
  pthread_mutex_init(&gate_mu, nullptr);
  pthread_cond_init(&gate_cv, nullptr);  // its waiters were the parent's threads
  gate_connects = this_thread_holds_gate > 0 ? 1 : 0;  // forked inside a connect: ends here
  gate_forks = 0;
  gate_statements = this_thread_statements > 0 ? 1 : 0;
  pthread_mutex_init(&turn_mu, nullptr);
  init_turn_cv();
  turn_busy = this_thread_has_turn;
  new_generation_in_child();
}

void init_once() {
  devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  known_pid.store(getpid());
  long page = sysconf(_SC_PAGESIZE);
  void *mem = mmap(nullptr, size_t(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (mem != MAP_FAILED) {
#ifdef MADV_WIPEONFORK
    if (madvise(mem, size_t(page), MADV_WIPEONFORK) == 0) {
      auto *flag = new (mem) std::atomic<uint32_t>(1);
      detail::wipe_flag = flag;
    } else {
      munmap(mem, size_t(page));
    }
#else
    munmap(mem, size_t(page));
#endif
  }
  // The ordinary call: glibc ties the handlers to this library, so dlclose removes them.
  pthread_atfork(prepare, parent, child);
}

}  // namespace

namespace detail {

bool pid_changed() noexcept { return getpid() != known_pid.load(std::memory_order_relaxed); }

// A child of a fork that ran no handler: start its generation here. Several threads of that
// child may notice at once; one of them bumps the counter.
void notice_unhandled_fork() noexcept {
  if (wipe_flag) {
    if (wipe_flag->exchange(1) == 0) generation.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  pid_t now = getpid();
  pid_t before = known_pid.load();
  if (before != now && known_pid.compare_exchange_strong(before, now))
    generation.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace detail

void registry_walk::each(void (participant::*step)() noexcept) noexcept {
  for (participant *p = registry_head; p; p = p->registry_next_) (p->*step)();
}

void enrol(participant *p) {
  pthread_once(&once, init_once);
  std::lock_guard<std::mutex> lock(registry_mu);
  p->registry_next_ = registry_head;
  p->registry_prev_ = nullptr;
  if (registry_head) registry_head->registry_prev_ = p;
  registry_head = p;
}

void withdraw(participant *p) noexcept {
  std::lock_guard<std::mutex> lock(registry_mu);
  (p->registry_prev_ ? p->registry_prev_->registry_next_ : registry_head) = p->registry_next_;
  if (p->registry_next_) p->registry_next_->registry_prev_ = p->registry_prev_;
}

int devnull() noexcept { return devnull_fd; }

// pthread_mutex_init rather than placement new: same effect on glibc, and visible to the
// thread sanitizer, which otherwise believes the parent's thread still holds the lock.
void reinit_mutex_in_child(std::mutex &mu) noexcept {
  pthread_mutex_init(mu.native_handle(), nullptr);
}

connect_gate::connect_gate() noexcept {
  if (this_thread_holds_gate++ > 0) return;
  pthread_mutex_lock(&gate_mu);
  while (gate_forks > 0) pthread_cond_wait(&gate_cv, &gate_mu);
  gate_connects++;
  pthread_mutex_unlock(&gate_mu);
}

connect_gate::~connect_gate() {
  if (--this_thread_holds_gate > 0) return;
  pthread_mutex_lock(&gate_mu);
  if (--gate_connects == 0) pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

statement_gate::statement_gate() noexcept {
  if (this_thread_statements++ > 0) return;
  pthread_mutex_lock(&gate_mu);
  while (gate_forks > 0) pthread_cond_wait(&gate_cv, &gate_mu);
  gate_statements++;
  pthread_mutex_unlock(&gate_mu);
}

statement_gate::~statement_gate() {
  if (--this_thread_statements > 0) return;
  pthread_mutex_lock(&gate_mu);
  if (--gate_statements == 0) pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

connect_turn::connect_turn(std::chrono::steady_clock::time_point deadline) noexcept {
  pthread_once(&turn_once, init_turn_cv);
  struct timespec until = {0, 0};
  bool bounded = deadline != std::chrono::steady_clock::time_point::max();
  if (bounded) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = int64_t(until.tv_nsec) + std::max<int64_t>(0, left.count());
    until.tv_sec += time_t(ns / 1000000000);
    until.tv_nsec = long(ns % 1000000000);
  }
  pthread_mutex_lock(&turn_mu);
  int rc = 0;
  while (turn_busy && rc == 0)
    rc = bounded ? pthread_cond_timedwait(&turn_cv, &turn_mu, &until)
                 : pthread_cond_wait(&turn_cv, &turn_mu);
  if (!turn_busy) taken_ = turn_busy = this_thread_has_turn = true;
  pthread_mutex_unlock(&turn_mu);
}

connect_turn::~connect_turn() {
  if (!taken_) return;
  pthread_mutex_lock(&turn_mu);
  turn_busy = this_thread_has_turn = false;
  // Every waiter, not one: one that just timed out must not swallow the wakeup of the rest.
  pthread_cond_broadcast(&turn_cv);
  pthread_mutex_unlock(&turn_mu);
}

}  // namespace fork_guard
}  // namespace connpool
