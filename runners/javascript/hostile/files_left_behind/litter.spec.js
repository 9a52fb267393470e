import { answer } from './litter';

test('answer', () => {
  expect(answer()).toBe(42);
});
