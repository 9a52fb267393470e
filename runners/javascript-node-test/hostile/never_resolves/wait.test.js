import { test } from 'node:test';
import { wait } from './wait.js';

test('waits forever', async () => {
  await wait();
});
