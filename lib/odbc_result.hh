// ODBC's side of results: the types SQLDescribeCol reports, read as pool_types, and the
// values a statement fetched, kept in one block.
#ifndef CONNPOOL_ODBC_RESULT_HH
#define CONNPOOL_ODBC_RESULT_HH

#include <sql.h>

#include <memory>
#include <string>
#include <vector>

#include "result.hh"

namespace connpool {

// A statement's columns, described once and shared by the pieces of a stream.
struct odbc_columns {
  std::vector<std::string> names;
  std::vector<pool_type> types;
  std::vector<int64_t> sql_types;  // SQL_INTEGER...
};

// sqlite: SQLite's INTEGER is 64 bits whatever the driver calls it.
std::shared_ptr<const odbc_columns> describe_columns(SQLHSTMT stmt, bool sqlite);

class odbc_result final : public result {
 public:
  odbc_result(std::shared_ptr<const odbc_columns> columns, int64_t affected)
      : cols_(std::move(columns)), affected_(affected) {}

  // Filled a value at a time, row by row: a value's bytes come in pieces (append), then
  // end_value() brings it to the pool's text form for its column's type.
  void append(const char *bytes, size_t len) { data_.append(bytes, len); }
  void end_value(bool null);

  int64_t rows() const noexcept override {
    return cols_->names.empty() ? 0 : int64_t(lengths_.size() / cols_->names.size());
  }
  int columns() const noexcept override { return int(cols_->names.size()); }
  int64_t affected() const noexcept override { return affected_; }
  const char *name(int column) const noexcept override {
    return cols_->names[size_t(column)].c_str();
  }
  pool_type type(int column) const noexcept override { return cols_->types[size_t(column)]; }
  int64_t backend_type(int column) const noexcept override {
    return cols_->sql_types[size_t(column)];
  }
  const char *bytes(int64_t row, int column, size_t *len) const override;
  const char *text(int64_t row, int column) const override;
  size_t memory() const noexcept override;

 private:
  size_t cell(int64_t row, int column) const noexcept {
    return size_t(row) * cols_->names.size() + size_t(column);
  }

  std::shared_ptr<const odbc_columns> cols_;
  int64_t affected_;
  std::string data_;              // every value, each followed by a NUL
  std::vector<size_t> starts_;    // by cell: where its value starts in data_
  std::vector<int64_t> lengths_;  // by cell: its length, -1 for SQL NULL
  size_t value_start_ = 0;        // the value being appended
  lazy_values hex_;               // bytea values' text form, by cell
};

// How a parameter of this pool_type is bound: its C type and SQL type.
struct odbc_binding {
  SQLSMALLINT c_type, sql_type;
};
odbc_binding binding_of(int type);

}  // namespace connpool

#endif
