// attune keys: issues API keys (one project each) and lists them.
import { parseArgs } from 'node:util';
import { Database, databaseTarget } from '../service/store/database.js';
import { KeyStore } from '../service/auth/keys.js';
import { UsageError } from './usage-error.js';
import { stateConfig } from './deployment.js';

export const keysUsage = `attune keys create --project ID [--label TEXT] [--data-dir DIR] [--database DB]   prints a new API key
attune keys list [--data-dir DIR] [--database DB]`;

export async function keysCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { project: { type: 'string' }, label: { type: 'string' }, 'data-dir': { type: 'string' }, database: { type: 'string' } },
  });
  if (action !== 'create' && action !== 'list') throw new UsageError(`unknown action '${action ?? ''}'; use create or list`);
  if (action === 'create' && !values.project) throw new UsageError('--project ID is required');
  const { database: option, dataDir } = stateConfig(values);
  let target;
  try {
    target = databaseTarget(option, dataDir);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const database = await Database.open(target);
  try {
    const keys = new KeyStore(database.db);
    if (action === 'create') {
      console.log(await keys.create(values.project!, values.label));
    } else {
      for (const k of await keys.list()) console.log(`${k.project}\t${k.createTime}\t${k.label ?? ''}`);
    }
  } finally {
    await database.close();
  }
}
