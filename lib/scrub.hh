// Removing passwords from any text that may leave the library (error messages, logs).
#ifndef CONNPOOL_SCRUB_HH
#define CONNPOOL_SCRUB_HH

#include <string>
#include <vector>

namespace connpool {

// Replaces every occurrence of each secret with "****", then masks what looks like a
// password anyway: the value of password=/pwd= (any case, quoted or not) and the password
// of a URI's user:password@. Drivers echo pieces of connection strings in their messages,
// so both are needed.
std::string scrub(std::string text, const std::vector<std::string> &secrets);

// The password-like parts of a raw connection string, as written (still percent-encoded,
// quoted, split at spaces): the password of a URI's user:password@, the values of
// password=/pwd= keys, and each word of those values. Works on strings the driver cannot
// parse, whose error messages quote exactly such pieces. Takes the string as pool_create got
// it: its grammar decides where an unquoted value ends. After "odbc:", ODBC's: at ";" only
// ({braced} values aside). Otherwise libpq's: at a space before the next libpq keyword= (a
// password with a space is the likely mistake), or at "&" before the next libpq keyword= in a
// URI's query; ";" is ordinary.
std::vector<std::string> secrets_in_connection_string(const std::string &conninfo);

}  // namespace connpool

#endif
