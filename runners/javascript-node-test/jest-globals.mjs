// What `import { ... } from '@jest/globals'` gives a test file (see hooks.mjs): the
// globals setup.js defines, node:test's functions and Jest's expect.
const g = globalThis;
export const describe = g.describe;
export const test = g.test;
export const it = g.it;
export const xdescribe = g.xdescribe;
export const xtest = g.xtest;
export const xit = g.xit;
export const beforeAll = g.beforeAll;
export const afterAll = g.afterAll;
export const beforeEach = g.beforeEach;
export const afterEach = g.afterEach;
export const expect = g.expect;
export const jest = g.jest;
