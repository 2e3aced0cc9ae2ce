'use strict';
// Pool behaviour seen from Node: timeouts, concurrency off the event loop, stats, close.
const test = require('node:test');
const assert = require('node:assert');
const connpool = require('..');

const CONNINFO = 'application_name=connpool-node-test';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('an exhausted pool: PoolTimeoutError naming the holder, and the event loop runs meanwhile', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0, pool_timeout: 10 });
  try {
    let release;
    const held = pool.withConnection(() => new Promise((resolve) => { release = resolve; }), { tag: 'holder:test' });
    while (!release) await sleep(5);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = Date.now();
    const err = await pool.withConnection(() => {}, { timeout: 300, tag: 'waiter' }).then(() => null, (e) => e);
    const waited = Date.now() - t0;
    clearInterval(timer);
    assert.ok(err instanceof connpool.PoolTimeoutError, String(err));
    assert.ok(err instanceof connpool.ConnpoolError);
    assert.strictEqual(err.code, -4);
    assert.strictEqual(err.codeName, 'POOL_ETIMEDOUT');
    assert.strictEqual(err.sqlstate, '');
    assert.match(err.message, /QueuePool limit of size 1 overflow 0 reached/);
    assert.match(err.message, /holder:test/);
    assert.ok(waited >= 250 && waited < 5000, `waited ${waited} ms`);
    assert.ok(ticks > 10, `the timer fired ${ticks} times while the checkout waited`);
    assert.strictEqual(pool.stats().timeouts_total, 1);
    release();
    await held;
    // timeout 0: do not wait; the connection is free again
    await pool.withConnection((c) => c.query('SELECT 1'), { timeout: 0 });
  } finally {
    await pool.close();
  }
});

test('100 concurrent withConnection calls on a pool of 5, while a timer keeps firing', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 5, max_overflow: 0, pool_timeout: 60 });
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      pool.withConnection((c) => c.query('SELECT $1::int, pg_sleep(0.01)::text', [i]), { tag: `call:${i}` })));
    const elapsed = Date.now() - t0;
    clearInterval(timer);
    results.forEach((r, i) => assert.deepStrictEqual(r.rows, [[i, '']]));
    assert.ok(ticks > 5, `the timer fired ${ticks} times in ${elapsed} ms`);
    const st = pool.stats();
    assert.strictEqual(st.checkouts_total, 100);
    assert.strictEqual(st.checked_out, 0);
    assert.ok(st.opened_total <= 5, `opened ${st.opened_total}`);
    assert.ok(st.waits_total > 0);
  } finally {
    await pool.close();
  }
});

test('stats(): every pool_stats_t field as a Number', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 4, max_overflow: 2 });
  try {
    await pool.withConnection(async (c) => {
      await c.query('SELECT 1');
      const st = pool.stats();
      assert.strictEqual(st.checked_out, 1);
    });
    const st = pool.stats();
    const fields = ['pool_size', 'max_overflow', 'checked_out', 'idle', 'opening', 'overflow', 'waiting',
      'opened_total', 'closed_total', 'connect_failures_total', 'checkouts_total', 'timeouts_total',
      'wait_total_us', 'wait_max_us', 'inherited_total', 'connect_time_total_us', 'connect_time_max_us',
      'waits_total', 'wait_le_us', 'pings_total', 'dead_total', 'recycled_total', 'idle_closed_total',
      'invalidated_total', 'reset_closed_total', 'resets_total', 'leaks_total', 'fast_fails_total',
      'rejected_total'];
    assert.deepStrictEqual(Object.keys(st), fields);
    for (const f of fields) {
      if (f === 'wait_le_us') {
        assert.strictEqual(st[f].length, 6);
        st[f].forEach((v) => assert.strictEqual(typeof v, 'number'));
      } else {
        assert.strictEqual(typeof st[f], 'number', f);
      }
    }
    assert.strictEqual(st.pool_size, 4);
    assert.strictEqual(st.max_overflow, 2);
    assert.strictEqual(st.idle, 1);
    assert.strictEqual(st.opened_total, 1);
    assert.strictEqual(st.checkouts_total, 1);
    assert.ok(st.connect_time_total_us > 0);
  } finally {
    await pool.close();
  }
});

test('invalidate() closes the connection at checkin; reset() retires the idle ones', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 2 });
  try {
    await pool.withConnection((c) => c.invalidate());
    let st = pool.stats();
    assert.strictEqual(st.invalidated_total, 1);
    assert.strictEqual(st.idle, 0);
    await pool.withConnection((c) => c.query('SELECT 1'));
    assert.strictEqual(pool.stats().idle, 1);
    await pool.reset();
    st = pool.stats();
    assert.strictEqual(st.resets_total, 1);
    assert.strictEqual(st.idle, 0);
    assert.strictEqual(st.reset_closed_total, 1);
  } finally {
    await pool.close();
  }
});

test('close(): later calls fail with PoolClosedError; a connection still out keeps working', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 2 });
  let closed;
  await pool.withConnection(async (c) => {
    closed = pool.close();
    assert.strictEqual(pool.close(), closed, 'close() is idempotent');
    assert.ok(pool.closed);
    await closed; // disposed with this lease still out
    assert.deepStrictEqual((await c.query('SELECT 3')).rows, [[3]]);
  });
  await assert.rejects(pool.withConnection(() => {}), (e) =>
    e instanceof connpool.PoolClosedError && e.code === -7 && e.codeName === 'POOL_ECLOSED');
  assert.throws(() => pool.stats(), connpool.PoolClosedError);
  await assert.rejects(pool.reset(), connpool.PoolClosedError);
});

test('close() with checkouts waiting: queued ones fail at once, one inside the library runs its course', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0 }, { checkoutThreads: 1 });
  let release;
  const held = pool.withConnection(() => new Promise((resolve) => { release = resolve; }));
  while (!release) await sleep(5);
  const inside = pool.withConnection(() => 'served', { timeout: 10000 }); // waits in pool_checkout
  await sleep(100);
  const queued = pool.withConnection(() => 'never'); // waits for a checkout thread
  const closing = pool.close();
  await assert.rejects(queued, connpool.PoolClosedError);
  release();
  await held;
  assert.strictEqual(await inside, 'served');
  await closing;
});

test('checkoutThreads: later checkouts wait their turn, and their timeout still counts', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0 }, { checkoutThreads: 1 });
  try {
    let release;
    const held = pool.withConnection(() => new Promise((resolve) => { release = resolve; }));
    while (!release) await sleep(5);
    const first = pool.withConnection(() => 'first', { timeout: 10000 }); // inside the library
    const t0 = Date.now();
    const err = await pool.withConnection(() => 'second', { timeout: 200, tag: 'second' }).then(() => null, (e) => e);
    const waited = Date.now() - t0;
    assert.ok(err instanceof connpool.PoolTimeoutError, String(err));
    assert.match(err.message, /QueuePool limit/); // the library's own answer
    assert.ok(waited >= 150 && waited < 2000, `waited ${waited} ms`);
    const third = pool.withConnection(() => 'third'); // after first, in order
    release();
    await held;
    assert.deepStrictEqual(await Promise.all([first, third]), ['first', 'third']);
    assert.strictEqual(pool.stats().timeouts_total, 1);
  } finally {
    await pool.close();
  }
});

test('calls one after another; bad arguments are TypeErrors', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1 });
  try {
    for (let i = 0; i < 20; i++) {
      assert.strictEqual(await pool.withConnection(async (c) => (await c.query('SELECT $1::int * 2', [i])).rows[0][0]), 2 * i);
    }
    await assert.rejects(pool.withConnection((c) => c.query('SELECT $1', [Symbol('x')])), TypeError);
    await assert.rejects(pool.withConnection(() => {}, { timeout: 'soon' }), TypeError);
  } finally {
    await pool.close();
  }
});
