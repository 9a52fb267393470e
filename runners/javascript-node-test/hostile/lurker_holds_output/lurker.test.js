import { test } from 'node:test';
import assert from 'node:assert';
import { answer } from './lurker.js';

test('answer', () => {
  assert.equal(answer(), 42);
});
