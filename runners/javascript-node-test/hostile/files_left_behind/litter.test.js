import { test } from 'node:test';
import assert from 'node:assert';
import { answer } from './litter.js';

test('answer', () => {
  assert.equal(answer(), 42);
});
