// ODBC's types as pool_types, and a fetched result in one block.
#include "odbc_result.hh"

#include <sqlext.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <strings.h>

namespace connpool {

namespace {

pool_type type_of(SQLSMALLINT sql_type, const char *type_name, bool sqlite) {
  switch (sql_type) {
    case SQL_BIT: return POOL_TYPE_BOOL;
    case SQL_TINYINT: case SQL_SMALLINT: return POOL_TYPE_INT16;
    case SQL_INTEGER: return sqlite ? POOL_TYPE_INT64 : POOL_TYPE_INT32;
    case SQL_BIGINT: return POOL_TYPE_INT64;
    case SQL_REAL: return POOL_TYPE_FLOAT32;
    case SQL_FLOAT: case SQL_DOUBLE: return POOL_TYPE_FLOAT64;
    case SQL_NUMERIC: case SQL_DECIMAL: return POOL_TYPE_NUMERIC;
    case SQL_BINARY: case SQL_VARBINARY: case SQL_LONGVARBINARY: return POOL_TYPE_BYTEA;
    case SQL_TYPE_DATE: case SQL_DATE: return POOL_TYPE_DATE;
    case SQL_TYPE_TIME: case SQL_TIME: return POOL_TYPE_TIME;
    case SQL_TYPE_TIMESTAMP: case SQL_TIMESTAMP:
      // psqlODBC names timestamptz so (and gives its value without the offset).
      return strcasecmp(type_name, "timestamptz") == 0 ? POOL_TYPE_TIMESTAMPTZ
                                                        : POOL_TYPE_TIMESTAMP;
    case SQL_GUID: return POOL_TYPE_UUID;
    case SQL_CHAR: case SQL_VARCHAR: case SQL_LONGVARCHAR: case SQL_WCHAR: case SQL_WVARCHAR:
    case SQL_WLONGVARCHAR:
      // psqlODBC reads bool as characters (BoolsAsChar, its default), naming it "bool".
      return strcasecmp(type_name, "bool") == 0 ? POOL_TYPE_BOOL : POOL_TYPE_TEXT;
    default: return POOL_TYPE_UNKNOWN;
  }
}

}  // namespace

std::shared_ptr<const odbc_columns> describe_columns(SQLHSTMT stmt, bool sqlite) {
  auto cols = std::make_shared<odbc_columns>();
  SQLSMALLINT n = 0;
  SQLNumResultCols(stmt, &n);
  for (SQLUSMALLINT c = 1; c <= SQLUSMALLINT(std::max<SQLSMALLINT>(n, 0)); c++) {
    SQLCHAR name[256] = "", type_name[64] = "";
    SQLSMALLINT len = 0, sql_type = 0, digits = 0, nullable = 0;
    SQLULEN size = 0;
    SQLDescribeCol(stmt, c, name, sizeof name, &len, &sql_type, &size, &digits, &nullable);
    SQLColAttribute(stmt, c, SQL_DESC_TYPE_NAME, type_name, sizeof type_name, &len, nullptr);
    cols->names.emplace_back(reinterpret_cast<char *>(name));
    cols->sql_types.push_back(sql_type);
    cols->types.push_back(type_of(sql_type, reinterpret_cast<char *>(type_name), sqlite));
  }
  return cols;
}

void odbc_result::end_value(bool null) {
  size_t column = lengths_.size() % cols_->names.size();
  if (null) {
    data_.resize(value_start_);
  } else if (cols_->types[column] == POOL_TYPE_BOOL) {
    // "1" or "0" from ODBC's bit (and psqlODBC's bool), as PostgreSQL's "t" and "f".
    char first = value_start_ < data_.size() ? data_[value_start_] : '0';
    bool yes = first == '1' || first == 't' || first == 'T' || first == 'y' || first == 'Y';
    data_.resize(value_start_);
    data_.push_back(yes ? 't' : 'f');
  } else if (cols_->types[column] == POOL_TYPE_UUID) {
    for (size_t i = value_start_; i < data_.size(); i++)  // SQL_GUID is upper case
      data_[i] = char(std::tolower(static_cast<unsigned char>(data_[i])));
  }
  starts_.push_back(value_start_);
  lengths_.push_back(null ? -1 : int64_t(data_.size() - value_start_));
  data_.push_back('\0');
  value_start_ = data_.size();
}

const char *odbc_result::bytes(int64_t row, int column, size_t *len) const {
  size_t i = cell(row, column);
  if (lengths_[i] < 0) {
    *len = 0;
    return nullptr;
  }
  *len = size_t(lengths_[i]);
  return data_.data() + starts_[i];
}

const char *odbc_result::text(int64_t row, int column) const {
  size_t len = 0;
  const char *value = bytes(row, column, &len);
  if (!value || cols_->types[size_t(column)] != POOL_TYPE_BYTEA) return value;
  return hex_.get(cell(row, column), [&] { return hex_of(value, len); }).c_str();
}

size_t odbc_result::memory() const noexcept {
  return sizeof *this + data_.capacity() + starts_.capacity() * sizeof(size_t) +
         lengths_.capacity() * sizeof(int64_t) + hex_.memory();
}

odbc_binding binding_of(int type) {
  switch (type) {
    case POOL_TYPE_BYTEA: return {SQL_C_BINARY, SQL_VARBINARY};
    case POOL_TYPE_BOOL: return {SQL_C_CHAR, SQL_BIT};
    case POOL_TYPE_INT16: return {SQL_C_CHAR, SQL_SMALLINT};
    case POOL_TYPE_INT32: return {SQL_C_CHAR, SQL_INTEGER};
    case POOL_TYPE_INT64: return {SQL_C_CHAR, SQL_BIGINT};
    case POOL_TYPE_FLOAT32: return {SQL_C_CHAR, SQL_REAL};
    case POOL_TYPE_FLOAT64: return {SQL_C_CHAR, SQL_DOUBLE};
    case POOL_TYPE_DATE: return {SQL_C_CHAR, SQL_TYPE_DATE};
    case POOL_TYPE_TIMESTAMP: return {SQL_C_CHAR, SQL_TYPE_TIMESTAMP};
    // The rest as characters, for the server to read: ODBC's conversions of a time zone,
    // an interval, a uuid, JSON or an array from text differ from driver to driver.
    default: return {SQL_C_CHAR, SQL_VARCHAR};
  }
}

}  // namespace connpool
