// The warm Jest process of a standby runner (started by `run --standby-node`, see run).
// Before its job: loads Jest (@jest/core), Babel and our environment, reporter and
// sequencer, and runs Jest once, in this process, on an exercise of its own in a private
// directory under /tmp (so that every module the job's run needs is loaded and Babel's
// configuration is read), then says {"e":"ready"} on the events pipe (fd 3; the runner
// drops what came before it). Its job then arrives on fd 4 as one JSON line,
// {"inputDir", "testFiles"}; Jest runs on it with the cold runner's configuration
// (in band: this process), and the process ends as jest-cli's would, with exit code 1
// when a test failed.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { emit } = require('./events');
const { jestArgv } = require('./run');

const MODULES = path.join(__dirname, '..', 'node_modules');
const { runCLI } = require(path.join(MODULES, '@jest', 'core'));

const WARM_SOLUTION = `export const greet = (name) => \`Hello, \${name}!\`;
export class Shelf { constructor() { this.items = []; } add(x) { this.items.push(x); return this; } }
`;
const WARM_SPEC = `import { describe, expect, test, xtest } from '@jest/globals';
import { greet, Shelf } from './warm';

describe('warm', () => {
  test('greets', () => {
    console.log('warming up');
    expect(greet('Jest')).toBe('Hello, Jest!');
    expect(new Shelf().add(1).items).toEqual([1]);
  });
  xtest('fails', async () => {
    await Promise.resolve();
    expect({ a: [1, 2] }).toEqual({ a: [1, 3] });
  });
  test.each([[1, 1], [2, 2]])('each %i', (a, b) => { expect(a).toBe(b); });
});
`;

async function warmUp() {
  const home = process.cwd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), '.sandboxd-jest-warm-'));
  try {
    fs.writeFileSync(path.join(dir, 'warm.js'), WARM_SOLUTION);
    fs.writeFileSync(path.join(dir, 'warm.spec.js'), WARM_SPEC);
    const files = [path.join(dir, 'warm.spec.js')];
    // from the exercise's directory, as a job runs (Jest reads a project's own options
    // again, and warns about global ones, when the project is not the working directory)
    process.chdir(dir);
    await runCLI(jestArgv(dir, files), [dir]);
  } finally {
    process.chdir(home);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function readJob() {
  // one JSON line on fd 4, then its end
  return new Promise((resolve, reject) => {
    const chunks = [];
    const stream = fs.createReadStream(null, { fd: 4, autoClose: true });
    stream.on('data', (c) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (!text) return resolve(null);
      try { resolve(JSON.parse(text)); } catch (e) { reject(e); }
    });
  });
}

async function main() {
  await warmUp();
  emit({ e: 'ready' });
  const job = await readJob();
  if (!job) process.exit(0);
  const inputDir = String(job.inputDir);
  const testFiles = job.testFiles.map(String);
  const { results } = await runCLI(jestArgv(inputDir, testFiles), [inputDir]);
  // as jest-cli's readResultsAndExit: the code when the process ends by itself
  const code = !results || results.success ? 0 : 1;
  process.on('exit', () => { if (code !== 0) process.exitCode = code; });
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack || err}\n`);
  process.exit(1);
});
