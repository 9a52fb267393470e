import { spawn } from 'child_process'

export const answer = (): number => {
  // a process that outlives the tests, in a session of its own
  const child = spawn('/bin/sh', ['-c', 'while :; do sleep 1; done'], { detached: true, stdio: 'ignore' })
  child.unref()
  return 42
}
