// API keys: each belongs to one project. Only a hash is stored; the key itself is shown once, at creation.
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Schema } from '../store/schema.js';
import { now } from '../tuning/tuned-model.js';

/** Project ids as Google Cloud allows them: 6–30 chars, lowercase letters, digits, hyphens, a letter first. */
export const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

const hash = (key: string) => createHash('sha256').update(key).digest('hex');

export class KeyStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async create(project: string, label?: string): Promise<string> {
    if (!projectIdPattern.test(project)) {
      throw new Error(`project id '${project}' must be 6–30 lowercase letters, digits or hyphens, starting with a letter`);
    }
    const key = `atk_${randomBytes(30).toString('base64url')}`;
    await this.db.insertInto('api_keys').values({ key_hash: hash(key), project, label: label ?? null, create_time: now() }).execute();
    return key;
  }

  /** The key's project, or undefined for an unknown key. */
  async projectOf(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('api_keys').select('project').where('key_hash', '=', hash(key)).executeTakeFirst();
    return row?.project;
  }

  async hasProject(project: string): Promise<boolean> {
    return (await this.db.selectFrom('api_keys').select('project').where('project', '=', project).limit(1).executeTakeFirst()) !== undefined;
  }

  async list(): Promise<{ project: string; label: string | null; createTime: string }[]> {
    return this.db.selectFrom('api_keys').select(['project', 'label', 'create_time as createTime']).orderBy('create_time').execute();
  }
}
