import { test } from 'node:test';
import assert from 'node:assert';
import { go } from './bomb.js';

test('goes', async () => {
  assert.ok(await go());
});
