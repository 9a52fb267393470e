// From node:test's events to Exercism's results.json (version 3): used by `run` (over
// run()'s stream) and by reporter.js (`node --test --test-reporter=...`, by hand).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const HERE = __dirname;
const MODULES = path.join(HERE, '..', 'node_modules');
const OUTPUT_MARK = '\u0000sandboxd-output:';
const LINE_MARK = '\u0000sandboxd-line:';
const NAME_LIMIT = 500;
const MESSAGE_LIMIT = 4000;
const CODE_LIMIT = 4000;
const OUTPUT_LIMIT = 500;
const OUTPUT_TRUNCATED = '\n...\nOutput was truncated. Please limit to 500 chars.';
const LINE_LIMIT = 64 * 1024;
const LINES_LIMIT = 32 * 1024 * 1024;
const NO_TESTS = 'No tests were found. Test files must be named *.test.js or *.spec.js (or .mjs, .cjs) and call test() or it().';
// eslint-disable-next-line no-control-regex
const ANSI = /[\u001b\u009b][[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\u0007)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PR-TZcf-ntqry=><~]))/g;

function cut(text, limit) {
  text = String(text);
  return text.length > limit ? text.slice(0, limit) + '\n...' : text;
}

function str(v) {
  return typeof v === 'string' ? v : null;
}

function dedent(text) {
  const lines = text.split('\n');
  let indent = Infinity;
  for (const line of lines) {
    if (!line.trim()) continue;
    indent = Math.min(indent, line.match(/^[ \t]*/)[0].length);
  }
  if (!isFinite(indent)) indent = 0;
  return lines.map((l) => l.slice(indent)).join('\n').replace(/^\n+|\s+$/g, '');
}

// ---- test code, from the test file's syntax tree (acorn), by the call's location --------

function parseFile(file) {
  let source;
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.size > 4 * 1024 * 1024) return null;
    source = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return null;
  }
  let acorn;
  try { acorn = require(path.join(MODULES, 'acorn')); } catch (e) { return null; }
  const base = { ecmaVersion: 'latest', locations: true, allowHashBang: true, allowAwaitOutsideFunction: true };
  for (const opts of [{ sourceType: 'module' }, { sourceType: 'script', allowReturnOutsideFunction: true }]) {
    try {
      return { source, ast: acorn.parse(source, { ...base, ...opts }) };
    } catch (e) { /* the other kind, or not JavaScript at all */ }
  }
  return null;
}

function callsByLocation(file) {
  // "line:column" (node's, 1-based) of a call's callee (or of its property: t.test) -> node
  const calls = new Map();
  const parsed = parseFile(file);
  if (!parsed) return { calls, source: '' };
  const stack = [parsed.ast];
  let visited = 0;
  while (stack.length && visited < 2000000) {
    const node = stack.pop();
    visited++;
    if (node.type === 'CallExpression') {
      const at = node.callee.type === 'MemberExpression' ? node.callee.property : node.callee;
      const key = `${at.loc.start.line}:${at.loc.start.column + 1}`;
      if (!calls.has(key)) calls.set(key, node);
    }
    for (const k of Object.keys(node)) {
      if (k === 'loc') continue;
      const v = node[k];
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) if (v[i] && typeof v[i].type === 'string') stack.push(v[i]);
      } else if (v && typeof v === 'object' && typeof v.type === 'string') {
        stack.push(v);
      }
    }
  }
  return { calls, source: parsed.source };
}

function bodyCode(source, call) {
  if (!call) return null;
  const fn = [...call.arguments].reverse().find((a) => a.type === 'ArrowFunctionExpression' || a.type === 'FunctionExpression');
  if (!fn) return null;
  const body = fn.body;
  if (body.type === 'BlockStatement') return dedent(source.slice(body.start + 1, body.end - 1));
  return source.slice(body.start, body.end).trim();
}

// ---- messages ---------------------------------------------------------------------------

function cleaner(inputDir) {
  const dir = inputDir.replace(/\/+$/, '');
  const url = 'file://' + dir;
  return (text) => {
    let out = String(text).replace(ANSI, '');
    out = out.split(url + '/').join('').split(url).join('.');
    out = out.split(dir + '/').join('').split(dir).join('.');
    out = out.split(MODULES + '/').join('').split(HERE + '/').join('');
    return out;
  };
}

function errorText(err) {
  // node:test's failure (ERR_TEST_FAILURE) carries what the test threw as its cause
  if (!err || typeof err !== 'object') return err === undefined ? 'The test failed.' : 'thrown: ' + String(err);
  let cause = err;
  if (err.code === 'ERR_TEST_FAILURE' && err.cause !== undefined) cause = err.cause;
  if (err.failureType === 'testTimeoutFailure' || err.failureType === 'cancelledByParent') {
    return String(err.message || cause);
  }
  if (err.failureType === 'hookFailure' && cause && typeof cause === 'object') {
    return `${err.message}: ${errorText(cause)}`;
  }
  if (cause && typeof cause === 'object') {
    const name = str(cause.name) || 'Error';
    const message = str(cause.message) ?? '';
    if (name === 'JestAssertionError' || /^expect\(/.test(message)) return message;
    if (name === 'AssertionError' && cause.code === 'ERR_ASSERTION') return `AssertionError [ERR_ASSERTION]: ${message}`;
    return message ? `${name}: ${message}` : name;
  }
  return typeof cause === 'string' ? cause : 'thrown: ' + String(cause);
}

function loadErrorMessage(stderr, clean, inputDir) {
  // node's report of an exception that ended a test file's process, cut to what a learner
  // needs: the code frame of the learner's file, the error, its first frame in the exercise.
  const lines = stderr.replace(/\r/g, '').split('\n');
  const errAt = lines.findIndex((l) => /^[A-Za-z_$][\w$]*(?: \[[A-Z_0-9]+\])?: |^[A-Z][A-Za-z]*Error\b/.test(l));
  if (errAt === -1) {
    const text = lines.filter((l) => !/^\s+at /.test(l) && !/^Node\.js v\d/.test(l)).join('\n').trim();
    return text ? clean(text) : null;
  }
  const out = [];
  // a code frame above the error, when it is the exercise's (not node's internals)
  let start = errAt;
  while (start > 0 && lines[start - 1] !== undefined && !/^\s+at /.test(lines[start - 1]) && !/^Node\.js v/.test(lines[start - 1])) start--;
  const frame = lines.slice(start, errAt).join('\n').trim();
  const ownFrame = Boolean(frame && frame.includes(inputDir));
  if (ownFrame) out.push(frame, '');
  let i = errAt;
  for (; i < lines.length && !/^\s+at /.test(lines[i]) && !/^Node\.js v\d/.test(lines[i]); i++) out.push(lines[i]);
  if (!ownFrame) {
    const at = lines.slice(i).find((l) => /^\s+at /.test(l) && l.includes(inputDir + '/') && !l.includes('/node_modules/'));
    if (at) out.push('    ' + at.trim());
  }
  return clean(out.join('\n').replace(/\n+$/, ''));
}

function describeEnd(code, signal) {
  if (signal) return `killed by ${signal}`;
  return `exit code ${code}`;
}

function outputText(text, clean) {
  // stack frames of node's own modules (console.trace) say nothing to a learner
  let out = String(text).split('\n')
    .filter((l) => !(/^\s+at /.test(l) && (l.includes('node:internal') || l.includes(HERE) || l.includes(MODULES))))
    .join('\n');
  out = clean(out);
  return out.length > OUTPUT_LIMIT ? out.slice(0, OUTPUT_LIMIT) + OUTPUT_TRUNCATED : out;
}

// ---- the collector ----------------------------------------------------------------------

class Collector {
  // options: inputDir; taskPerDescribe (task_id = the top-level describe's index);
  // onStdout(text), onStderr(text): what the test files printed outside a test
  constructor(options) {
    this.inputDir = options.inputDir;
    this.clean = cleaner(this.inputDir);
    this.taskPerDescribe = Boolean(options.taskPerDescribe);
    this.onStdout = options.onStdout || (() => {});
    this.onStderr = options.onStderr || (() => {});
    this.files = new Map();
  }

  file(name) {
    let f = this.files.get(name);
    if (!f) {
      f = {
        name, stack: [], tests: [], last: null, stderr: '', stderrSize: 0, lineBuf: null,
        begun: [], ended: [], exit: null, linesSize: 0, end: null, codes: null, topLevel: 0,
      };
      this.files.set(name, f);
    }
    return f;
  }

  push(ev) {
    if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return;
    const d = ev.data || {};
    const fileName = str(d.file);
    const isFileLevel = fileName && d.name === fileName && d.nesting === 0 && d.line === 1 && d.column === 1;
    switch (ev.type) {
      case 'test:stdout':
        if (fileName) this.stdout(this.file(fileName), String(d.message ?? ''));
        else this.onStdout(String(d.message ?? ''));
        return;
      case 'test:stderr': {
        const message = String(d.message ?? '');
        if (fileName) {
          const f = this.file(fileName);
          if (f.stderrSize < 64 * 1024) { f.stderr += message; f.stderrSize += message.length; }
        }
        this.onStderr(message);
        return;
      }
      case 'test:enqueue':
        if (isFileLevel) this.file(fileName);
        return;
      case 'test:complete':
        if (isFileLevel) {
          const err = d.details && d.details.error;
          this.file(fileName).end = err
            ? { exitCode: err.exitCode ?? null, signal: err.signal ?? null, failureType: err.failureType || null }
            : { exitCode: 0, signal: null, failureType: null };
        }
        return;
      case 'test:start':
        if (!fileName || isFileLevel) return;
        this.start(this.file(fileName), d);
        return;
      case 'test:pass':
      case 'test:fail':
        if (!fileName || isFileLevel) return;
        this.done(this.file(fileName), d, ev.type === 'test:pass');
        return;
      case 'test:diagnostic': {
        const message = str(d.message);
        if (fileName && message && message.startsWith(OUTPUT_MARK)) {
          const f = this.file(fileName);
          if (f.last && f.last.nesting === d.nesting) {
            try { f.last.output = String(JSON.parse(message.slice(OUTPUT_MARK.length))); } catch (e) { /* cut short */ }
          }
        }
        return;
      }
      default:
    }
  }

  stdout(f, text) {
    // setup.js's lines (possibly in several pieces), else the job's output
    while (text) {
      if (f.lineBuf !== null) {
        const nl = text.indexOf('\n');
        const part = nl === -1 ? text : text.slice(0, nl);
        if (f.lineBuf.length + part.length <= LINE_LIMIT) f.lineBuf += part;
        if (nl === -1) return;
        this.line(f, f.lineBuf);
        f.lineBuf = null;
        text = text.slice(nl + 1);
        continue;
      }
      const at = text.indexOf(LINE_MARK);
      if (at === -1) { this.onStdout(text); return; }
      if (at > 0) this.onStdout(text.slice(0, at));
      f.lineBuf = '';
      text = text.slice(at + LINE_MARK.length);
    }
  }

  line(f, text) {
    let rec;
    try { rec = JSON.parse(text); } catch (e) { return; } // cut short or not ours
    if (!Array.isArray(rec) || f.linesSize > LINES_LIMIT) return;
    f.linesSize += text.length;
    if (rec[0] === 'b' && typeof rec[1] === 'string') f.begun.push(rec[1]);
    else if (rec[0] === 'e' && typeof rec[1] === 'string') f.ended.push(rec);
    else if (rec[0] === 'x' && typeof rec[2] === 'string') f.exit = rec;
  }

  start(f, d) {
    const nesting = Number.isInteger(d.nesting) && d.nesting >= 0 && d.nesting < 1000 ? d.nesting : 0;
    if (nesting > 0 && f.stack[nesting - 1]) f.stack[nesting - 1].hasChildren = true;
    f.stack.length = Math.min(f.stack.length, nesting);
    while (f.stack.length < nesting) f.stack.push({ name: '', hasChildren: true });
    f.stack.push({ name: String(d.name ?? ''), hasChildren: false, line: d.line, column: d.column });
    if (nesting === 0) f.topLevel++;
    f.stack[nesting].topLevel = f.topLevel;
  }

  done(f, d, passed) {
    const nesting = Number.isInteger(d.nesting) && d.nesting >= 0 && d.nesting < 1000 ? d.nesting : 0;
    let entry = f.stack[nesting];
    if (!entry) { this.start(f, d); entry = f.stack[nesting]; }
    const names = f.stack.slice(0, nesting + 1).map((e) => e.name);
    const details = d.details || {};
    const err = details.error;
    const ownFailure = !passed && !(err && err.failureType === 'subtestsFailed');
    const isSuite = details.type === 'suite';
    const record = { nesting, fullName: names.join(' > '), output: null };
    f.last = record;
    if (d.skip !== undefined || d.todo !== undefined) return; // skipped, todo: not reported (as Exercism)
    if ((isSuite || entry.hasChildren) && !ownFailure) return; // its tests are reported
    record.name = cut(this.clean(record.fullName), NAME_LIMIT);
    record.status = passed ? 'pass' : 'fail';
    if (!passed) record.message = cut(this.clean(errorText(err)), MESSAGE_LIMIT);
    record.line = d.line;
    record.column = d.column;
    record.topLevel = f.stack[0] && f.stack[0].topLevel;
    record.topIsSuite = nesting > 0;
    f.tests.push(record);
  }

  testCode(f, record) {
    if (!f.codes) f.codes = callsByLocation(f.name);
    const call = f.codes.calls.get(`${record.line}:${record.column}`);
    const code = bodyCode(f.codes.source, call);
    return code ? cut(code, CODE_LIMIT) : null;
  }

  finish() {
    const tests = [];
    const fileErrors = [];
    let stopped = null;
    for (const f of this.files.values()) {
      const base = path.basename(f.name);
      const out = [];
      for (const r of f.tests) out.push(this.entry(f, r));
      if (f.lineBuf !== null) { this.line(f, f.lineBuf); f.lineBuf = null; }
      const end = f.end || { exitCode: null, signal: null, failureType: 'unknown' };
      const badEnd = Boolean(end.signal) || (end.exitCode !== 0 && end.failureType !== 'subtestsFailed');
      // the test a process ended in: setup.js's exit line, else the last one begun and not ended
      let current = f.exit ? f.exit[2] : null;
      if (!current && badEnd) {
        const open = f.begun.slice();
        for (const e of f.ended) { const i = open.lastIndexOf(e[1]); if (i !== -1) open.splice(i, 1); }
        if (open.length) current = open[open.length - 1];
      }
      if (current !== null) {
        const how = f.exit && typeof f.exit[1] === 'number' && !end.signal ? describeEnd(f.exit[1], null) : describeEnd(end.exitCode, end.signal);
        // the tests node:test could not report: what setup.js saw end, leaves only
        const ended = f.ended;
        const leaves = ended.filter((x, i) => !ended.slice(0, i).some((y) => y[1].startsWith(x[1] + ' > ')));
        const seen = new Map();
        for (const r of f.tests) seen.set(r.fullName, (seen.get(r.fullName) || 0) + 1);
        for (const x of leaves) {
          if (seen.get(x[1])) { seen.set(x[1], seen.get(x[1]) - 1); continue; }
          const t = { name: cut(this.clean(x[1]), NAME_LIMIT), status: x[2] === true ? 'pass' : 'fail' };
          if (t.status === 'fail') t.message = cut(this.clean(str(x[3]) || 'The test failed.'), MESSAGE_LIMIT);
          if (str(x[4])) t.output = outputText(x[4], this.clean);
          out.push(t);
        }
        const t = { name: cut(this.clean(current), NAME_LIMIT), status: 'error', message: `The tests stopped during this test (${how}).` };
        const output = f.exit ? str(f.exit[3]) : null;
        if (output) t.output = outputText(output, this.clean);
        out.push(t);
        if (!stopped) stopped = { how, name: t.name };
      } else if (badEnd) {
        const how = describeEnd(end.exitCode, end.signal);
        const text = loadErrorMessage(f.stderr, this.clean, this.inputDir);
        if (!f.tests.length) {
          fileErrors.push(text || `${base} could not be run (${how}).`);
        } else {
          fileErrors.push(`The tests of ${base} ended badly (${how})` + (text ? `:\n${text}` : '.'));
        }
      }
      tests.push(...out);
    }
    const doc = { version: 3, status: 'pass', tests };
    if (stopped) {
      return { version: 3, status: 'error', message: `The tests stopped before finishing (${stopped.how}), during the test "${stopped.name}".`, tests };
    }
    if (fileErrors.length) return { version: 3, status: 'error', message: cut(fileErrors.join('\n\n'), MESSAGE_LIMIT), tests };
    if (!tests.length) return { version: 3, status: 'error', message: NO_TESTS, tests };
    doc.status = tests.every((t) => t.status === 'pass') ? 'pass' : 'fail';
    return doc;
  }

  entry(f, r) {
    const t = { name: r.name, status: r.status };
    if (r.message) t.message = r.message;
    if (r.output) {
      const output = outputText(r.output, this.clean);
      if (output) t.output = output;
    }
    const code = this.testCode(f, r);
    if (code) t.test_code = code;
    if (this.taskPerDescribe && r.topIsSuite && r.topLevel) t.task_id = r.topLevel;
    return t;
  }
}

module.exports = { Collector, NO_TESTS };
