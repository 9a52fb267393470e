import { readableNodes } from './peek.js';

test('no other node process of the job can be read', () => {
  expect(readableNodes()).toEqual([]);
});
