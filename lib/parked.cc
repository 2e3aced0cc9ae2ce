// Thread-affine reuse: a healthy connection checked in while nobody waits is parked for the
// thread that returned it, and that thread's next checkout takes it back with one
// compare-and-swap on the lease, without the pool lock (HikariCP's ConcurrentBag keeps a
// thread-local list the same way). Threads that each hold one connection at a time then
// share no lock and no written cache line: nothing else on the path is written by another
// thread.
//
// A parked lease is idle: any slow path that needs the idle set whole first collects every
// parked lease into idle_ under the lock (collect_parked): a checkout that finds idle_ empty,
// a waiter as it joins the queue, pool_reset, dispose, a checkin of an overflow connection.
// Until taken it stays counted in checked_out_ (statistics subtract it), so the pool is never
// released under a parked lease.
//
// The lease's parked word: not_parked, being_parked (the checkin is between its two looks at
// the pool), parked. The checkin writes being_parked, then reads the pool (disposed? waiters?
// retired?); if parking is still allowed it publishes parked and never touches the pool
// again, else it takes the slow path itself. Everything that disallows parking is written
// (sequentially consistent) before that thing collects, and the collector waits out a lease
// in being_parked: so either the checkin sees the change, or the collector gets the lease.
//
// Applies with the default options: LIFO reuse, no min_idle, idle_timeout or leak_threshold
// (the maintenance thread keeps those over idle_ alone), not the null pool; to untagged
// checkouts (a tag is written under the lock, where timeout messages read it).
#include <sched.h>

#include "fork.hh"
#include "pool.hh"

namespace connpool {

namespace {

enum : uint32_t { not_parked = 0, being_parked = 1, parked = 2 };

// The lease this thread parked last, and whose pool it belongs to: a hint, checked by the
// lease's parked word. id tells a pool from a later one at the same address.
struct parked_hint {
  const pool *owner = nullptr;
  uint64_t id = 0;
  lease *l = nullptr;
};
thread_local parked_hint hint;

bool hint_is_for(const pool *p, uint64_t id) noexcept {
  return hint.owner == p && hint.id == id && hint.l;
}

}  // namespace

lease *pool::take_parked(const char *tag, close_reason &why) noexcept {
  if (!parking_ || tag || !hint_is_for(this, id_)) return nullptr;
  lease *l = hint.l;
  uint32_t expected = parked;
  if (!l->parked.compare_exchange_strong(expected, not_parked, std::memory_order_acquire))
    return nullptr;  // taken by a collector, or by another thread's checkout
  if (l->generation != fork_guard::generation()) {
    // The parent's, in a child whose pool has not adopted the child's reality yet: the slow
    // path does (sync_with_process), and discards it as an idle inherited connection.
    hint.l = nullptr;
    return nullptr;
  }
  clock::time_point now = coarse_now();
  uint64_t serial = (l->state.load(std::memory_order_relaxed) >> 1) + 1;
  l->invalidated = l->scoped = l->ran_queries = l->abandoned = false;
  l->lent_at.store(now, std::memory_order_relaxed);
  pthread_t self = pthread_self();
  if (!pthread_equal(l->holder, self)) l->holder = self;  // collected and lent meanwhile
  l->parked_checkouts.store(l->parked_checkouts.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
  l->state.store(serial << 1 | 1, std::memory_order_release);
  // Disposed, retired or expired meanwhile: the checkout gives it back and goes on the slow
  // path, as after a failed ping. (Read after the state store: seq_cst, see the top.)
  why = reuse_verdict(l, now);
  if (why != close_reason::none) hint.l = nullptr;
  return l;
}

bool pool::park(lease *l, clock::time_point now) noexcept {
  if (!parking_ || l->leak_reported || l->tag[0]) return false;  // tags are the lock's
  // This thread's previous parked lease, if it holds two at once: it goes to idle_, so the
  // one returned last is the one parked (LIFO within the thread).
  if (hint_is_for(this, id_) && hint.l != l) {
    uint32_t expected = parked;
    if (hint.l->parked.compare_exchange_strong(expected, not_parked, std::memory_order_acquire))
      give_back(hint.l, close_reason::none, true);  // l, still out, keeps the pool alive
    hint.l = nullptr;
  }
  l->idle_since = now;
  l->parked.store(being_parked, std::memory_order_seq_cst);
  if (reuse_verdict(l, now) != close_reason::none || waiters_.size_unlocked() != 0 ||
      open_.load(std::memory_order_seq_cst) > opts_.pool_size) {
    l->parked.store(not_parked, std::memory_order_relaxed);
    return false;
  }
  hint = parked_hint{this, id_, l};
  l->parked.store(parked, std::memory_order_release);  // the last touch: it may be collected
  return true;
}

void pool::collect_parked() {
  if (!parking_) return;
  for (const std::unique_ptr<lease> &record : records_) {
    lease *l = record.get();
    for (;;) {
      uint32_t seen = l->parked.load(std::memory_order_seq_cst);
      if (seen == not_parked) break;
      if (seen == being_parked) {  // a checkin between its two looks: a few instructions
        sched_yield();
        continue;
      }
      if (l->parked.compare_exchange_strong(seen, not_parked, std::memory_order_seq_cst)) {
        checked_out_--;
        idle_.push_back(l);
        break;
      }
    }
  }
}

int64_t pool::count_parked() const {
  int64_t n = 0;
  if (!parking_) return n;
  for (const std::unique_ptr<lease> &l : records_)
    if (l->parked.load(std::memory_order_relaxed) != not_parked) n++;
  return n;
}

}  // namespace connpool
