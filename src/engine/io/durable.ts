// Files that survive a crash or a power loss whole: each is written under a temporary name, fsynced, then
// renamed over its final name, and the directory is fsynced so the rename itself is on disk. A reader sees
// the old file or the new one, never half of one. Temporary names carry the writer's process id, so
// `sweepTemporaryFiles` can remove what a killed writer left without touching a live writer's file.
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const temporaryMarker = '.attune-tmp-';

/** A temporary name for `file` in its own directory (so the rename stays on one filesystem). */
export function temporaryNameFor(file: string): string {
  return `${file}${temporaryMarker}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Flushes a directory's entries (a rename or unlink in it) to disk. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncFile(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `file` durably: `write` writes the new content to the temporary path it is given, which is then
 * fsynced and renamed over `file`; the directory is fsynced last. On failure nothing is left behind.
 */
export function replaceFileDurably(file: string, write: (temporary: string) => void): void {
  const temporary = temporaryNameFor(file);
  try {
    write(temporary);
    fsyncFile(temporary);
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  fsyncDirectory(path.dirname(file));
}

export function writeFileDurably(file: string, data: string | Uint8Array): void {
  replaceFileDurably(file, (temporary) => writeFileSync(temporary, data));
}

/** Whether a process with this id is alive (signal 0 probes without signalling; EPERM means it exists). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files in `dir` (not recursive) whose writer is gone: a kill -9 or a power loss
 * between write and rename leaves one. Files of live processes stay. Returns how many it removed.
 */
export function sweepTemporaryFiles(dir: string): number {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0; // no such directory: nothing to sweep
  }
  let removed = 0;
  for (const entry of entries) {
    const at = entry.lastIndexOf(temporaryMarker);
    if (at < 0) continue;
    const pid = Number(entry.slice(at + temporaryMarker.length).split('-')[0]);
    if (processAlive(pid)) continue; // being written (this process's own, too)
    rmSync(path.join(dir, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
