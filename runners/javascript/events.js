// The events pipe from the Jest process to the runner: fd 3 of the Jest child, one JSON
// line per event, written with one write(2) each.
'use strict';
const fs = require('fs');

const FD = 3;
let broken = false;

function emit(event) {
  if (broken) return;
  const line = Buffer.from(JSON.stringify(event) + '\n', 'utf8');
  let off = 0;
  try {
    while (off < line.length) off += fs.writeSync(FD, line, off, line.length - off);
  } catch (err) {
    broken = true;
  }
}

// ANSI colour and cursor sequences.
const ANSI = /[\u001b\u009b][[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\u0007)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PR-TZcf-ntqry=><~]))/g;

function stripAnsi(text) {
  return String(text).replace(ANSI, '');
}

module.exports = { emit, stripAnsi };
