'use strict';
// Queries, errors and options against the test PostgreSQL (tests/with-postgres.sh sets PG*).
const test = require('node:test');
const assert = require('node:assert');
const connpool = require('..');

const CONNINFO = 'application_name=connpool-node-test';

test('query with parameters and NULLs', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 2 });
  try {
    const r = await pool.withConnection((c) =>
      c.query('SELECT $1::text AS a, $2::int + 1 AS b, $3::text AS c, NULL AS d', ['héllo', 41, null]));
    assert.deepStrictEqual(r, {
      rows: [['héllo', 42, null, null]], columns: ['a', 'b', 'c', 'd'], types: ['text', 'int32', 'text', 'text'],
      backendTypes: [25, 23, 25, 25], affected: null,
    });

    const many = await pool.withConnection((c) => c.query('SELECT g, g * 2 FROM generate_series(1, $1::int) g', [3]));
    assert.deepStrictEqual(many.rows, [[1, 2], [2, 4], [3, 6]]);
    assert.deepStrictEqual(many.columns, ['g', '?column?']);
  } finally {
    await pool.close();
  }
});

test('affected rows, and a transaction left open is rolled back at checkin', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0 });
  try {
    await pool.withConnection(async (c) => {
      await c.query('CREATE TABLE IF NOT EXISTS node_binding_t (x int)');
      await c.query('BEGIN');
      const ins = await c.query('INSERT INTO node_binding_t VALUES ($1), ($2)', [1, '2']);
      assert.strictEqual(ins.affected, 2);
      assert.deepStrictEqual(ins.rows, []);
    });
    const count = await pool.withConnection((c) => c.query('SELECT count(*) FROM node_binding_t'));
    assert.deepStrictEqual(count.rows, [[0n]]);
    await pool.withConnection((c) => c.query('DROP TABLE node_binding_t'));
  } finally {
    await pool.close();
  }
});

test('a failed statement: QueryError with SQLSTATE 42P01, and the connection stays usable', async () => {
  const pool = new connpool.Pool(CONNINFO);
  try {
    await pool.withConnection(async (c) => {
      const err = await c.query('SELECT * FROM no_such_table_42').then(() => null, (e) => e);
      assert.ok(err instanceof connpool.QueryError);
      assert.ok(err instanceof connpool.ConnpoolError);
      assert.ok(err instanceof Error);
      assert.strictEqual(err.code, -13);
      assert.strictEqual(err.codeName, 'POOL_EQUERY');
      assert.strictEqual(err.sqlstate, '42P01');
      assert.match(err.message, /no_such_table_42/);
      assert.deepStrictEqual((await c.query('SELECT 1')).rows, [[1]]);
    });
  } finally {
    await pool.close();
  }
});

test('errors are read on the thread that failed: concurrent failures keep their own messages', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 10 });
  try {
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      pool.withConnection((c) => c.query(`SELECT * FROM missing_${i}`)).then(() => null, (e) => e)));
    results.forEach((e, i) => {
      assert.strictEqual(e.codeName, 'POOL_EQUERY');
      assert.strictEqual(e.sqlstate, '42P01');
      assert.match(e.message, new RegExp(`missing_${i}\\b`));
    });
  } finally {
    await pool.close();
  }
});

test('withConnection checks in when the callback throws, and rethrows its error', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0 });
  try {
    const boom = new Error('boom');
    await assert.rejects(pool.withConnection(async (c) => {
      await c.query('SELECT 1');
      throw boom;
    }), (e) => e === boom);
    assert.strictEqual(pool.stats().checked_out, 0);
    // the pool of one serves the next caller at once
    const r = await pool.withConnection((c) => c.query('SELECT 2'), { timeout: 0 });
    assert.deepStrictEqual(r.rows, [[2]]);
  } finally {
    await pool.close();
  }
});

test('a connection used after its checkin: StateError', async () => {
  const pool = new connpool.Pool(CONNINFO);
  try {
    let kept;
    await pool.withConnection((c) => { kept = c; });
    await assert.rejects(kept.query('SELECT 1'), (e) => e instanceof connpool.StateError && e.codeName === 'POOL_ESTATE');
  } finally {
    await pool.close();
  }
});

test('options: booleans and numbers become text; an unknown key is InvalidArgumentError', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 3, max_overflow: 0, pool_pre_ping: true, pool_timeout: 2.5, pool_use_lifo: false });
  try {
    assert.deepStrictEqual((await pool.withConnection((c) => c.query('SELECT 1'))).rows, [[1]]);
    assert.strictEqual(pool.stats().pool_size, 3);
  } finally {
    await pool.close();
  }
  assert.throws(() => new connpool.Pool(CONNINFO, { no_such_option: 1 }), (e) =>
    e instanceof connpool.InvalidArgumentError && e.code === -2 && /no_such_option/.test(e.message));
  assert.throws(() => new connpool.Pool(CONNINFO, { pool_size: 'many' }), (e) =>
    e.codeName === 'POOL_EINVAL' && /pool_size/.test(e.message));
});

test('a server that cannot be reached: ConnectError', async () => {
  const pool = new connpool.Pool('host=127.0.0.1 port=1 connect_timeout=5', { pool_timeout: 5 });
  try {
    await assert.rejects(pool.withConnection(() => {}), (e) =>
      e instanceof connpool.ConnectError && e.codeName === 'POOL_ECONNECT' && e.code === -5 && e.message.length > 0);
  } finally {
    await pool.close();
  }
});

test('ODBC: ? placeholders', { skip: !process.env.CONNPOOL_TEST_ODBC_PG && 'CONNPOOL_TEST_ODBC_PG not set' }, async () => {
  const pool = new connpool.Pool(process.env.CONNPOOL_TEST_ODBC_PG, { pool_size: 1 });
  try {
    const r = await pool.withConnection((c) => c.query('SELECT CAST(? AS integer) + 1 AS n, CAST(? AS text) AS t', [1, null]));
    assert.deepStrictEqual(r.rows, [[2, null]]);
    const err = await pool.withConnection((c) => c.query('SELECT * FROM no_such_table_odbc')).then(() => null, (e) => e);
    assert.strictEqual(err.sqlstate, '42P01');
  } finally {
    await pool.close();
  }
});

test('the library named by CONNPOOL_LIBRARY, and a clear error when it is not there', () => {
  const { spawnSync } = require('node:child_process');
  const run = (lib) => spawnSync(process.execPath, ['-e', 'console.log(require(".").version())'], {
    cwd: require('node:path').join(__dirname, '..'), env: { ...process.env, CONNPOOL_LIBRARY: lib }, encoding: 'utf8' });
  const bad = run('/nonexistent/libconnpool.so.1');
  assert.notStrictEqual(bad.status, 0);
  assert.match(bad.stderr, /CONNPOOL_LIBRARY/);
  assert.match(bad.stderr, /nonexistent/);
  const good = run(connpool.library);
  assert.strictEqual(good.status, 0, good.stderr);
  assert.match(good.stdout, /^\d+\.\d+\.\d+$/m);
});
