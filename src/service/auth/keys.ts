// API keys: each belongs to one project. Only a hash is stored; the key itself is shown once, at creation.
// A key may expire, and may be revoked; either way it stops working at once (every request looks it up).
// Its id, the first characters of its hash, names it in `attune keys list` and `keys revoke` without
// revealing it.
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../store/database.js';
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

interface KeyRow {
  keyHash: string;
  project: string;
  label: string | null;
  createTime: string;
  expireTime: string | null;
  revokeTime: string | null;
}

const columns = 'key_hash AS keyHash, project, label, create_time AS createTime, expire_time AS expireTime, revoke_time AS revokeTime';

const infoOf = ({ keyHash, ...rest }: KeyRow): KeyInfo => ({ id: keyHash.slice(0, keyIdChars), ...rest });

export class KeyStore {
  constructor(private readonly db: Db) {}

  /** A new key for `project`; `expireTime` (RFC 3339, in the future) makes it stop working then. */
  create(project: string, { label, expireTime }: { label?: string; expireTime?: string } = {}): string {
    if (!projectIdPattern.test(project)) {
      throw new Error(`project id '${project}' must be 6–30 lowercase letters, digits or hyphens, starting with a letter`);
    }
    if (expireTime !== undefined && !(Date.parse(expireTime) > Date.now())) {
      throw new Error(`the expiry ${expireTime} must be a time in the future`);
    }
    const key = `atk_${randomBytes(30).toString('base64url')}`;
    this.db
      .prepare('INSERT INTO api_keys (key_hash, project, label, create_time, expire_time) VALUES (?, ?, ?, ?, ?)')
      .run(hash(key), project, label ?? null, now(), expireTime ? new Date(expireTime).toISOString() : null);
    return key;
  }

  /** The key's project, or why it does not name one. */
  check(key: string): KeyCheck {
    const row = this.db.prepare(`SELECT ${columns} FROM api_keys WHERE key_hash = ?`).get(hash(key)) as KeyRow | undefined;
    if (!row) return { problem: 'unknown' };
    if (row.revokeTime) return { problem: 'revoked' };
    if (row.expireTime && Date.parse(row.expireTime) <= Date.now()) return { problem: 'expired' };
    return { project: row.project };
  }

  /** The key's project while it is valid, else undefined. */
  projectOf(key: string): string | undefined {
    const checked = this.check(key);
    return 'project' in checked ? checked.project : undefined;
  }

  /** Whether the project was ever issued a key (revoked and expired ones count: its data stays its own). */
  hasProject(project: string): boolean {
    return this.db.prepare('SELECT 1 FROM api_keys WHERE project = ? LIMIT 1').get(project) !== undefined;
  }

  list(): KeyInfo[] {
    return (this.db.prepare(`SELECT ${columns} FROM api_keys ORDER BY create_time`).all() as KeyRow[]).map(infoOf);
  }

  /**
   * Revokes the key given in full, or named by its id (any unambiguous prefix of at least six characters of
   * it). Returns the revoked key's info; throws a plain Error naming the problem.
   */
  revoke(keyOrId: string): KeyInfo {
    const byKey = this.db.prepare(`SELECT ${columns} FROM api_keys WHERE key_hash = ?`).get(hash(keyOrId)) as KeyRow | undefined;
    let row = byKey;
    if (!row) {
      const id = keyOrId.toLowerCase();
      if (!/^[0-9a-f]+$/.test(id) || id.length < minIdChars) {
        throw new Error(`no key is '${keyOrId}': give the key itself or its id from \`attune keys list\` (at least ${minIdChars} characters)`);
      }
      const rows = this.db.prepare(`SELECT ${columns} FROM api_keys WHERE substr(key_hash, 1, ?) = ?`).all(id.length, id) as KeyRow[];
      if (rows.length === 0) throw new Error(`no key has the id ${keyOrId}`);
      if (rows.length > 1) throw new Error(`${rows.length} keys have ids starting ${keyOrId}: give more of the id`);
      row = rows[0]!;
    }
    if (!row.revokeTime) {
      row.revokeTime = now();
      this.db.prepare('UPDATE api_keys SET revoke_time = ? WHERE key_hash = ?').run(row.revokeTime, row.keyHash);
    }
    return infoOf(row);
  }
}
