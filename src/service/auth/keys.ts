// API keys: each belongs to one project. Only a hash is stored; the key itself is shown once, at creation.
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../store/database.js';
import { now } from '../tuning/tuned-model.js';

/** Project ids as Google Cloud allows them: 6–30 chars, lowercase letters, digits, hyphens, a letter first. */
export const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

const hash = (key: string) => createHash('sha256').update(key).digest('hex');

export class KeyStore {
  constructor(private readonly db: Db) {}

  create(project: string, label?: string): string {
    if (!projectIdPattern.test(project)) {
      throw new Error(`project id '${project}' must be 6–30 lowercase letters, digits or hyphens, starting with a letter`);
    }
    const key = `atk_${randomBytes(30).toString('base64url')}`;
    this.db
      .prepare('INSERT INTO api_keys (key_hash, project, label, create_time) VALUES (?, ?, ?, ?)')
      .run(hash(key), project, label ?? null, now());
    return key;
  }

  /** The key's project, or undefined for an unknown key. */
  projectOf(key: string): string | undefined {
    const row = this.db.prepare('SELECT project FROM api_keys WHERE key_hash = ?').get(hash(key)) as { project: string } | undefined;
    return row?.project;
  }

  hasProject(project: string): boolean {
    return this.db.prepare('SELECT 1 FROM api_keys WHERE project = ? LIMIT 1').get(project) !== undefined;
  }

  list(): { project: string; label: string | null; createTime: string }[] {
    return this.db.prepare('SELECT project, label, create_time AS createTime FROM api_keys ORDER BY create_time').all() as {
      project: string;
      label: string | null;
      createTime: string;
    }[];
  }
}
