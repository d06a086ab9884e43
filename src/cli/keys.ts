// attune keys: issues API keys (one project each, optionally expiring), lists them by id, revokes them.
import { Database, databaseTarget } from '../service/store/database.js';
import { KeyStore, type KeyInfo } from '../service/auth/keys.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';
import { stateConfig } from './deployment.js';

export const keysUsage = `attune keys create --project ID [--label TEXT] [--expires-in 30d | --expires RFC3339] [--data-dir DIR | --database DB]   prints a new API key
attune keys list [--data-dir DIR | --database DB]          id, project, created, expires, state, label
attune keys revoke KEY|ID [--data-dir DIR | --database DB] the key itself, or its id (or a prefix of it) from keys list
  --expires-in   a duration: a number and s, m, h, d or w (90d, 12h)
  --database     postgres://… shared by the servers, or a SQLite file (default: attune.sqlite in the data dir; ATTUNE_DATABASE)`;

const units: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d` → the RFC 3339 time that far from now. */
export function expiryIn(duration: string, from = Date.now()): string {
  const match = /^(\d+)\s*([smhdw])$/.exec(duration.trim());
  if (!match || Number(match[1]) <= 0) throw new UsageError(`--expires-in takes a positive duration like 30d, 12h or 90m, not '${duration}'`);
  return new Date(from + Number(match[1]) * units[match[2]!]!).toISOString();
}

function expiryOption(expiresIn: string | undefined, expires: string | undefined): string | undefined {
  if (expiresIn !== undefined && expires !== undefined) throw new UsageError('give --expires-in or --expires, not both');
  if (expiresIn !== undefined) return expiryIn(expiresIn);
  if (expires === undefined) return undefined;
  // RFC 3339: a date, a time and an offset (Z or ±hh:mm).
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(expires) || Number.isNaN(Date.parse(expires))) {
    throw new UsageError(`--expires takes an RFC 3339 time like 2026-12-31T23:59:59Z, not '${expires}'`);
  }
  return expires;
}

function stateOf(key: KeyInfo, at = Date.now()): string {
  if (key.revokeTime) return `revoked ${key.revokeTime}`;
  if (key.expireTime && Date.parse(key.expireTime) <= at) return 'expired';
  return 'active';
}

export async function keysCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values, positionals } = parseOptions(
    rest,
    {
      project: { type: 'string' }, label: { type: 'string' }, 'data-dir': { type: 'string' }, database: { type: 'string' },
      'expires-in': { type: 'string' }, expires: { type: 'string' },
    },
    { positionals: true },
  );
  if (action !== 'create' && action !== 'list' && action !== 'revoke') throw new UsageError(`unknown action '${action ?? ''}'; use create, list or revoke`);
  if (action !== 'revoke' && positionals.length) throw new UsageError(`keys ${action} takes no arguments: ${positionals.join(' ')}`);
  if (action === 'create' && !values.project) throw new UsageError('--project ID is required');
  if (action === 'revoke' && positionals.length !== 1) throw new UsageError('revoke takes one key or key id');
  const expireTime = action === 'create' ? expiryOption(values['expires-in'], values.expires) : undefined;
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
      console.log(await keys.create(values.project!, { label: values.label, expireTime }));
    } else if (action === 'list') {
      for (const k of await keys.list()) {
        console.log([k.id, k.project, k.createTime, k.expireTime ?? 'never', stateOf(k), k.label ?? ''].join('\t'));
      }
    } else {
      const revoked = await keys.revoke(positionals[0]!);
      console.log(`revoked ${revoked.id} (project ${revoked.project}${revoked.label ? `, ${revoked.label}` : ''})`);
    }
  } finally {
    await database.close();
  }
}
