// The TypeScript runner's Jest environment: the JavaScript runner's (environment.js, shared),
// with two differences that make it Exercism's TypeScript test runner:
//
// - Only `xtest`, `xit` and `xdescribe` are un-skipped (the track runner rewrites them to
//   test/it/describe in the test file); `test.skip`, `it.skip` and `describe.skip` stay
//   skipped, and a skipped test is no test of the report.
// - No test file runs before the runner has type-checked the exercise: Jest starts while
//   tsc runs, and `setup()` waits on fd 4 for the runner's word. "g" lets the tests run;
//   end of file (the code did not type-check) ends this process without running any.
//   Warm (jest-warm.js, SANDBOXD_TYPESCRIPT_GATE=job), the job is the gate: the runner
//   hands the Jest process its job only once the check has passed, and fd 4 is the job's
//   pipe, not to be read here.
'use strict';
const fs = require('fs');
const SharedEnvironment = require('./environment');

const GATE_FD = 4;
// read once, when Jest first loads this file (the warm-up's run), and forgotten: not the tests'
const GATED_BY_JOB = process.env.SANDBOXD_TYPESCRIPT_GATE === 'job';
delete process.env.SANDBOXD_TYPESCRIPT_GATE;
let opened = GATED_BY_JOB;

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function waitForGate() {
  if (opened) return;
  const buf = Buffer.alloc(1);
  for (;;) {
    let n;
    try {
      n = fs.readSync(GATE_FD, buf, 0, 1, null);
    } catch (err) {
      if (err.code === 'EAGAIN') { sleep(5); continue; }
      if (err.code === 'EBADF') { opened = true; return; } // run by hand: no gate
      throw err;
    }
    if (n === 1 && buf[0] === 0x67 /* g */) {
      opened = true;
      try { fs.closeSync(GATE_FD); } catch (e) { /* closed */ }
      return;
    }
    // end of file, or anything else: the tests must not run
    process.exit(75);
  }
}

const SKIPPERS = ['test', 'it', 'describe'];

class TypeScriptEnvironment extends SharedEnvironment {
  async setup() {
    waitForGate();
    await super.setup();
  }

  handleTestEvent(event, state) {
    if (event.name !== 'setup') return super.handleTestEvent(event, state);
    // keep `.skip` as Jest made it; the shared environment also un-skips test.skip
    const kept = [];
    for (const g of [this.global, event.runtimeGlobals]) {
      if (!g || typeof g !== 'object') continue;
      for (const name of SKIPPERS) {
        const fn = g[name];
        if (typeof fn === 'function') kept.push([fn, fn.skip]);
      }
    }
    const result = super.handleTestEvent(event, state);
    for (const [fn, skip] of kept) {
      try { fn.skip = skip; } catch (e) { /* frozen */ }
    }
    return result;
  }
}

module.exports = TypeScriptEnvironment;
module.exports.TestEnvironment = TypeScriptEnvironment;
