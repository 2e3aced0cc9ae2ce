// Fuzzes the pool's option string (lib/options.cc): split_key_values, then parse_options.
// The input is the string as pool_create gets it (up to its first NUL). Properties:
// - a rejection is connpool::error with POOL_EINVAL and a message naming a key; no other
//   exception type ever escapes;
// - the split round-trips: the pairs written back quoted ('...' with \' and \\), or unquoted
//   with backslash escapes, split into the same pairs;
// - the grammar is libpq's: a string libpq's own PQconninfoParse accepts splits into the same
//   pairs (fuzzed strings rarely use only libpq keywords, so the corpus seeds some that do);
// - accepted options keep their invariants (pool_size >= 1, min_idle <= pool_size, seconds
//   in [0, 1e6], jitter < recycle, ...), and each value is what an independent reading of the
//   text gives (integers by strtoll, seconds by strtod);
// - the last of a repeated key wins, and the order of distinct keys does not matter.
#include <libpq-fe.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "error.hh"
#include "fuzz_check.hh"
#include "options.hh"

namespace {

using connpool::key_values;
using connpool::options;

std::string quoted(const std::string &v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string escaped(const std::string &v) {
  if (v.empty()) return "''";  // unquoted, an empty value would swallow the next pair
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '\'' || std::strchr(" \t\n\r\f\v", c)) out += '\\';
    out += c;
  }
  return out;
}

std::string written(const key_values &pairs, std::string (*write_value)(const std::string &)) {
  std::string out;
  for (const auto &[key, value] : pairs) out += key + "=" + write_value(value) + " ";
  return out;
}

bool same_options(const options &a, const options &b) {
  return a.pool_size == b.pool_size && a.max_overflow == b.max_overflow &&
         a.pool_timeout_s == b.pool_timeout_s && a.use_lifo == b.use_lifo &&
         a.reset == b.reset && a.null_pool == b.null_pool &&
         a.odbc_allow_dm_pooling == b.odbc_allow_dm_pooling && a.pre_ping == b.pre_ping &&
         a.pre_ping_interval_s == b.pre_ping_interval_s && a.ping_timeout_s == b.ping_timeout_s &&
         a.recycle_s == b.recycle_s && a.recycle_jitter_s == b.recycle_jitter_s &&
         a.idle_timeout_s == b.idle_timeout_s && a.min_idle == b.min_idle &&
         a.max_waiting == b.max_waiting && a.leak_threshold_s == b.leak_threshold_s &&
         a.fail_fast_after == b.fail_fast_after &&
         a.fail_fast_backoff_max_s == b.fail_fast_backoff_max_s;
}

// The result, or the rejection's message (empty when accepted). Only connpool::error with
// POOL_EINVAL may come out, with a message.
bool try_parse(const key_values &pairs, options *out, std::string *why) {
  try {
    *out = connpool::parse_options(pairs);
    return true;
  } catch (const connpool::error &e) {
    FUZZ_REQUIRE(e.code() == POOL_EINVAL, "parse_options threw code %d: %s", e.code(), e.what());
    FUZZ_REQUIRE(e.what()[0] != '\0', "parse_options threw an empty message");
    *why = e.what();
    return false;
  } catch (const std::exception &e) {
    FUZZ_REQUIRE(false, "parse_options threw a non-connpool exception: %s", e.what());
  } catch (...) {
    FUZZ_REQUIRE(false, "parse_options threw a non-exception");
  }
  return false;
}

// Integers: optional '-', 1 to 18 digits, nothing else.
bool integer_text(const std::string &v) {
  size_t i = !v.empty() && v[0] == '-' ? 1 : 0;
  if (i == v.size() || v.size() > 18) return false;
  return v.find_first_not_of("0123456789", i) == std::string::npos;
}

// Seconds: digits with at most one '.', at least one digit.
bool seconds_text(const std::string &v) {
  return v.find_first_not_of("0123456789.") == std::string::npos &&
         std::count(v.begin(), v.end(), '.') <= 1 && v.find_first_of("0123456789") != std::string::npos;
}

// The hand-written parser against strtod (the fuzzer runs in the "C" locale). Both directions,
// with room for rounding at the 1e6 limit.
void check_seconds(const char *key, double got, bool accepted, const std::string &v) {
  if (!seconds_text(v)) {
    FUZZ_REQUIRE(!accepted, "%s=\"%s\" is not a number of seconds but was accepted", key, v.c_str());
    return;
  }
  double want = std::strtod(v.c_str(), nullptr);
  if (accepted) {
    FUZZ_REQUIRE(want <= 1e6 * (1 + 1e-12), "%s=\"%s\" (%g) above 1e6 was accepted", key, v.c_str(), want);
    FUZZ_REQUIRE(std::fabs(got - want) <= 1e-9 * std::max(1.0, want),
                 "%s=\"%s\" read as %.17g, strtod says %.17g", key, v.c_str(), got, want);
  } else {
    FUZZ_REQUIRE(want > 1e6 * (1 - 1e-12), "%s=\"%s\" (%g) was rejected", key, v.c_str(), want);
  }
}

void check_integer(const char *key, long long got, bool accepted, const std::string &v,
                   long long min) {
  bool valid = integer_text(v);
  long long want = valid ? std::strtoll(v.c_str(), nullptr, 10) : 0;
  valid = valid && want >= min && want <= INT_MAX;
  FUZZ_REQUIRE(accepted == valid, "%s=\"%s\": accepted %d, want %d", key, v.c_str(), accepted, valid);
  if (accepted) FUZZ_REQUIRE(got == want, "%s=\"%s\" read as %lld", key, v.c_str(), got);
}

// Each key alone (so a rejection can only be about that value), against the reference.
void check_single_values(const std::map<std::string, std::string> &last) {
  for (const auto &[key, value] : last) {
    options o;
    std::string why;
    bool ok = try_parse({{key, value}}, &o, &why);
    const char *k = key.c_str();
    if (key == "pool_size") check_integer(k, o.pool_size, ok, value, 1);
    else if (key == "max_overflow") check_integer(k, o.max_overflow, ok, value, -1);
    else if (key == "min_idle") {
      // Alone, min_idle must also fit under the default pool_size of 5.
      if (ok || why.find("more than pool_size") == std::string::npos)
        check_integer(k, o.min_idle, ok, value, 0);
    } else if (key == "max_waiting") check_integer(k, o.max_waiting, ok, value, -1);
    else if (key == "fail_fast_after") check_integer(k, o.fail_fast_after, ok, value, 0);
    else if (key == "pool_timeout") check_seconds(k, o.pool_timeout_s, ok, value);
    else if (key == "pre_ping_interval") check_seconds(k, o.pre_ping_interval_s, ok, value);
    else if (key == "idle_timeout") check_seconds(k, o.idle_timeout_s, ok, value);
    else if (key == "leak_threshold") check_seconds(k, o.leak_threshold_s, ok, value);
    else if (key == "fail_fast_backoff_max") check_seconds(k, o.fail_fast_backoff_max_s, ok, value);
    else if (key == "pool_recycle_jitter") check_seconds(k, o.recycle_jitter_s, ok, value);
    else if (key == "pool_recycle" && value != "-1" &&
             (ok || why.find("pool_recycle_jitter") == std::string::npos))
      check_seconds(k, o.recycle_s, ok, value);
    if (!ok) FUZZ_REQUIRE(why.find(key) != std::string::npos, "\"%s\" does not name %s", why.c_str(), k);
  }
}

void check_invariants(const options &o) {
  FUZZ_REQUIRE(o.pool_size >= 1, "pool_size %d", o.pool_size);
  FUZZ_REQUIRE(o.max_overflow >= -1, "max_overflow %d", o.max_overflow);
  FUZZ_REQUIRE(o.min_idle >= 0 && o.min_idle <= o.pool_size, "min_idle %d, pool_size %d",
               o.min_idle, o.pool_size);
  FUZZ_REQUIRE(o.max_waiting >= -1, "max_waiting %d", o.max_waiting);
  FUZZ_REQUIRE(o.fail_fast_after >= 0, "fail_fast_after %d", o.fail_fast_after);
  for (double s : {o.pool_timeout_s, o.pre_ping_interval_s, o.ping_timeout_s, o.recycle_s,
                   o.recycle_jitter_s, o.idle_timeout_s, o.leak_threshold_s,
                   o.fail_fast_backoff_max_s})
    FUZZ_REQUIRE(std::isfinite(s) && s >= 0 && s <= 1e6, "seconds %g out of range", s);
  FUZZ_REQUIRE(o.ping_timeout_s > 0, "ping_timeout %g", o.ping_timeout_s);
  FUZZ_REQUIRE(o.recycle_s == 0 || o.recycle_jitter_s < o.recycle_s, "jitter %g, recycle %g",
               o.recycle_jitter_s, o.recycle_s);
}

// When libpq accepts the string (only libpq keywords), it must read the same last values.
void check_against_libpq(const std::string &text, const std::map<std::string, std::string> &last,
                         bool we_accepted) {
  // libpq rewrites the obsolete requiressl=1 into sslmode=require, and reads a string that
  // starts with its URI schemes as a URI.
  if (last.count("requiressl") || text.rfind("postgresql://", 0) == 0 ||
      text.rfind("postgres://", 0) == 0)
    return;
  char *why = nullptr;
  PQconninfoOption *parsed = PQconninfoParse(text.c_str(), &why);
  PQfreemem(why);
  if (!parsed) return;
  FUZZ_REQUIRE(we_accepted, "libpq parses \"%s\" but split_key_values rejects it", text.c_str());
  for (PQconninfoOption *o = parsed; o->keyword; o++) {
    auto it = last.find(o->keyword);
    if (!o->val) {
      FUZZ_REQUIRE(it == last.end(), "libpq has no %s, we read \"%s\"", o->keyword, it->second.c_str());
      continue;
    }
    FUZZ_REQUIRE(it != last.end(), "libpq reads %s=\"%s\", we have no such key", o->keyword, o->val);
    FUZZ_REQUIRE(it->second == o->val, "%s: libpq reads \"%s\", we read \"%s\"", o->keyword, o->val,
                 it->second.c_str());
  }
  PQconninfoFree(parsed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text = fuzz::c_string(data, size);
  key_values pairs;
  bool split_ok = false;
  try {
    pairs = connpool::split_key_values(text.c_str());
    split_ok = true;
  } catch (const connpool::error &e) {
    FUZZ_REQUIRE(e.code() == POOL_EINVAL, "split threw code %d: %s", e.code(), e.what());
    FUZZ_REQUIRE(e.what()[0] != '\0', "split threw an empty message");
  } catch (const std::exception &e) {
    FUZZ_REQUIRE(false, "split threw a non-connpool exception: %s", e.what());
  } catch (...) {
    FUZZ_REQUIRE(false, "split threw a non-exception");
  }
  std::map<std::string, std::string> last;
  for (const auto &[key, value] : pairs) last[key] = value;
  check_against_libpq(text, last, split_ok);
  if (!split_ok) return 0;

  for (const auto &[key, value] : pairs) {
    FUZZ_REQUIRE(key.find_first_of("= \t\n\r\f\v") == std::string::npos,
                 "key \"%s\" holds a separator", key.c_str());
    (void)value;
  }
  for (auto write_value : {quoted, escaped}) {
    std::string again = written(pairs, write_value);
    FUZZ_REQUIRE(connpool::split_key_values(again.c_str()) == pairs,
                 "\"%s\" written back as \"%s\" splits differently", text.c_str(), again.c_str());
  }

  options o;
  std::string why;
  bool ok = try_parse(pairs, &o, &why);
  if (ok) check_invariants(o);
  else if (!pairs.empty())
    FUZZ_REQUIRE(std::any_of(pairs.begin(), pairs.end(),
                             [&](const auto &p) { return why.find(p.first) != std::string::npos; }),
                 "\"%s\" names none of the keys", why.c_str());

  // The last value of each key alone, in key order and reversed: the same options.
  if (ok) {
    key_values distinct(last.begin(), last.end());
    for (int pass = 0; pass < 2; pass++) {
      options again;
      std::string why_again;
      FUZZ_REQUIRE(try_parse(distinct, &again, &why_again),
                   "the last values alone are rejected: %s", why_again.c_str());
      FUZZ_REQUIRE(same_options(o, again), "the last values alone parse differently");
      std::reverse(distinct.begin(), distinct.end());
    }
  }
  check_single_values(last);
  return 0;
}
