// Prometheus text format 0.0.4: a HELP and a TYPE line per metric family, then its samples.
// Names follow Prometheus' conventions: a connpool_ prefix, base units (seconds), _total on
// counters, and the wait histogram as _bucket{le=...}, _sum and _count.
#include "metrics.hh"

#include <cstdio>

namespace connpool {

namespace {

// A metric read straight from one field of pool_stats_t.
struct metric {
  const char *name, *type, *help;
  int64_t pool_stats_t::*field;
  bool microseconds;  // the field is in microseconds; the metric in seconds
};

const metric field_metrics[] = {
    {"pool_size", "gauge", "Connections the pool keeps open (pool_size).",
     &pool_stats_t::pool_size, false},
    {"max_overflow", "gauge", "Extra connections allowed in a burst; -1 is no limit.",
     &pool_stats_t::max_overflow, false},
    {"overflow_connections", "gauge", "Open or opening connections beyond pool_size.",
     &pool_stats_t::overflow, false},
    {"waiting_threads", "gauge", "Threads waiting in checkout.", &pool_stats_t::waiting, false},
    {"connections_opened_total", "counter", "Connections opened.", &pool_stats_t::opened_total,
     false},
    {"connections_closed_total", "counter", "Connections closed, for any reason.",
     &pool_stats_t::closed_total, false},
    {"connect_failures_total", "counter", "Connects that failed.",
     &pool_stats_t::connect_failures_total, false},
    {"connect_seconds_total", "counter", "Time spent in successful connects.",
     &pool_stats_t::connect_time_total_us, true},
    {"connect_max_seconds", "gauge", "The longest successful connect.",
     &pool_stats_t::connect_time_max_us, true},
    {"checkouts_total", "counter", "Successful checkouts.", &pool_stats_t::checkouts_total, false},
    {"checkout_timeouts_total", "counter", "Checkouts that timed out.",
     &pool_stats_t::timeouts_total, false},
    {"checkout_rejections_total", "counter",
     "Checkouts refused because max_waiting threads waited already.",
     &pool_stats_t::rejected_total, false},
    {"checkout_fast_fails_total", "counter",
     "Checkouts failed at once during a connect back-off.", &pool_stats_t::fast_fails_total,
     false},
    {"checkout_wait_max_seconds", "gauge", "The longest wait in the queue.",
     &pool_stats_t::wait_max_us, true},
    {"pings_total", "counter", "Round-trip pings made at checkout.", &pool_stats_t::pings_total,
     false},
    {"dead_connections_total", "counter",
     "Connections found dead at checkout, by a ping, at checkin or by maintenance.",
     &pool_stats_t::dead_total, false},
    {"recycled_connections_total", "counter", "Connections closed for their age.",
     &pool_stats_t::recycled_total, false},
    {"idle_closed_connections_total", "counter", "Connections closed by idle_timeout.",
     &pool_stats_t::idle_closed_total, false},
    {"invalidated_connections_total", "counter", "Connections closed after invalidation.",
     &pool_stats_t::invalidated_total, false},
    {"reset_closed_connections_total", "counter",
     "Connections closed because a reset retired them.", &pool_stats_t::reset_closed_total,
     false},
    {"resets_total", "counter", "Resets: pool_reset() calls and automatic ones.",
     &pool_stats_t::resets_total, false},
    {"leaks_total", "counter", "Leases reported held longer than leak_threshold.",
     &pool_stats_t::leaks_total, false},
    {"inherited_connections_total", "counter",
     "Connections inherited across fork and dropped unused.", &pool_stats_t::inherited_total,
     false},
};

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

  void single(const metric &m, const pool_stats_t &s) {
    family(m.name, m.type, m.help);
    double value = double(s.*m.field);
    sample(m.name, "", m.microseconds ? value / 1e6 : value);
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
  for (const metric &m : field_metrics) w.single(m, s);

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
  return w.take();
}

}  // namespace connpool
