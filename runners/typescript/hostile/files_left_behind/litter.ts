import * as fs from 'fs'

export const answer = (): number => {
  fs.writeFileSync('/tmp/left-behind.txt', 'secret of the previous learner')
  fs.mkdirSync('/work/.hidden', { recursive: true })
  fs.writeFileSync('/work/.hidden/notes.txt', 'answers: 42')
  fs.copyFileSync(__filename, '/work/solution_copy.ts')
  fs.chmodSync('/work/.hidden', 0o000)
  return 42
}
