import { eat } from './hog';

test('eat', () => {
  expect(eat()).toBe(true);
});
