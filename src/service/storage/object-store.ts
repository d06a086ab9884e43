// Attune's own object store, so `gs://bucket/object` dataset URIs resolve locally. Objects are plain files
// under <dataDir>/objects/<bucket>/<object name> (names may contain '/'); a small JSON sidecar under
// <dataDir>/objects/.meta/<bucket>/<object name> records the content type and MD5. Writes go to
// <dataDir>/objects/.tmp, are fsynced and renamed into place, so readers never see half an object and a
// power loss never leaves one. Bucket names follow Cloud Storage's rules, so they never start with '.' and
// cannot collide with .tmp, .meta or .buckets.
//
// Isolation. A bucket belongs to the project whose upload created it (<dataDir>/objects/.buckets/<bucket>.json
// records it; a bucket directory without a record, from before records existed or copied in by hand,
// belongs to the keyless project). Another project's bucket is answered exactly as a missing one (AIP-193:
// existence does not leak), except that nobody else can create it: bucket names are global, as at Google.
//
// Limits. One upload may hold at most `uploadBytes`, and a project's objects together at most
// `storageBytesPerProject`; the bytes are counted as they stream in, and an upload over either is aborted
// (its temporary file removed) with an error that names the limit.
import { createHash } from 'node:crypto';
import { createWriteStream, constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsyncDirectory, sweepTemporaryFiles, temporaryNameFor } from '../../engine/io/durable.js';
import { serviceDefaults } from '../config.js';
import { ServiceError, invalidArgument } from '../errors.js';
import { consoleBucketFor, consoleBucketPrefix, isBucketName } from './buckets.js';

export const defaultContentType = 'application/octet-stream';

export const objectStoreLimits = {
  /** Cloud Storage's limit on an object name, in UTF-8 bytes. */
  nameBytes: 1024,
  /** Each '/'-separated segment is a file name on disk (255 bytes), and its sidecar adds '.json'. */
  segmentBytes: 250,
  /** Objects a list page returns by default and at most. */
  pageSize: 1000,
} as const;

/** The store's share of the service limits (limits.ts); absent ones are unlimited (the CLI, acting as administrator). */
export interface ObjectStoreLimits {
  uploadBytes?: number;
  storageBytesPerProject?: number;
}

export interface ObjectInfo {
  bucket: string;
  name: string;
  size: number;
  contentType: string;
  /** Base64 MD5 of the bytes, as Cloud Storage reports md5Hash (absent if the sidecar was lost). */
  md5Hash?: string;
  /** Base64 big-endian CRC32C of the bytes (absent if the sidecar was lost). */
  crc32c?: string;
  updated: Date;
  /** A number that changes whenever the object is replaced (the file's mtime in microseconds). */
  generation: string;
}

export interface ListOptions {
  prefix?: string;
  pageToken?: string;
  maxResults?: number;
}

export interface ObjectPage {
  items: ObjectInfo[];
  nextPageToken?: string;
}

interface Sidecar {
  contentType?: string;
  md5Hash?: string;
  crc32c?: string;
}

interface BucketRecord {
  project: string;
  createTime: string;
}

const crc32cTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32C (Castagnoli), the checksum Cloud Storage clients verify; update with chunks, then digest. */
export class Crc32c {
  private crc = 0xffffffff;
  update(chunk: Uint8Array): this {
    let crc = this.crc;
    for (let i = 0; i < chunk.length; i++) crc = crc32cTable[(crc ^ chunk[i]) & 0xff] ^ (crc >>> 8);
    this.crc = crc;
    return this;
  }
  /** Base64 of the big-endian 32-bit value, as Cloud Storage's crc32c field. */
  digest(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE((this.crc ^ 0xffffffff) >>> 0);
    return out.toString('base64');
  }
}

export function checkBucketName(bucket: string): void {
  if (!isBucketName(bucket)) {
    throw invalidArgument(`Invalid bucket name: '${bucket}'. Bucket names are 3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit.`, 'bucket');
  }
}

export function checkObjectName(name: string): void {
  const segments = name.split('/');
  const problem =
    name === '' ? 'is empty'
    : Buffer.byteLength(name) > objectStoreLimits.nameBytes ? `is longer than ${objectStoreLimits.nameBytes} bytes`
    : /[\0\r\n]/.test(name) ? 'contains a NUL, carriage return or line feed'
    : name.startsWith('/') || path.isAbsolute(name) ? 'is an absolute path'
    : segments.some((s) => s === '..' || s === '.') ? "has a '.' or '..' segment"
    : segments.some((s) => s === '') ? "has an empty segment (a trailing or doubled '/')"
    : segments.some((s) => Buffer.byteLength(s) > objectStoreLimits.segmentBytes)
      ? `has a segment longer than ${objectStoreLimits.segmentBytes} bytes (each '/'-separated part of a name is at most ${objectStoreLimits.segmentBytes} bytes)`
    : undefined;
  if (problem) throw invalidArgument(`Invalid object name: '${name}' ${problem}.`, 'name');
}

/** gs://bucket/object → its parts; undefined for anything else. */
export function parseGsUri(uri: string): { bucket: string; name: string } | undefined {
  const match = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
  return match ? { bucket: match[1], name: match[2] } : undefined;
}

export const gsUri = (bucket: string, name: string) => `gs://${bucket}/${name}`;

const noObject = (bucket: string, name: string) => new ServiceError('NOT_FOUND', `No such object: ${bucket}/${name}`);
const noBucket = (bucket: string) => new ServiceError('NOT_FOUND', `The specified bucket does not exist: ${bucket}`);

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

export class ObjectStore {
  readonly root: string;
  /** Bytes of uploads under way, per project: counted against its storage quota while they stream in. */
  private readonly inflight = new Map<string, number>();
  /** Bytes a project holds outside the object store that count against the same quota (its tuned models' checkpoints). */
  private otherUsage: (project: string) => Promise<number> = async () => 0;

  constructor(
    readonly dataDir: string,
    readonly limits: ObjectStoreLimits = {},
  ) {
    this.root = path.join(dataDir, 'objects');
  }

  private get tmpDir(): string {
    return path.join(this.root, '.tmp');
  }

  /** Removes temporary files of uploads whose process died (a kill -9 mid-upload); the server calls it at start. */
  async sweepTemporaryFiles(): Promise<number> {
    let removed = sweepTemporaryFiles(this.tmpDir);
    // Before temporary names carried a process id, they were <random>.part.
    for (const entry of await fs.readdir(this.tmpDir).catch(() => [] as string[])) {
      if (/^[0-9a-f]{16}\.part(\.json)?$/.test(entry)) {
        await fs.rm(path.join(this.tmpDir, entry), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** The file that holds an object (whether or not it exists); refuses bad bucket and object names. */
  pathOf(bucket: string, name: string): string {
    checkBucketName(bucket);
    checkObjectName(name);
    const file = path.join(this.root, bucket, ...name.split('/'));
    // Defence in depth: the checks above already keep the path inside the bucket.
    if (!file.startsWith(path.join(this.root, bucket) + path.sep)) throw invalidArgument(`Invalid object name: '${name}'.`, 'name');
    return file;
  }

  private sidecarOf(bucket: string, name: string): string {
    return path.join(this.root, '.meta', bucket, ...name.split('/')) + '.json';
  }

  private recordOf(bucket: string): string {
    return path.join(this.root, '.buckets', `${bucket}.json`);
  }

  /** The project a bucket belongs to, or undefined when there is no such bucket. */
  async ownerOf(bucket: string): Promise<string | undefined> {
    checkBucketName(bucket);
    try {
      return (JSON.parse(await fs.readFile(this.recordOf(bucket), 'utf8')) as BucketRecord).project;
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    const legacy = await fs.stat(path.join(this.root, bucket)).then((s) => s.isDirectory(), () => false);
    return legacy ? serviceDefaults.keylessProject : undefined;
  }

  /** The project's own bucket passes; any other, existing or not, is NOT_FOUND. */
  private async checkReadable(project: string, bucket: string): Promise<void> {
    if ((await this.ownerOf(bucket)) !== project) throw noBucket(bucket);
  }

  /** Before a write: the bucket is the project's, or it is created for the project now. */
  private async claim(project: string, bucket: string): Promise<void> {
    const owner = await this.ownerOf(bucket);
    if (owner === project) return;
    const taken = () =>
      new ServiceError(
        'PERMISSION_DENIED',
        `The bucket name '${bucket}' is not available: it belongs to another project (bucket names are shared by all projects). Choose another name.`,
      );
    if (owner !== undefined) throw taken();
    if (bucket.startsWith(consoleBucketPrefix) && bucket !== consoleBucketFor(project)) {
      throw new ServiceError(
        'PERMISSION_DENIED',
        `Bucket names starting with '${consoleBucketPrefix}' are reserved for the console; this project's is '${consoleBucketFor(project)}'.`,
      );
    }
    await fs.mkdir(path.dirname(this.recordOf(bucket)), { recursive: true });
    const record: BucketRecord = { project, createTime: new Date().toISOString() };
    try {
      await fs.writeFile(this.recordOf(bucket), JSON.stringify(record), { flag: 'wx', flush: true });
    } catch (error) {
      // Another upload created it meanwhile: fine if for the same project.
      if (errorCode(error) === 'EEXIST' && (await this.ownerOf(bucket)) === project) return;
      if (errorCode(error) === 'EEXIST') throw taken();
      throw error;
    }
  }

  /** Counts what `usage` measures against storageBytesPerProject too, besides the project's objects. */
  alsoCount(usage: (project: string) => Promise<number>): void {
    this.otherUsage = usage;
  }

  /** Bytes of every object in the project's buckets. */
  async usage(project: string): Promise<number> {
    let total = 0;
    for (const bucket of await this.buckets(project)) total += await directorySize(path.join(this.root, bucket));
    return total;
  }

  /** The names of the project's buckets, sorted. */
  async buckets(project: string): Promise<string[]> {
    const names = new Set<string>();
    for (const entry of await fs.readdir(path.join(this.root, '.buckets')).catch(() => [] as string[])) {
      if (entry.endsWith('.json')) names.add(entry.slice(0, -'.json'.length));
    }
    for (const entry of await fs.readdir(this.root).catch(() => [] as string[])) if (!entry.startsWith('.')) names.add(entry);
    const mine: string[] = [];
    for (const name of names) if (isBucketName(name) && (await this.ownerOf(name)) === project) mine.push(name);
    return mine.sort();
  }

  /**
   * Writes an object for a project atomically and durably (temporary file, fsync, rename), replacing any
   * object of that name; refuses another project's bucket and uploads over the limits.
   */
  async put(
    project: string,
    bucket: string,
    name: string,
    data: Buffer | string | Readable | AsyncIterable<Uint8Array>,
    { contentType }: { contentType?: string } = {},
  ): Promise<ObjectInfo> {
    const file = this.pathOf(bucket, name);
    await this.claim(project, bucket);
    const { uploadBytes = Infinity, storageBytesPerProject = Infinity } = this.limits;
    const stored = storageBytesPerProject === Infinity ? 0 : (await this.usage(project)) + (await this.otherUsage(project));
    const replaced = await fs.stat(file).then((s) => (s.isFile() ? s.size : 0), () => 0);
    await fs.mkdir(this.tmpDir, { recursive: true });
    const tmp = temporaryNameFor(path.join(this.tmpDir, 'object'));
    const hash = createHash('md5');
    const crc = new Crc32c();
    const source = Buffer.isBuffer(data) || typeof data === 'string' ? Readable.from([Buffer.from(data)]) : data;
    const inflight = this.inflight;
    let written = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            written += chunk.length;
            inflight.set(project, (inflight.get(project) ?? 0) + chunk.length);
            if (written > uploadBytes) {
              throw invalidArgument(`The upload is larger than ${uploadBytes} bytes, the limit uploadBytes.`, 'media');
            }
            if (stored - replaced + inflight.get(project)! > storageBytesPerProject) {
              throw new ServiceError(
                'RESOURCE_EXHAUSTED',
                `Project ${project} would hold more than ${storageBytesPerProject} bytes of objects and checkpoints, the limit storageBytesPerProject (it holds ${stored}). Delete objects or tuned models first.`,
              );
            }
            hash.update(chunk);
            crc.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx', flush: true }),
      );
      await this.mkdirFor(file, bucket, name);
      const sidecar = this.sidecarOf(bucket, name);
      await this.mkdirFor(sidecar, bucket, name);
      const meta: Sidecar = { contentType: contentType || defaultContentType, md5Hash: hash.digest('base64'), crc32c: crc.digest() };
      const tmpMeta = tmp + '.json';
      await fs.writeFile(tmpMeta, JSON.stringify(meta), { flush: true });
      // The sidecar first: a reader that sees the new bytes also sees their metadata.
      await fs.rename(tmpMeta, sidecar);
      await this.renameInto(tmp, file, bucket, name);
      fsyncDirectory(path.dirname(sidecar));
      fsyncDirectory(path.dirname(file));
    } catch (error) {
      await fs.rm(tmp, { force: true });
      await fs.rm(tmp + '.json', { force: true });
      if (errorCode(error) === 'ENAMETOOLONG') throw invalidArgument(`Invalid object name: '${name}' is too long for this server's file system.`, 'name');
      throw error;
    } finally {
      const left = (inflight.get(project) ?? 0) - written;
      if (left > 0) inflight.set(project, left);
      else inflight.delete(project);
    }
    return this.stat(project, bucket, name);
  }

  private async mkdirFor(file: string, bucket: string, name: string): Promise<void> {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
    } catch (error) {
      if (errorCode(error) === 'EEXIST' || errorCode(error) === 'ENOTDIR') {
        throw new ServiceError('FAILED_PRECONDITION', `Cannot store ${bucket}/${name}: a prefix of its name is already an object.`);
      }
      throw error;
    }
  }

  private async renameInto(tmp: string, file: string, bucket: string, name: string): Promise<void> {
    try {
      await fs.rename(tmp, file);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
        throw new ServiceError('FAILED_PRECONDITION', `Cannot store ${bucket}/${name}: other objects' names start with '${name}/'.`);
      }
      throw error;
    }
  }

  /** An object's metadata; NOT_FOUND for a missing object and for any object in another project's bucket. */
  async stat(project: string, bucket: string, name: string): Promise<ObjectInfo> {
    this.pathOf(bucket, name); // bad names are INVALID_ARGUMENT for everyone
    await this.checkReadable(project, bucket);
    return this.statInBucket(bucket, name);
  }

  /** stat() once the caller's access to the bucket is established. */
  private async statInBucket(bucket: string, name: string): Promise<ObjectInfo> {
    const file = this.pathOf(bucket, name);
    let st;
    try {
      st = await fs.stat(file);
    } catch {
      throw noObject(bucket, name);
    }
    if (!st.isFile()) throw noObject(bucket, name);
    let meta: Sidecar = {};
    try {
      meta = JSON.parse(await fs.readFile(this.sidecarOf(bucket, name), 'utf8')) as Sidecar;
    } catch {
      // no sidecar (a file copied in by hand): the defaults
    }
    return {
      bucket,
      name,
      size: st.size,
      contentType: meta.contentType || defaultContentType,
      md5Hash: meta.md5Hash,
      crc32c: meta.crc32c,
      updated: st.mtime,
      generation: String(Math.floor(st.mtimeMs * 1000)),
    };
  }

  /**
   * An object's file, opened for reading (so a later replace does not mix versions): a regular file, never a
   * symlink, FIFO or device (opened non-blocking, then checked, so a FIFO cannot hang the open).
   */
  async openFile(project: string, bucket: string, name: string): Promise<{ info: ObjectInfo; handle: FileHandle }> {
    const info = await this.stat(project, bucket, name);
    let handle: FileHandle;
    try {
      handle = await fs.open(this.pathOf(bucket, name), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
    } catch {
      throw noObject(bucket, name);
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw noObject(bucket, name);
    }
    return { info: { ...info, size: st.size }, handle };
  }

  /**
   * The local directory holding the objects under `gs://bucket/prefix/` (a model folder uploaded object by object),
   * for a project that owns the bucket; NOT_FOUND for another project's bucket or a prefix with no objects under it.
   * The prefix is checked as an object name, so it stays inside the bucket.
   */
  async folderOf(project: string, bucket: string, prefix: string): Promise<string> {
    const name = prefix.replace(/\/+$/, '');
    const dir = this.pathOf(bucket, name);
    await this.checkReadable(project, bucket);
    const st = await fs.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new ServiceError('NOT_FOUND', `No objects under gs://${bucket}/${name}/`);
    return dir;
  }

  /** Checks that a project may write objects under gs://bucket/prefix/: its own bucket, existing; NOT_FOUND otherwise. */
  async checkWritablePrefix(project: string, bucket: string, prefix: string): Promise<void> {
    this.pathOf(bucket, `${prefix.replace(/\/+$/, '')}/x`);
    await this.checkReadable(project, bucket);
  }

  /** An object's bytes. */
  async get(project: string, bucket: string, name: string): Promise<Buffer> {
    const { handle } = await this.openFile(project, bucket, name);
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** An object's metadata and a stream of its bytes (the stream closes the file). */
  async open(project: string, bucket: string, name: string): Promise<{ info: ObjectInfo; stream: Readable }> {
    const { info, handle } = await this.openFile(project, bucket, name);
    return { info, stream: handle.createReadStream() };
  }

  /** Objects in name order (UTF-16 code units, the same as byte order for BMP names), pageToken = the last name. */
  async list(project: string, bucket: string, { prefix = '', pageToken, maxResults }: ListOptions = {}): Promise<ObjectPage> {
    await this.checkReadable(project, bucket);
    const pageSize = Math.min(Math.max(1, Math.floor(maxResults ?? objectStoreLimits.pageSize)), objectStoreLimits.pageSize);
    let after: string | undefined;
    if (pageToken) {
      after = Buffer.from(pageToken, 'base64url').toString('utf8');
      if (!after) throw invalidArgument('Invalid page token.', 'pageToken');
    }
    const bucketDir = path.join(this.root, bucket);
    // Walk only the deepest directory the prefix names.
    const slash = prefix.lastIndexOf('/');
    const dirPrefix = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    if (dirPrefix.split('/').some((s) => s === '..' || s === '.')) throw invalidArgument(`Invalid prefix: '${prefix}'.`, 'prefix');
    const names: string[] = [];
    const walk = async (dir: string, namePrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const name = namePrefix + entry.name;
        if (entry.isDirectory()) {
          if ((name + '/').startsWith(prefix) || prefix.startsWith(name + '/')) await walk(path.join(dir, entry.name), name + '/');
        } else if (entry.isFile() && name.startsWith(prefix) && (after === undefined || name > after)) {
          names.push(name);
        }
      }
    };
    await walk(path.join(bucketDir, ...dirPrefix.split('/').filter(Boolean)), dirPrefix);
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const page = names.slice(0, pageSize);
    const items: ObjectInfo[] = [];
    for (const name of page) {
      try {
        items.push(await this.statInBucket(bucket, name));
      } catch {
        // deleted while listing
      }
    }
    const nextPageToken = names.length > pageSize ? Buffer.from(page[page.length - 1], 'utf8').toString('base64url') : undefined;
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  /** Removes an object and its sidecar, then any directories that leaves empty (the bucket stays, still the project's). */
  async delete(project: string, bucket: string, name: string): Promise<void> {
    const file = this.pathOf(bucket, name);
    await this.stat(project, bucket, name);
    await fs.rm(file, { force: true });
    const sidecar = this.sidecarOf(bucket, name);
    await fs.rm(sidecar, { force: true });
    await pruneEmptyDirs(path.dirname(file), path.join(this.root, bucket));
    await pruneEmptyDirs(path.dirname(sidecar), path.join(this.root, '.meta', bucket));
  }
}

async function directorySize(dir: string): Promise<number> {
  let total = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await directorySize(at);
    else if (entry.isFile()) total += await fs.stat(at).then((s) => s.size, () => 0);
  }
  return total;
}

async function pruneEmptyDirs(dir: string, stopAt: string): Promise<void> {
  while (dir.startsWith(stopAt + path.sep)) {
    try {
      await fs.rmdir(dir);
    } catch {
      return; // not empty (or gone)
    }
    dir = path.dirname(dir);
  }
}
