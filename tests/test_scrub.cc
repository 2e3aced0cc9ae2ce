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

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_secrets_are_masked_everywhere),
      cmocka_unit_test(key_value_passwords_are_masked),
      cmocka_unit_test(uri_passwords_are_masked),
  };
  return cmocka_run_group_tests_name("scrub", tests, nullptr, nullptr);
}
