/* The public header alone, compiled as strict C99 and as C++ with every warning an error:
 * it must need nothing else and declare everything a caller uses. */
#include "connpool.h"

int headertest_uses_every_type(void);
int headertest_uses_every_type(void) {
    pool_t *pool = 0;
    pool_lease_t *lease = 0;
    pool_stats_t stats;
    pool_open_cb open = 0;
    pool_close_cb close = 0;
    pool_reset_cb reset = 0;
    pool_ping_cb ping = 0;
    pool_destroy_cb destroy = 0;
    stats.size = sizeof stats;
    (void)open, (void)close, (void)reset, (void)ping, (void)destroy;
    (void)lease;
    return pool_stats_get(pool, &stats) == POOL_EINVAL && POOL_RESET_COMMIT == 2 &&
           CONNPOOL_VERSION_MAJOR >= 1;
}
