import { go } from './bomb';

test('go', () => {
  expect(go()).toBe(true);
});
