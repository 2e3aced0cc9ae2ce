// White-box: password scrubbing, on every form a password takes in connection strings and
// driver messages.
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include "scrub.hh"

using connpool::scrub;

static void check(const std::string &in, const std::vector<std::string> &secrets,
                  const std::string &want) {
  std::string got = scrub(in, secrets);
  if (got != want) fail_msg("scrub(\"%s\") = \"%s\", want \"%s\"", in.c_str(), got.c_str(), want.c_str());
}

static void known_secrets_are_masked_everywhere(void **) {
  check("auth failed for pw hunter2 (hunter2)", {"hunter2"}, "auth failed for pw **** (****)");
  check("nothing here", {"", "zzz"}, "nothing here");
}

static void key_value_passwords_are_masked(void **) {
  check("host=x password=abc port=5", {}, "host=x password=**** port=5");
  check("host=x PASSWORD = 'a b\\'c' port=5", {}, "host=x PASSWORD = **** port=5");
  check("Driver={X};PWD={p;w};UID=u", {}, "Driver={X};PWD=****;UID=u");
  check("pwd=secret;uid=u", {}, "pwd=****;uid=u");
  check("mypassword=x", {}, "mypassword=x");  // not the key "password"
  check("password=", {}, "password=");
}

static void uri_passwords_are_masked(void **) {
  check("postgresql://user:s3cret@host:5432/db", {}, "postgresql://user:****@host:5432/db");
  check("postgres://user@host/db", {}, "postgres://user@host/db");
  check("x postgresql://u:p@h/d?password=q", {}, "x postgresql://u:****@h/d?password=****");
  check("://", {}, "://");
}

static void secrets_are_found_in_unparsable_strings(void **) {
  using connpool::secrets_in_connection_string;
  auto has = [](const std::vector<std::string> &v, const std::string &x) {
    for (const auto &s : v)
      if (s == x) return true;
    return false;
  };
  auto a = secrets_in_connection_string("postgresql://u:hunter2%zz_pw@h/db");
  assert_true(has(a, "hunter2%zz_pw"));
  auto b = secrets_in_connection_string("postgresql://u@h/db?sslmode=x&password=p%zz&a=b");
  assert_true(has(b, "p%zz"));
  auto c = secrets_in_connection_string("host=h password=my secret_word_99 port=5");
  assert_true(has(c, "my secret_word_99"));
  assert_true(has(c, "secret_word_99"));
  assert_false(has(c, "port=5"));
  auto d = secrets_in_connection_string("host=h password = 'it''s \\x' port=5");
  assert_false(d.empty());
  auto e = secrets_in_connection_string("odbc:Driver={X};PWD={p;w};UID=u");
  assert_true(has(e, "p;w"));
  auto f = secrets_in_connection_string("odbc:Driver={X};PWD={s3cr}}et_x9};UID=u");
  assert_true(has(f, "s3cr}}et_x9"));
  assert_true(has(f, "s3cr}et_x9"));
  check("Driver={X};PWD={s3cr}}et_x9};UID=u", {}, "Driver={X};PWD=****;UID=u");
  auto g = secrets_in_connection_string("host=h password=hunter 2 x port=5");
  assert_true(has(g, "hunter 2 x"));
  assert_true(has(g, "hunter"));
  assert_false(has(g, "2"));
  assert_true(secrets_in_connection_string("host=h user=u").empty());
  check("invalid percent-encoded token: \"hunter2%zz_pw\"", a,
        "invalid percent-encoded token: \"****\"");
  check("missing \"=\" after \"secret_word_99\"", c, "missing \"=\" after \"****\"");
  // A password left unencoded, holding '@' and '%': libpq ends the user info at the first
  // '@' and quotes a piece of the password as a bad token.
  auto h = secrets_in_connection_string("postgresql://u:ab@Fj%Hx:1/d@h/db");
  assert_true(has(h, "ab@Fj%Hx:1/d"));
  check("invalid percent-encoded token: \"Fj%Hx\"", h, "invalid percent-encoded token: \"****\"");
  check("a \"Fj\" b", h, "a \"Fj\" b");  // too short a piece to mean anything
  // In a URI's query only "&keyword=" ends a password: "&QQJ=x" is the password's own.
  auto k = secrets_in_connection_string("postgresql://h/db?password=ab&QQJ=x&sslmode=disable");
  assert_true(has(k, "ab&QQJ=x"));
  assert_true(has(k, "QQJ=x"));
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_secrets_are_masked_everywhere),
      cmocka_unit_test(key_value_passwords_are_masked),
      cmocka_unit_test(uri_passwords_are_masked),
      cmocka_unit_test(secrets_are_found_in_unparsable_strings),
  };
  return cmocka_run_group_tests_name("scrub", tests, nullptr, nullptr);
}
