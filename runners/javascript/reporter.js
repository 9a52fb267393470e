// Our Jest reporter: reports what the environment cannot see, a test file that could not
// run at all (a syntax error, a missing module, an error at the top of the file), and
// the end of the run, over the events pipe:
//   {"e":"file_error","message":...}   {"e":"done","failed":N,"passed":N}
'use strict';
const { emit, stripAnsi } = require('./events');

class SandboxdReporter {
  constructor(globalConfig) {
    this.rootDir = (globalConfig && globalConfig.rootDir) || process.cwd();
  }

  onTestFileResult(test, testResult) {
    if (testResult.testExecError || (testResult.failureMessage && testResult.numPassingTests + testResult.numFailingTests === 0)) {
      const text = testResult.failureMessage || (testResult.testExecError && testResult.testExecError.message) || '';
      const exec = testResult.testExecError;
      const stack = exec && typeof exec.stack === 'string' ? stripAnsi(exec.stack).slice(0, 8000) : undefined;
      emit({ e: 'file_error', message: stripAnsi(text), stack });
    }
  }

  onRunComplete(contexts, results) {
    emit({ e: 'done', passed: results.numPassedTests, failed: results.numFailedTests });
  }

  getLastError() {
    return undefined;
  }
}

module.exports = SandboxdReporter;
