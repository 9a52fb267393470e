import { spawn } from 'node:child_process';

// A process that outlives the test holding the test file's own stdout and stderr
// (stdio 'inherit'): node:test would wait for those pipes to end.
export const answer = () => {
  spawn('/bin/sh', ['-c', 'while :; do sleep 1; done'], { stdio: 'inherit', detached: true }).unref();
  return 42;
};
