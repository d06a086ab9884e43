// Where runs keep what outlives a process: checkpoints and adapters, as directories of files under a key
// (checkpoints/<id>/<token>-<step>, adapters/<id>/<token>). Two kinds: a directory every machine mounts
// (--storage DIR: the data dir on one machine, NFS or a cloud filestore on many) and a Cloud Storage bucket
// (--storage gs://bucket/prefix, through @google-cloud/storage; Attune's own object store speaks that API).
//
// A key is written once, by the lease holder whose token it carries, and is complete when the database
// names it (the job's checkpoint, the model's adapter): a writer that lost its lease may still write its own
// keys, but nothing ever reads them. Directory writes are atomic besides: the files go to a temporary
// directory, are fsynced, and the directory is renamed into place.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Storage, type StorageOptions } from '@google-cloud/storage';
import { fsyncDirectory, fsyncFile, sweepTemporaryFiles, temporaryNameFor } from '../../engine/io/durable.js';

export interface ArtifactStore {
  /** Where it is, for logs and health. */
  readonly description: string;
  /** Stores the files of a local directory (not recursive) as `key`, whole or not at all. */
  putDirectory(key: string, localDir: string): Promise<void>;
  /** Copies artifact `key` into localDir (created); throws if there is no such artifact. */
  getDirectory(key: string, localDir: string): Promise<void>;
  /** A local directory holding artifact `key`: the artifact itself when mounted, a cached copy of a bucket's. */
  localDirectory(key: string): Promise<string>;
  /** Removes every artifact under a prefix (adapters/<id>, checkpoints/<id>). */
  deletePrefix(prefix: string): Promise<void>;
  /** Throws when the storage cannot be reached or written. */
  check(): Promise<void>;
}

/** Keys are built from tuned-model ids and numbers only; this refuses anything else reaching a path. */
function checkKey(key: string): void {
  if (!/^[a-z]+(\/[A-Za-z0-9][A-Za-z0-9._-]*)+$/.test(key) || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new Error(`invalid artifact key '${key}'`);
  }
}


async function filesOf(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

/** A directory (local, or mounted on every machine). */
export class DirectoryArtifacts implements ArtifactStore {
  constructor(readonly root: string) {}

  get description(): string {
    return this.root;
  }

  pathOf(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async putDirectory(key: string, localDir: string): Promise<void> {
    const target = this.pathOf(key);
    // Staged in .tmp under a name of this process and host, so a sweep never takes a live writer's files.
    const staging = temporaryNameFor(path.join(this.root, '.tmp', path.basename(target)));
    await fs.mkdir(staging, { recursive: true });
    try {
      for (const name of await filesOf(localDir)) {
        await fs.copyFile(path.join(localDir, name), path.join(staging, name));
        fsyncFile(path.join(staging, name));
      }
      fsyncDirectory(staging);
      await fs.mkdir(path.dirname(target), { recursive: true });
      try {
        await fs.rename(staging, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // Written before (a retry after a lost reply): the key's content never changes, so that copy stands.
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      }
      fsyncDirectory(path.dirname(target));
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

  async getDirectory(key: string, localDir: string): Promise<void> {
    const source = this.pathOf(key);
    await fs.mkdir(localDir, { recursive: true });
    for (const name of await filesOf(source)) await fs.copyFile(path.join(source, name), path.join(localDir, name));
  }

  async localDirectory(key: string): Promise<string> {
    return this.pathOf(key);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await fs.rm(this.pathOf(prefix), { recursive: true, force: true });
  }

  async check(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    await fs.access(this.root, fs.constants.W_OK);
  }

  /** Removes what writers of this host that were killed left staged. */
  sweep(): void {
    sweepTemporaryFiles(path.join(this.root, '.tmp'));
  }
}

export interface BucketOptions {
  /** Another Cloud Storage endpoint than Google's (an emulator, or another Attune). */
  endpoint?: string;
  /** Sent as x-goog-api-key (Attune's object store takes its API keys). */
  apiKey?: string;
  /** Where bucket artifacts are cached locally for serving. */
  cacheDir: string;
}

/** gs://bucket/prefix: one object per file, named <prefix>/<key>/<file>. */
export class BucketArtifacts implements ArtifactStore {
  private readonly storage: Storage;
  private readonly bucketName: string;
  private readonly prefix: string;

  constructor(
    uri: string,
    private readonly options: BucketOptions,
  ) {
    const match = /^gs:\/\/([a-z0-9][a-z0-9._-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
    if (!match) throw new Error(`--storage takes a directory or gs://BUCKET[/PREFIX], not '${uri}'`);
    this.bucketName = match[1];
    this.prefix = (match[2] ?? '').replace(/\/+$/, '');
    const storageOptions: StorageOptions = { retryOptions: { autoRetry: true, maxRetries: 3 } };
    if (options.endpoint) storageOptions.apiEndpoint = options.endpoint;
    this.storage = new Storage(storageOptions);
    if (options.apiKey) {
      const apiKey = options.apiKey;
      this.storage.interceptors.push({
        request: (request) => {
          request.headers = { ...request.headers, 'x-goog-api-key': apiKey };
          return request as Parameters<(typeof this.storage.interceptors)[number]['request']>[0] & { uri: string };
        },
      });
    }
  }

  get description(): string {
    return `gs://${this.bucketName}${this.prefix ? `/${this.prefix}` : ''}${this.options.endpoint ? ` at ${this.options.endpoint}` : ''}`;
  }

  private objectName(key: string, file?: string): string {
    checkKey(key);
    return [this.prefix, key, file].filter(Boolean).join('/');
  }

  private get bucket() {
    return this.storage.bucket(this.bucketName);
  }

  async putDirectory(key: string, localDir: string): Promise<void> {
    // Each object is finalized whole; the set is complete when the database names the key.
    for (const name of await filesOf(localDir)) {
      await this.bucket.upload(path.join(localDir, name), { destination: this.objectName(key, name), resumable: false });
    }
  }

  private async filesUnder(key: string) {
    const prefix = this.objectName(key) + '/';
    const [files] = await this.bucket.getFiles({ prefix });
    return files.filter((f) => !f.name.slice(prefix.length).includes('/')).map((f) => ({ file: f, name: f.name.slice(prefix.length) }));
  }

  async getDirectory(key: string, localDir: string): Promise<void> {
    const files = await this.filesUnder(key);
    if (files.length === 0) throw new Error(`no artifact ${key} in ${this.description}`);
    await fs.mkdir(localDir, { recursive: true });
    for (const { file, name } of files) await file.download({ destination: path.join(localDir, name) });
  }

  async localDirectory(key: string): Promise<string> {
    checkKey(key);
    const cached = path.join(this.options.cacheDir, ...key.split('/'));
    try {
      await fs.access(cached);
      return cached; // keys never change, so a cached copy never goes stale
    } catch {
      // not cached yet
    }
    const staging = `${cached}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      await this.getDirectory(key, staging);
      await fs.mkdir(path.dirname(cached), { recursive: true });
      await fs.rename(staging, cached).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error; // another request cached it first
      });
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
    return cached;
  }

  async deletePrefix(prefix: string): Promise<void> {
    await this.bucket.deleteFiles({ prefix: this.objectName(prefix) + '/', force: true });
    await fs.rm(path.join(this.options.cacheDir, ...prefix.split('/')), { recursive: true, force: true });
  }

  /** The object written at start, under the prefix but outside every artifact key. */
  private get healthObject(): string {
    return [this.prefix, 'health', 'attune'].filter(Boolean).join('/');
  }

  async check(): Promise<void> {
    await this.bucket.getFiles({ prefix: this.healthObject, maxResults: 1, autoPaginate: false });
  }

  /** A small object under the prefix, written at start: the bucket exists and takes writes. */
  async touch(): Promise<void> {
    await this.bucket.file(this.healthObject).save(`written by attune at ${new Date().toISOString()}\n`, { resumable: false });
  }
}

export interface StorageSettings {
  /** --storage: a directory or gs://bucket/prefix; default: the data dir. */
  location?: string;
  endpoint?: string;
  apiKey?: string;
  dataDir: string;
}

/** Opens the storage --storage names and checks it can be written; the error says which it is. */
export async function openArtifactStore({ location, endpoint, apiKey, dataDir }: StorageSettings): Promise<ArtifactStore> {
  if (location?.startsWith('gs://')) {
    const store = new BucketArtifacts(location, { endpoint, apiKey, cacheDir: path.join(dataDir, 'cache') });
    try {
      await store.touch();
    } catch (error) {
      throw new Error(`cannot write to the storage ${store.description}: ${(error as Error).message}`);
    }
    return store;
  }
  if (location && /^[a-z][a-z0-9+.-]*:\/\//i.test(location)) throw new Error(`--storage takes a directory or gs://BUCKET[/PREFIX], not '${location}'`);
  const store = new DirectoryArtifacts(path.resolve(location ?? dataDir));
  try {
    await store.check();
  } catch (error) {
    throw new Error(`cannot write to the storage directory ${store.root}: ${(error as Error).message}`);
  }
  store.sweep();
  return store;
}
