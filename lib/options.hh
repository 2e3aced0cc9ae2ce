// The pool's options: parsed from a libpq-style "key=value" string or from parallel arrays.
#ifndef CONNPOOL_OPTIONS_HH
#define CONNPOOL_OPTIONS_HH

#include <string>
#include <utility>
#include <vector>

#include "connpool.h"

namespace connpool {

struct options {
  int pool_size = 5;
  int max_overflow = 10;  // -1: unlimited
  double pool_timeout_s = 30.0;
  // Most recently returned first: keeps as few server backends hot as the load needs
  // (issue 15: select1 at 4 threads on a pool of 10, 30k ops/s FIFO, 50-55k LIFO).
  bool use_lifo = true;
  // How long the longest waiter waits before every returned connection must go to it
  // (wait_queue.hh); 0: always (strict FIFO hand-off).
  double handoff_after_s = 0.002;
  // How long a checkout that would open an overflow connection first waits for one to come
  // back (pool_overflow_after); -1 (auto): as long as a connect of this pool takes on average,
  // so it is served by whichever comes first on average; 0: opens at once (SQLAlchemy).
  double overflow_after_s = -1;
  pool_reset_mode reset = POOL_RESET_ROLLBACK;
  bool null_pool = false;  // poolclass=null: no reuse, no limit
  bool odbc_allow_dm_pooling = false;  // odbc_dm_pooling=allow
  // Health and lifecycle; seconds, 0 = off.
  bool pre_ping = false;
  double pre_ping_interval_s = 0.5;
  double ping_timeout_s = 5.0;
  double recycle_s = 0;
  double recycle_jitter_s = -1;  // -1: a tenth of recycle_s
  double idle_timeout_s = 0;
  int min_idle = 0;
  int max_waiting = -1;  // -1: no limit
  double leak_threshold_s = 0;
  int fail_fast_after = 3;  // 0: never
  double fail_fast_backoff_max_s = 5.0;
  double query_timeout_s = 0;  // pool_query; 0: no limit
  int statement_cache_size = 100;  // prepared statements kept per connection; 0: off

  // The bound on I/O the pool does for a checkout of its own (a connect, a pre-ping) when
  // the checkout may not wait (timeout 0), and on the maintenance thread's connects:
  // pool_timeout, or 30 seconds when pool_timeout is 0. pool_timeout=0 means "do not wait
  // for another thread's connection" (SQLAlchemy), not "talk to the server in no time".
  // libpq's connect_timeout, when shorter, still applies (the connector's own bound).
  static constexpr double default_io_bound_s = 30.0;
  double io_bound_s() const { return pool_timeout_s > 0 ? pool_timeout_s : default_io_bound_s; }

  // Whether the pool needs its maintenance thread.
  bool needs_maintenance() const {
    return !null_pool && (min_idle > 0 || idle_timeout_s > 0 || leak_threshold_s > 0);
  }
};

using key_values = std::vector<std::pair<std::string, std::string>>;

// Splits a conninfo-grammar string into pairs; throws error(POOL_EINVAL) on bad syntax.
key_values split_key_values(const char *text);

// Applies pairs in order (a repeated key: the last wins); throws error(POOL_EINVAL) naming
// the key and the value.
options parse_options(const key_values &pairs);

}  // namespace connpool

#endif
