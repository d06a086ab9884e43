// Attune's own object store, so `gs://bucket/object` dataset URIs resolve locally. Objects are plain files
// under <dataDir>/objects/<bucket>/<object name> (names may contain '/'); a small JSON sidecar under
// <dataDir>/objects/.meta/<bucket>/<object name> records the content type and MD5. Writes go to
// <dataDir>/objects/.tmp and are renamed into place, so readers never see half an object. Buckets are
// directories, created by the first upload. Bucket names follow Cloud Storage's rules, so they never start
// with '.' and cannot collide with .tmp or .meta.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { ServiceError, invalidArgument } from '../errors.js';

export const defaultContentType = 'application/octet-stream';

export const objectStoreLimits = {
  /** Cloud Storage's limit on an object name, in UTF-8 bytes. */
  nameBytes: 1024,
  /** Objects a list page returns by default and at most. */
  pageSize: 1000,
} as const;

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

const bucketPattern = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

export function checkBucketName(bucket: string): void {
  if (!bucketPattern.test(bucket) || bucket.includes('..')) {
    throw invalidArgument(`Invalid bucket name: '${bucket}'. Bucket names are 3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit.`, 'bucket');
  }
}

export function checkObjectName(name: string): void {
  const problem =
    name === '' ? 'is empty'
    : Buffer.byteLength(name) > objectStoreLimits.nameBytes ? `is longer than ${objectStoreLimits.nameBytes} bytes`
    : /[\0\r\n]/.test(name) ? 'contains a NUL, carriage return or line feed'
    : name.startsWith('/') || path.isAbsolute(name) ? 'is an absolute path'
    : name.split('/').some((s) => s === '..' || s === '.') ? "has a '.' or '..' segment"
    : name.split('/').some((s) => s === '') ? "has an empty segment (a trailing or doubled '/')"
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

export class ObjectStore {
  readonly root: string;

  constructor(readonly dataDir: string) {
    this.root = path.join(dataDir, 'objects');
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

  /** Writes an object atomically (temp file, then rename), replacing any object of that name. */
  async put(
    bucket: string,
    name: string,
    data: Buffer | string | Readable | AsyncIterable<Uint8Array>,
    { contentType }: { contentType?: string } = {},
  ): Promise<ObjectInfo> {
    const file = this.pathOf(bucket, name);
    const tmpDir = path.join(this.root, '.tmp');
    await fs.mkdir(tmpDir, { recursive: true });
    const tmp = path.join(tmpDir, `${randomBytes(8).toString('hex')}.part`);
    const hash = createHash('md5');
    const crc = new Crc32c();
    const source = Buffer.isBuffer(data) || typeof data === 'string' ? Readable.from([Buffer.from(data)]) : data;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            crc.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx' }),
      );
      await this.mkdirFor(file, bucket, name);
      const sidecar = this.sidecarOf(bucket, name);
      await this.mkdirFor(sidecar, bucket, name);
      const meta: Sidecar = { contentType: contentType || defaultContentType, md5Hash: hash.digest('base64'), crc32c: crc.digest() };
      const tmpMeta = tmp + '.json';
      await fs.writeFile(tmpMeta, JSON.stringify(meta));
      // The sidecar first: a reader that sees the new bytes also sees their metadata.
      await fs.rename(tmpMeta, sidecar);
      await this.renameInto(tmp, file, bucket, name);
    } catch (error) {
      await fs.rm(tmp, { force: true });
      await fs.rm(tmp + '.json', { force: true });
      throw error;
    }
    return this.stat(bucket, name);
  }

  private async mkdirFor(file: string, bucket: string, name: string): Promise<void> {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw new ServiceError('FAILED_PRECONDITION', `Cannot store ${bucket}/${name}: a prefix of its name is already an object.`);
      }
      throw error;
    }
  }

  private async renameInto(tmp: string, file: string, bucket: string, name: string): Promise<void> {
    try {
      await fs.rename(tmp, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
        throw new ServiceError('FAILED_PRECONDITION', `Cannot store ${bucket}/${name}: other objects' names start with '${name}/'.`);
      }
      throw error;
    }
  }

  async stat(bucket: string, name: string): Promise<ObjectInfo> {
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

  /** An object's bytes. */
  async get(bucket: string, name: string): Promise<Buffer> {
    await this.stat(bucket, name);
    return fs.readFile(this.pathOf(bucket, name));
  }

  /** An object's metadata and a stream of its bytes (opened now, so a later replace does not mix versions). */
  async open(bucket: string, name: string): Promise<{ info: ObjectInfo; stream: Readable }> {
    const info = await this.stat(bucket, name);
    const handle = await fs.open(this.pathOf(bucket, name), 'r').catch(() => {
      throw noObject(bucket, name);
    });
    return { info, stream: handle.createReadStream() };
  }

  async bucketExists(bucket: string): Promise<boolean> {
    checkBucketName(bucket);
    return fs.stat(path.join(this.root, bucket)).then((s) => s.isDirectory(), () => false);
  }

  /** Objects in name order (UTF-16 code units, the same as byte order for BMP names), pageToken = the last name. */
  async list(bucket: string, { prefix = '', pageToken, maxResults }: ListOptions = {}): Promise<ObjectPage> {
    if (!(await this.bucketExists(bucket))) throw noBucket(bucket);
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
        items.push(await this.stat(bucket, name));
      } catch {
        // deleted while listing
      }
    }
    const nextPageToken = names.length > pageSize ? Buffer.from(page[page.length - 1], 'utf8').toString('base64url') : undefined;
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  /** Removes an object and its sidecar, then any directories that leaves empty (the bucket stays). */
  async delete(bucket: string, name: string): Promise<void> {
    const file = this.pathOf(bucket, name);
    await this.stat(bucket, name);
    await fs.rm(file, { force: true });
    const sidecar = this.sidecarOf(bucket, name);
    await fs.rm(sidecar, { force: true });
    await pruneEmptyDirs(path.dirname(file), path.join(this.root, bucket));
    await pruneEmptyDirs(path.dirname(sidecar), path.join(this.root, '.meta', bucket));
  }

  /**
   * A dataset URI as a local file path: `gs://bucket/object` names an object in this store (NOT_FOUND if
   * there is none), `file:///abs` and absolute paths pass through; anything else is INVALID_ARGUMENT.
   */
  resolveDatasetUri(uri: string): string {
    const gs = parseGsUri(uri);
    if (gs) {
      const file = this.pathOf(gs.bucket, gs.name);
      let isFile = false;
      try {
        isFile = statSync(file).isFile();
      } catch {
        // missing
      }
      if (!isFile) throw new ServiceError('NOT_FOUND', `Dataset ${uri} not found: no object ${gs.name} in bucket ${gs.bucket} (upload it with \`attune datasets upload\` or the Cloud Storage API).`);
      return file;
    }
    if (uri.startsWith('gs://')) throw invalidArgument(`Invalid Cloud Storage URI: '${uri}'. Expected gs://BUCKET/OBJECT.`);
    if (uri.startsWith('file://')) return fileURLToPath(uri);
    if (path.isAbsolute(uri)) return uri;
    throw invalidArgument(`Unsupported dataset URI: '${uri}'. Use gs://BUCKET/OBJECT or an absolute local path.`);
  }
}

/** `gs://b/o` → the object's local path in <dataDir>'s store; absolute local paths pass through. */
export function resolveDatasetUri(uri: string, dataDir: string): string {
  return new ObjectStore(dataDir).resolveDatasetUri(uri);
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
