'use strict';
// Pool and Connection: the C API with promises. Every call that may block (checkout, query,
// checkin, reset, dispose) runs on a worker thread (lib/threads.js, lib/worker.js); stats and
// pool creation do no I/O and run here. No pool logic lives here: waiting, timeouts, limits
// and counts are the C library's.
const c = require('./native');
const threads = require('./threads');
const errors = require('./errors');
const types = require('./types');

const { CODES, makeError } = errors;
const jsError = (rc, message) => makeError({ rc, codeName: c.pool_error_name(rc), message });
const closedError = () => jsError(CODES.POOL_ECLOSED, 'the pool is closed');

// A worker's reply: its value, or the error it read on its thread.
function unwrap(reply) {
  if (reply.ok) return reply.value;
  if (reply.thrown) throw new Error(`connpool worker thread: ${reply.thrown}`);
  throw makeError(reply);
}

// A failed call made on this thread: read its message now, before the next connpool call.
function check(rc) {
  if (rc !== 0) {
    throw makeError({ rc, codeName: c.pool_error_name(rc), message: c.pool_last_error(), sqlstate: c.pool_last_sqlstate() });
  }
}

const POOL_QUERY_PREPARE = 1;

// The query options both query() and stream() take; throws a TypeError for bad ones.
function queryArgs(sql, params, options, defaults) {
  if (typeof sql !== 'string') throw new TypeError('sql must be a string');
  if (!Array.isArray(params)) throw new TypeError('params must be an array');
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const flags = options.prepare ? POOL_QUERY_PREPARE : 0;
  const parsers = types.parsersWith(defaults, options.parsers);
  return { msg: { sql, params: params.map(types.param), flags }, parsers };
}

const optionText = (v) => (typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v));

function timeoutMs(timeout) {
  if (timeout === undefined || timeout === null || timeout === -1) return -1; // pool_timeout
  if (typeof timeout !== 'number' || !(timeout >= 0) || !Number.isFinite(timeout)) {
    throw new TypeError('timeout: milliseconds (a number >= 0), or undefined for the pool\'s pool_timeout');
  }
  return Math.ceil(timeout);
}

class Connection {
  constructor(thread, parsers) {
    this._thread = thread; // the worker thread that holds this lease, until checkin
    this._parsers = parsers; // the pool's, for every query
    this._stream = null; // the stream open on this lease: closed before anything else runs
  }

  _call(msg) {
    if (!this._thread) return Promise.reject(jsError(CODES.POOL_ESTATE, 'the connection was checked in already'));
    return this._thread.call(msg).then(unwrap);
  }

  /**
   * Run one statement (pool_query_params): $1.. for libpq, ? for ODBC. Parameters and
   * values are converted as README.md's table says. options: {prepare: true} keeps the
   * statement prepared on this connection (POOL_QUERY_PREPARE); {parsers: {...}} overrides
   * the pool's converters for this query. Resolves with {rows, columns, types,
   * backendTypes, affected}.
   */
  async query(sql, params = [], options = {}) {
    const { msg, parsers } = queryArgs(sql, params, options, this._parsers);
    if (this._stream) await this._stream.close();
    return types.decode(await this._call({ op: 'query', ...msg }), parsers);
  }

  /**
   * Run one statement and read its rows in pieces (pool_stream_*), so that a large result is
   * never held whole: an async iterable of rows; with {pieces: true}, of pieces instead
   * ({rows, columns, types, backendTypes, affected}, like query()'s, of at most maxRows
   * rows; the first may have none). The next piece is fetched while the current one is
   * used. Leaving the loop early (break, throw) closes the stream, which cancels the rest on
   * the server. options: maxRows (default 1000), pieces, parsers; prepare is ignored (the
   * C API does not prepare streams).
   */
  stream(sql, params = [], options = {}) {
    const { msg, parsers } = queryArgs(sql, params, options, this._parsers);
    const maxRows = options.maxRows === undefined ? 1000 : options.maxRows;
    if (!Number.isSafeInteger(maxRows) || maxRows < 1) throw new TypeError('maxRows must be an integer >= 1');
    return this._streamRows(msg, parsers, maxRows, Boolean(options.pieces));
  }

  async *_streamRows(msg, parsers, maxRows, pieces) {
    if (this._stream) await this._stream.close();
    await this._call({ op: 'streamOpen', ...msg, flags: 0 });
    let closed = false;
    const handle = {
      close: () => {
        if (closed) return Promise.resolve();
        closed = true;
        if (this._stream === handle) this._stream = null;
        return this._call({ op: 'streamClose' });
      },
    };
    this._stream = handle;
    const next = () => this._call({ op: 'streamNext', maxRows });
    try {
      let pending = next();
      for (;;) {
        const packed = await pending;
        if (packed === null) break;
        pending = next(); // read ahead: the worker fetches while this piece is used
        pending.catch(() => {}); // its error, if any, is thrown when it is awaited
        const piece = types.decode(packed, parsers);
        if (pieces) yield piece;
        else yield* piece.rows;
      }
    } finally {
      await handle.close();
    }
  }

  /** pool_invalidate(): the connection is closed at checkin instead of reused. */
  invalidate() {
    return this._call({ op: 'invalidate' });
  }

  async _checkin() {
    if (this._stream) await this._stream.close().catch(() => {}); // the worker closes it too
    const thread = this._thread;
    this._thread = null;
    try {
      unwrap(await thread.call({ op: 'checkin' })); // after every call already posted
    } finally {
      threads.release(thread);
    }
  }
}

class Pool {
  /**
   * conninfo: libpq's (a URI, "key=value ...", or "" for the PG* variables) or "odbc:...".
   * options: the C option names ({pool_size: 5, pool_pre_ping: true}); values become text.
   * checkoutThreads: at most this many checkouts run in the library at once, each on a thread
   * of its own; later ones wait their turn here, in order.
   * parsers: {typeName: fn(text)} replaces the converters of those column types for every
   * query ({int64: Number}, {timestamp: null} for the text itself); see README.md.
   */
  constructor(conninfo, options = {}, { checkoutThreads = 4, parsers } = {}) {
    if (typeof conninfo !== 'string') throw new TypeError('conninfo must be a string ("" for the PG* variables)');
    if (!Number.isInteger(checkoutThreads) || checkoutThreads < 1) throw new TypeError('checkoutThreads must be an integer >= 1');
    const keys = [];
    const values = [];
    for (const [k, v] of Object.entries(options || {})) {
      if (v === undefined || v === null) continue;
      keys.push(k);
      values.push(optionText(v));
    }
    const out = [null];
    check(c.pool_create_params(out, conninfo, [...keys, null], [...values, null]));
    this._handle = out[0];
    this._checkoutThreads = checkoutThreads;
    this._parsers = types.parsersWith(types.DEFAULT_PARSERS, parsers);
    this._queue = []; // checkouts waiting for their turn: {timeout, tag, since, resolve, reject, timer}
    this._running = 0; // checkouts running in the library
    this._inside = 0; // calls on the pool handle in flight (checkouts, reset)
    this._drained = null; // resolves close() once _inside is 0
    this._closing = null;
  }

  get closed() {
    return this._closing !== null;
  }

  _live() {
    if (this._closing) throw closedError();
    return this._handle;
  }

  // A call that uses the pool handle, counted so that close() can wait until none is in flight.
  async _poolCall(thread, msg) {
    this._inside++;
    try {
      return await thread.call(msg);
    } finally {
      if (--this._inside === 0 && this._drained) this._drained();
    }
  }

  _checkout(timeout, tag) {
    return new Promise((resolve, reject) => {
      if (this._closing) throw closedError();
      const req = { timeout: timeoutMs(timeout), tag: tag == null ? null : String(tag), since: Date.now(), resolve, reject };
      this._queue.push(req);
      this._admit();
      if (req.timeout >= 0 && this._queue.includes(req)) {
        // Its time runs out before its turn comes: the library answers it at once (timeout 0).
        req.timer = setTimeout(() => {
          const i = this._queue.indexOf(req);
          if (i >= 0) this._runCheckout(this._queue.splice(i, 1)[0]);
        }, req.timeout);
      }
    });
  }

  _admit() {
    while (this._running < this._checkoutThreads && this._queue.length > 0) {
      const req = this._queue.shift();
      clearTimeout(req.timer);
      this._running++;
      this._runCheckout(req).finally(() => {
        this._running--;
        this._admit();
      });
    }
  }

  async _runCheckout(req) {
    // What is left of an explicit timeout after waiting here for a thread (0: do not wait).
    const timeout = req.timeout < 0 ? -1 : Math.max(0, req.timeout - (Date.now() - req.since));
    const thread = threads.acquire();
    try {
      unwrap(await this._poolCall(thread, { op: 'checkout', pool: this._handle, timeout, tag: req.tag }));
    } catch (e) {
      threads.release(thread);
      return req.reject(e);
    }
    req.resolve(new Connection(thread, this._parsers));
  }

  /**
   * Check a connection out, run fn(connection), and always check it in (also when fn throws).
   * timeout: milliseconds to wait for a connection (default: the pool's pool_timeout);
   * tag: names the holder in leak reports and timeout messages. Resolves with fn's result.
   */
  async withConnection(fn, { timeout, tag } = {}) {
    if (typeof fn !== 'function') throw new TypeError('withConnection(fn): fn must be a function');
    const conn = await this._checkout(timeout, tag);
    let result;
    try {
      result = await fn(conn);
    } catch (e) {
      await conn._checkin().catch(() => {}); // fn's error is the one to report
      throw e;
    }
    await conn._checkin();
    return result;
  }

  /** pool_stats_get(): every field as a Number (wait_le_us an array of them). */
  stats() {
    const st = { size: c.statsSize };
    check(c.pool_stats_get(this._live(), st));
    const out = {};
    for (const f of c.STATS_FIELDS) {
      if (c.statsOffset(f) >= st.size) break; // an older library: not filled
      out[f] = f === 'wait_le_us' ? Array.from(st[f], Number) : Number(st[f]);
    }
    return out;
  }

  /** pool_reset(): retire every connection open now (idle ones close at once). */
  async reset() {
    const handle = this._live();
    const thread = threads.acquire();
    try {
      unwrap(await this._poolCall(thread, { op: 'reset', pool: handle }));
    } finally {
      threads.release(thread);
    }
  }

  /**
   * pool_dispose(). New and queued checkouts fail with PoolClosedError at once; checkouts
   * already inside the library finish first (served, or timed out), since no call may enter
   * the library with the handle once it is disposed. Connections still out keep working and
   * are closed at their checkin. Idempotent: every call returns the same promise.
   */
  close() {
    if (!this._closing) {
      for (const req of this._queue.splice(0)) {
        clearTimeout(req.timer);
        req.reject(closedError());
      }
      this._closing = this._dispose();
    }
    return this._closing;
  }

  async _dispose() {
    while (this._inside > 0) await new Promise((resolve) => { this._drained = resolve; });
    const thread = threads.acquire();
    try {
      const reply = await thread.call({ op: 'dispose', pool: this._handle });
      if (!reply.ok && reply.rc === CODES.POOL_EBUSY) return; // released at the last checkin
      unwrap(reply);
    } finally {
      this._handle = null;
      threads.release(thread);
    }
  }
}

module.exports = { Pool, Connection };
