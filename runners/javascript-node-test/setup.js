// Preloaded (`--require`) into every test file's process that `node --test` starts.
//
// - the globals an Exercism-style test file expects: describe/test/it, the hooks under
//   both names (before/beforeAll, after/afterAll), xtest/xit/xdescribe un-skipped (the
//   same functions as test/it/describe, as Exercism's runner turns `xtest(` into
//   `test(`), and Jest's `expect`;
// - each test's console output, caught by hooks on the root test (every test inherits
//   them) and handed to the reporter as one diagnostic of that test;
// - a line on stdout as each test begins and ends (and one from process.on('exit') if
//   the process ends during a test): node:test's own report of a file is written
//   asynchronously and lost with its process when a test ends it (process.exit, a
//   signal), and the runner then tells from these lines what ran and where it stopped.
'use strict';
// Only in a test file's own process: not in `node --test`'s parent (by hand), not in the
// thread where node runs module hooks (register.js), which preloads this too.
if (require('node:worker_threads').isMainThread && !process.execArgv.includes('--test')) setup();

function setup() {
const nodeTest = require('node:test');
const { Console } = require('node:console');
const { Writable } = require('node:stream');
const fs = require('node:fs');
const path = require('node:path');

const OUTPUT_MARK = '\u0000sandboxd-output:';
const LINE_MARK = '\u0000sandboxd-line:';
const KEEP = 64 * 1024; // of a test's console output, what is kept for the report

const realStdout = process.stdout;
const realStderr = process.stderr;

function define(name, value) {
  try {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  } catch (e) { /* a frozen global: leave it */ }
}

// The same function objects as node:test's: node takes a test's location from its caller.
const { describe, it, test, before, after, beforeEach, afterEach, mock } = nodeTest;
define('describe', describe);
define('suite', describe);
define('it', it);
define('test', test);
define('xdescribe', describe);
define('xit', it);
define('xtest', test);
define('before', before);
define('after', after);
define('beforeAll', before);
define('afterAll', after);
define('beforeEach', beforeEach);
define('afterEach', afterEach);
define('mock', mock);

// `require('@jest/globals')` in a CommonJS test file (an ES module's import goes
// through hooks.mjs): the same globals.
const Module = require('node:module');
const JEST_GLOBALS_CJS = path.join(__dirname, 'jest-globals.cjs');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function resolveJestGlobals(request, ...rest) {
  if (request === '@jest/globals') return JEST_GLOBALS_CJS;
  return resolveFilename.call(this, request, ...rest);
};

let expectFn = null;
Object.defineProperty(globalThis, 'expect', {
  configurable: true,
  enumerable: false,
  // loaded on first use: a file that uses node:assert only does not pay for it
  get() {
    if (!expectFn) expectFn = require(path.join(__dirname, '..', 'node_modules', 'expect')).expect;
    return expectFn;
  },
  set(v) { Object.defineProperty(globalThis, 'expect', { value: v, writable: true, configurable: true }); },
});

// `jest`: jest-mock's functions (jest.fn, jest.spyOn, the *AllMocks), which expect's
// toHaveBeenCalled… matchers understand; what needs Jest's module system or its clock
// (jest.mock, fake timers) says so when called.
let jestObject = null;
function makeJest() {
  const { ModuleMocker } = require(path.join(__dirname, '..', 'node_modules', 'jest-mock'));
  const mocker = new ModuleMocker(globalThis);
  const jest = {
    fn: mocker.fn.bind(mocker),
    spyOn: mocker.spyOn.bind(mocker),
    isMockFunction: mocker.isMockFunction.bind(mocker),
    clearAllMocks() { mocker.clearAllMocks(); return jest; },
    resetAllMocks() { mocker.resetAllMocks(); return jest; },
    restoreAllMocks() { mocker.restoreAllMocks(); return jest; },
    mocked: (source) => source,
  };
  if (mocker.replaceProperty) jest.replaceProperty = mocker.replaceProperty.bind(mocker);
  for (const name of ['mock', 'unmock', 'doMock', 'dontMock', 'requireActual', 'requireMock', 'resetModules',
    'isolateModules', 'useFakeTimers', 'useRealTimers', 'advanceTimersByTime', 'runAllTimers',
    'runOnlyPendingTimers', 'setSystemTime', 'setTimeout']) {
    jest[name] = () => {
      throw new Error(`jest.${name}() is not available under node:test: only jest.fn(), jest.spyOn() and jest.clearAllMocks()/resetAllMocks()/restoreAllMocks() are (node:test has mock and mock.timers)`);
    };
  }
  return jest;
}
Object.defineProperty(globalThis, 'jest', {
  configurable: true,
  enumerable: false,
  get() {
    if (!jestObject) jestObject = makeJest();
    return jestObject;
  },
  set(v) { Object.defineProperty(globalThis, 'jest', { value: v, writable: true, configurable: true }); },
});

// ---- per-test console output ------------------------------------------------------------

const frames = []; // the tests running (a subtest's frame above its parent's)

function line(record) {
  try { fs.writeSync(1, LINE_MARK + JSON.stringify(record) + '\n'); } catch (e) { /* stdout gone */ }
}

function sink(real) {
  // a Writable whose write runs at once (its callback called in it): the order of output
  // and the test it belongs to are kept
  return new Writable({
    decodeStrings: false,
    write(chunk, encoding, callback) {
      const frame = frames[frames.length - 1];
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      if (frame && frame.size < KEEP) {
        frame.parts.push(text);
        frame.size += text.length;
      } else {
        // outside a test, or past what is kept: the job's own output (counted by the daemon)
        real.write(text);
      }
      callback();
    },
  });
}

const captured = new Console({ stdout: sink(realStdout), stderr: sink(realStderr), colorMode: false });
for (const key of Object.keys(Console.prototype).concat(Object.getOwnPropertyNames(captured))) {
  if (typeof captured[key] === 'function' && typeof console[key] === 'function') {
    try { console[key] = captured[key]; } catch (e) { /* read-only: leave it */ }
  }
}

function fullName(t) {
  try { return t.fullName; } catch (e) { return t.name; }
}

function errorMessage(err) {
  if (!err) return undefined;
  const cause = err.cause !== undefined && err.code === 'ERR_TEST_FAILURE' ? err.cause : err;
  try {
    if (cause instanceof Error) {
      return cause.name === 'JestAssertionError' || /^expect\(/.test(cause.message) ? cause.message : String(cause);
    }
    return 'thrown: ' + String(cause);
  } catch (e) {
    return 'thrown: (a value that cannot be shown)';
  }
}

beforeEach((t) => {
  while (frames.length && !live(frames[frames.length - 1])) frames.pop();
  const name = fullName(t);
  frames.push({ parts: [], size: 0, name, signal: t.signal });
  line(['b', name]);
});

function live(frame) {
  // a test that skipped itself (t.skip()) gets no afterEach: its frame is stale once node
  // has aborted the test's signal, which it does when any test ends
  try { return !frame.signal || !frame.signal.aborted; } catch (e) { return true; }
}

afterEach((t) => {
  const name0 = fullName(t);
  while (frames.length > 1 && frames[frames.length - 1].name !== name0 && !live(frames[frames.length - 1])) frames.pop();
  const frame = frames.pop();
  const name = fullName(t);
  const passed = !t.error;
  const output = frame && frame.size ? frame.parts.join('') : undefined;
  line(['e', name, passed, passed ? null : errorMessage(t.error), output ? output.slice(0, 4096) : null]);
  if (frame && frame.size) {
    t.diagnostic(OUTPUT_MARK + JSON.stringify(frame.parts.join('')));
  }
});

// ---- a process that ends during a test -------------------------------------------------

process.on('exit', (code) => {
  while (frames.length && !live(frames[frames.length - 1])) frames.pop();
  if (!frames.length) return; // ended between tests: node:test's report is complete
  const frame = frames[frames.length - 1];
  line(['x', code, frame.name, frame.parts.join('').slice(0, 4096)]);
});
}
