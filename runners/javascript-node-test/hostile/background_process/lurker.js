import { spawn } from 'node:child_process';

// A process that outlives the test, in a session of its own, not waited for.
export const answer = () => {
  const child = spawn('/bin/sh', ['-c', 'while :; do sleep 1; done'], { stdio: 'ignore', detached: true });
  child.unref();
  return 42;
};
