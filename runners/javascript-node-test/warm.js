// A test file's process started ahead of its job (standby mode: `run --standby-node`).
//
// The runner starts it exactly as node:test's run() starts a test file's process (the same
// node, flags, environment and stdio), but on this file instead of a test file, before the
// job: node, setup.js (the globals, node:test and its v8-serializer reporter to stdout)
// and the modules a test file may load (Jest's expect, jest-mock) are loaded once it says
// `y` on its fd 3. On the job the runner's run() asks for a test file's process, gets this
// one, and sends on fd 3 `{"file", "cwd", "register"}`: we close fd 3, move to the
// exercise, turn the resolve hooks on when the runner would have preloaded them
// (register.js), and run the test file as node runs a main module (Module.runMain, what
// `node <file>` does), so that what the file sees and what node:test reports are what
// they are in a cold run's process for that file. It runs one test file and ends as that
// process would.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const Module = require('node:module');
const { pathToFileURL } = require('node:url');

const HERE = __dirname;
const MODULES = path.join(HERE, '..', 'node_modules');
const MESSAGE_LIMIT = 64 * 1024;

// setup.js loads these on first use: in the module cache now, the same modules then
require(path.join(MODULES, 'expect'));
require(path.join(MODULES, 'jest-mock'));

// The resolve hooks (hooks.mjs), registered now and off until the job needs them: the
// loader thread node runs them in costs a Node start of its own (some 60 ms), which a
// job that needs them (Exercism's `from './leap'`) would otherwise pay. Off, every
// resolution is node's own.
const hooksMode = new SharedArrayBuffer(4);
Module.register(pathToFileURL(path.join(HERE, 'hooks.mjs')), { data: { mode: hooksMode } });

// node's ES module loader (what runs an ES module test file, and imports from a CommonJS
// one) made and used once, on a module of nothing: its first use costs some 10 ms
const warmedUp = import('data:text/javascript,').catch(() => {});

const channel = new net.Socket({ fd: 3, readable: true, writable: true });
let buffered = '';
let taken = false;
channel.setEncoding('utf8');
channel.on('data', (chunk) => {
  if (taken) return;
  buffered += chunk;
  if (buffered.length > MESSAGE_LIMIT) process.exit(70);
  const nl = buffered.indexOf('\n');
  if (nl === -1) return;
  taken = true;
  const job = JSON.parse(buffered.slice(0, nl));
  buffered = '';
  channel.destroy(); // fd 3 is no test's business (a cold test file's process has none)
  start(job);
});
channel.on('end', () => { if (!taken) process.exit(0); }); // no job: the runner is gone
channel.on('error', () => { if (!taken) process.exit(70); });
warmedUp.then(() => channel.write('y'));

function start(job) {
  const file = String(job.file);
  process.chdir(String(job.cwd));
  process.argv[1] = file;
  if (job.register === true) {
    process.execArgv.push('--require', path.join(HERE, 'register.js'));
    Atomics.store(new Int32Array(hooksMode), 0, 1); // what register.js does cold
  }
  process.mainModule = undefined; // the test file is the main module, if CommonJS
  try {
    delete require.cache[__filename];
  } catch (e) { /* kept: harmless */ }
  Module.runMain(file);
}
