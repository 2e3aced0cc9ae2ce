// Prometheus text format 0.0.4: a HELP and a TYPE line per metric family, then its samples.
// Names follow Prometheus' conventions: a connpool_ prefix, base units (seconds), _total on
// counters, and the wait histogram as _bucket{le=...}, _sum and _count.
#include "metrics.hh"

#include <cstdio>

namespace connpool {

namespace {

class writer {
 public:
  explicit writer(const char *name) {
    if (!name) return;
    label_ = "pool=\"";
    for (const char *p = name; *p; p++) {  // the format's three escapes
      if (*p == '\\') label_ += "\\\\";
      else if (*p == '"') label_ += "\\\"";
      else if (*p == '\n') label_ += "\\n";
      else label_ += *p;
    }
    label_ += '"';
  }

  void family(const char *metric, const char *type, const char *help) {
    text_ += std::string("# HELP connpool_") + metric + " " + help + "\n";
    text_ += std::string("# TYPE connpool_") + metric + " " + type + "\n";
  }

  // One sample; `extra` is a further label ("state=\"idle\""), or "".
  void sample(const char *metric, const char *extra, double value) {
    text_ += "connpool_";
    text_ += metric;
    std::string labels = label_;
    if (*extra) labels += (labels.empty() ? "" : ",") + std::string(extra);
    if (!labels.empty()) text_ += "{" + labels + "}";
    char number[40];
    if (value == double(int64_t(value)))
      std::snprintf(number, sizeof number, " %lld\n", (long long)value);
    else
      std::snprintf(number, sizeof number, " %.9g\n", value);
    text_ += number;
  }

  void single(const char *metric, const char *type, const char *help, double value) {
    family(metric, type, help);
    sample(metric, "", value);
  }

  std::string take() { return std::move(text_); }

 private:
  std::string label_;
  std::string text_;
};

double seconds(int64_t us) { return double(us) / 1e6; }

}  // namespace

std::string prometheus_text(const pool_stats_t &s, const char *name) {
  writer w(name);
  w.family("connections", "gauge", "Connections by state.");
  w.sample("connections", "state=\"idle\"", double(s.idle));
  w.sample("connections", "state=\"checked_out\"", double(s.checked_out));
  w.sample("connections", "state=\"opening\"", double(s.opening));
  w.single("pool_size", "gauge", "Connections the pool keeps open (pool_size).",
           double(s.pool_size));
  w.single("max_overflow", "gauge", "Extra connections allowed in a burst; -1 is no limit.",
           double(s.max_overflow));
  w.single("overflow_connections", "gauge", "Open or opening connections beyond pool_size.",
           double(s.overflow));
  w.single("waiting_threads", "gauge", "Threads waiting in checkout.", double(s.waiting));

  w.single("connections_opened_total", "counter", "Connections opened.",
           double(s.opened_total));
  w.single("connections_closed_total", "counter", "Connections closed, for any reason.",
           double(s.closed_total));
  w.single("connect_failures_total", "counter", "Connects that failed.",
           double(s.connect_failures_total));
  w.single("connect_seconds_total", "counter", "Time spent in successful connects.",
           seconds(s.connect_time_total_us));
  w.single("connect_max_seconds", "gauge", "The longest successful connect.",
           seconds(s.connect_time_max_us));
  w.single("checkouts_total", "counter", "Successful checkouts.", double(s.checkouts_total));
  w.single("checkout_timeouts_total", "counter", "Checkouts that timed out.",
           double(s.timeouts_total));
  w.single("checkout_rejections_total", "counter",
           "Checkouts refused because max_waiting threads waited already.",
           double(s.rejected_total));
  w.single("checkout_fast_fails_total", "counter",
           "Checkouts failed at once during a connect back-off.", double(s.fast_fails_total));

  static constexpr int64_t bucket_us[POOL_WAIT_BUCKETS] = POOL_WAIT_BUCKET_US;
  w.family("checkout_wait_seconds", "histogram", "Time checkouts spent waiting in the queue.");
  for (int i = 0; i < POOL_WAIT_BUCKETS; i++) {
    char le[32];
    std::snprintf(le, sizeof le, "le=\"%g\"", seconds(bucket_us[i]));
    w.sample("checkout_wait_seconds_bucket", le, double(s.wait_le_us[i]));
  }
  w.sample("checkout_wait_seconds_bucket", "le=\"+Inf\"", double(s.waits_total));
  w.sample("checkout_wait_seconds_sum", "", seconds(s.wait_total_us));
  w.sample("checkout_wait_seconds_count", "", double(s.waits_total));
  w.single("checkout_wait_max_seconds", "gauge", "The longest wait in the queue.",
           seconds(s.wait_max_us));

  w.single("pings_total", "counter", "Round-trip pings made at checkout.",
           double(s.pings_total));
  w.single("dead_connections_total", "counter",
           "Connections found dead at checkout, by a ping or at checkin.", double(s.dead_total));
  w.single("recycled_connections_total", "counter", "Connections closed for their age.",
           double(s.recycled_total));
  w.single("idle_closed_connections_total", "counter",
           "Connections closed by idle_timeout.", double(s.idle_closed_total));
  w.single("invalidated_connections_total", "counter",
           "Connections closed after invalidation.", double(s.invalidated_total));
  w.single("reset_closed_connections_total", "counter",
           "Connections closed because a reset retired them.", double(s.reset_closed_total));
  w.single("resets_total", "counter", "Resets: pool_reset() calls and automatic ones.",
           double(s.resets_total));
  w.single("leaks_total", "counter", "Leases reported held longer than leak_threshold.",
           double(s.leaks_total));
  w.single("inherited_connections_total", "counter",
           "Connections inherited across fork and dropped unused.", double(s.inherited_total));
  return w.take();
}

}  // namespace connpool
