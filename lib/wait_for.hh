// Waiting for one socket, never past a deadline: the one poll() loop of the libpq connector
// and its cancel request.
#ifndef CONNPOOL_WAIT_FOR_HH
#define CONNPOOL_WAIT_FOR_HH

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "connector.hh"

namespace connpool {

// poll() on `fd` for `events` until `deadline` (max(): no limit): 0 once the deadline has
// passed, -1 on an error, else positive. An interrupted poll() waits again for what is left.
inline int wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    int wait_ms = -1;
    if (deadline != clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) return 0;
      wait_ms = int(std::min<int64_t>(left, INT32_MAX));
    }
    struct pollfd pfd = {fd, events, 0};
    int ready = poll(&pfd, 1, wait_ms);
    if (ready >= 0 || errno != EINTR) return ready;
  }
}

}  // namespace connpool

#endif
