// The calling thread's scoped leases, one per pool. A thread_local with a destructor gives
// them back when the thread exits. It is registered at a thread's first scoped call only,
// so threads (and programs) that never use scopes pay nothing, and dlclose is held up only
// while such a thread lives (glibc keeps a library with pending thread_local destructors).
//
// An entry always points at a live pool: its lease is checked out, and a pool with a lease
// out is never released; pool_checkin() refuses a scoped lease, so only this code ends it.
#include "scope.hh"

#include <vector>

#include "error.hh"

namespace connpool {

namespace {

struct scope_entry {
  pool *owner;
  pool_lease_t *lease;
};

struct thread_scopes {
  std::vector<scope_entry> entries;
  ~thread_scopes() {
    for (const scope_entry &e : entries) {
      try {
        pool::checkin(e.lease, true);
      } catch (...) {
        // Nothing to tell a thread that is gone; the checkin cannot fail for a live lease.
      }
    }
  }
};

thread_scopes &this_thread_scopes() {
  static thread_local thread_scopes scopes;
  return scopes;
}

}  // namespace

pool_lease_t *scoped_checkout(pool *p, int64_t timeout_ms, const char *tag) {
  std::vector<scope_entry> &entries = this_thread_scopes().entries;
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->owner != p) continue;
    if (pool::native(it->lease)) return it->lease;
    // Inherited across fork: this process may not use it. Checkin drops it without a word.
    pool_lease_t *inherited = it->lease;
    entries.erase(it);
    pool::checkin(inherited, true);
    break;
  }
  pool_lease_t *lease = p->checkout(timeout_ms, tag);
  try {
    pool::mark_scoped(lease);
    entries.push_back({p, lease});
  } catch (...) {
    pool::checkin(lease, true);
    throw;
  }
  return lease;
}

void scope_release(pool *p) {
  std::vector<scope_entry> &entries = this_thread_scopes().entries;
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->owner != p) continue;
    pool_lease_t *lease = it->lease;
    entries.erase(it);
    pool::checkin(lease, true);
    return;
  }
}

}  // namespace connpool
