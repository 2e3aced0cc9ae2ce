'use strict';
// A worker thread: runs one blocking C call at a time, synchronously, and answers with its
// result. pool_last_error() and pool_last_sqlstate() are per-thread in the C library, so they
// are read here, on the thread that made the failing call, before it makes any other.
// A thread that checks a connection out keeps the lease (here, never in the main thread) and
// runs every later call on it: queries, invalidate, checkin. Messages are handled in order.
const { parentPort } = require('node:worker_threads');
const c = require('./native');
const { CODES } = require('./errors');

let lease = null; // the pool_lease_t * this thread holds, as a BigInt
let stream = null; // the pool_stream_t * open on that lease, if any
let transfer = []; // ArrayBuffers the reply moves to the main thread instead of copying

function failure(rc) {
  const message = c.pool_last_error();
  const sqlstate = c.pool_last_sqlstate();
  return { ok: false, rc, codeName: c.pool_error_name(rc), message, sqlstate };
}

function checked(rc, value) {
  return rc === 0 ? { ok: true, value } : failure(rc);
}

const EMPTY = Buffer.alloc(1); // a non-NULL pointer for an empty value (length 0)

// The parameters as pool_param_t: {v, t} from the main thread, v a string, a Uint8Array
// (bytea) or null, t a pool_type. Text is passed with its byte length, not NUL-terminated.
function cParams(params) {
  return params.map(({ v, t }) => {
    if (v === null) return { value: null, length: -1, type: t };
    const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    return { value: bytes.length > 0 ? bytes : EMPTY, length: bytes.length, type: t };
  });
}

// One result as the main thread decodes it (lib/types.js): the names and types of its
// columns, and all its values read with one pool_result_read() into one buffer, which is
// transferred, not copied, to the main thread. Two calls for the values, whatever the size.
function pack(res) {
  const nrows = Number(c.pool_result_rows(res));
  const ncols = c.pool_result_columns(res);
  const columns = new Array(ncols);
  const types = new Array(ncols);
  const backendTypes = new Array(ncols);
  const backend = [0];
  for (let j = 0; j < ncols; j++) {
    columns[j] = c.pool_result_column_name(res, j);
    backend[0] = 0;
    types[j] = c.pool_result_column_type(res, j, backend);
    backendTypes[j] = Number(backend[0]);
  }
  let buf = null;
  let lengths = null;
  if (nrows > 0 && ncols > 0) {
    const needed = [0];
    let rc = c.pool_result_read(res, 0, nrows, null, 0, null, needed);
    if (rc !== 0 && rc !== CODES.POOL_ERANGE) return failure(rc);
    buf = new ArrayBuffer(Number(needed[0]));
    lengths = new ArrayBuffer(8 * nrows * ncols);
    rc = c.pool_result_read(res, 0, nrows, new Uint8Array(buf), buf.byteLength, new Uint8Array(lengths), needed);
    if (rc !== 0) return failure(rc);
    transfer = [buf, lengths];
  }
  const affected = Number(c.pool_result_affected(res));
  return { ok: true, value: { nrows, columns, types, backendTypes, buf, lengths, affected: affected < 0 ? null : affected } };
}

function query(sql, params, flags) {
  const out = [null];
  const rc = c.pool_query_params(out, lease, sql, params.length, cParams(params), flags);
  if (rc !== 0) return failure(rc);
  try {
    return pack(out[0]);
  } finally {
    c.pool_result_free(out[0]);
  }
}

function streamOpen(sql, params, flags) {
  if (stream !== null) throw new Error('this thread has a stream open already');
  const out = [null];
  const rc = c.pool_stream_open(out, lease, sql, params.length, cParams(params), flags);
  if (rc === 0) stream = out[0];
  return checked(rc);
}

function streamNext(maxRows) {
  if (stream === null) return { ok: true, value: null };
  const out = [null];
  const rc = c.pool_stream_next(out, stream, maxRows);
  if (rc !== 0) return failure(rc);
  if (out[0] === null) return { ok: true, value: null }; // every row was read
  try {
    return pack(out[0]);
  } finally {
    c.pool_result_free(out[0]);
  }
}

function streamClose() {
  const held = stream;
  stream = null;
  return held === null ? { ok: true } : checked(c.pool_stream_close(held));
}

const ops = {
  checkout({ pool, timeout, tag }) {
    if (lease !== null) throw new Error('this thread holds a lease already');
    const out = [null];
    const rc = c.pool_checkout_tagged(out, pool, timeout, tag);
    if (rc === 0) lease = out[0];
    return checked(rc);
  },
  query: ({ sql, params, flags }) => query(sql, params, flags),
  streamOpen: ({ sql, params, flags }) => streamOpen(sql, params, flags),
  streamNext: ({ maxRows }) => streamNext(maxRows),
  streamClose: () => streamClose(),
  invalidate: () => checked(c.pool_invalidate(lease)),
  checkin() {
    if (stream !== null) streamClose(); // a stream left open: its rows are not wanted
    const held = lease;
    lease = null; // the handle is invalid after pool_checkin(), whatever it returns
    return checked(c.pool_checkin(held));
  },
  reset: ({ pool }) => checked(c.pool_reset(pool)),
  dispose: ({ pool }) => checked(c.pool_dispose(pool)),
};

parentPort.on('message', (msg) => {
  let reply;
  try {
    reply = ops[msg.op](msg);
  } catch (e) {
    reply = { ok: false, thrown: String(e && e.stack || e) };
  }
  const moved = transfer;
  transfer = [];
  parentPort.postMessage(reply, reply.ok ? moved : []);
});
