// Preloaded (`--require`) only when an exercise needs it (run: needsResolveHooks): the
// resolve hooks of hooks.mjs, for Exercism-style `import { x } from './x'` (no extension)
// and `import { test, expect } from '@jest/globals'`.
'use strict';
const { register } = require('node:module');
const { pathToFileURL } = require('node:url');
const path = require('node:path');

if (require('node:worker_threads').isMainThread && !process.execArgv.includes('--test')) register(pathToFileURL(path.join(__dirname, 'hooks.mjs')));
