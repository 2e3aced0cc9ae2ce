// libpq's results read in place, and parameters as libpq takes them.
#include "pq_result.hh"

#include <cstdlib>
#include <cstring>

#include "error.hh"

namespace connpool {

namespace {

// PostgreSQL's built-in type OIDs (pg_type.dat): stable across versions.
pool_type type_of(Oid oid) {
  switch (oid) {
    case 16: return POOL_TYPE_BOOL;
    case 21: return POOL_TYPE_INT16;
    case 23: return POOL_TYPE_INT32;
    case 20: case 26: return POOL_TYPE_INT64;  // int8, oid
    case 700: return POOL_TYPE_FLOAT32;
    case 701: return POOL_TYPE_FLOAT64;
    case 1700: return POOL_TYPE_NUMERIC;
    case 25: case 1043: case 1042: case 19: case 18: return POOL_TYPE_TEXT;  // text, varchar,
                                                                             // bpchar, name, char
    case 17: return POOL_TYPE_BYTEA;
    case 1082: return POOL_TYPE_DATE;
    case 1083: case 1266: return POOL_TYPE_TIME;
    case 1114: return POOL_TYPE_TIMESTAMP;
    case 1184: return POOL_TYPE_TIMESTAMPTZ;
    case 1186: return POOL_TYPE_INTERVAL;
    case 2950: return POOL_TYPE_UUID;
    case 114: case 3802: return POOL_TYPE_JSON;
    // The arrays of the types above.
    case 1000: case 1001: case 1002: case 1003: case 1005: case 1007: case 1009: case 1014:
    case 1015: case 1016: case 1021: case 1022: case 1028: case 1115: case 1182: case 1183:
    case 1185: case 1187: case 1231: case 1270: case 2951: case 199: case 3807:
      return POOL_TYPE_ARRAY;
    default: return POOL_TYPE_UNKNOWN;
  }
}

Oid oid_of(int type) {
  switch (type) {
    case POOL_TYPE_BOOL: return 16;
    case POOL_TYPE_INT16: return 21;
    case POOL_TYPE_INT32: return 23;
    case POOL_TYPE_INT64: return 20;
    case POOL_TYPE_FLOAT32: return 700;
    case POOL_TYPE_FLOAT64: return 701;
    case POOL_TYPE_NUMERIC: return 1700;
    case POOL_TYPE_TEXT: return 25;
    case POOL_TYPE_BYTEA: return 17;
    case POOL_TYPE_DATE: return 1082;
    case POOL_TYPE_TIME: return 1083;
    case POOL_TYPE_TIMESTAMP: return 1114;
    case POOL_TYPE_TIMESTAMPTZ: return 1184;
    case POOL_TYPE_INTERVAL: return 1186;
    case POOL_TYPE_UUID: return 2950;
    case POOL_TYPE_JSON: return 114;
    default: return 0;  // unknown, and arrays (no one OID): the server infers the type
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytea's text form to its bytes: hex ("\x...", the server's default bytea_output), or the
// escape format through libpq.
std::string bytes_of_bytea(const char *text, size_t len) {
  if (len >= 2 && text[0] == '\\' && text[1] == 'x' && len % 2 == 0) {
    std::string out((len - 2) / 2, '\0');
    bool ok = true;
    for (size_t i = 0; i < out.size() && ok; i++) {
      int hi = hex_digit(text[2 + 2 * i]), lo = hex_digit(text[3 + 2 * i]);
      ok = hi >= 0 && lo >= 0;
      out[i] = char(hi << 4 | lo);
    }
    if (ok) return out;
  }
  size_t n = 0;
  unsigned char *raw = PQunescapeBytea(reinterpret_cast<const unsigned char *>(text), &n);
  if (!raw) throw std::bad_alloc();
  std::string out(reinterpret_cast<char *>(raw), n);
  PQfreemem(raw);
  return out;
}

class pq_result final : public result {
 public:
  pq_result(std::vector<pq_result_ptr> parts, pq_result_ptr shape, bool per_row)
      : parts_(std::move(parts)), shape_(std::move(shape)), per_row_(per_row) {
    const PGresult *s = shape_ ? shape_.get() : parts_.front().get();
    shape_of_ = s;
    rows_ = per_row_ ? int64_t(parts_.size()) : PQntuples(s);
    columns_ = PQnfields(s);
    types_.reserve(size_t(columns_));
    for (int c = 0; c < columns_; c++) types_.push_back(type_of(PQftype(s, c)));
    if (!per_row_) {
      // PQcmdTuples also counts the rows a SELECT returned: keep only what was written.
      const char *command = PQcmdStatus(const_cast<PGresult *>(s));
      bool writes = false;
      for (const char *verb : {"INSERT ", "UPDATE ", "DELETE ", "MERGE "})
        writes = writes || std::strncmp(command, verb, std::strlen(verb)) == 0;
      affected_ = writes ? std::atoll(PQcmdTuples(const_cast<PGresult *>(s))) : -1;
    }
  }

  int64_t rows() const noexcept override { return rows_; }
  int columns() const noexcept override { return columns_; }
  int64_t affected() const noexcept override { return affected_; }
  const char *name(int column) const noexcept override { return PQfname(shape_of_, column); }
  pool_type type(int column) const noexcept override { return types_[size_t(column)]; }
  int64_t backend_type(int column) const noexcept override {
    return int64_t(PQftype(shape_of_, column));
  }

  const char *bytes(int64_t row, int column, size_t *len) const override {
    const PGresult *res;
    int r = locate(row, &res);
    if (PQgetisnull(res, r, column)) {
      *len = 0;
      return nullptr;
    }
    const char *text = PQgetvalue(res, r, column);
    size_t n = size_t(PQgetlength(res, r, column));
    if (types_[size_t(column)] != POOL_TYPE_BYTEA) {
      *len = n;
      return text;
    }
    const std::string &raw = decoded_.get(size_t(row) * size_t(columns_) + size_t(column),
                                          [&] { return bytes_of_bytea(text, n); });
    *len = raw.size();
    return raw.c_str();
  }

  const char *text(int64_t row, int column) const override {
    const PGresult *res;
    int r = locate(row, &res);
    return PQgetisnull(res, r, column) ? nullptr : PQgetvalue(res, r, column);
  }

  size_t memory() const noexcept override {
    size_t n = sizeof *this + decoded_.memory() + parts_.capacity() * sizeof(pq_result_ptr);
    for (const pq_result_ptr &p : parts_) n += PQresultMemorySize(p.get());
    if (shape_) n += PQresultMemorySize(shape_.get());
    return n;
  }

 private:
  int locate(int64_t row, const PGresult **res) const noexcept {
    if (per_row_) {
      *res = parts_[size_t(row)].get();
      return 0;
    }
    *res = parts_.front().get();
    return int(row);
  }

  std::vector<pq_result_ptr> parts_;
  pq_result_ptr shape_;
  const PGresult *shape_of_ = nullptr;
  bool per_row_;
  int64_t rows_ = 0;
  int columns_ = 0;
  int64_t affected_ = -1;
  std::vector<pool_type> types_;
  lazy_values decoded_;  // bytea values' raw bytes, by cell
};

}  // namespace

std::unique_ptr<result> make_pq_result(pq_result_ptr whole) {
  std::vector<pq_result_ptr> parts;
  parts.push_back(std::move(whole));
  return std::make_unique<pq_result>(std::move(parts), own(nullptr), false);
}

std::unique_ptr<result> make_pq_piece(std::vector<pq_result_ptr> rows, pq_result_ptr shape) {
  if (rows.empty()) return make_pq_result(std::move(shape));
  return std::make_unique<pq_result>(std::move(rows), own(nullptr), true);
}

pq_params::pq_params(const statement &st) {
  size_t n = size_t(st.nparams);
  types.resize(n);
  values.resize(n);
  lengths.resize(n);
  formats.resize(n);
  copies_.reserve(n);
  for (size_t i = 0; i < n; i++) {
    const pool_param_t &p = st.params[i];
    check_param(i, p);
    types[i] = oid_of(p.type);
    const char *value = static_cast<const char *>(p.value);
    values[i] = value;
    if (!value) continue;
    size_t len = p.length < 0 ? std::strlen(value) : size_t(p.length);
    if (p.type == POOL_TYPE_BYTEA) {
      formats[i] = 1;  // binary: the bytes as they are
      lengths[i] = int(len);
      if (len > size_t(INT32_MAX))
        throw error(POOL_EINVAL, "parameter " + std::to_string(i + 1) + " is over 2 GB");
      continue;
    }
    if (p.length < 0) continue;
    copies_.emplace_back(value, len);
    values[i] = copies_.back().c_str();  // reserved: never reallocated
  }
}

}  // namespace connpool
