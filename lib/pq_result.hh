// libpq's side of results and parameters: a PGresult read in place as a result, the types
// PostgreSQL's OIDs stand for, and parameters in the form PQsendQueryParams takes.
#ifndef CONNPOOL_PQ_RESULT_HH
#define CONNPOOL_PQ_RESULT_HH

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "result.hh"

namespace connpool {

using pq_result_ptr = std::unique_ptr<PGresult, void (*)(PGresult *)>;
inline pq_result_ptr own(PGresult *res) { return pq_result_ptr(res, PQclear); }

// A whole result (one PGresult), or a streamed piece: one PGresult a row (single-row mode),
// with `shape` giving the columns when there are no rows.
std::unique_ptr<result> make_pq_result(pq_result_ptr whole);
std::unique_ptr<result> make_pq_piece(std::vector<pq_result_ptr> rows, pq_result_ptr shape);

// What PQsendQueryParams and PQsendQueryPrepared take, built from a statement's parameters.
// Text with an explicit length is copied to be NUL-terminated (libpq reads text parameters
// up to their NUL). Parameters are checked (check_param): POOL_EINVAL.
struct pq_params {
  explicit pq_params(const statement &st);
  std::vector<Oid> types;
  std::vector<const char *> values;
  std::vector<int> lengths, formats;

 private:
  std::vector<std::string> copies_;
};

}  // namespace connpool

#endif
