// Scoped checkout: one lease per (thread, pool), given back when the thread exits.
#ifndef CONNPOOL_SCOPE_HH
#define CONNPOOL_SCOPE_HH

#include <cstdint>

#include "pool.hh"

namespace connpool {

pool_lease_t *scoped_checkout(pool *p, int64_t timeout_ms, const char *tag);
void scope_release(pool *p);

}  // namespace connpool

#endif
