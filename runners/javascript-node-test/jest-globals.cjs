// What `require('@jest/globals')` gives a CommonJS test file (setup.js resolves it
// here): the globals setup.js defines. jest-globals.mjs is the ES module twin.
'use strict';
const g = globalThis;
for (const name of ['describe', 'test', 'it', 'xdescribe', 'xtest', 'xit', 'beforeAll', 'afterAll',
  'beforeEach', 'afterEach', 'expect', 'jest']) {
  Object.defineProperty(exports, name, { enumerable: true, get: () => g[name] });
}
