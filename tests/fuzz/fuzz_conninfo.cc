// Fuzzes the connection string's classification (lib/connector.cc, make_connector) and the
// parsing its connectors do when constructed: the libpq connector runs PQconninfoParse and
// looks for passwords; the ODBC connector looks for PWD= and allocates an environment handle
// (reading odbcinst.ini, no connection). Constructing a connector opens nothing: connections
// open lazily, in connector::open, which is never called here. Properties:
// - a string libpq parses (and that does not start with "odbc:") selects the libpq connector,
//   and the libpq connector is selected only for strings libpq parses: pool_create accepts
//   exactly libpq's grammar, URIs included;
// - "odbc:" selects the ODBC connector;
// - a rejection is connpool::error, POOL_EINVAL or POOL_ENOTSUP, with one of the known
//   messages; no other exception type ever escapes;
// - a rejection's message holds none of the password pieces secrets_in_connection_string
//   finds in the string (libpq's parse errors quote pieces of it).
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "connector.hh"
#include "error.hh"
#include "fuzz_check.hh"
#include "scrub.hh"

namespace {

enum class kind { pq, odbc, rejected };

// The connector classes live in anonymous namespaces: their RTTI names still tell them apart.
kind kind_of(const connpool::connector &c) {
  std::string name = typeid(c).name();
  if (name.find("pq_connector") != std::string::npos) return kind::pq;
  if (name.find("odbc_connector") != std::string::npos) return kind::odbc;
  FUZZ_REQUIRE(false, "make_connector returned an unexpected connector %s", name.c_str());
  return kind::rejected;
}

bool starts_with(const std::string &s, const char *prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}

bool libpq_parses(const std::string &s) {
  char *why = nullptr;
  PQconninfoOption *parsed = PQconninfoParse(s.c_str(), &why);
  PQfreemem(why);
  PQconninfoFree(parsed);
  return parsed != nullptr;
}

// Texts that echo nothing of the string, and the one that quotes libpq's scrubbed message.
const char *const fixed_messages[] = {"connection string names an unsupported scheme",
                                      "connection string is neither",
                                      "unixODBC connection pooling is on"};
const char libpq_prefix[] = "invalid connection string: ";

void check_rejection(const std::string &s, const connpool::error &e) {
  std::string message = e.what();
  FUZZ_REQUIRE(e.code() == POOL_EINVAL || e.code() == POOL_ENOTSUP,
               "\"%s\" rejected with code %d: %s", s.c_str(), e.code(), message.c_str());
  for (const char *fixed : fixed_messages)
    if (starts_with(message, fixed)) return;
  FUZZ_REQUIRE(starts_with(message, libpq_prefix) && message.size() > sizeof libpq_prefix - 1,
               "\"%s\" rejected with an unexpected message: %s", s.c_str(), message.c_str());
  std::string body = message.substr(sizeof libpq_prefix - 1);
  // A secret holding '*' can be rebuilt from the mask "****" itself; shorter than 3
  // characters, a password word is left unmasked on purpose (lib/scrub.cc, add_secret).
  for (const std::string &secret : connpool::secrets_in_connection_string(s))
    if (secret.size() >= 3 && secret.find('*') == std::string::npos)
      FUZZ_REQUIRE(body.find(secret) == std::string::npos,
                   "\"%s\": the message \"%s\" shows the password piece \"%s\"", s.c_str(),
                   message.c_str(), secret.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string s = fuzz::c_string(data, size);
  connpool::options opts;
  kind got = kind::rejected;
  try {
    got = kind_of(*connpool::make_connector(s.c_str(), opts));
  } catch (const connpool::error &e) {
    check_rejection(s, e);
  } catch (const std::exception &e) {
    FUZZ_REQUIRE(false, "\"%s\": make_connector threw a non-connpool exception: %s", s.c_str(), e.what());
  } catch (...) {
    FUZZ_REQUIRE(false, "\"%s\": make_connector threw a non-exception", s.c_str());
  }

  if (starts_with(s, "odbc:")) {
    FUZZ_REQUIRE(got == kind::odbc, "\"%s\" did not select the ODBC connector", s.c_str());
    return 0;
  }
  bool parses = libpq_parses(s);
  FUZZ_REQUIRE(!parses || got == kind::pq,
               "libpq parses \"%s\" but it did not select the libpq connector", s.c_str());
  FUZZ_REQUIRE(got != kind::pq || parses,
               "\"%s\" selected the libpq connector but libpq cannot parse it", s.c_str());
  return 0;
}
