// What the pool counts: waits as they end, and the snapshot pool_stats_get() copies out.
#include <algorithm>
#include <cstring>
#include <iterator>

#include "pool.hh"

namespace connpool {

void pool::record_wait(int64_t waited_us) {
  wait_total_us_ += waited_us;
  wait_max_us_ = std::max(wait_max_us_, waited_us);
  waits_total_++;
  static constexpr int64_t bucket_us[POOL_WAIT_BUCKETS] = POOL_WAIT_BUCKET_US;
  for (int i = POOL_WAIT_BUCKETS - 1; i >= 0 && waited_us <= bucket_us[i]; i--) wait_le_us_[i]++;
}

void pool::stats(pool_stats_t *out) {
  pool_stats_t s{};
  {
    lock_t lock(mu_);
    bool unlocked = sync_with_process(lock);
    s.pool_size = opts_.pool_size;
    s.max_overflow = opts_.max_overflow;
    lent_and_idle counts = current_counts();
    s.checked_out = counts.lent;
    s.idle = counts.idle;
    s.opening = opening_;
    int64_t beyond = open_ + opening_ - opts_.pool_size;
    s.overflow = beyond > 0 ? beyond : 0;
    s.waiting = waiters_.size();
    s.opened_total = opened_total_;
    s.closed_total = closed_total_;
    s.connect_failures_total = connect_failures_total_;
    s.checkouts_total = checkouts_total_;
    for (const std::unique_ptr<lease> &l : records_)
      s.checkouts_total += l->parked_checkouts.load(std::memory_order_relaxed);
    s.timeouts_total = timeouts_total_;
    s.wait_total_us = wait_total_us_;
    s.wait_max_us = wait_max_us_;
    s.inherited_total = inherited_total_;
    s.connect_time_total_us = connect_time_total_us_;
    s.connect_time_max_us = connect_time_max_us_;
    s.waits_total = waits_total_;
    std::copy(std::begin(wait_le_us_), std::end(wait_le_us_), s.wait_le_us);
    s.pings_total = pings_total_.load(std::memory_order_relaxed);
    s.dead_total = dead_total_;
    s.recycled_total = recycled_total_;
    s.idle_closed_total = idle_closed_total_;
    s.invalidated_total = invalidated_total_;
    s.reset_closed_total = reset_closed_total_;
    s.resets_total = resets_total_;
    s.leaks_total = leaks_total_;
    s.fast_fails_total = fast_fails_total_;
    s.rejected_total = rejected_total_;
    // A dispose that ran while sync_with_process() had the lock released left the release
    // to this thread.
    if (unlocked && releasable()) {
      lock.unlock();
      delete this;
    }
  }
  size_t n = size_t(out->size) < sizeof s ? size_t(out->size) : sizeof s;
  s.size = int64_t(n);
  std::memcpy(out, &s, n);
}

}  // namespace connpool
