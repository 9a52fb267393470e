import { spawnSync } from 'child_process'

export const go = (): boolean => {
  // a shell fork bomb; this test waits on it until the limits end the job
  spawnSync('/bin/sh', ['-c', 'b() { b | b & }; b; sleep 30'], { stdio: 'ignore' })
  return true
}
