// An asynchronous request's completion and outcome (request.hh).
#include "request.hh"

#include <cerrno>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fork.hh"

namespace connpool {

namespace {

// All 8 bytes or none (a pipe takes up to PIPE_BUF at once); a full non-blocking pipe is
// waited for: a completion is never dropped.
void write_token(int fd, uint64_t token) noexcept {
  for (;;) {
    ssize_t n = ::write(fd, &token, sizeof token);
    if (n == ssize_t(sizeof token) || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
    }
  }
}

}  // namespace

request::request(kind k) : what(k), generation(fork_guard::generation()) {}

request::~request() {
  magic_ = 0;
  // An fd made in this process; a parent's, inherited, is the child's copy to close too.
  if (fd_ >= 0) ::close(fd_);
}

request *request::of_handle(const pool_request_t *handle) {
  if (!handle) throw error(POOL_EINVAL, "request is NULL");
  auto *r = reinterpret_cast<request *>(const_cast<pool_request_t *>(handle));
  if (r->magic_ != live_magic)
    throw error(POOL_EINVAL, "not a request (or one already ended)");
  return r;
}

bool request::finish() noexcept {
  int expected = pending_;
  if (!state_.compare_exchange_strong(expected, done_, std::memory_order_acq_rel)) return false;
  std::lock_guard<std::mutex> lock(fd_mu_);
  if (fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd_, &one, sizeof one);  // an eventfd's counter: cannot fill up here
    (void)n;
  }
  if (notify_fd_ >= 0) write_token(notify_fd_, token_);
  return true;
}

void request::notify(int fd, uint64_t token) {
  std::lock_guard<std::mutex> lock(fd_mu_);
  if (notify_fd_ >= 0) throw error(POOL_ESTATE, "the request has a notification fd already");
  bool now = state_.load(std::memory_order_acquire) == done_ ||
             generation != fork_guard::generation();
  notify_fd_ = fd;
  token_ = token;
  if (now) write_token(fd, token);
}

bool request::complete_with_lease(pool_lease_t *lease) {
  if (cancelled()) return false;
  lease_ = lease;
  if (finish()) return true;
  lease_ = nullptr;
  return false;
}

bool request::complete_with_result(std::unique_ptr<result> r) {
  if (cancelled()) return false;
  result_ = std::move(r);
  if (finish()) return true;
  result_.reset();  // cancelled meanwhile: the completer frees it
  return false;
}

bool request::complete_with_error(const error &e) {
  if (cancelled()) return false;
  failure_ = e;
  return finish();
}

bool request::done() const noexcept {
  // A request from before fork ends, in the child, with POOL_EFORKED (take_*).
  return generation != fork_guard::generation() ||
         state_.load(std::memory_order_acquire) == done_;
}

int request::fd() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  uint64_t now = fork_guard::generation();
  if (fd_ >= 0 && fd_generation_ == now) return fd_;
  if (fd_ >= 0) ::close(fd_);  // the parent's eventfd, inherited: the child's copy of it
  bool readable = generation != now || state_.load(std::memory_order_acquire) == done_;
  fd_ = eventfd(readable ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK);
  fd_generation_ = now;
  return fd_;
}

int request::take_error() {
  set_sqlstate(failure_.sqlstate());
  return set_error(failure_.code(), failure_.what());
}

namespace {

int forked() {
  return set_error(POOL_EFORKED, "the request was started before fork: it belongs to the "
                                 "parent process (end it with pool_request_cancel)");
}

int still_pending() {
  return set_error(POOL_ESTATE, "the request is still pending: wait for its fd to be readable "
                                "(or pool_request_done() to return 1)");
}

}  // namespace

int request::take_lease(pool_lease_t **out) {
  if (generation != fork_guard::generation()) return forked();
  if (state_.load(std::memory_order_acquire) != done_) return still_pending();
  if (failure_.code() != POOL_OK) return take_error();
  *out = lease_;
  lease_ = nullptr;
  return POOL_OK;
}

int request::take_result(std::unique_ptr<result> *out) {
  if (generation != fork_guard::generation()) return forked();
  if (state_.load(std::memory_order_acquire) != done_) return still_pending();
  if (failure_.code() != POOL_OK) return take_error();
  *out = std::move(result_);
  return POOL_OK;
}

bool request::cancel() noexcept {
  int expected = pending_;
  return state_.compare_exchange_strong(expected, cancelled_, std::memory_order_acq_rel);
}

}  // namespace connpool
