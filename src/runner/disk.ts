/** The runner's own writes to the data folder's disk: lines of the attempt log, and what a full disk means. */
import { statfsSync } from 'node:fs';
import { appendFile, mkdir, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StepResult } from '../substrates/substrate.ts';

/** Below this many free bytes, a filesystem counts as full. */
const FULL_DISK_BYTES = 1024 * 1024;

/** Whether the disk holding `path` is (nearly) full. False when it cannot be told. */
export function diskFull(path: string): boolean {
  try {
    const fs = statfsSync(path);
    return fs.bavail * fs.bsize < FULL_DISK_BYTES;
  } catch {
    return false;
  }
}

/** A step that failed while the attempt log's filesystem was full says so: that is likely why. */
export async function noteFullDisk(result: StepResult, logPath: string): Promise<StepResult> {
  if (result.cause === null || result.cause === 'cancelled') return result;
  try {
    const fs = await statfs(dirname(logPath));
    const free = fs.bavail * fs.bsize;
    if (free >= FULL_DISK_BYTES) return result;
    return {
      ...result,
      detail: `${result.detail}; the disk holding Ferry's data folder was full when the step ended (${free} bytes free), so the job could not write its output: free space, then resume or wipe-and-retry`,
    };
  } catch {
    return result;
  }
}

export async function appendLogLine(path: string, line: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, `${line}\n`);
}
