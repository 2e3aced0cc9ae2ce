'use strict';
// Worker threads that make the blocking C calls, shared by every Pool of the process.
// acquire() hands out an idle thread (or starts one); release() takes it back. A thread keeps
// the process alive only while a call is running on it; an idle one ends after IDLE_MS.
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { library } = require('./native');

const IDLE_MS = 30000;
const idle = []; // most recently used last: reused first, so the surplus ages out

class Thread {
  constructor() {
    this.pending = []; // {resolve, reject} per message posted, answered in order
    this.dead = null;
    this.worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: { library } });
    this.worker.unref();
    this.worker.on('message', (reply) => {
      this.pending.shift().resolve(reply);
      if (this.pending.length === 0) this.worker.unref();
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`connpool worker thread exited (${code})`)));
  }

  fail(error) {
    this.dead = this.dead || error;
    for (const p of this.pending.splice(0)) p.reject(this.dead);
    const i = idle.indexOf(this);
    if (i >= 0) idle.splice(i, 1);
  }

  /** Post one call; resolves with the worker's reply ({ok, value} or {ok: false, ...}). */
  call(msg) {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.worker.ref();
      this.worker.postMessage(msg);
    });
  }
}

function acquire() {
  const t = idle.pop() || new Thread();
  clearTimeout(t.reaper);
  return t;
}

function release(t) {
  if (t.dead) return;
  idle.push(t);
  t.reaper = setTimeout(() => {
    const i = idle.indexOf(t);
    if (i >= 0) idle.splice(i, 1);
    t.worker.terminate();
  }, IDLE_MS);
  t.reaper.unref();
}

module.exports = { acquire, release };
