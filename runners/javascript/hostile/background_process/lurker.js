import { spawn } from 'child_process';

export const answer = () => {
  // a grandchild in a session of its own, outliving the test and Jest
  spawn('/bin/sh', ['-c', 'sleep 1000 & exit 0'], { stdio: 'ignore', detached: true }).unref();
  // and one that holds the stdout and stderr it was given
  spawn('/bin/sleep', ['1000'], { stdio: ['ignore', 'inherit', 'inherit'], detached: true }).unref();
  return 42;
};
