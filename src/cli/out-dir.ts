// An output directory is checked before any work starts: a run that trains for an hour must not then fail
// on, or silently overwrite, what is already there.
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './usage-error.js';

export function checkOutDir(option: string, dir: string, force: boolean): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UsageError(`--${option} ${dir} is a file, not a directory`);
    if (readdirSync(dir).length > 0 && !force) throw new UsageError(`--${option} ${dir} is not empty; pass --force to overwrite its files`);
  }
  // The directory, or the nearest folder above it that exists, must be writable.
  let existing = path.resolve(dir);
  while (!existsSync(existing)) existing = path.dirname(existing);
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    throw new UsageError(`--${option} ${dir}: ${existing} is not writable`);
  }
  if (!statSync(existing).isDirectory()) throw new UsageError(`--${option} ${dir}: ${existing} is a file`);
}
