// Builds the process substrate's native helpers with the machine's C compiler: the per-step
// supervisor (native/ferry-supervise.c) and the fork server that spawns supervisors for the
// server (native/ferry-spawner.c). Runs on `npm install`; rebuilds only what is older than its source.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cc = process.env.CC || 'cc';

for (const name of ['ferry-supervise', 'ferry-spawner']) {
  const source = join(root, 'native', `${name}.c`);
  const target = join(root, 'build', name);
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) continue;
  mkdirSync(dirname(target), { recursive: true });
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', target, source], { stdio: 'inherit' });
  } catch {
    console.error(`ferry: could not build ${target} with ${cc}; install a C compiler (apt-get install gcc) and run npm install again`);
    process.exit(1);
  }
}
