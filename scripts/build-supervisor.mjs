// Builds the process substrate's per-step supervisor (native/ferry-supervise.c) with the
// machine's C compiler. Runs on `npm install`; rebuilds only when the source is newer.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'ferry-supervise.c');
const target = join(root, 'build', 'ferry-supervise');

if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) process.exit(0);
mkdirSync(dirname(target), { recursive: true });
const cc = process.env.CC || 'cc';
try {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', target, source], { stdio: 'inherit' });
} catch {
  console.error(`ferry: could not build ${target} with ${cc}; install a C compiler (apt-get install gcc) and run npm install again`);
  process.exit(1);
}
