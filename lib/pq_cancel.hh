// Cancelling a libpq connection's running statement without ever blocking past a deadline.
#ifndef CONNPOOL_PQ_CANCEL_HH
#define CONNPOOL_PQ_CANCEL_HH

#include <libpq-fe.h>

#include "connector.hh"

namespace connpool {

// Asks the server to cancel what `conn` runs now; true if the server took the request (closed
// the cancel connection) before `deadline`. Never waits past it, whatever the network does.
bool cancel_statement(PGconn *conn, clock::time_point deadline) noexcept;

}  // namespace connpool

#endif
