// bench/peers/peer.js: one peer measurement for `bench/run --peers` (issue 12, item 1).
//
//   node bench/peers/peer.js graphile-worker N   N no-op jobs, one worker at concurrency 8
//   node bench/peers/peer.js pg-boss N           N no-op jobs, 8 workers fetching batches of 50,
//                                                each woken with notifyWorker after a full batch
//
// Connection: libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE), as bench/run sets it;
// each peer gets a database of its own from bench/run, and its schema is installed there
// by the peer itself (graphile_worker / pgboss).
//
// What is timed: the jobs are inserted first (their WAL is reported apart, as
// insert_wal_bytes: the counterpart of our run_pipeline), a CHECKPOINT is taken (as bench/run
// does before each of our measurements), then the workers start and the clock runs until all
// N jobs are complete.  wal_bytes is pg_current_wal_lsn() after minus before that phase: a
// job's life from fetch to completion, the counterpart of our claim -> active -> succeeded.
// Output: one line "jobs=N secs=S wal_bytes=W insert_wal_bytes=I lsn0=L0 lsn1=L1" on stdout.
//
// Locking notes: none of ours; the peers do their own (SKIP LOCKED fetches).
'use strict';

const { Client } = require('pg');

const CONCURRENCY = 8;
const BATCH = 50;

function die(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(2);
}

async function lsn(c) {
  const r = await c.query('SELECT pg_current_wal_lsn()::text AS l');
  return r.rows[0].l;
}
async function walDiff(c, a, b) {
  const r = await c.query('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint AS d', [b, a]);
  return Number(r.rows[0].d);
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function graphileWorker(n, c) {
  const { run, runMigrations, Logger } = require('graphile-worker');
  // a silent logger: the default one prints a line per job, which would be what we measure
  const logger = new Logger(() => (level, message) => {
    if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
  });
  const opts = { concurrency: CONCURRENCY, noHandleSignals: true, pollInterval: 2000, logger };
  await runMigrations(opts);
  const i0 = await lsn(c);
  await c.query("SELECT graphile_worker.add_job('noop', '{}'::json) FROM generate_series(1, $1)", [n]);
  const i1 = await lsn(c);
  await c.query('CHECKPOINT');
  let done = 0;
  let resolveAll;
  const all = new Promise((res) => { resolveAll = res; });
  const l0 = await lsn(c);
  const t0 = process.hrtime.bigint();
  const runner = await run({
    ...opts,
    taskList: { noop: async () => {} },
  });
  runner.events.on('job:success', () => { if (++done === n) resolveAll(); });
  runner.events.on('job:error', ({ error }) => die(`job failed: ${error}`));
  await all;
  const t1 = process.hrtime.bigint();
  await runner.stop();
  const l1 = await lsn(c);
  const left = await c.query('SELECT count(*)::int AS n FROM graphile_worker.jobs');
  if (left.rows[0].n !== 0) die(`${left.rows[0].n} jobs left after ${n} successes`);
  return { secs: Number(t1 - t0) / 1e9, l0, l1, i0, i1 };
}

async function pgBoss(n, c) {
  const PgBoss = require('pg-boss');
  const boss = new PgBoss({ schema: 'pgboss', max: CONCURRENCY + 2, supervise: false, schedule: false, migrate: true });
  boss.on('error', (e) => die(`pg-boss: ${e.message}`));
  await boss.start();
  await boss.createQueue('bench');
  const i0 = await lsn(c);
  for (let k = 0; k < n; k += 1000) {
    const jobs = Array.from({ length: Math.min(1000, n - k) }, () => ({ name: 'bench', data: {} }));
    await boss.insert(jobs);
  }
  const i1 = await lsn(c);
  await c.query('CHECKPOINT');
  const l0 = await lsn(c);
  const t0 = process.hrtime.bigint();
  const ids = [];
  for (let w = 0; w < CONCURRENCY; w++) {
    const slot = w;
    ids[slot] = await boss.work('bench', { batchSize: BATCH, pollingIntervalSeconds: 2 }, async (jobs) => {
      // a full batch: there is probably more, fetch again at once instead of after the interval
      if (jobs.length === BATCH) boss.notifyWorker(ids[slot]);
    });
  }
  // pg-boss completes a batch without awaiting it: the clock stops when the rows say so
  for (;;) {
    const r = await c.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'bench' AND state = 'completed'");
    if (r.rows[0].n >= n) break;
    const f = await c.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'bench' AND state = 'failed'");
    if (f.rows[0].n > 0) die(`${f.rows[0].n} jobs failed`);
    await sleep(5);
  }
  const t1 = process.hrtime.bigint();
  const l1 = await lsn(c);
  await boss.stop({ graceful: false, wait: true });
  return { secs: Number(t1 - t0) / 1e9, l0, l1, i0, i1 };
}

async function main() {
  const [which, nArg] = process.argv.slice(2);
  const n = Number(nArg);
  if (!Number.isInteger(n) || n <= 0) die('usage: peer.js graphile-worker|pg-boss N');
  const c = new Client();
  await c.connect();
  let r;
  if (which === 'graphile-worker') r = await graphileWorker(n, c);
  else if (which === 'pg-boss') r = await pgBoss(n, c);
  else die(`unknown peer ${which}`);
  const wal = await walDiff(c, r.l0, r.l1);
  const iwal = await walDiff(c, r.i0, r.i1);
  await c.end();
  process.stdout.write(`jobs=${n} secs=${r.secs.toFixed(3)} wal_bytes=${wal} insert_wal_bytes=${iwal} lsn0=${r.l0} lsn1=${r.l1}\n`);
  process.exit(0);
}

main().catch((e) => die(e.stack || String(e)));
