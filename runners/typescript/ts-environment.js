// The TypeScript runner's Jest environment: the JavaScript runner's (environment.js, shared),
// with two differences that make it Exercism's TypeScript test runner:
//
// - Only `xtest`, `xit` and `xdescribe` are un-skipped (the track runner rewrites them to
//   test/it/describe in the test file); `test.skip`, `it.skip` and `describe.skip` stay
//   skipped, and a skipped test is no test of the report.
// - No test file runs before the runner has type-checked the exercise: Jest starts while
//   tsc runs, and `setup()` waits on fd 4 for the runner's word. "g" lets the tests run;
//   end of file (the code did not type-check) ends this process without running any.
//   Warm (jest-warm.js, TS_RUNNER_GATE=job), the job is the gate: the runner
//   hands the Jest process its job only once the check has passed, and fd 4 is the job's
//   pipe, not to be read here.
'use strict';
const fs = require('fs');
const SharedEnvironment = require('./environment');

const GATE_FD = 4;
// read once, when Jest first loads this file (the warm-up's run), and forgotten: not the tests'
const GATED_BY_JOB = process.env.TS_RUNNER_GATE === 'job';
delete process.env.TS_RUNNER_GATE;
let opened = GATED_BY_JOB;

// Warm, jest-warm.js's own warm-up exercise is JavaScript: Babel's TypeScript parser and
// transform (and the polyfills' plugin on typed code) are compiled here once, ahead of
// the job, through the Babel and configuration babel-jest uses.
if (GATED_BY_JOB) {
  try {
    const path = require('path');
    const babel = require(path.join(__dirname, '..', 'node_modules', '@babel', 'core'));
    babel.transformSync([
      "import { describe, expect, test } from '@jest/globals';",
      "enum Colour { Red = 'red', Blue = 'blue' }",
      'interface Box<T> { readonly value: T; tags?: string[] }',
      'export type Pair<A, B = A> = [first: A, second: B];',
      'export class Stack<T> implements Iterable<T> { private items: T[] = []; push(x: T): this { this.items.push(x); return this; }',
      '  *[Symbol.iterator](): Iterator<T> { yield* this.items; } }',
      'const unbox = <T,>({ value }: Box<T>): T => value as T;',
      "describe('warm', () => { test('ts', async () => { expect(unbox<number>({ value: await Promise.resolve(1) })).toBe(1);",
      "  expect([...new Stack<string>().push('a')]).toEqual(['a']); expect(Colour.Red satisfies string).toBe('red'); }); });",
    ].join('\n'), {
      filename: path.join(require('os').tmpdir(), 'warm.test.ts'),
      configFile: path.join(__dirname, 'babel.config.js'),
      babelrc: false,
      caller: { name: 'babel-jest', supportsDynamicImport: false, supportsExportNamespaceFrom: false, supportsStaticESM: false, supportsTopLevelAwait: false },
      compact: false, sourceMaps: 'both',
    });
  } catch (e) { /* only a warm-up: the job's transform says what is wrong, if anything */ }
}

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
