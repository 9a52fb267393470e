// Test files run in the order the runner found them (by path), not Jest's by size and
// past duration: the report lists tests in test-file order.
'use strict';

class SandboxdSequencer {
  sort(tests) {
    return Array.from(tests).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  allFailedTests(tests) {
    return tests;
  }

  cacheResults() {}

  shard(tests) {
    return tests;
  }
}

module.exports = SandboxdSequencer;
