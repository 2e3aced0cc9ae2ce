#include "options.hh"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <strings.h>

#include "error.hh"

namespace connpool {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

[[noreturn]] void bad_value(const std::string &key, const std::string &value, const char *why) {
  throw error(POOL_EINVAL, key + ": \"" + value + "\" " + why);
}

// Digits only, optionally signed: strtoll alone would accept " 5", "5 " and "0x5".
long long parse_integer(const std::string &key, const std::string &value, long long min,
                        long long max, const char *why) {
  size_t i = (!value.empty() && value[0] == '-') ? 1 : 0;
  if (i == value.size() || value.size() > 18) bad_value(key, value, why);
  for (size_t j = i; j < value.size(); j++)
    if (value[j] < '0' || value[j] > '9') bad_value(key, value, why);
  long long n = std::strtoll(value.c_str(), nullptr, 10);
  if (n < min || n > max) bad_value(key, value, why);
  return n;
}

// "12", "0.5", "2.", ".25": parsed by hand because strtod follows the process locale, which a
// host program (say, Python under de_DE) may have set to a decimal comma.
double parse_seconds(const std::string &key, const std::string &value) {
  const char *why = "is not a number of seconds between 0 and 1000000";
  double whole = 0, scale = 1;
  bool digits = false, point = false;
  for (char c : value) {
    if (c == '.' && !point) {
      point = true;
    } else if (c >= '0' && c <= '9') {
      digits = true;
      if (point) {
        scale /= 10;
        whole += (c - '0') * scale;
      } else {
        whole = whole * 10 + (c - '0');
      }
      if (whole > 1e6) bad_value(key, value, why);
    } else {
      bad_value(key, value, why);
    }
  }
  if (!digits) bad_value(key, value, why);
  return whole;
}

bool parse_bool(const std::string &key, const std::string &value) {
  static const char *const truthy[] = {"true", "on", "yes", "1"};
  static const char *const falsy[] = {"false", "off", "no", "0"};
  for (const char *t : truthy)
    if (strcasecmp(value.c_str(), t) == 0) return true;
  for (const char *f : falsy)
    if (strcasecmp(value.c_str(), f) == 0) return false;
  bad_value(key, value, "is not a boolean (true/false, on/off, yes/no, 1/0)");
}

}  // namespace

key_values split_key_values(const char *text) {
  key_values pairs;
  const char *p = text ? text : "";
  for (;;) {
    while (is_space(*p)) p++;
    if (*p == '\0') break;
    std::string key;
    while (*p && *p != '=' && !is_space(*p)) key += *p++;
    while (is_space(*p)) p++;
    if (*p != '=') throw error(POOL_EINVAL, "options: missing \"=\" after \"" + key + "\"");
    p++;
    while (is_space(*p)) p++;
    std::string value;
    if (*p == '\'') {
      p++;
      for (;;) {
        if (*p == '\0')
          throw error(POOL_EINVAL, "options: unterminated quoted value for \"" + key + "\"");
        if (*p == '\'') break;
        if (*p == '\\' && p[1]) p++;
        value += *p++;
      }
      p++;
    } else {
      // As libpq: a backslash escapes the next character; a last one is dropped.
      while (*p && !is_space(*p)) {
        if (*p == '\\' && !*++p) break;
        value += *p++;
      }
    }
    pairs.emplace_back(std::move(key), std::move(value));
  }
  return pairs;
}

options parse_options(const key_values &pairs) {
  options o;
  for (const auto &[key, value] : pairs) {
    if (key == "pool_size") {
      o.pool_size = int(parse_integer(key, value, 1, INT_MAX,
                                      "is not an integer of at least 1 (for no pooling, "
                                      "use poolclass=null)"));
    } else if (key == "max_overflow") {
      o.max_overflow = int(parse_integer(key, value, -1, INT_MAX,
                                         "is not an integer of at least -1 (-1: unlimited)"));
    } else if (key == "pool_timeout") {
      o.pool_timeout_s = parse_seconds(key, value);
    } else if (key == "pool_use_lifo") {
      o.use_lifo = parse_bool(key, value);
    } else if (key == "pool_handoff_after") {
      o.handoff_after_s = parse_seconds(key, value);
    } else if (key == "pool_overflow_after") {
      o.overflow_after_s = value == "auto" ? -1 : parse_seconds(key, value);
    } else if (key == "reset_on_return") {
      if (value == "rollback") o.reset = POOL_RESET_ROLLBACK;
      else if (value == "commit") o.reset = POOL_RESET_COMMIT;
      else if (value == "discard") o.reset = POOL_RESET_DISCARD;
      else if (value == "none") o.reset = POOL_RESET_NONE;
      else bad_value(key, value, "is not one of rollback, commit, discard, none");
    } else if (key == "poolclass") {
      if (value == "queue") o.null_pool = false;
      else if (value == "null") o.null_pool = true;
      else bad_value(key, value, "is not one of queue, null");
    } else if (key == "odbc_dm_pooling") {
      if (value == "refuse") o.odbc_allow_dm_pooling = false;
      else if (value == "allow") o.odbc_allow_dm_pooling = true;
      else bad_value(key, value, "is not one of refuse, allow");
    } else if (key == "pool_pre_ping") {
      o.pre_ping = parse_bool(key, value);
    } else if (key == "pre_ping_interval") {
      o.pre_ping_interval_s = parse_seconds(key, value);
    } else if (key == "ping_timeout") {
      o.ping_timeout_s = parse_seconds(key, value);
      if (o.ping_timeout_s <= 0) bad_value(key, value, "must be more than 0 seconds");
    } else if (key == "pool_recycle") {
      o.recycle_s = value == "-1" ? 0 : parse_seconds(key, value);
    } else if (key == "pool_recycle_jitter") {
      o.recycle_jitter_s = parse_seconds(key, value);
    } else if (key == "idle_timeout") {
      o.idle_timeout_s = parse_seconds(key, value);
    } else if (key == "min_idle") {
      o.min_idle = int(parse_integer(key, value, 0, INT_MAX, "is not an integer of at least 0"));
    } else if (key == "max_waiting") {
      o.max_waiting = int(parse_integer(key, value, -1, INT_MAX,
                                        "is not an integer of at least -1 (-1: no limit)"));
    } else if (key == "leak_threshold") {
      o.leak_threshold_s = parse_seconds(key, value);
    } else if (key == "fail_fast_after") {
      o.fail_fast_after = int(parse_integer(key, value, 0, INT_MAX,
                                            "is not an integer of at least 0 (0: never)"));
    } else if (key == "fail_fast_backoff_max") {
      o.fail_fast_backoff_max_s = parse_seconds(key, value);
    } else if (key == "query_timeout") {
      o.query_timeout_s = parse_seconds(key, value);
    } else if (key == "statement_cache_size") {
      o.statement_cache_size = int(parse_integer(key, value, 0, 100000,
                                                 "is not an integer from 0 to 100000 (0: off)"));
    } else {
      throw error(POOL_EINVAL, "unknown option \"" + key +
                                   "\" (known: pool_size, max_overflow, pool_timeout, "
                                   "pool_use_lifo, pool_handoff_after, pool_overflow_after, "
                                   "reset_on_return, poolclass, "
                                   "odbc_dm_pooling, pool_pre_ping, pre_ping_interval, "
                                   "ping_timeout, pool_recycle, pool_recycle_jitter, "
                                   "idle_timeout, min_idle, max_waiting, leak_threshold, "
                                   "fail_fast_after, fail_fast_backoff_max, query_timeout, "
                                   "statement_cache_size)");
    }
  }
  // Checks across options, once all are known (their order in the string does not matter).
  if (o.min_idle > o.pool_size)
    throw error(POOL_EINVAL, "min_idle: " + std::to_string(o.min_idle) +
                                 " is more than pool_size " + std::to_string(o.pool_size));
  if (o.recycle_jitter_s < 0) o.recycle_jitter_s = o.recycle_s / 10;
  if (o.recycle_s > 0 && o.recycle_jitter_s >= o.recycle_s)
    throw error(POOL_EINVAL, "pool_recycle_jitter must be less than pool_recycle");
  return o;
}

}  // namespace connpool
