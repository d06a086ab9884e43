// API keys: each belongs to one project. Only a hash is stored; the key itself is shown once, at creation.
// A key may expire, and may be revoked; either way it stops working at once (every request looks it up, in
// the database every server shares). Its id, the first characters of its hash, names it in
// `attune keys list` and `keys revoke` without revealing it.
import { createHash, randomBytes } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { ApiKeyTable, Schema } from '../store/schema.js';
import { now } from '../tuning/tuned-model.js';

/** Project ids as Google Cloud allows them: 6–30 chars, lowercase letters, digits, hyphens, a letter first. */
export const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

/** Characters of the hash `keys list` shows as a key's id; revoke takes any unambiguous prefix of at least minIdChars. */
export const keyIdChars = 12;
const minIdChars = 6;

const hash = (key: string) => createHash('sha256').update(key).digest('hex');

export type KeyCheck = { project: string } | { problem: 'unknown' | 'revoked' | 'expired' };

export interface KeyInfo {
  id: string;
  project: string;
  label: string | null;
  createTime: string;
  expireTime: string | null;
  revokeTime: string | null;
}

const infoOf = (row: Selectable<ApiKeyTable>): KeyInfo => ({
  id: row.key_hash.slice(0, keyIdChars),
  project: row.project,
  label: row.label,
  createTime: row.create_time,
  expireTime: row.expire_time,
  revokeTime: row.revoke_time,
});

export class KeyStore {
  constructor(private readonly db: Kysely<Schema>) {}

  /** A new key for `project`; `expireTime` (RFC 3339, in the future) makes it stop working then. */
  async create(project: string, { label, expireTime }: { label?: string; expireTime?: string } = {}): Promise<string> {
    if (!projectIdPattern.test(project)) {
      throw new Error(`project id '${project}' must be 6–30 lowercase letters, digits or hyphens, starting with a letter`);
    }
    if (expireTime !== undefined && !(Date.parse(expireTime) > Date.now())) {
      throw new Error(`the expiry ${expireTime} must be a time in the future`);
    }
    const key = `atk_${randomBytes(30).toString('base64url')}`;
    await this.db
      .insertInto('api_keys')
      .values({ key_hash: hash(key), project, label: label ?? null, create_time: now(), expire_time: expireTime ? new Date(expireTime).toISOString() : null, revoke_time: null })
      .execute();
    return key;
  }

  /** The key's project, or why it does not name one. */
  async check(key: string): Promise<KeyCheck> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash(key)).executeTakeFirst();
    if (!row) return { problem: 'unknown' };
    if (row.revoke_time) return { problem: 'revoked' };
    if (row.expire_time && Date.parse(row.expire_time) <= Date.now()) return { problem: 'expired' };
    return { project: row.project };
  }

  /** The key's project while it is valid, else undefined. */
  async projectOf(key: string): Promise<string | undefined> {
    const checked = await this.check(key);
    return 'project' in checked ? checked.project : undefined;
  }

  /** Whether the project was ever issued a key (revoked and expired ones count: its data stays its own). */
  async hasProject(project: string): Promise<boolean> {
    return (await this.db.selectFrom('api_keys').select('project').where('project', '=', project).limit(1).executeTakeFirst()) !== undefined;
  }

  /** Every project that was ever issued a key. */
  async projects(): Promise<string[]> {
    return (await this.db.selectFrom('api_keys').select('project').distinct().execute()).map((r) => r.project);
  }

  async list(): Promise<KeyInfo[]> {
    return (await this.db.selectFrom('api_keys').selectAll().orderBy('create_time').execute()).map(infoOf);
  }

  /**
   * Revokes the key given in full, or named by its id (any unambiguous prefix of at least six characters of
   * it). Returns the revoked key's info; throws a plain Error naming the problem.
   */
  async revoke(keyOrId: string): Promise<KeyInfo> {
    let row = await this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash(keyOrId)).executeTakeFirst();
    if (!row) {
      const id = keyOrId.toLowerCase();
      if (!/^[0-9a-f]+$/.test(id) || id.length < minIdChars) {
        throw new Error(`no key is '${keyOrId}': give the key itself or its id from \`attune keys list\` (at least ${minIdChars} characters)`);
      }
      const rows = await this.db.selectFrom('api_keys').selectAll().where(sql`substr(key_hash, 1, ${id.length})`, '=', id).execute();
      if (rows.length === 0) throw new Error(`no key has the id ${keyOrId}`);
      if (rows.length > 1) throw new Error(`${rows.length} keys have ids starting ${keyOrId}: give more of the id`);
      row = rows[0]!;
    }
    if (!row.revoke_time) {
      row = { ...row, revoke_time: now() };
      await this.db.updateTable('api_keys').set({ revoke_time: row.revoke_time }).where('key_hash', '=', row.key_hash).execute();
    }
    return infoOf(row);
  }
}
