import { test } from 'node:test';
import assert from 'node:assert';
import { eat } from './hog.js';

test('eats', () => {
  assert.ok(eat());
});
