'use strict';
// Typed values (since 1.2): every type round-trips, parameter in and value out, through libpq,
// psqlODBC and (the types it has) SQLite ODBC; prepared statements; streams.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const connpool = require('..');
const { parseDate, dateText } = require('../lib/types');

const CONNINFO = 'application_name=connpool-node-test';
const ODBC_PG = process.env.CONNPOOL_TEST_ODBC_PG;
const SQLITE_DIR = process.env.CONNPOOL_TEST_SQLITE_DIR;

const INSTANT = new Date('2020-02-03T04:05:06.789Z');
const BYTES = Buffer.from([0, 1, 2, 0, 255, 0]);

// [SQL type, JS value sent, value expected back, type name expected]. Each is sent as a
// parameter, stored in a column of that type and read back.
const PG_CASES = [
  ['boolean', true, true, 'bool'],
  ['boolean', false, false, 'bool'],
  ['smallint', -32768, -32768, 'int16'],
  ['integer', 2147483647, 2147483647, 'int32'],
  ['bigint', 9223372036854775807n, 9223372036854775807n, 'int64'],
  ['bigint', -42, -42n, 'int64'],
  ['real', 1.5, 1.5, 'float32'],
  ['double precision', 1 / 3, 1 / 3, 'float64'],
  ['double precision', Infinity, Infinity, 'float64'],
  ['double precision', -Infinity, -Infinity, 'float64'],
  ['double precision', NaN, NaN, 'float64'],
  ['numeric', '12345678901234567890.000000000000000001', '12345678901234567890.000000000000000001', 'numeric'],
  ['numeric', 'NaN', 'NaN', 'numeric'],
  ['text', 'héllo wörld ☃', 'héllo wörld ☃', 'text'],
  ['varchar(10)', 'abc', 'abc', 'text'],
  ['bytea', BYTES, BYTES, 'bytea'],
  ['date', '2024-02-29', new Date('2024-02-29T00:00:00Z'), 'date'],
  ['time', '12:34:56.789012', '12:34:56.789012', 'time'],
  ['timestamp', INSTANT, INSTANT, 'timestamp'],
  ['timestamptz', INSTANT, INSTANT, 'timestamptz'],
  ['interval', '1 day 02:03:04', '1 day 02:03:04', 'interval'],
  ['uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'uuid'],
  ['json', { a: [1, 2, { b: null }] }, { a: [1, 2, { b: null }] }, 'json'],
  ['jsonb', { k: 'v' }, { k: 'v' }, 'json'],
  ['integer[]', [1, null, 3], '{1,NULL,3}', 'array'],
  ['text[]', ['a b', 'q"u\\o', null], '{"a b","q\\"u\\\\o",NULL}', 'array'],
];

function assertSame(actual, expected, what) {
  if (typeof expected === 'number' && Number.isNaN(expected)) {
    assert.ok(Number.isNaN(actual), `${what}: ${actual} is not NaN`);
  } else {
    assert.deepStrictEqual(actual, expected, what);
  }
}

async function withPool(conninfo, fn, options) {
  const pool = new connpool.Pool(conninfo, { pool_size: 1, max_overflow: 0 }, options);
  try {
    return await pool.withConnection(fn);
  } finally {
    await pool.close();
  }
}

// One table with a column per case, a row inserted with every case's parameter, read back.
async function roundTrip(c, cases, placeholder) {
  const cols = cases.map(([type], i) => `c${i} ${type}`).join(', ');
  await c.query(`CREATE TEMP TABLE node_types (${cols})`);
  const marks = cases.map((_, i) => placeholder(i)).join(', ');
  const ins = await c.query(`INSERT INTO node_types VALUES (${marks})`, cases.map((k) => k[1]));
  assert.strictEqual(ins.affected, 1);
  const r = await c.query('SELECT * FROM node_types');
  assert.strictEqual(r.rows.length, 1);
  return r;
}

test('libpq: every type round-trips through a column: parameter in, typed value out', async () => {
  await withPool(CONNINFO, async (c) => {
    const r = await roundTrip(c, PG_CASES, (i) => `$${i + 1}`);
    PG_CASES.forEach(([type, , expected, typeName], i) => {
      assertSame(r.rows[0][i], expected, `${type} (${i})`);
      assert.strictEqual(r.types[i], typeName, `${type}: type`);
    });
    assert.ok(Buffer.isBuffer(r.rows[0][PG_CASES.findIndex((k) => k[0] === 'bytea')]));
    assert.strictEqual(r.backendTypes[0], 16); // bool's OID
    assert.strictEqual(r.backendTypes[PG_CASES.findIndex((k) => k[0] === 'uuid')], 2950);
  });
});

test('libpq: parameters carry their types: SELECT $1 gives back what was sent', async () => {
  await withPool(CONNINFO, async (c) => {
    const r = await c.query('SELECT $1, $2, $3, $4, $5, $6, $7, $8::timestamptz',
      [7, 2.5, true, 12n, BYTES, 'text', null, INSTANT]);
    assert.deepStrictEqual(r.rows[0], [7n, 2.5, true, 12n, BYTES, 'text', null, INSTANT]);
    assert.deepStrictEqual(r.types, ['int64', 'float64', 'bool', 'int64', 'bytea', 'text', 'text', 'timestamptz']);
    // an untyped string still takes the type the statement needs, as before 1.2
    const n = await c.query('SELECT $1 + 1 AS n, $2::int IS NULL AS z', ['41', undefined]);
    assert.deepStrictEqual(n.rows, [[42, true]]);
  });
});

test('libpq: NULL, empty text and empty bytea are told apart, also in one row', async () => {
  await withPool(CONNINFO, async (c) => {
    const r = await c.query('SELECT $1::text, $2::text, $3::bytea, $4::bytea, $5::bytea, NULL::bytea, \'\'::text',
      [null, '', Buffer.alloc(0), null, Buffer.from([0])]);
    assert.deepStrictEqual(r.rows[0], [null, '', Buffer.alloc(0), null, Buffer.from([0]), null, '']);
    assert.ok(Buffer.isBuffer(r.rows[0][2]));
    assert.strictEqual(r.rows[0][2].length, 0);
    assert.strictEqual(r.rows[0][1], '');
  });
});

test('libpq: timestamps read as UTC wall time, exact under any session TimeZone', async () => {
  await withPool(CONNINFO, async (c) => {
    await c.query("SET TimeZone = 'Asia/Kolkata'");
    await c.query('CREATE TEMP TABLE node_tz (a timestamp, b timestamptz)');
    await c.query('INSERT INTO node_tz VALUES ($1, $2)', [INSTANT, INSTANT]);
    const r = await c.query('SELECT a, b, b::text FROM node_tz');
    assert.deepStrictEqual(r.rows[0].slice(0, 2), [INSTANT, INSTANT]);
    assert.strictEqual(r.rows[0][2], '2020-02-03 09:35:06.789+05:30'); // the offset was read
    const old = await c.query("SELECT '0044-03-15 12:00:00 BC'::timestamp, '0099-01-01'::date, 'infinity'::timestamp, '-infinity'::date");
    const bcNoon = new Date(0);
    bcNoon.setUTCFullYear(-43, 2, 15); // 44 BC is year -43
    bcNoon.setUTCHours(12, 0, 0, 0);
    const year99 = new Date(0);
    year99.setUTCFullYear(99, 0, 1);
    assert.deepStrictEqual(old.rows[0], [bcNoon, year99, Infinity, -Infinity]);
    assert.strictEqual(old.rows[0][0].getUTCFullYear(), -43);
    assert.strictEqual(old.rows[0][1].getUTCFullYear(), 99);
    // a BC Date goes back as it came
    const bc = await c.query('SELECT $1::timestamptz', [old.rows[0][0]]);
    assert.deepStrictEqual(bc.rows[0][0], old.rows[0][0]);
  });
});

test('parseDate and dateText: offsets, fractions, years before 100 and BC', () => {
  assert.strictEqual(parseDate('2024-01-02 03:04:05.678912+05:30').toISOString(), '2024-01-01T21:34:05.678Z');
  assert.strictEqual(parseDate('2024-01-02 03:04:05-08').toISOString(), '2024-01-02T11:04:05.000Z');
  assert.strictEqual(parseDate('1900-01-01 00:00:00+00:19:32').toISOString(), '1899-12-31T23:40:28.000Z');
  assert.strictEqual(parseDate('2024-01-02 03:04:05.5').toISOString(), '2024-01-02T03:04:05.500Z');
  assert.strictEqual(parseDate('0001-01-01 BC').getUTCFullYear(), 0);
  assert.strictEqual(parseDate('not a date'), 'not a date');
  assert.strictEqual(dateText(INSTANT), '2020-02-03 04:05:06.789+00');
  assert.strictEqual(dateText(parseDate('0001-01-01 BC')), '0001-01-01 00:00:00.000+00 BC');
  assert.throws(() => dateText(new Date(NaN)), TypeError);
});

test('parsers: the pool\'s and a query\'s own replace the defaults', async () => {
  const parsers = { int64: Number, json: null };
  await withPool(CONNINFO, async (c) => {
    const r = await c.query('SELECT 5::int8, \'{"a":1}\'::json, 2::int4');
    assert.deepStrictEqual(r.rows[0], [5, '{"a":1}', 2]);
    const q = await c.query('SELECT 5::int8, now()::timestamp IS NOT NULL', [], { parsers: { int64: String, bool: null } });
    assert.deepStrictEqual(q.rows[0], ['5', 't']);
    await assert.rejects(c.query('SELECT 1', [], { parsers: { nosuchtype: String } }), TypeError);
  }, { parsers });
  assert.throws(() => new connpool.Pool(CONNINFO, {}, { parsers: { int64: 5 } }), TypeError);
});

test('parameters that cannot be sent: TypeError; a NUL in text: InvalidArgumentError', async () => {
  await withPool(CONNINFO, async (c) => {
    await assert.rejects(c.query('SELECT $1', [Symbol('s')]), TypeError);
    await assert.rejects(c.query('SELECT $1', [() => 1]), TypeError);
    await assert.rejects(c.query('SELECT $1', [new Date(NaN)]), TypeError);
    await assert.rejects(c.query('SELECT $1::text', ['a\0b']), (e) => e instanceof connpool.InvalidArgumentError && /NUL/.test(e.message));
    assert.deepStrictEqual((await c.query('SELECT 1')).rows, [[1]]);
  });
});

test('a large result: values decoded exactly, the bytea path and the text path alike', async () => {
  await withPool(CONNINFO, async (c) => {
    const text = await c.query("SELECT g, repeat('é', g % 7), CASE WHEN g % 3 = 0 THEN NULL ELSE g::text END FROM generate_series(1, 5000) g");
    assert.strictEqual(text.rows.length, 5000);
    text.rows.forEach(([g, s, t], i) => {
      assert.strictEqual(g, i + 1);
      assert.strictEqual(s, 'é'.repeat((i + 1) % 7));
      assert.strictEqual(t, (i + 1) % 3 === 0 ? null : String(i + 1));
    });
    // int16, int32 and bool read from the bytes (all-ASCII result), and from the split text
    for (const extra of ["'abc'", "'ab☃'"]) {
      const r = await c.query(`SELECT (-32768)::int2, 32767::int2, (-2147483648)::int4, 0::int4, true, false, ${extra}`);
      assert.deepStrictEqual(r.rows, [[-32768, 32767, -2147483648, 0, true, false, extra.slice(1, -1)]]);
    }
    const bin = await c.query("SELECT g, decode(repeat('00ff', g % 5), 'hex'), repeat('ü', g % 4) FROM generate_series(1, 3000) g");
    bin.rows.forEach(([g, b, s]) => {
      assert.deepStrictEqual(b, Buffer.from('00ff'.repeat(g % 5), 'hex'));
      assert.strictEqual(s, 'ü'.repeat(g % 4));
    });
  });
});

test('prepare: true keeps the statement prepared on the connection and reuses it', async () => {
  await withPool(CONNINFO, async (c) => {
    const count = async () => (await c.query("SELECT count(*)::int FROM pg_prepared_statements WHERE name LIKE 'connpool_%'")).rows[0][0];
    await c.query('SELECT $1::int + 1', [1]);
    assert.strictEqual(await count(), 0);
    for (let i = 0; i < 3; i++) {
      const r = await c.query('SELECT $1::int + 1 AS n, $2::bytea AS b', [i, BYTES], { prepare: true });
      assert.deepStrictEqual(r.rows, [[i + 1, BYTES]]);
      assert.deepStrictEqual(r.columns, ['n', 'b']);
    }
    assert.strictEqual(await count(), 1);
    const other = await c.query('SELECT $1::text', ['x'], { prepare: true });
    assert.deepStrictEqual(other.rows, [['x']]);
    assert.strictEqual(await count(), 2);
  });
});

test('stream: rows in pieces of maxRows, read ahead, typed like query()', async () => {
  await withPool(CONNINFO, async (c) => {
    const sizes = [];
    let first;
    for await (const piece of c.stream('SELECT g, g::text, $1::bytea FROM generate_series(1, $2::int) g', [BYTES, 2500], { maxRows: 1000, pieces: true })) {
      sizes.push(piece.rows.length);
      if (!first) first = piece;
    }
    assert.deepStrictEqual(sizes, [1000, 1000, 500]);
    assert.deepStrictEqual(first.rows[0], [1, '1', BYTES]);
    assert.deepStrictEqual(first.types, ['int32', 'text', 'bytea']);

    let sum = 0;
    let n = 0;
    for await (const [g] of c.stream('SELECT g::int8 FROM generate_series(1, 10000) g', [], { maxRows: 333 })) {
      sum += Number(g);
      n++;
    }
    assert.strictEqual(n, 10000);
    assert.strictEqual(sum, 50005000);

    // an empty result: one piece with the columns and no rows
    const empty = [];
    for await (const piece of c.stream('SELECT 1 AS x WHERE false', [], { pieces: true })) empty.push(piece);
    assert.strictEqual(empty.length, 1);
    assert.deepStrictEqual(empty[0].rows, []);
    assert.deepStrictEqual(empty[0].columns, ['x']);
  });
});

test('stream: leaving early closes it, and the connection runs queries again', async () => {
  const pool = new connpool.Pool(CONNINFO, { pool_size: 1, max_overflow: 0 });
  try {
    await pool.withConnection(async (c) => {
      let seen = 0;
      for await (const row of c.stream('SELECT g FROM generate_series(1, 1000000) g', [], { maxRows: 100 })) {
        seen += row[0];
        if (seen > 1000) break;
      }
      assert.deepStrictEqual((await c.query('SELECT 7')).rows, [[7]]);
      // a stream abandoned mid-way is closed by the next query on the connection
      const it = c.stream('SELECT g FROM generate_series(1, 100000) g', [], { maxRows: 10 })[Symbol.asyncIterator]();
      assert.deepStrictEqual((await it.next()).value, [1]);
      assert.deepStrictEqual((await c.query('SELECT 8')).rows, [[8]]);
      // and a stream's failing statement is a QueryError from the loop
      await assert.rejects((async () => {
        for await (const _ of c.stream('SELECT 1 / (g - 3) FROM generate_series(1, 5) g', [], { maxRows: 1 })); // eslint-disable-line no-unused-vars
      })(), (e) => e instanceof connpool.QueryError && e.sqlstate === '22012');
      assert.deepStrictEqual((await c.query('SELECT 9')).rows, [[9]]);
    });
    // one left open at the end of withConnection is closed at checkin: the connection is reused
    await pool.withConnection(async (c) => {
      const it = c.stream('SELECT g FROM generate_series(1, 100000) g', [], { maxRows: 10 })[Symbol.asyncIterator]();
      await it.next();
    });
    const r = await pool.withConnection((c) => c.query('SELECT 10'), { timeout: 0 });
    assert.deepStrictEqual(r.rows, [[10]]);
    assert.strictEqual(pool.stats().opened_total, 1);
    await assert.rejects(pool.withConnection((c) => c.stream('SELECT 1', [], { maxRows: 0 })), TypeError);
  } finally {
    await pool.close();
  }
});

// psqlODBC reports interval, json and arrays as character columns: they read as text. Its
// timestamptz has no offset (the session's wall time), read as UTC: exact here, where the
// server's TimeZone is UTC.
const ODBC_TEXT = new Set(['interval', 'json', 'jsonb', 'integer[]', 'text[]']);
const odbcCases = () => PG_CASES.map(([type, sent, expected, name]) => {
  if (!ODBC_TEXT.has(type)) return [type, sent, expected, name];
  const text = { json: '{"a":[1,2,{"b":null}]}', jsonb: '{"k": "v"}' }[type] || expected; // json keeps its text
  return [type, sent, text, 'text'];
});

test('psqlODBC: every type round-trips through a column', { skip: !ODBC_PG && 'CONNPOOL_TEST_ODBC_PG not set' }, async () => {
  await withPool(ODBC_PG, async (c) => {
    assert.deepStrictEqual((await c.query('SHOW TimeZone')).rows, [['Etc/UTC']]);
    const cases = odbcCases();
    // psqlODBC cannot bind an untyped JSON text to a json column: it sends the parameter as varchar
    const marks = cases.map(([type]) => (type === 'json' || type === 'jsonb' ? `CAST(? AS ${type})` : '?'));
    const r = await roundTrip(c, cases, (i) => marks[i]);
    cases.forEach(([type, , expected, typeName], i) => {
      assertSame(r.rows[0][i], expected, `${type} (${i})`);
      assert.strictEqual(r.types[i], typeName, `${type}: type`);
    });
  });
});

test('psqlODBC: NULL, empty text and empty bytea are told apart', { skip: !ODBC_PG && 'CONNPOOL_TEST_ODBC_PG not set' }, async () => {
  await withPool(ODBC_PG, async (c) => {
    const r = await c.query('SELECT CAST(? AS text), CAST(? AS text), CAST(? AS bytea), CAST(? AS bytea), CAST(? AS bytea)',
      [null, '', Buffer.alloc(0), null, BYTES]);
    assert.deepStrictEqual(r.rows[0], [null, '', Buffer.alloc(0), null, BYTES]);
    const p = await c.query('SELECT CAST(? AS int8) + 1', [41], { prepare: true }); // accepted, runs unprepared
    assert.deepStrictEqual(p.rows, [[42n]]);
    let n = 0;
    for await (const [g] of c.stream('SELECT g FROM generate_series(1, 2500) g', [], { maxRows: 1000 })) n += g;
    assert.strictEqual(n, 2500 * 2501 / 2);
  });
});

test('SQLite ODBC: its types round-trip: INTEGER, REAL, TEXT, BLOB, BOOLEAN', { skip: !SQLITE_DIR && 'CONNPOOL_TEST_SQLITE_DIR not set' }, async () => {
  const db = path.join(SQLITE_DIR, `node-types-${process.pid}.db`);
  await withPool(`odbc:Driver=SQLite3;Database=${db}`, async (c) => {
    await c.query('CREATE TABLE t (n INTEGER, i INTEGER, r REAL, s TEXT, b BLOB, f BOOLEAN)');
    const rows = [
      [1, 9007199254740993n, 1.5, 'héllo ☃', BYTES, true],
      [2, -3, -0.25, '', Buffer.alloc(0), false],
      [3, null, null, null, null, null],
    ];
    for (const row of rows) assert.strictEqual((await c.query('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)', row)).affected, 1);
    const r = await c.query('SELECT n, i, r, s, b, f FROM t ORDER BY n');
    assert.deepStrictEqual(r.types, ['int64', 'int64', 'float64', 'text', 'bytea', 'bool']);
    assert.deepStrictEqual(r.rows, rows.map(([n, i, ...rest]) => [BigInt(n), i === null ? null : BigInt(i), ...rest]));
    const empty = await c.query('SELECT n FROM t WHERE s = ? AND b = ?', ['', Buffer.alloc(0)]);
    assert.deepStrictEqual(empty.rows, [[2n]]);
  });
});
