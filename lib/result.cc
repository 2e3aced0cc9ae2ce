// What every result offers the same way, whatever its connector: the typed getters and the
// bulk read of pool_result_*.
#include "result.hh"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "error.hh"

namespace connpool {

std::string hex_of(const char *bytes, size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string s(2 + 2 * len, '\0');
  s[0] = '\\';
  s[1] = 'x';
  for (size_t i = 0; i < len; i++) {
    unsigned char b = static_cast<unsigned char>(bytes[i]);
    s[2 + 2 * i] = digits[b >> 4];
    s[3 + 2 * i] = digits[b & 15];
  }
  return s;
}

namespace {

const char *type_name(pool_type t) {
  switch (t) {
    case POOL_TYPE_BOOL: return "bool";
    case POOL_TYPE_INT16: return "int16";
    case POOL_TYPE_INT32: return "int32";
    case POOL_TYPE_INT64: return "int64";
    case POOL_TYPE_FLOAT32: return "float32";
    case POOL_TYPE_FLOAT64: return "float64";
    case POOL_TYPE_NUMERIC: return "numeric";
    case POOL_TYPE_TEXT: return "text";
    case POOL_TYPE_BYTEA: return "bytea";
    case POOL_TYPE_DATE: return "date";
    case POOL_TYPE_TIME: return "time";
    case POOL_TYPE_TIMESTAMP: return "timestamp";
    case POOL_TYPE_TIMESTAMPTZ: return "timestamptz";
    case POOL_TYPE_INTERVAL: return "interval";
    case POOL_TYPE_UUID: return "uuid";
    case POOL_TYPE_JSON: return "json";
    case POOL_TYPE_ARRAY: return "array";
    case POOL_TYPE_UNKNOWN: break;
  }
  return "unknown";
}

// The value's text, checked: in range (else POOL_ERANGE) and not NULL (else POOL_ETYPE).
const char *checked_text(const result &r, int64_t row, int column, const char *wanted) {
  check_cell(r, row, column);
  const char *text = r.text(row, column);
  if (!text)
    throw error(POOL_ETYPE, std::string("the value at row ") + std::to_string(row) +
                                ", column " + std::to_string(column) + " is NULL, not " +
                                wanted);
  return text;
}

[[noreturn]] void wrong_type(const result &r, int64_t row, int column, const char *wanted,
                             const char *why) {
  throw error(POOL_ETYPE, std::string("the value at row ") + std::to_string(row) +
                              ", column " + std::to_string(column) + " (" +
                              type_name(r.type(column)) + ") " + why + " " + wanted);
}

}  // namespace

void check_param(size_t i, const pool_param_t &p) {
  if (p.type < POOL_TYPE_UNKNOWN || p.type > POOL_TYPE_ARRAY)
    throw error(POOL_EINVAL, "parameter " + std::to_string(i + 1) + " has type " +
                                 std::to_string(p.type) + ", not a pool_type");
  if (p.value && p.length < -1)
    throw error(POOL_EINVAL, "parameter " + std::to_string(i + 1) +
                                 " has a negative length (-1: NUL-terminated)");
  if (p.value && p.length > 0 && p.type != POOL_TYPE_BYTEA &&
      std::memchr(p.value, '\0', size_t(p.length)))
    throw error(POOL_EINVAL, "parameter " + std::to_string(i + 1) +
                                 " holds a NUL byte, which text cannot: send it as "
                                 "POOL_TYPE_BYTEA");
}

void check_cell(const result &r, int64_t row, int column) {
  if (!holds_cell(r, row, column))
    throw error(POOL_ERANGE, "row " + std::to_string(row) + ", column " +
                                 std::to_string(column) + " is out of range (the result has " +
                                 std::to_string(r.rows()) + " rows of " +
                                 std::to_string(r.columns()) + " columns)");
}

int64_t int64_at(const result &r, int64_t row, int column) {
  const char *text = checked_text(r, row, column, "an int64");
  pool_type t = r.type(column);
  if (t == POOL_TYPE_BYTEA || t == POOL_TYPE_BOOL) wrong_type(r, row, column, "an int64", "is not");
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0')
    wrong_type(r, row, column, "an int64", "is not an integer, so not");
  if (errno == ERANGE) wrong_type(r, row, column, "an int64", "is out of the range of");
  return int64_t(v);
}

double double_at(const result &r, int64_t row, int column) {
  const char *text = checked_text(r, row, column, "a double");
  pool_type t = r.type(column);
  bool numeric = t == POOL_TYPE_INT16 || t == POOL_TYPE_INT32 || t == POOL_TYPE_INT64 ||
                 t == POOL_TYPE_FLOAT32 || t == POOL_TYPE_FLOAT64 || t == POOL_TYPE_NUMERIC;
  if (!numeric) wrong_type(r, row, column, "a double", "is not a number, so not");
  char *end = nullptr;
  double v = std::strtod(text, &end);  // "Infinity", "-Infinity" and "NaN" included
  if (end == text || *end != '\0') wrong_type(r, row, column, "a double", "does not read as");
  return v;  // a numeric beyond a double's range reads as +-HUGE_VAL, as a cast would give
}

bool bool_at(const result &r, int64_t row, int column) {
  const char *text = checked_text(r, row, column, "a bool");
  if (r.type(column) != POOL_TYPE_BOOL) wrong_type(r, row, column, "a bool", "is not");
  return text[0] == 't';
}

size_t read_rows(const result &r, int64_t first_row, int64_t nrows, char *buf, size_t buf_len,
                 int64_t *lengths, bool *fits) {
  int columns = r.columns();
  int64_t end = first_row + std::min(nrows, r.rows() - first_row);
  size_t needed = 0;
  for (int64_t row = first_row; row < end; row++)
    for (int c = 0; c < columns; c++) {
      size_t len = 0;
      r.bytes(row, c, &len);
      needed += len + 1;
    }
  *fits = buf_len >= needed;
  if (!*fits) return needed;
  if (end > first_row && !lengths)
    throw error(POOL_EINVAL, "lengths is NULL: it must have room for nrows * columns lengths");
  size_t at = 0, i = 0;
  for (int64_t row = first_row; row < end; row++)
    for (int c = 0; c < columns; c++, i++) {
      size_t len = 0;
      const char *value = r.bytes(row, c, &len);
      lengths[i] = value ? int64_t(len) : -1;
      if (value) std::memcpy(buf + at, value, len);
      at += len;
      buf[at++] = '\0';
    }
  return needed;
}

}  // namespace connpool
