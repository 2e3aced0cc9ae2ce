'use strict';
// The C functions, declared with koffi. Loaded by the main thread and by every worker thread
// (lib/worker.js); each thread calls them synchronously.
//
// The library is found as the C binding's README says:
//   1. $CONNPOOL_LIBRARY, a full path (if set, nothing else is tried);
//   2. "libconnpool.so.1" on the system's library path;
//   3. the in-tree build, ../../build/libconnpool.so.1 from bindings/node.
// A worker thread is given the name that worked (workerData.library) and loads exactly that.
const path = require('node:path');
const { isMainThread, workerData } = require('node:worker_threads');
const koffi = require('koffi');

function candidates() {
  if (!isMainThread && workerData && workerData.library) return [workerData.library];
  if (process.env.CONNPOOL_LIBRARY) return [process.env.CONNPOOL_LIBRARY];
  return ['libconnpool.so.1', path.resolve(__dirname, '..', '..', '..', 'build', 'libconnpool.so.1')];
}

function load() {
  const failures = [];
  for (const name of candidates()) {
    try {
      return { lib: koffi.load(name), library: name };
    } catch (e) {
      failures.push(`${name}: ${e.message}`);
    }
  }
  throw new Error(`connpool: cannot load libconnpool (set CONNPOOL_LIBRARY to its full path):\n  ${failures.join('\n  ')}`);
}

const { lib, library } = load();

koffi.opaque('pool_t');
koffi.opaque('pool_lease_t');
koffi.opaque('pool_result_t');
koffi.opaque('pool_stream_t');
// pool_param_t: value NULL is SQL NULL; length -1 is NUL-terminated text; type a pool_type.
koffi.struct('pool_param_t', { value: 'const void *', length: 'int64_t', type: 'int' });

const WAIT_BUCKETS = 6; // POOL_WAIT_BUCKETS
// pool_stats_t: only int64_t fields, only ever appended (size says how many were filled).
const STATS_FIELDS = [
  'pool_size', 'max_overflow', 'checked_out', 'idle', 'opening', 'overflow', 'waiting',
  'opened_total', 'closed_total', 'connect_failures_total', 'checkouts_total', 'timeouts_total',
  'wait_total_us', 'wait_max_us', 'inherited_total',
  // since 1.1
  'connect_time_total_us', 'connect_time_max_us', 'waits_total', 'wait_le_us', 'pings_total',
  'dead_total', 'recycled_total', 'idle_closed_total', 'invalidated_total', 'reset_closed_total',
  'resets_total', 'leaks_total', 'fast_fails_total', 'rejected_total',
];
const statsMembers = { size: 'int64_t' };
for (const f of STATS_FIELDS) statsMembers[f] = f === 'wait_le_us' ? koffi.array('int64_t', WAIT_BUCKETS) : 'int64_t';
const PoolStats = koffi.struct('pool_stats_t', statsMembers);

const fn = (decl) => lib.func(decl);
module.exports = {
  library,
  STATS_FIELDS,
  statsSize: koffi.sizeof(PoolStats),
  statsOffset: (field) => koffi.offsetof(PoolStats, field),
  pool_create_params: fn('int pool_create_params(_Out_ pool_t **out, const char *conninfo, const char **keys, const char **values)'),
  pool_dispose: fn('int pool_dispose(pool_t *pool)'),
  pool_reset: fn('int pool_reset(pool_t *pool)'),
  pool_stats_get: fn('int pool_stats_get(pool_t *pool, _Inout_ pool_stats_t *stats)'),
  pool_checkout_tagged: fn('int pool_checkout_tagged(_Out_ pool_lease_t **out, pool_t *pool, int64_t timeout_ms, const char *tag)'),
  pool_checkin: fn('int pool_checkin(pool_lease_t *lease)'),
  pool_invalidate: fn('int pool_invalidate(pool_lease_t *lease)'),
  pool_query: fn('int pool_query(_Out_ pool_result_t **out, pool_lease_t *lease, const char *sql, int nparams, const char **params)'),
  pool_result_rows: fn('int64_t pool_result_rows(const pool_result_t *result)'),
  pool_result_columns: fn('int pool_result_columns(const pool_result_t *result)'),
  pool_result_column_name: fn('const char *pool_result_column_name(const pool_result_t *result, int column)'),
  pool_result_value: fn('const char *pool_result_value(const pool_result_t *result, int64_t row, int column)'),
  pool_result_affected: fn('int64_t pool_result_affected(const pool_result_t *result)'),
  pool_result_free: fn('void pool_result_free(pool_result_t *result)'),
  // since 1.2: typed results, binary-safe parameters, prepared statements, streams
  pool_result_column_type: fn('int pool_result_column_type(const pool_result_t *result, int column, _Out_ int64_t *backend_type)'),
  pool_result_read: fn('int pool_result_read(const pool_result_t *result, int64_t first_row, int64_t nrows, void *buf, size_t buf_len, void *lengths, _Out_ size_t *needed)'),
  pool_result_memory: fn('size_t pool_result_memory(const pool_result_t *result)'),
  pool_query_params: fn('int pool_query_params(_Out_ pool_result_t **out, pool_lease_t *lease, const char *sql, int nparams, const pool_param_t *params, int flags)'),
  pool_stream_open: fn('int pool_stream_open(_Out_ pool_stream_t **out, pool_lease_t *lease, const char *sql, int nparams, const pool_param_t *params, int flags)'),
  pool_stream_next: fn('int pool_stream_next(_Out_ pool_result_t **out, pool_stream_t *stream, int64_t max_rows)'),
  pool_stream_close: fn('int pool_stream_close(pool_stream_t *stream)'),
  pool_last_error: fn('const char *pool_last_error(void)'),
  pool_last_sqlstate: fn('const char *pool_last_sqlstate(void)'),
  pool_error_name: fn('const char *pool_error_name(int code)'),
  pool_version_string: fn('const char *pool_version_string(void)'),
};
