// Babel as Exercism's TypeScript test runner configures it: @exercism/babel-preset-typescript
// (preset-env for the running Node with core-js 3.37 polyfills on usage, and preset-typescript,
// which strips the types: tsc checked them before), loaded by absolute path so that nothing
// in the exercise's directory (its babel.config.cjs, .babelrc) is consulted.
'use strict';
const path = require('path');
const modules = path.join(__dirname, '..', 'node_modules');
module.exports = {
  babelrc: false,
  presets: [[path.join(modules, '@exercism', 'babel-preset-typescript'), { corejs: '3.37' }]],
  plugins: [],
};
