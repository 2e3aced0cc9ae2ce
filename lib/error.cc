#include "error.hh"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace connpool {

namespace {
// One thread_local object: every call clears it, and each thread_local costs a TLS lookup.
struct thread_error {
  char message[512];
  char sqlstate[6];
};
thread_local thread_error last;
}

void clear_error() noexcept {
  thread_error &e = last;
  e.message[0] = '\0';
  e.sqlstate[0] = '\0';
}

void set_sqlstate(const std::string &sqlstate) noexcept {
  std::snprintf(last.sqlstate, sizeof last.sqlstate, "%s", sqlstate.c_str());
}

const char *last_sqlstate() noexcept { return last.sqlstate; }

int set_error(int code, const char *message) noexcept {
  std::snprintf(last.message, sizeof last.message, "%s", message ? message : "");
  return code;
}

int set_errorf(int code, const char *format, ...) noexcept {
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(last.message, sizeof last.message, format, ap);
  va_end(ap);
  return code;
}

const char *last_error() noexcept { return last.message; }

}  // namespace connpool

// One list gives the names and the texts, so they cannot drift apart.
#define CONNPOOL_STATUS_MAP(X)                                                  \
  X(POOL_OK, "success")                                                         \
  X(POOL_ERROR, "internal error")                                               \
  X(POOL_EINVAL, "invalid argument")                                            \
  X(POOL_ENOMEM, "out of memory")                                               \
  X(POOL_ETIMEDOUT, "timed out waiting for a connection")                       \
  X(POOL_ECONNECT, "could not open a connection")                               \
  X(POOL_EBUSY, "pool disposed with leases still out; released at last checkin") \
  X(POOL_ECLOSED, "pool is closed")                                             \
  X(POOL_ESTATE, "lease is not checked out")                                    \
  X(POOL_ENOTSUP, "connector not supported")                                    \
  X(POOL_EFORKED, "connection was inherited across fork")                       \
  X(POOL_ETOOMANYWAITERS, "too many threads waiting for a connection")          \
  X(POOL_ERANGE, "buffer too small")                                            \
  X(POOL_EQUERY, "the statement failed")                                        \
  X(POOL_ETYPE, "the value is NULL or not of the type asked for")

namespace connpool {

const char *status_text(int code) noexcept {
  switch (code) {
#define X(name, text) \
  case name:          \
    return text;
    CONNPOOL_STATUS_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *status_name(int code) noexcept {
  switch (code) {
#define X(name, text) \
  case name:          \
    return #name;
    CONNPOOL_STATUS_MAP(X)
#undef X
  }
  return "POOL_UNKNOWN";
}

error current_error() {
  try {
    throw;
  } catch (const error &e) {
    return e;
  } catch (const std::bad_alloc &) {
    return error(POOL_ENOMEM, "out of memory");
  } catch (const std::exception &e) {
    return error(POOL_ERROR, e.what());
  } catch (...) {
    return error(POOL_ERROR, "unexpected internal exception");
  }
}

}  // namespace connpool
