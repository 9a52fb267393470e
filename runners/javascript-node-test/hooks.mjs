// Module resolve hooks (registered by register.js, in node's loader thread).
// - `@jest/globals` is our jest-globals.mjs: the globals setup.js defines;
// - a relative specifier without its extension (`./leap`), which Babel and CommonJS
//   accept and node's ES module loader does not, is tried with .js, .mjs, .cjs and as a
//   directory's index.js, in that order; anything else is node's own resolution.
const JEST_GLOBALS = new URL('./jest-globals.mjs', import.meta.url).href;
const TRIES = ['.js', '.mjs', '.cjs', '/index.js', '/index.mjs'];

// Warm (warm.js registers these ahead of the job): `data.mode`, shared memory whose first
// word the process sets to 1 once its job needs the hooks; until then and otherwise every
// resolution is node's own, as when register.js is not loaded. Cold: always on.
let mode = null;

export function initialize(data) {
  if (data && data.mode instanceof SharedArrayBuffer) mode = new Int32Array(data.mode);
}

export async function resolve(specifier, context, nextResolve) {
  if (mode && Atomics.load(mode, 0) !== 1) return nextResolve(specifier, context);
  if (specifier === '@jest/globals') return { url: JEST_GLOBALS, shortCircuit: true };
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    const missing = err && (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'ERR_UNSUPPORTED_DIR_IMPORT');
    if (relative && missing && !/\.[cm]?js$/.test(specifier)) {
      for (const ext of TRIES) {
        try {
          return await nextResolve(specifier.replace(/\/$/, '') + ext, context);
        } catch (e) { /* the next one */ }
      }
    }
    throw err;
  }
}
