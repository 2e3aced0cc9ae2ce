'use strict';
// The Node binding against node-postgres (pg), same server, same run, one connection each:
//     (cd bindings/node/bench && npm ci)        # pg, into bench/node_modules only
//     tests/with-postgres.sh node bindings/node/bench/bench-vs-pg.js [QUERIES]
// Runs the query of issue 16 QUERIES times (default 400) per variant, interleaved in rounds
// so that a drift of the machine touches every variant alike, and prints the median time per
// query, its ratio to pg's, and each variant's first row. The library is found as the
// binding finds it ($CONNPOOL_LIBRARY, else the system's, else this tree's build/).
const { performance } = require('node:perf_hooks');
const path = require('node:path');
const connpool = require(path.join(__dirname, '..'));
const pg = require('pg');

const SQL = "SELECT g, g*2, 'row ' || g, g::float8/3, g % 2 = 0 FROM generate_series(1, 1000) g";
const QUERIES = Number(process.argv[2] || 400);
const ROUND = 20;
const WARMUP = 30;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const show = (row) => `[${row.map((v) => (typeof v === 'string' ? `'${v}'` : typeof v === 'bigint' ? `${v}n` : String(v))).join(', ')}]`;

async function main() {
  const pool = new connpool.Pool('application_name=connpool-bench', { pool_size: 1, max_overflow: 0 });
  const client = new pg.Client({ application_name: 'pg-bench' });
  await client.connect();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let conn;
  const leased = pool.withConnection((c) => { conn = c; return held; });
  while (!conn) await new Promise((resolve) => setImmediate(resolve));

  const variants = [
    { name: 'node-postgres (pg) 8.13, rows as arrays', run: () => client.query({ text: SQL, rowMode: 'array' }).then((r) => r.rows) },
    { name: 'node-postgres (pg), named prepared', run: () => client.query({ name: 'bench', text: SQL, rowMode: 'array' }).then((r) => r.rows) },
    { name: 'connpool', run: () => conn.query(SQL).then((r) => r.rows) },
    { name: 'connpool, prepare: true', run: () => conn.query(SQL, [], { prepare: true }).then((r) => r.rows) },
  ];
  for (const v of variants) {
    v.times = [];
    for (let i = 0; i < WARMUP; i++) v.first = (await v.run())[0];
    if ((await v.run()).length !== 1000) throw new Error(`${v.name}: not 1000 rows`);
  }
  for (let done = 0; done < QUERIES; done += ROUND) {
    for (const v of variants) {
      for (let i = 0; i < ROUND; i++) {
        const t0 = performance.now();
        await v.run();
        v.times.push(performance.now() - t0);
      }
    }
  }
  release();
  await leased;
  await pool.close();
  await client.end();

  const base = median(variants[0].times);
  console.log(`${SQL}\n${variants[0].times.length} queries per variant, one connection each, Node ${process.version}, libconnpool ${connpool.version()}\n`);
  console.log('| variant | median ms/query | vs pg | first row |');
  console.log('|---|---|---|---|');
  for (const v of variants) {
    const m = median(v.times);
    console.log(`| ${v.name} | ${m.toFixed(3)} | ${(m / base).toFixed(2)}x | \`${show(v.first)}\` |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
