// The file behind a dataset URI, opened and vetted before a byte is read. `gs://bucket/object` names an object
// in the caller's own buckets (another project's answers as missing). A local path (absolute, or file://) is
// read only when the server was started with --dataset-dir DIR, and only a regular file inside DIR once every
// symlink is resolved; any other path gets the same answer whether or not it exists, so nothing about the
// server's files leaks. Files are opened non-blocking (a FIFO cannot hang the open) and checked to be regular
// files (no /dev/zero) within the size limit; the reader counts bytes again as it streams (a file may grow).
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServiceError, invalidArgument } from '../errors.js';
import { parseGsUri, type ObjectStore } from '../storage/object-store.js';

export interface DatasetFileAccess {
  project: string;
  objects: ObjectStore;
  /** The one local directory datasets may come from (`attune serve --dataset-dir`); none: object store only. */
  datasetDir?: string;
  /** limits.datasetFileBytes */
  maxBytes: number;
}

/** An open dataset file; the caller closes the handle. */
export async function openDatasetFile(uri: string, access: DatasetFileAccess): Promise<FileHandle> {
  const { handle, size } = await openSource(uri, access);
  if (size > access.maxBytes) {
    await handle.close();
    throw datasetTooLarge(uri, access.maxBytes);
  }
  return handle;
}

export const datasetTooLarge = (uri: string, maxBytes: number) =>
  invalidArgument(`Dataset ${uri} is larger than ${maxBytes} bytes, the limit datasetFileBytes.`);

async function openSource(uri: string, access: DatasetFileAccess): Promise<{ handle: FileHandle; size: number }> {
  const gs = parseGsUri(uri);
  if (gs) {
    try {
      const { handle, info } = await access.objects.openFile(access.project, gs.bucket, gs.name);
      return { handle, size: info.size };
    } catch (error) {
      if (error instanceof ServiceError && error.status === 'NOT_FOUND') {
        throw new ServiceError(
          'NOT_FOUND',
          `Dataset ${uri} not found: no object ${gs.name} in bucket ${gs.bucket} (upload it with \`attune datasets upload\` or the Cloud Storage API).`,
        );
      }
      throw error;
    }
  }
  if (uri.startsWith('gs://')) throw invalidArgument(`Invalid Cloud Storage URI: '${uri}'. Expected gs://BUCKET/OBJECT.`);
  const local = localPath(uri);
  if (local === undefined) throw invalidArgument(`Unsupported dataset URI: '${uri}'. Use gs://BUCKET/OBJECT.`);
  if (!access.datasetDir) {
    throw invalidArgument(
      `Dataset ${uri}: this server reads datasets only from its object store. Upload the file (\`attune datasets upload\` or ` +
        'the Cloud Storage API) and name it as gs://BUCKET/OBJECT; an administrator may allow one local directory with `attune serve --dataset-dir DIR`.',
    );
  }
  return openInside(uri, local, access.datasetDir);
}

/** An absolute path or file:// URI → the path; undefined for anything else. */
function localPath(uri: string): string | undefined {
  if (uri.startsWith('file:')) {
    try {
      return fileURLToPath(uri);
    } catch {
      return undefined;
    }
  }
  return path.isAbsolute(uri) ? uri : undefined;
}

async function openInside(uri: string, file: string, datasetDir: string): Promise<{ handle: FileHandle; size: number }> {
  // One answer for a missing file, a file outside the directory, a symlink out of it and an unreadable
  // file, so that the answer says nothing about which server paths exist.
  const unavailable = () => new ServiceError('NOT_FOUND', `Dataset ${uri} not found in the server's dataset directory.`);
  let real: string;
  let root: string;
  try {
    [real, root] = await Promise.all([fs.realpath(file), fs.realpath(datasetDir)]);
  } catch {
    throw unavailable();
  }
  const relative = path.relative(root, real);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) throw unavailable();
  let handle: FileHandle;
  try {
    handle = await fs.open(real, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  } catch {
    throw unavailable();
  }
  try {
    // The path was checked before the open: make sure a symlink swapped in meanwhile did not move it.
    const opened = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
    if (opened !== real) throw unavailable();
    const st = await handle.stat();
    if (!st.isFile()) throw invalidArgument(`Dataset ${uri} is not a regular file; it must be a JSONL file.`);
    return { handle, size: st.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
