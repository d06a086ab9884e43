// attune keys: issues API keys (one project each) and lists them.
import { openDatabase } from '../service/store/database.js';
import { KeyStore } from '../service/auth/keys.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';
import { dataDirOption } from './serve.js';

export const keysUsage = `attune keys create --project ID [--label TEXT] [--data-dir DIR]   prints a new API key
attune keys list [--data-dir DIR]`;

export async function keysCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values } = parseOptions(rest, { project: { type: 'string' }, label: { type: 'string' }, 'data-dir': { type: 'string' } });
  const db = openDatabase(dataDirOption(values['data-dir']));
  try {
    const keys = new KeyStore(db);
    if (action === 'create') {
      if (!values.project) throw new UsageError('--project ID is required');
      console.log(keys.create(values.project, values.label));
    } else if (action === 'list') {
      for (const k of keys.list()) console.log(`${k.project}\t${k.createTime}\t${k.label ?? ''}`);
    } else {
      throw new UsageError(`unknown action '${action ?? ''}'; use create or list`);
    }
  } finally {
    db.close();
  }
}
