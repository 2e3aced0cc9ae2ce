// libpq's PQcancel connects and awaits the server's answer with no timeout: on a black-holed
// network it blocks for minutes, or for ever. libpq 17 has a non-blocking cancel
// (PQcancelCreate); before it, the cancel request is sent here on a non-blocking socket. A
// cancel request is a 16-byte packet on a new connection to the server's address: length,
// the code 80877102, the backend's process id and its secret key; the server closes the
// connection once it has acted on it.
#include "pq_cancel.hh"

#include "wait_for.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace connpool {

#ifdef LIBPQ_HAS_ASYNC_CANCEL

bool cancel_statement(PGconn *conn, clock::time_point deadline) noexcept {
  PGcancelConn *c = PQcancelCreate(conn);
  if (!c) return false;
  bool done = false;
  if (PQcancelStart(c)) {
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
      if (st == PGRES_POLLING_OK) {
        done = true;
        break;
      }
      if (st == PGRES_POLLING_FAILED) break;
      if (wait_for(PQcancelSocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                   deadline) <= 0)
        break;
      st = PQcancelPoll(c);
    }
  }
  PQcancelFinish(c);
  return done;
}

#else

// The start of libpq's struct pg_cancel (libpq-int.h), the same from 9.x to 17: the server's
// address, then the backend's pid and key. libpq offers no other way to the key before 17; the
// layout is checked against PQbackendPID before it is trusted, and not used from 18 on (its
// keys have another form).
namespace {

struct sock_addr {  // libpq's SockAddr: padded as a struct of its own
  struct sockaddr_storage addr;
  socklen_t salen;
};
struct pg_cancel_prefix {
  sock_addr raddr;
  int be_pid;
  int be_key;
};

}  // namespace

bool cancel_statement(PGconn *conn, clock::time_point deadline) noexcept {
  if (PQlibVersion() >= 180000) return false;
  PGcancel *c = PQgetCancel(conn);
  if (!c) return false;
  pg_cancel_prefix p;
  std::memcpy(&p, c, sizeof p);
  PQfreeCancel(c);
  const sock_addr &to = p.raddr;
  if (p.be_pid != PQbackendPID(conn) || p.be_pid == 0 || to.salen == 0 ||
      to.salen > sizeof to.addr ||
      (to.addr.ss_family != AF_INET && to.addr.ss_family != AF_INET6 &&
       to.addr.ss_family != AF_UNIX))
    return false;
  int fd = ::socket(to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool done = false;
  uint32_t packet[4] = {htonl(16), htonl(80877102), htonl(uint32_t(p.be_pid)),
                        htonl(uint32_t(p.be_key))};
  int rc = connect(fd, reinterpret_cast<const struct sockaddr *>(&to.addr), to.salen);
  if (rc == 0 || errno == EINPROGRESS || errno == EINTR) {
    int err = 0;
    socklen_t len = sizeof err;
    if ((rc == 0 || (wait_for(fd, POLLOUT, deadline) > 0 &&
                     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)) &&
        send(fd, packet, sizeof packet, MSG_NOSIGNAL) == ssize_t(sizeof packet)) {
      // The server closes the connection once the cancel is done: await that EOF.
      char byte;
      while (wait_for(fd, POLLIN, deadline) > 0) {
        ssize_t n = recv(fd, &byte, 1, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          done = n == 0;
          break;
        }
      }
    }
  }
  close(fd);
  return done;
}

#endif

}  // namespace connpool
