'use strict';
// A worker thread: runs one blocking C call at a time, synchronously, and answers with its
// result. pool_last_error() and pool_last_sqlstate() are per-thread in the C library, so they
// are read here, on the thread that made the failing call, before it makes any other.
// A thread that checks a connection out keeps the lease (here, never in the main thread) and
// runs every later call on it: queries, invalidate, checkin. Messages are handled in order.
const { parentPort } = require('node:worker_threads');
const c = require('./native');

let lease = null; // the pool_lease_t * this thread holds, as a BigInt

function failure(rc) {
  const message = c.pool_last_error();
  const sqlstate = c.pool_last_sqlstate();
  return { ok: false, rc, codeName: c.pool_error_name(rc), message, sqlstate };
}

function checked(rc, value) {
  return rc === 0 ? { ok: true, value } : failure(rc);
}

function query(sql, params) {
  const out = [null];
  const rc = c.pool_query(out, lease, sql, params.length, params);
  if (rc !== 0) return failure(rc);
  const res = out[0];
  try {
    const nrows = Number(c.pool_result_rows(res));
    const ncols = c.pool_result_columns(res);
    const columns = [];
    for (let j = 0; j < ncols; j++) columns.push(c.pool_result_column_name(res, j));
    const rows = new Array(nrows);
    for (let i = 0; i < nrows; i++) {
      const row = new Array(ncols);
      for (let j = 0; j < ncols; j++) row[j] = c.pool_result_value(res, i, j);
      rows[i] = row;
    }
    const affected = Number(c.pool_result_affected(res));
    return { ok: true, value: { rows, columns, affected: affected < 0 ? null : affected } };
  } finally {
    c.pool_result_free(res);
  }
}

const ops = {
  checkout({ pool, timeout, tag }) {
    if (lease !== null) throw new Error('this thread holds a lease already');
    const out = [null];
    const rc = c.pool_checkout_tagged(out, pool, timeout, tag);
    if (rc === 0) lease = out[0];
    return checked(rc);
  },
  query: ({ sql, params }) => query(sql, params),
  invalidate: () => checked(c.pool_invalidate(lease)),
  checkin() {
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
  parentPort.postMessage(reply);
});
