// Which connector a connection string selects.
#include <cctype>
#include <cstring>

#include "connector.hh"
#include "error.hh"

namespace connpool {

bool means_server_gone(const char *sqlstate) noexcept {
  return std::strncmp(sqlstate, "08", 2) == 0 || std::strcmp(sqlstate, "57P01") == 0 ||
         std::strcmp(sqlstate, "57P02") == 0 || std::strcmp(sqlstate, "57P03") == 0 ||
         std::strcmp(sqlstate, "25006") == 0;
}

namespace {

// "scheme://" at the very start, as libpq looks for its own URIs: a key=value string may hold
// "://" inside a value (application_name=svc://x, a password).
bool names_a_scheme(const char *s) {
  if (!std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  size_t n = 1;
  while (std::isalnum(static_cast<unsigned char>(s[n])) || s[n] == '+' || s[n] == '-' || s[n] == '.') n++;
  return std::strncmp(s + n, "://", 3) == 0;
}

}  // namespace

std::unique_ptr<connector> make_connector(const char *conninfo, const options &opts) {
  if (std::strncmp(conninfo, "postgresql://", 13) == 0 ||
      std::strncmp(conninfo, "postgres://", 11) == 0)
    return make_pq_connector(conninfo, opts.ping_timeout_s, size_t(opts.statement_cache_size));
  // "odbc:" cannot begin a libpq string: a libpq key=value string starts with a key and
  // "=", and a URI with postgres(ql)://.
  if (std::strncmp(conninfo, "odbc:", 5) == 0)
    return make_odbc_connector(conninfo + 5, opts.odbc_allow_dm_pooling, opts.reset);
  if (names_a_scheme(conninfo))
    throw error(POOL_ENOTSUP,
                "connection string names an unsupported scheme (supported: postgresql://, "
                "postgres://, libpq key=value)");
  // A libpq key=value string; "" takes everything from libpq's PG* environment variables.
  if (conninfo[strspn(conninfo, " \t\n\r\f\v")] == '\0' || std::strchr(conninfo, '='))
    return make_pq_connector(conninfo, opts.ping_timeout_s, size_t(opts.statement_cache_size));
  throw error(POOL_EINVAL,
              "connection string is neither a postgresql:// URI nor libpq key=value pairs");
}

}  // namespace connpool
