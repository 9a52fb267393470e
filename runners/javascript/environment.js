// The test environment of our Jest runs: Node's, plus what the runner needs to know of each
// test, reported as it happens over the events pipe (events.js):
//   {"e":"start","name":...}                       a test starts (before its beforeEach hooks)
//   {"e":"result","status":"pass|fail","message"?,"output"?}   it ended (after its afterEach)
//   {"e":"skip"}                                 it was a test.todo, or skipped by test.only
// It also un-skips tests (xtest, xit, xdescribe, test.skip, it.skip, describe.skip) as
// Exercism's runner does, and gives each test its own console.
'use strict';
const path = require('path');
const { Console } = require('console');
const { Writable } = require('stream');
const fs = require('fs');
const NodeEnvironment = require(path.join(__dirname, '..', 'node_modules', 'jest-environment-node')).TestEnvironment;
const { emit, stripAnsi } = require('./events');

const KEEP = 64 * 1024; // a test's output kept for the report; the rest goes to the real stdout
const MESSAGE_LIMIT = 4000;
const ROOT = 'ROOT_DESCRIBE_BLOCK';

function testName(test) {
  const parts = [test.name];
  for (let block = test.parent; block && block.name !== ROOT; block = block.parent) {
    parts.unshift(block.name);
  }
  return parts.join(' > ');
}

function describeError(entry) {
  // circus keeps [error, asyncError] pairs (or a bare error)
  const [error, asyncError] = Array.isArray(entry) ? entry : [entry, undefined];
  let text;
  if (error && typeof error === 'object' && typeof error.message === 'string') {
    if (error.matcherResult !== undefined || !error.name || error.name === 'Error' && /^expect[.(]/.test(error.message)) {
      text = error.message;
    } else {
      text = `${error.name}: ${error.message}`;
    }
  } else if (error === undefined && asyncError && asyncError.message) {
    text = asyncError.message;
  } else if (typeof error === 'string' && /^Exceeded timeout of /.test(error)) {
    text = error.split('\n')[0];
  } else {
    let shown;
    try { shown = typeof error === 'string' ? JSON.stringify(error) : String(error); } catch (e) { shown = '[unprintable]'; }
    text = `thrown: ${shown}`;
  }
  return text;
}

class SandboxdEnvironment extends NodeEnvironment {
  constructor(config, context) {
    super(config, context);
    this.inputDir = config.projectConfig.rootDir;
    this.current = null;
  }

  clean(text) {
    let out = stripAnsi(text);
    const prefix = this.inputDir.endsWith('/') ? this.inputDir : this.inputDir + '/';
    out = out.split(prefix).join('').split(this.inputDir).join('.');
    return out.length > MESSAGE_LIMIT ? out.slice(0, MESSAGE_LIMIT) + '\n...' : out;
  }

  makeConsole() {
    const env = this;
    const sink = (fd) => new Writable({
      decodeStrings: false,
      write(chunk, encoding, callback) {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        const cur = env.current;
        if (cur && cur.kept < KEEP) {
          const room = KEEP - cur.kept;
          cur.output.push(text.slice(0, room));
          cur.kept += Math.min(room, text.length);
          if (text.length > room) {
            try { fs.writeSync(fd, text.slice(room)); } catch (e) { /* gone */ }
          }
        } else {
          try { fs.writeSync(fd, text); } catch (e) { /* gone */ }
        }
        callback();
      },
    });
    return new Console({ stdout: sink(1), stderr: sink(2), colorMode: false });
  }

  unskip(globals) {
    // both the globals of the test file and those of `@jest/globals` (runtimeGlobals)
    for (const g of globals) {
      if (!g || typeof g !== 'object') continue;
      for (const name of ['test', 'it', 'describe']) {
        const fn = g[name];
        if (typeof fn !== 'function') continue;
        try { fn.skip = fn; } catch (e) { /* frozen */ }
      }
      try {
        if (typeof g.test === 'function') g.xtest = g.test;
        if (typeof g.it === 'function') g.xit = g.it;
        if (typeof g.describe === 'function') g.xdescribe = g.describe;
      } catch (e) { /* frozen */ }
    }
  }

  handleTestEvent(event) {
    switch (event.name) {
      case 'setup':
        this.unskip([this.global, event.runtimeGlobals]);
        this.global.console = this.makeConsole();
        break;
      case 'test_start':
        this.current = { output: [], kept: 0 };
        emit({ e: 'start', name: testName(event.test) });
        break;
      case 'test_done': {
        const test = event.test;
        const result = { e: 'result', status: test.errors.length ? 'fail' : 'pass' };
        if (test.errors.length) {
          result.message = this.clean(test.errors.map(describeError).join('\n\n'));
        }
        const output = this.current ? this.current.output.join('') : '';
        if (output) result.output = output.slice(0, 8000);
        this.current = null;
        emit(result);
        break;
      }
      case 'test_skip':
      case 'test_todo':
        // test.todo (and a test skipped by test.only): no test of the report
        this.current = null;
        emit({ e: 'skip' });
        break;
      default:
        break;
    }
  }
}

module.exports = SandboxdEnvironment;
module.exports.TestEnvironment = SandboxdEnvironment;
