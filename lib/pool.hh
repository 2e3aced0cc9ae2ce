// The pool core: one implementation serves every connector.
//
// Locking: one mutex per pool guards everything below marked "mu_". It is never held across a
// connector call (connect, reset, close) or a user callback: a slot is reserved under the
// lock, the I/O runs outside it, and the result is published under it again.
//
// Lifetime: the pool is released by whichever thread sees it closed with no lease out and no
// thread inside (inside_ counts threads that use the pool outside the lock: waiting, opening,
// closing). So dispose never frees memory a lease or a waking waiter still needs.
//
// Fork: the atfork handlers (fork.cc) hold every pool lock across fork() and re-initialise it
// in the child, where reinit_in_child() also points every inherited socket at /dev/null. The
// rest of the child's procedure runs at the child's first call into the pool (adopt_child),
// under the lock, in normal context: the pool forgets the parent's connections, waiters and
// counts, and opens its own connections on demand.
#ifndef CONNPOOL_POOL_HH
#define CONNPOOL_POOL_HH

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "connector.hh"
#include "options.hh"

namespace connpool {

class pool;

// One connection's record, and the lease handed out for it. Records are owned by their pool
// and reused after their connection closes, never freed before the pool, so a stale lease
// handle (a second checkin) always points at live memory.
struct lease {
  static constexpr uint32_t live_magic = 0x4c454153;  // "LEAS"
  uint32_t magic = live_magic;
  pool *owner = nullptr;
  void *handle = nullptr;  // the connector's connection
  // serial << 1 | out. The serial grows at every checkout; the handle given to the caller
  // carries its low bits, so a handle from an earlier checkout of this record is refused.
  std::atomic<uint64_t> state{0};
  bool invalidated = false;  // touched only by the lease's holder
  uint64_t generation = 0;   // the process generation it was lent in (fork.hh)
  int socket = -1;           // the connection's socket, for neutralising it in a child
};

class pool {
 public:
  static constexpr uint32_t live_magic = 0x504f4f4c;  // "POOL"

  pool(std::unique_ptr<connector> conn, const options &opts);
  ~pool();
  pool(const pool &) = delete;
  pool &operator=(const pool &) = delete;

  bool valid() const noexcept { return magic_ == live_magic; }

  pool_lease_t *checkout(int64_t timeout_ms);
  static void checkin(pool_lease_t *handle);
  static void invalidate(pool_lease_t *handle);
  static void *native(const pool_lease_t *handle) noexcept;
  // POOL_OK if released now, POOL_EBUSY (message set) if leases are still out.
  int dispose();
  void stats(pool_stats_t *out);

  // For the atfork handlers only (fork.cc): prepare, parent, child.
  void lock_for_fork() { mu_.lock(); }
  void unlock_after_fork() { mu_.unlock(); }
  void reinit_in_child() noexcept;
  pool *registry_next = nullptr, *registry_prev = nullptr;  // fork.cc's registry lock

 private:
  struct waiter;

  // Resolves a handle to its record if it is checked out now, else nullptr.
  static lease *checked_out_lease(const pool_lease_t *handle) noexcept;
  static pool_lease_t *encode(lease *l) noexcept;

  bool has_capacity() const;          // mu_
  lease *take_idle();                 // mu_
  pool_lease_t *lend(lease *l);       // mu_
  void grant_slot_to_next_waiter();   // mu_
  void unlink(waiter *w);             // mu_
  bool releasable() const;            // mu_
  bool leave_and_check_release();     // mu_
  void sync_with_process();           // mu_: adopts the child's reality after a fork
  void adopt_child();                 // mu_
  void neutralise_sockets() noexcept; // mu_ or the child handler
  static void drop_inherited(lease *l);
  [[noreturn]] void throw_timeout(double timeout_s);  // mu_
  pool_lease_t *open_new(clock::time_point deadline);  // called holding no lock, inside_
  void give_back(lease *l, bool reusable);

  uint32_t magic_ = live_magic;
  const options opts_;
  const std::unique_ptr<connector> connector_;

  std::mutex mu_;
  bool closed_ = false;                          // mu_
  std::deque<lease *> idle_;                     // mu_: front is the oldest returned
  std::vector<std::unique_ptr<lease>> records_;  // mu_
  std::vector<lease *> free_records_;            // mu_
  waiter *waiters_head_ = nullptr;               // mu_: FIFO
  waiter *waiters_tail_ = nullptr;               // mu_
  int64_t open_ = 0;                             // mu_: open connections, lent or idle
  int64_t opening_ = 0;                          // mu_: connects in progress
  int64_t checked_out_ = 0;                      // mu_
  int64_t waiting_ = 0;                          // mu_
  int64_t inside_ = 0;                           // mu_
  int64_t inherited_out_ = 0;                    // mu_: leases lent before a fork, not back
  uint64_t generation_;                          // mu_: the process generation of the state
  // mu_: counters for pool_stats_get
  int64_t opened_total_ = 0, closed_total_ = 0, connect_failures_total_ = 0;
  int64_t checkouts_total_ = 0, timeouts_total_ = 0, wait_total_us_ = 0, wait_max_us_ = 0;
  int64_t inherited_total_ = 0;
};

}  // namespace connpool

#endif
