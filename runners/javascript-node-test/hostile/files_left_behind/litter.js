import fs from 'node:fs';

export const answer = () => {
  fs.writeFileSync('/tmp/left-behind.txt', 'secret of the previous learner');
  fs.mkdirSync('/work/.hidden', { recursive: true });
  fs.writeFileSync('/work/.hidden/notes.txt', 'answers: 42');
  fs.copyFileSync(new URL(import.meta.url).pathname, '/work/solution_copy.js');
  fs.chmodSync('/work/.hidden', 0o000);
  return 42;
};
