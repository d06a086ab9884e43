// Files that survive a crash or a power loss whole: each is written under a temporary name, fsynced, then
// renamed over its final name, and the directory is fsynced so the rename itself is on disk. A reader sees
// the old file or the new one, never half of one. Temporary names carry the writer's process id and a tag of
// its host, so `sweepTemporaryFiles` can remove what a killed writer left without touching a live writer's
// file, on this machine or (in a directory several machines mount) on another.
import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';

const temporaryMarker = '.attune-tmp-';

/** This host (and boot): a process id means a process only there. */
const hostTag = `h${createHash('sha256').update(`${hostname()}\0${bootId()}`).digest('hex').slice(0, 8)}`;

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** A temporary name for `file` in its own directory (so the rename stays on one filesystem). */
export function temporaryNameFor(file: string): string {
  return `${file}${temporaryMarker}${process.pid}-${hostTag}-${randomBytes(6).toString('hex')}`;
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

export function fsyncFile(file: string): void {
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
    const [pidText, tag] = entry.slice(at + temporaryMarker.length).split('-');
    // Another host's writer (in a directory several machines mount) is not this host's to judge; names
    // without a host tag are older, and local.
    if (/^h[0-9a-f]{8}$/.test(tag ?? '') && tag !== hostTag) continue;
    if (processAlive(Number(pidText))) continue; // being written (this process's own, too)
    rmSync(path.join(dir, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
