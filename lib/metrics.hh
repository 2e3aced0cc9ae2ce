// pool_stats_t in the Prometheus text exposition format.
#ifndef CONNPOOL_METRICS_HH
#define CONNPOOL_METRICS_HH

#include <string>

#include "connpool.h"

namespace connpool {

// `name` (may be NULL) becomes a pool="name" label on every sample.
std::string prometheus_text(const pool_stats_t &s, const char *name);

}  // namespace connpool

#endif
