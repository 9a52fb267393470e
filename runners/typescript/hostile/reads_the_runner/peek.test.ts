import { readableNodes } from './peek';

test('no other node process of the job can be read', () => {
  expect(readableNodes()).toEqual([]);
});
