// The atfork handlers and their lock protocol (fork-safety.md §D):
//   prepare: the connect gate (exclusive), then the registry lock, then every pool's lock in
//            registry order;
//   parent:  release them all;
//   child:   re-initialise them all (their owner is a thread that does not exist here), make
//            every pool neutralise its inherited sockets, and start a new generation.
// The child handler runs only async-signal-safe code: no malloc, no logging, no driver call.
#include "fork.hh"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <new>

#include "pool.hh"

namespace connpool {
namespace fork_guard {

namespace detail {
std::atomic<uint64_t> generation{1};
std::atomic<uint32_t> *wipe_flag = nullptr;
}  // namespace detail

namespace {

pthread_once_t once = PTHREAD_ONCE_INIT;
int devnull_fd = -1;
std::atomic<pid_t> known_pid{0};

// std::mutex is trivially destructible here, so this static needs no destructor at exit.
std::mutex registry_mu;
pool *registry_head = nullptr;  // registry_mu

// Writer-preferring, so a fork waiting for the gate is not starved by a stream of connects.
pthread_rwlock_t gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
bool gate_taken_by_prepare = false;
// A fork from inside a connect (a custom open callback) must not wait for itself.
thread_local bool this_thread_holds_gate = false;

void new_generation_in_child() noexcept {
  detail::generation.fetch_add(1, std::memory_order_acq_rel);
  known_pid.store(getpid(), std::memory_order_relaxed);
  if (detail::wipe_flag) detail::wipe_flag->store(1, std::memory_order_relaxed);
}

void prepare() {
  gate_taken_by_prepare = !this_thread_holds_gate;
  if (gate_taken_by_prepare) pthread_rwlock_wrlock(&gate);
  registry_mu.lock();
  for (pool *p = registry_head; p; p = p->registry_next) p->lock_for_fork();
}

void parent() {
  for (pool *p = registry_head; p; p = p->registry_next) p->unlock_after_fork();
  registry_mu.unlock();
  if (gate_taken_by_prepare) pthread_rwlock_unlock(&gate);
}

void child() {
  for (pool *p = registry_head; p; p = p->registry_next) p->reinit_in_child();
  new (&registry_mu) std::mutex();
  pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  std::memcpy(static_cast<void *>(&gate), &fresh, sizeof gate);
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

void register_pool(pool *p) {
  pthread_once(&once, init_once);
  std::lock_guard<std::mutex> lock(registry_mu);
  p->registry_next = registry_head;
  p->registry_prev = nullptr;
  if (registry_head) registry_head->registry_prev = p;
  registry_head = p;
}

void unregister_pool(pool *p) noexcept {
  std::lock_guard<std::mutex> lock(registry_mu);
  (p->registry_prev ? p->registry_prev->registry_next : registry_head) = p->registry_next;
  if (p->registry_next) p->registry_next->registry_prev = p->registry_prev;
}

int devnull() noexcept { return devnull_fd; }

connect_gate::connect_gate() noexcept {
  pthread_rwlock_rdlock(&gate);
  this_thread_holds_gate = true;
}

connect_gate::~connect_gate() {
  this_thread_holds_gate = false;
  pthread_rwlock_unlock(&gate);
}

}  // namespace fork_guard
}  // namespace connpool
