// Errors inside the library and their crossing of the C boundary.
#ifndef CONNPOOL_ERROR_HH
#define CONNPOOL_ERROR_HH

#include <exception>
#include <new>
#include <string>

#include "connpool.h"

namespace connpool {

// Thrown inside the library for an expected failure; guard() turns it into its code and
// this thread's message.
class error : public std::exception {
 public:
  error(int code, std::string message, std::string sqlstate = "")
      : code_(code), message_(std::move(message)), sqlstate_(std::move(sqlstate)) {}
  int code() const noexcept { return code_; }
  const char *what() const noexcept override { return message_.c_str(); }
  const std::string &sqlstate() const noexcept { return sqlstate_; }

 private:
  int code_;
  std::string message_;
  std::string sqlstate_;  // a failed statement's SQLSTATE, or ""
};

// This thread's detail message. A fixed buffer: it never allocates and registers no TLS
// destructor, so reporting an out-of-memory always works and dlclose is never held up.
void clear_error() noexcept;  // the message and the SQLSTATE
void set_sqlstate(const std::string &sqlstate) noexcept;
const char *last_sqlstate() noexcept;
int set_error(int code, const char *message) noexcept;  // returns code
int set_errorf(int code, const char *format, ...) noexcept
    __attribute__((format(printf, 2, 3)));
const char *last_error() noexcept;

// Static texts for pool_strerror() and pool_error_name().
const char *status_text(int code) noexcept;
const char *status_name(int code) noexcept;

// Inside a catch block: the exception being handled, as an error (what guard() would report).
error current_error();

// The exception barrier every extern "C" function runs its body through.
template <typename Body>
int guard(Body &&body) noexcept {
  try {
    return body();
  } catch (const error &e) {
    set_sqlstate(e.sqlstate());
    return set_error(e.code(), e.what());
  } catch (const std::bad_alloc &) {
    return set_error(POOL_ENOMEM, "out of memory");
  } catch (const std::exception &e) {
    return set_error(POOL_ERROR, e.what());
  } catch (...) {
    return set_error(POOL_ERROR, "unexpected internal exception");
  }
}

}  // namespace connpool

#endif
