import fs from 'fs';

// What of the job's other Node processes (the runner above all) this process can read.
export function readableNodes(): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1');
    } catch (e) {
      continue;
    }
    if (!cmdline.includes('node')) continue;
    try {
      fs.readFileSync(`/proc/${entry}/environ`);
      found.push(cmdline.split('\0').join(' ').trim());
    } catch (e) {
      // EACCES: not dumpable, as it must be
    }
  }
  return found;
}
