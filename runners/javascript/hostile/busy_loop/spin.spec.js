import { spin } from './spin';

test('spin', () => {
  expect(spin()).toBe(1);
});
