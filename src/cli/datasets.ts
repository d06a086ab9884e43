// attune datasets upload: copies a local file into the service's object store (no server needed) and
// prints the gs:// URI that tuning requests can name. It acts for one project, which owns the bucket (a
// bucket another project created is refused), as an upload through the API would.
import { createReadStream, statSync } from 'node:fs';
import path from 'node:path';
import { ObjectStore, gsUri } from '../service/storage/object-store.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';
import { stateConfig } from './deployment.js';
import { serviceDefaults } from '../service/config.js';

export const defaultDatasetBucket = 'attune-datasets';

export const datasetsUsage = `attune datasets upload FILE [--project P] [--bucket B] [--name N] [--data-dir DIR] [--storage DIR]   stores FILE, prints its gs:// URI
  --project   the project the object belongs to (default ${serviceDefaults.keylessProject}, the keyless project); only it can read it
  --bucket    the bucket (default ${defaultDatasetBucket}; created for the project on first upload)
  --storage   the storage directory the servers share (default: the data dir)
  --name      the object name (default: FILE's base name; may contain '/')
  --database  accepted as by every command, and not needed: the object and its bucket's owner live in the storage`;

/** Said when --database is given: a script passing the same state options to every command still works. */
export const databaseNotNeeded = 'attune datasets: --database is not used: an uploaded dataset and its bucket\'s owner are kept in the storage (--storage, or the data dir), not in the database';

const contentTypes: Record<string, string> = {
  '.jsonl': 'application/jsonl',
  '.json': 'application/json',
  '.csv': 'text/csv',
  '.txt': 'text/plain',
};

export async function datasetsCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values, positionals } = parseOptions(
    rest,
    { project: { type: 'string' }, bucket: { type: 'string' }, name: { type: 'string' }, 'data-dir': { type: 'string' }, storage: { type: 'string' }, database: { type: 'string' } },
    { positionals: true },
  );
  if (action !== 'upload') throw new UsageError(`unknown action '${action ?? ''}'; use upload`);
  if (positionals.length !== 1) throw new UsageError('upload takes exactly one FILE');
  const file = positionals[0];
  if (values.database !== undefined) console.error(databaseNotNeeded);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    // reported below
  }
  if (!isFile) throw new Error(`${file}: no such file`);
  const bucket = values.bucket ?? defaultDatasetBucket;
  const name = values.name ?? path.basename(file);
  const { dataDir, storage } = stateConfig(values);
  if (storage?.startsWith('gs://')) throw new UsageError('datasets upload writes to a storage directory; with gs:// storage, upload through the server\'s Cloud Storage API');
  const store = new ObjectStore(storage ? path.resolve(storage) : dataDir);
  const project = values.project ?? serviceDefaults.keylessProject;
  await store.put(project, bucket, name, createReadStream(file), { contentType: contentTypes[path.extname(file).toLowerCase()] });
  console.log(gsUri(bucket, name));
}
