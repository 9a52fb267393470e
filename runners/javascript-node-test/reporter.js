// A node --test reporter (`--test-reporter=/opt/sandboxd/runner/reporter.js`): what an
// author runs by hand gets the same results.json the runner writes (report.js), on the
// reporter's destination, after what the tests printed outside a test.
'use strict';
const path = require('node:path');
const { Collector } = require(path.join(__dirname, 'report.js'));

module.exports = async function* sandboxdReporter(source) {
  const pending = [];
  const collector = new Collector({
    inputDir: process.cwd(),
    onStdout: (text) => pending.push(text),
    onStderr: (text) => pending.push(text),
  });
  for await (const ev of source) {
    collector.push(ev);
    if (pending.length) yield pending.splice(0).join('');
  }
  yield JSON.stringify(collector.finish(), null, 2) + '\n';
};
