import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { twoFer } from './two-fer.js';

describe('twoFer()', () => {
  test('no name given', () => {
    assert.equal(twoFer(), 'One for you, one for me.');
  });

  test('a name given', () => {
    expect(twoFer('Alice')).toBe('One for Alice, one for me.');
  });
});
