// The pool core: one implementation serves every connector.
//
// Locking: one mutex per pool guards everything below marked "mu_". It is never held across a
// connector call (connect, reset, ping, close) or a user callback: a slot is reserved under
// the lock, the I/O runs outside it, and the result is published under it again.
//
// Health: every connection has a sequence number in opening order. Retiring "every
// connection opened before X" (pool_reset, a dead connection, a reported disconnect) only
// raises retired_below_; idle ones are closed at once, lent ones when they come back.
//
// Lifetime: the pool is released by whichever thread sees it closed with no lease out and no
// thread inside (inside_ counts threads that use the pool outside the lock: waiting, opening,
// closing). So dispose never frees memory a lease or a waking waiter still needs.
//
// Fork: the pool is a fork_guard::participant: the atfork handlers (fork.cc) hold its lock
// across fork() and re-initialise it in the child, where after_fork_in_child() also points
// every inherited socket at /dev/null. The
// rest of the child's procedure runs at the child's first call into the pool (adopt_child),
// under the lock, in normal context: the pool forgets the parent's connections, waiters and
// counts, and opens its own connections on demand.
#ifndef CONNPOOL_POOL_HH
#define CONNPOOL_POOL_HH

#include <atomic>
#include <condition_variable>
#include <pthread.h>
#include <random>
#include <string>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "connector.hh"
#include "error.hh"
#include "fork.hh"
#include "handles.hh"
#include "options.hh"
#include "wait_queue.hh"

namespace connpool {

class pool;
class checkout_request;
class query_request;
class request;

// A coarse monotonic clock (a few milliseconds of resolution, a fraction of the cost of
// clock::now()): stamps on the checkout and checkin paths. Same epoch as clock.
clock::time_point coarse_now() noexcept;

// Why a connection leaves the pool; each reason has its counter in pool_stats_t.
enum class close_reason { none, other, dead, invalidated, recycled, retired, idle_timeout };

// One connection's record, and the lease handed out for it. Records are owned by their pool
// and reused after their connection closes, never freed before the pool. The lease handle
// names the record's slot in the lease table (handles.hh), not the record: a stale handle (a
// second checkin, or one kept after its pool was released) is refused by reading the table,
// never the record.
struct alignas(64) lease {  // its own cache lines: each is written by its holder alone
  static constexpr uint32_t live_magic = 0x4c454153;  // "LEAS"
  static constexpr size_t tag_size = 64;
  uint32_t magic = live_magic;
  pool *owner = nullptr;
  void *handle = nullptr;  // the connector's connection
  void *native = nullptr;  // connector::native(handle): what hooks and the application see
  handle_table::binding slot{handle_table::kind::lease, this};  // its slot: what the handle names
  // serial << 1 | out, kept in the slot. The serial grows at every checkout (lend()); the
  // handle given to the caller carries its low 40 bits, so a handle from an earlier checkout
  // of this record, or of an earlier record in the slot, is refused.
  std::atomic<uint64_t> &state = slot.state();
  bool invalidated = false;  // touched only by the lease's holder
  bool scoped = false;       // touched only by the holder: lent by pool_checkout_scoped
  bool fresh = false;        // just opened: no need to ping it
  bool ran_queries = false;  // touched only by the holder: pool_query since the checkout
  bool abandoned = false;    // touched only by the holder: a query timed out, never use it
  bool streaming = false;    // touched only by the holder: a pool_stream_t is open on it
  // A statement of a query request (query_async.cc) runs on it: none, running, running but
  // cancelled (the request ended; pool_query waits for it), or that and the holder checked it
  // in meanwhile (the I/O thread checks it in when the statement ends).
  enum async_use : int { no_request = 0, request_running = 1, request_cancelled = 2,
                         checkin_deferred = 3 };
  std::atomic<int> async{no_request};
  wake_signal async_ended;   // posted when `async` goes back to no_request
  bool leak_reported = false;  // mu_
  uint64_t generation = 0;   // the process generation it was lent in (fork.hh)
  uint64_t seq = 0;          // opening order (pool::retired_below_)
  clock::time_point expires;   // pool_recycle with this connection's jitter; max() if none
  // Coarse. Written by the holder at checkout (under mu_, or without it on the parked path)
  // and read under mu_ for every lease out (timeout messages, leak reports): atomic.
  std::atomic<clock::time_point> lent_at{};
  clock::time_point idle_since;  // mu_ (coarse)
  pid_t thread = 0;            // mu_: the holder's thread id
  pthread_t holder{};          // mu_: the thread it was lent to (who survives a fork: adopt_child)
  bool inherited_blocks = false;  // mu_: lent at a fork by the forking thread: counted in
                                  // inherited_out_ until it comes back
  char tag[tag_size] = "";     // mu_
  // Thread-affine reuse (parked.cc): not_parked, or being_parked / parked by the thread that
  // checked it in last; a parked lease is idle, counted in checked_out_ until it is taken.
  std::atomic<uint32_t> parked{0};
  std::atomic<int64_t> parked_checkouts{0};  // checkouts that took it back without the lock
};

// The tag, cut at a UTF-8 character boundary if it is too long.
void copy_tag(char (&dst)[lease::tag_size], const char *tag);

class pool final : private fork_guard::participant {
 public:
  static constexpr uint32_t live_magic = 0x504f4f4c;  // "POOL"

  pool(std::unique_ptr<connector> conn, const options &opts);
  ~pool();
  pool(const pool &) = delete;
  pool &operator=(const pool &) = delete;

  // Its handle (pool_t *): its slot in the pool table, not its address (handles.hh).
  pool_t *handle() const noexcept { return reinterpret_cast<pool_t *>(registration_.handle()); }
  // The pool a handle names while that pool exists; nullptr for anything else (a lease, a
  // released pool, any other value). Reads only the pool table.
  static pool *of_handle(const pool_t *handle) noexcept;
  bool valid() const noexcept { return magic_ == live_magic; }

  pool_lease_t *checkout(int64_t timeout_ms, const char *tag);
  // Asynchronous checkout (checkout_async.cc): never blocks; the request completes on the
  // dispatcher or an I/O thread (async_runtime.hh), or at once with an idle connection.
  request *checkout_start(int64_t timeout_ms, const char *tag);
  // Ends a checkout request that is still pending (request::cancel() succeeded): a waiting
  // one leaves the queue; one whose connection is being opened or checked gives it back.
  static void checkout_cancelled(checkout_request &r) noexcept;
  // allow_scoped: only the scope code may check in a scoped lease.
  static void checkin(pool_lease_t *handle, bool allow_scoped = false);
  static void invalidate(pool_lease_t *handle);
  static void report_error(pool_lease_t *handle, const char *sqlstate);
  // The query layer (pool_query.cc): statements on a lease, through its connector.
  // on_request: run by a query request's I/O thread (query_async.cc).
  static std::unique_ptr<result> query(pool_lease_t *handle, const statement &st,
                                       bool on_request = false);
  // For a statement request sent without waiting (query_async.cc): the checks and the send
  // of query(), deadline set from query_timeout; nullptr if the connector cannot send so.
  // under_statement_policy(): what query() does with a failure (timeout, lost server).
  static std::unique_ptr<pending_statement> send_statement(pool_lease_t *handle,
                                                           const statement &st,
                                                           clock::time_point &deadline);
  static std::unique_ptr<result> under_statement_policy(
      pool_lease_t *handle, const std::function<std::unique_ptr<result>()> &work);
  // Asynchronous statements (query_async.cc).
  static request *query_start(pool_lease_t *handle, const char *sql, int nparams,
                              const pool_param_t *params, int flags);
  // Ends a query request that is still pending (request::cancel() succeeded): the server is
  // asked to cancel the statement; the lease is busy until it ends.
  static void query_cancelled(query_request &r) noexcept;
  // The lease, checked out and with no request running on it; waits for a cancelled one to
  // end. Throws POOL_ESTATE while one runs.
  static lease *idle_lease(pool_lease_t *handle);
  // Throws unless the holder may start a statement on l: not after fork, not with a stream
  // open on it (pool_query.cc).
  static void check_may_start(const lease *l);
  static std::unique_ptr<row_stream> stream_open(pool_lease_t *handle, const statement &st);
  static std::unique_ptr<result> stream_next(pool_lease_t *handle, row_stream &stream,
                                             int64_t max_rows);
  // Throws if the connection was lost meanwhile (the lease is invalidated then). In a fork
  // child, sends nothing.
  static void stream_close(pool_lease_t *handle, row_stream &stream);
  static void mark_scoped(pool_lease_t *handle);
  static void *native(const pool_lease_t *handle) noexcept;
  // POOL_OK if released now, POOL_EBUSY (message set) if leases are still out.
  int dispose();
  void reset();
  void wait_ready(int64_t timeout_ms);
  void set_hooks(const pool_hooks_t *hooks);
  void stats(pool_stats_t *out);

 private:
  using lock_t = std::unique_lock<std::mutex>;
  using handles = std::vector<void *>;  // connections to close once the lock is released

  // What the atfork handlers do to the pool (fork.hh; the rest of the child's procedure runs
  // at the child's first call: sync_with_process). before: its lock, held across fork();
  // parent: released; child (async-signal-safe): the lock made anew, every inherited socket
  // pointed at /dev/null, and the thread that forked noted (pool_fork.cc).
  void before_fork() noexcept override { mu_.lock(); }
  void after_fork_in_parent() noexcept override { mu_.unlock(); }
  void after_fork_in_child() noexcept override;
  // Set in the child handler: the thread that forked, the only one of the parent's threads
  // that exists in the child (a fork that ran no handler leaves it unset).
  pthread_t forked_by_{};
  bool forked_by_known_ = false;

  // Resolves a handle to its record if it is checked out now, else nullptr.
  static lease *checked_out_lease(const pool_lease_t *handle) noexcept;
  static lease *lease_of(const pool_lease_t *handle);  // throws unless checked out
  static pool_lease_t *encode(lease *l) noexcept;

  // A checkout's deadline for its own I/O and its wait, read from the clock only when first
  // needed (an idle connection needs none). A checkout that may not queue (timeout 0, or
  // pool_timeout=0) still gives a connect or a ping of its own options::io_bound_s():
  // "do not wait for another thread's connection" is not "talk to the server in no time".
  class lazy_deadline {
   public:
    explicit lazy_deadline(double seconds) : seconds_(seconds) {}
    clock::time_point get() {
      if (at_ == clock::time_point{})
        at_ = clock::now() + std::chrono::duration_cast<clock::duration>(
                                 std::chrono::duration<double>(seconds_));
      return at_;
    }

   private:
    double seconds_;
    clock::time_point at_{};
  };

  // Thread-affine reuse (parked.cc): a healthy connection checked in while nobody waits is
  // parked for the thread that returned it, which takes it back without the lock.
  // No lock: this thread's parked lease, lent to it, or nullptr. why: none, or why it must
  // be given back (the pool was disposed, the connection retired or expired meanwhile).
  lease *take_parked(const char *tag, close_reason &why) noexcept;
  // No lock: true if l (checked in healthy at `now`, coarse) is parked; the caller is done.
  bool park(lease *l, clock::time_point now) noexcept;
  void collect_parked();           // mu_: every parked lease joins idle_
  int64_t count_parked() const;    // mu_

  // Checkout, in steps (checkout.cc).
  lease *acquire_locked(lock_t &lock, double timeout_s, lazy_deadline &deadline,
                        const char *tag, handles &to_close, bool &inside);
  lease *acquire(lock_t &lock, double timeout_s, lazy_deadline &deadline, const char *tag,
                 handles &to_close);
  double checkout_timeout_s(int64_t timeout_ms) const;
  bool first_use(lock_t &lock);  // mu_: true if it released the lock meanwhile
  // The checks a connection passes before it is lent: pre-ping (ping_needed() looks at the
  // socket only; vet() makes the round trip if one is needed) and the on_checkout hook.
  enum class ping_need { none, ping, dead };
  ping_need ping_needed(lease *l) noexcept;
  close_reason vet(lease *l, ping_need need, clock::time_point deadline, int &rejections);
  // After a connection failed vet(): throws if the checkout must not try another.
  void check_retry(close_reason why, int rejections, clock::time_point deadline,
                   double io_s) const;
  lease *take_usable_idle(clock::time_point now, handles &to_close);  // mu_
  // inside_ and opening_ counted; lends to (thread, holder)
  lease *open_for_checkout(clock::time_point deadline, const char *tag, pid_t thread,
                           pthread_t holder);
  // Waiting, shared by the blocking checkout and the asynchronous one (mu_). enqueue: w joins
  // the queue. look_for_connection: one look on w's behalf (idle connections served in the
  // queue's order, a slot granted once w.open_at passed); returns when w must look again if
  // nothing posts it. end_wait: w leaves the queue (done, or its deadline passed) and what
  // comes next is said; throws (the slot passed on) if w may not connect (fail-fast).
  enum class wait_end { handed, open, closed, timed_out };
  void enqueue(waiter &w, const char *tag, pid_t thread, clock::time_point until);
  clock::time_point look_for_connection(waiter &w, clock::time_point now,
                                        clock::time_point until, handles &to_close);
  wait_end end_wait(waiter &w, clock::time_point until);
  // The asynchronous checkout's steps (checkout_async.cc).
  friend class checkout_request;
  friend class query_request;
  void async_begin(checkout_request &r, bool retried);  // no lock
  void async_turn(checkout_request &r);                 // on the dispatcher
  void async_open(checkout_request &r);                 // no lock; opening_, inside_ counted
  void async_deliver(checkout_request &r, lease *l, bool on_io_thread);  // no lock
  void async_vet(checkout_request &r, lease *l, ping_need need);         // no lock
  void close_later(lock_t &lock, handles &to_close);    // mu_: closes on an I/O thread
  [[noreturn]] void throw_timeout(double timeout_s) { throw timeout_error(timeout_s); }  // mu_
  error timeout_error(double timeout_s);  // mu_: SQLAlchemy's message, counted as a timeout
  // mu_: throws unless a checkout may join the queue (timeout 0; max_waiting reached).
  void check_may_queue(double timeout_s);
  std::string longest_holders(clock::time_point now) const;          // mu_
  // mu_: whether a new connect may start now (fail-fast); a true answer during fail-fast
  // makes it the window's one retry. check_fail_fast() throws the cached error if not.
  bool may_connect(clock::time_point now);
  void check_fail_fast();
  pid_t current_thread() const noexcept;
  // What a lease records as its holder: the thread id when leak reports need it, else 0.
  pid_t holder_thread() const noexcept {
    return opts_.leak_threshold_s > 0 ? current_thread() : 0;
  }

  bool has_capacity() const;          // mu_
  static constexpr clock::duration no_overflow_rule = clock::duration(-1);
  clock::duration overflow_wait() const;  // mu_: before opening an overflow connection
  lease *take_idle();                 // mu_
  void lend(lease *l, const char *tag, pid_t thread, pthread_t holder,
            clock::time_point now);  // mu_
  void grant_slot_to_next_waiter();   // mu_
  // mu_: whether the longest waiter has waited handoff_after, so that a connection may no
  // longer go to anyone else (wait_queue.hh's fairness rule).
  bool handoff_due(clock::time_point now) const {
    return !waiters_.empty() && now - waiters_.front()->since >= handoff_after_;
  }
  // mu_: lends l to w and takes w out of the queue; will_post: the caller posts w's signal
  // (counted here), false only for a waiter that serves itself.
  void hand_over(lease *l, waiter *w, clock::time_point now, bool will_post);
  void record_wait(int64_t waited_us);  // mu_
  // mu_: with connections idle and waiters waiting, makes sure the head looks at them: by
  // the time it comes due if one connection is idle (the thread that returned it most likely
  // takes it back before that), at once if more are (nobody took the first back). Returns the
  // waiter to post (counted) if it must be woken for that.
  waiter *head_to_watch();
  bool releasable() const;            // mu_
  bool leave_and_check_release();     // mu_
  void release_if(lock_t &lock, bool release);  // unlocks; deletes the pool if asked
  // mu_: adopts the child's reality after a fork. The inherited connections are discarded
  // outside the lock (a driver call: PQfinish), this thread counted in inside_ meanwhile; so
  // the lock may be released and taken again (true if it was): the caller must look at
  // closed_ after it, and then release the pool if a dispose meanwhile left that to it.
  bool sync_with_process(lock_t &lock);
  handles adopt_child();              // mu_: returns the inherited connections to discard
  void neutralise_sockets() noexcept; // mu_ or the child handler
  static void drop_inherited(lease *l);

  // Connections coming and going.
  lease *open_connection(clock::time_point deadline);  // no lock; opening_ and inside_ counted
  void connect_failed(const error &e);                 // mu_
  // No lock. Keeps l (why == none) unless it expired, or closes it. retry: l failed the
  // checks of a checkout that goes on (inside_ stays counted for it, and l does not count
  // as a checkout).
  void give_back(lease *l, close_reason why, bool was_out, bool retry = false);
  // mu_: takes l out of the pool's counts; its handle joins to_close.
  void retire_record(lease *l, close_reason why, handles &to_close);
  // mu_: connections opened before `seq` are retired; idle ones join to_close.
  void retire_below(uint64_t seq, handles &to_close);
  // Closes outside the lock (inside_ counted); returns with mu_ held again.
  void close_unlocked(lock_t &lock, handles &to_close);
  // Closes to_close, then runs then() (log calls), outside the lock with this thread still
  // counted in inside_: the pool cannot be released under them (a log call reads hooks_).
  // Returns with mu_ held again.
  template <class Then>
  void outside_lock(lock_t &lock, handles &to_close, Then then) {
    handles closing;
    closing.swap(to_close);
    inside_++;
    lock.unlock();
    for (void *handle : closing) close_now(handle);
    if (!closing.empty() && logs(POOL_LOG_DEBUG))
      log(POOL_LOG_DEBUG, "closed %zu connection(s)", closing.size());
    then();
    lock.lock();
    inside_--;
  }
  void close_now(void *handle) noexcept;  // no lock: on_close hook, then the connector
  // Why l may not be lent again now: retired (opened before a pool_reset or a dead
  // connection), recycled (past pool_recycle), or none.
  close_reason expiry(const lease *l, clock::time_point now) const {
    if (l->seq < retired_below_) return close_reason::retired;
    return now >= l->expires ? close_reason::recycled : close_reason::none;
  }
  bool expired(const lease *l, clock::time_point now) const {
    return expiry(l, now) != close_reason::none;
  }
  // expiry(), or other once the pool is disposed: what a connection coming back meets.
  close_reason reuse_verdict(const lease *l, clock::time_point now) const {
    return closed_ ? close_reason::other : expiry(l, now);
  }
  // mu_: the leases lent out now and the idle connections, parked ones counted idle.
  struct lent_and_idle {
    int64_t lent, idle;
  };
  lent_and_idle current_counts() const {
    int64_t parked = count_parked();
    return {checked_out_ - parked, int64_t(idle_.size()) + parked};
  }

  // The maintenance thread (maintenance.cc).
  int start_maintenance();  // mu_; 0, or pthread_create's error
  static void *maintenance_main(void *self);
  void maintain();
  clock::time_point maintenance_pass(lock_t &lock);  // mu_; returns when it is next due
  void close_hung_up_idle(lock_t &lock);  // mu_, released meanwhile
  void wake_maintenance();  // mu_
  void stop_maintenance(lock_t &lock);  // mu_; joins unless called on it

  // Hooks and logging; hooks_ is fixed before the first checkout, so read without the lock.
  void log(int level, const char *format, ...) const noexcept
      __attribute__((format(printf, 3, 4)));
  bool logs(int level) const noexcept { return hooks_.log && level <= hooks_.log_level; }
  // The connector's log_fn: what the server said on its own, to the log hook.
  static void log_from_connector(void *self, int level, const char *message) noexcept;

  const handle_table::binding registration_{handle_table::kind::pool, this};  // what handle() names
  uint32_t magic_ = live_magic;
  const options opts_;
  const std::unique_ptr<connector> connector_;
  pool_hooks_t hooks_{};

  std::mutex mu_;
  // Written under mu_; atomic because park() reads it without the lock.
  std::atomic<bool> closed_{false};
  const bool parking_;                           // thread-affine reuse applies (parked.cc)
  const uint64_t id_;                            // unique in the process: parked.cc's hint
  bool started_ = false;                         // mu_: hooks are fixed from here on
  std::deque<lease *> idle_;                     // mu_: front is the oldest returned
  std::vector<std::unique_ptr<lease>> records_;  // mu_
  std::vector<lease *> free_records_;            // mu_
  wait_queue waiters_;                           // mu_
  clock::duration handoff_after_;                // options::handoff_after_s
  std::atomic<int64_t> open_{0};                 // mu_ (read by park()): open, lent or idle
  int64_t opening_ = 0;                          // mu_: connects in progress
  int64_t checked_out_ = 0;                      // mu_: lent or parked
  int64_t inside_ = 0;                           // mu_
  int64_t inherited_out_ = 0;                    // mu_: leases lent before a fork, not back
  uint64_t generation_;                          // mu_: the process generation of the state
  uint64_t next_seq_ = 1;                        // mu_
  std::atomic<uint64_t> retired_below_{0};       // mu_ (read by the parked path)
  std::minstd_rand jitter_rng_;                  // mu_

  // mu_: connect failures in a row, and the fail-fast window they open.
  int64_t failures_in_row_ = 0;
  clock::time_point fail_fast_until_;
  bool probe_in_flight_ = false;
  std::string last_connect_error_;

  // mu_: the maintenance thread.
  bool maint_running_ = false, maint_stop_ = false, maint_kicked_ = false;
  bool maint_connecting_ = false;  // a refill connect is in progress: dispose does not wait
  // The thread could not be started: checkouts go on without it, try again from then on,
  // and the first failure is logged.
  clock::time_point maint_retry_at_{};
  bool maint_start_warned_ = false;
  clock::time_point maint_due_ = clock::time_point::max();  // when it wakes up next
  pthread_t maint_thread_{};
  std::condition_variable maint_cv_;
  std::condition_variable ready_cv_;  // pool_wait_ready: min_idle reached
  int64_t ready_waiters_ = 0;         // mu_: threads in pool_wait_ready

  // mu_: counters for pool_stats_get
  int64_t opened_total_ = 0, closed_total_ = 0, connect_failures_total_ = 0;
  int64_t checkouts_total_ = 0, timeouts_total_ = 0, wait_total_us_ = 0, wait_max_us_ = 0;
  int64_t inherited_total_ = 0;
  int64_t connect_time_total_us_ = 0, connect_time_max_us_ = 0, waits_total_ = 0;
  int64_t wait_le_us_[POOL_WAIT_BUCKETS] = {};
  std::atomic<int64_t> pings_total_{0};  // counted outside the lock, at checkout
  int64_t dead_total_ = 0, recycled_total_ = 0, idle_closed_total_ = 0;
  int64_t invalidated_total_ = 0, reset_closed_total_ = 0, resets_total_ = 0;
  int64_t leaks_total_ = 0, fast_fails_total_ = 0, rejected_total_ = 0;
};

}  // namespace connpool

#endif
