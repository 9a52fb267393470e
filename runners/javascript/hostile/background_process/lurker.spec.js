import { answer } from './lurker';

test('answer', () => {
  expect(answer()).toBe(42);
});
