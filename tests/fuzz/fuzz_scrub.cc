// Fuzzes password scrubbing (lib/scrub.cc): scrub and secrets_in_connection_string. The first
// byte picks one of two kinds of input.
//
// Free text (even first byte): the rest, split at NUL bytes, is a text and up to 8 secrets.
// - no secret is left in scrub's output (secrets holding '*' excepted: the mask "****" can
//   spell them), nor any of the pieces secrets_in_connection_string finds in the text;
// - scrubbing is idempotent: the output holds nothing a second scrub would still mask;
// - a text with no piece of a secret (3 characters or more), no password=/pwd= key and no
//   "://" comes back unchanged.
//
// A password in a connection string (odd first byte): the rest builds a password from an
// alphabet of marker letters (Q, Z, J) and the characters that matter to the grammars (quotes,
// backslash, space, %, =, &, ;, braces, @, :, /, ?), and writes it into a libpq key=value
// string, a URI (userinfo or query) or an ODBC string, quoted or escaped correctly or raw,
// between fragments of other options. No fixed part of a string or of a message has marker
// letters, so four of them in a row in any output can only come from the password: that is a
// leak. Short pieces (up to 3) are allowed: scrub masks a piece of a secret of 4 characters or
// more wherever it appears, a shorter one only whole or quoted (shorter pieces would mask
// ordinary words of messages).
// - the string itself, scrubbed with the pieces secrets_in_connection_string finds, shows no
//   run of 4 markers (messages quote the connection string back), if the password is written
//   correctly or raw in key=value (raw in a URI or ODBC string, the driver too reads it only up
//   to its first separator);
// - a driver message quoting the password, as written or as the driver decodes it, scrubbed
//   with the secrets the connector would hold, shows none;
// - a libpq-family string that pool_create rejects (make_connector throws) gets a message
//   that shows none: libpq's parse errors quote pieces of the string.
#include <libpq-fe.h>

#include <string>
#include <vector>

#include "connector.hh"
#include "error.hh"
#include "fuzz_check.hh"
#include "scrub.hh"

namespace {

using secrets_t = std::vector<std::string>;

bool holds_nocase(const std::string &s, const char *word) {
  std::string lower;
  for (char c : s) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return lower.find(word) != std::string::npos;
}

void free_text(fuzz::reader &in) {
  std::string rest;
  while (!in.empty()) rest += char(in.byte());  // NULs included: they split the pieces
  std::vector<std::string> pieces(1);
  for (char c : rest) {
    if (c != '\0') pieces.back() += c;
    else if (pieces.size() < 9) pieces.emplace_back();
  }
  const std::string &text = pieces[0];
  secrets_t given(pieces.begin() + 1, pieces.end());
  secrets_t all = given;
  for (const std::string &found : connpool::secrets_in_connection_string(text)) all.push_back(found);

  std::string out = connpool::scrub(text, all);
  for (const std::string &secret : all)
    if (!secret.empty() && secret.find('*') == std::string::npos)
      FUZZ_REQUIRE(out.find(secret) == std::string::npos, "scrub(\"%s\") = \"%s\" shows \"%s\"",
                   text.c_str(), out.c_str(), secret.c_str());
  std::string again = connpool::scrub(out, {});
  FUZZ_REQUIRE(again == out, "scrub(\"%s\") = \"%s\", scrubbed again \"%s\"", text.c_str(),
               out.c_str(), again.c_str());

  bool innocent = !holds_nocase(text, "password") && !holds_nocase(text, "pwd") &&
                  text.find("://") == std::string::npos;
  for (const std::string &secret : given)
    for (size_t i = 0; innocent && i + 3 <= secret.size(); i++)
      innocent = text.find(secret.substr(i, 3)) == std::string::npos;
  for (const std::string &secret : given)
    innocent = innocent && (secret.empty() || text.find(secret) == std::string::npos);
  std::string plain = connpool::scrub(text, given);
  if (innocent)
    FUZZ_REQUIRE(plain == text, "scrub(\"%s\") changed it to \"%s\"", text.c_str(), plain.c_str());
}

const char markers[] = "QZJ";

// Four marker letters in a row: a piece of the password of 4 or more characters.
bool leaks(const std::string &s) {
  size_t run = 0;
  for (char c : s) {
    run = std::strchr(markers, c) && c ? run + 1 : 0;
    if (run >= 4) return true;
  }
  return false;
}

std::string escaped(const std::string &p, const char *special) {
  std::string out;
  for (char c : p) {
    if (std::strchr(special, c)) out += '\\';
    out += c;
  }
  return out;
}

std::string percent_encoded(const std::string &p) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : p) {
    if (std::isalnum(c) || std::strchr("-._~", c)) out += char(c);
    else out += std::string("%") + hex[c >> 4] + hex[c & 15];
  }
  return out;
}

std::string braced(const std::string &p) {
  std::string out = "{";
  for (char c : p) out += c == '}' ? "}}" : std::string(1, c);
  return out + "}";
}

enum family { libpq, odbc };

struct written_password {
  std::string text;     // the connection string
  family fam;
  bool exact;           // the password is quoted or escaped correctly for its grammar
  bool clean;           // the string must scrub clean: exact, or raw key=value (a space)
};

// Fragments of other options (no marker letters).
const char *const kv_fragments[] = {"", "host=h ", "dbname='d b' ", "port=5432 ", "user=u ",
                                    "sslmode=disable ", "garbage ", "x=' ", "host=h\tuser=u ",
                                    "application_name=a\\ b "};
const char *const uri_suffixes[] = {"", "?sslmode=disable", "?application_name=a&x=y",
                                    "?host=h&", "#f", "?a", "/x y", "?connect_timeout=5"};
const char *const odbc_fragments[] = {"", "Driver={PostgreSQL Unicode};", "Server=h;Port=5432;",
                                      "UID=u;", "Database=/tmp/d;", "DSN=x;", ";;", "Driver={a;b}}c};"};

template <size_t n>
const char *one_of(fuzz::reader &in, const char *const (&list)[n]) {
  return list[in.pick(n)];
}

written_password write_password(fuzz::reader &in, const std::string &p) {
  size_t how = in.pick(12);
  // Raw in key=value, only the mistake scrub is built for: a space. A raw quote or backslash
  // changes what libpq reads as keys, which no scrubbing of the string can follow.
  if (how == 0 && p.find_first_of("'\\") != std::string::npos) how = 1;
  // Raw in a URI's userinfo, a "/" or "@" ends it: libpq reads what comes before as user,
  // host and port, no longer a password.
  if (how == 4 && p.find_first_of("/@") != std::string::npos) how = 5;
  std::string before, after;
  switch (how) {
    case 0: case 1: case 2: case 3: {
      before = one_of(in, kv_fragments);
      after = one_of(in, kv_fragments);
      std::string key = in.pick(4) == 0 ? "password = " : "password=";
      std::string value = how == 0 ? p                                       // raw
                        : how == 1 ? escaped(p, " \t\\'")                     // unquoted
                        : "'" + escaped(p, "\\'") + "'";                      // quoted
      return {before + key + value + " " + after, libpq, how != 0, true};
    }
    case 4: case 5: case 6: case 7: {
      const char *scheme = in.pick(2) ? "postgresql://" : "postgres://";
      std::string suffix = one_of(in, uri_suffixes);
      if (how <= 5)
        return {scheme + std::string("u:") + (how == 4 ? p : percent_encoded(p)) + "@h/db" + suffix,
                libpq, how == 5, how == 5};
      return {scheme + std::string("h/db?sslmode=disable&password=") +
                  (how == 6 ? p : percent_encoded(p)) + (suffix[0] == '?' ? "&" + suffix.substr(1) : ""),
              libpq, how == 7, how == 7};
    }
    default: {
      before = one_of(in, odbc_fragments);
      after = one_of(in, odbc_fragments);
      const char *key = in.pick(3) == 0 ? "Password=" : in.pick(2) ? "PWD=" : "pwd=";
      bool raw = how >= 10;
      return {"odbc:" + before + key + (raw ? p : braced(p)) + ";" + after, odbc, !raw, !raw};
    }
  }
}

// Whether libpq parses the string, and the password it reads from it, if any (the libpq
// connector adds it to its secrets, lib/connector_pq.cc).
bool libpq_password(const std::string &s, std::string *out) {
  char *why = nullptr;
  PQconninfoOption *parsed = PQconninfoParse(s.c_str(), &why);
  PQfreemem(why);
  if (!parsed) return false;
  for (PQconninfoOption *o = parsed; o->keyword; o++)
    if (std::strcmp(o->keyword, "password") == 0 && o->val) *out = o->val;
  PQconninfoFree(parsed);
  return true;
}

void password_in_connection_string(fuzz::reader &in) {
  std::string p = in.from_alphabet("QQQZZZJJJ \t'\"\\%=&;{}@:/?,*#", 40);
  written_password w = write_password(in, p);
  // What the connector's constructor finds: secrets_in_connection_string on the string as
  // pool_create got it ("odbc:" included), plus, for libpq, the password libpq parses.
  secrets_t secrets = connpool::secrets_in_connection_string(w.text);
  std::string parsed;
  bool connects = w.fam == odbc || libpq_password(w.text, &parsed);
  if (!parsed.empty()) secrets.push_back(parsed);

  // Raw in a URI or ODBC string, a separator in the password ends it for the driver too; raw
  // in key=value, a space is the mistake secrets_in_connection_string expects.
  std::string shown = connpool::scrub(w.text, connpool::secrets_in_connection_string(w.text));
  FUZZ_REQUIRE(!leaks(shown) || !w.clean, "password \"%s\": \"%s\" scrubbed is \"%s\"", p.c_str(),
               w.text.c_str(), shown.c_str());

  // Only a connector that exists connects: libpq's needs a string libpq parses.
  std::vector<std::string> forms;
  if (connects) forms.push_back(p);
  if (!parsed.empty()) forms.push_back(parsed);
  for (const std::string &form : forms) {
    if (!w.exact && form == p) continue;  // raw: the driver may not read p at all
    std::string message = "FATAL: password authentication failed (\"" + form + "\")";
    std::string out = connpool::scrub(message, secrets);
    FUZZ_REQUIRE(!leaks(out), "password \"%s\" in \"%s\": the message \"%s\" is scrubbed to \"%s\"",
                 p.c_str(), w.text.c_str(), message.c_str(), out.c_str());
  }

  if (w.fam != libpq) return;
  try {
    connpool::options opts;
    connpool::make_connector(w.text.c_str(), opts);
  } catch (const connpool::error &e) {
    FUZZ_REQUIRE(!leaks(e.what()), "password \"%s\" in \"%s\": the error \"%s\" shows it",
                 p.c_str(), w.text.c_str(), e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::reader in(data, size);
  if (in.byte() % 2 == 0) free_text(in);
  else password_in_connection_string(in);
  return 0;
}
