// Babel as Exercism's JavaScript track configures it (preset-env for the running Node),
// loaded by absolute path so that nothing in the exercise's directory is consulted.
'use strict';
const path = require('path');
const modules = path.join(__dirname, '..', 'node_modules');
module.exports = {
  babelrc: false,
  presets: [[path.join(modules, '@babel', 'preset-env'), { targets: { node: 'current' } }]],
  plugins: [],
};
