// A tuned model's grants (the Gemini API's Permission resources, less the owner, who is the model's project).
// Rows map to grants here and only here.
import type { Kysely } from 'kysely';
import type { Schema } from './schema.js';
import { atomically } from './transactions.js';

export type GrantedRole = 'WRITER' | 'READER';
export type GranteeType = 'USER' | 'GROUP' | 'EVERYONE';

/** The grantee column's value for everyone (no project id contains '*'). */
export const everyone = '*';

export interface Grant {
  tunedModelId: string;
  /** A project id, or `everyone`. */
  grantee: string;
  granteeType: GranteeType;
  role: GrantedRole;
  createTime: string;
}

export class PermissionStore {
  constructor(private readonly db: Kysely<Schema>) {}

  in(trx: Kysely<Schema>): PermissionStore {
    return new PermissionStore(trx);
  }

  /** A model's grants, oldest first. */
  async grants(tunedModelId: string): Promise<Grant[]> {
    const rows = await this.db.selectFrom('permissions').selectAll().where('tuned_model_id', '=', tunedModelId).orderBy('create_time').orderBy('grantee').execute();
    return rows.map((r) => ({
      tunedModelId: r.tuned_model_id,
      grantee: r.grantee,
      granteeType: r.grantee_type as GranteeType,
      role: r.role as GrantedRole,
      createTime: r.create_time,
    }));
  }

  async insert(grant: Grant): Promise<void> {
    const { tunedModelId, grantee, granteeType, role, createTime } = grant;
    await this.db.insertInto('permissions').values({ tuned_model_id: tunedModelId, grantee, grantee_type: granteeType, role, create_time: createTime }).execute();
  }

  async setRole(tunedModelId: string, grantee: string, role: GrantedRole): Promise<void> {
    await this.db.updateTable('permissions').set({ role }).where('tuned_model_id', '=', tunedModelId).where('grantee', '=', grantee).execute();
  }

  async delete(tunedModelId: string, grantee: string): Promise<void> {
    await this.db.deleteFrom('permissions').where('tuned_model_id', '=', tunedModelId).where('grantee', '=', grantee).execute();
  }

  /**
   * Makes `to` the model's owner, in one transaction: the model and its job move to `to`'s project, `to`'s grant
   * (now implied) goes, and `from` keeps the model as a WRITER (Google's "the current owner will be downgraded to
   * writer role").
   */
  async transfer(tunedModelId: string, from: string, to: string, time: string): Promise<void> {
    await atomically(this.db, async (trx) => {
      await trx.updateTable('tuned_models').set({ project: to, update_time: time }).where('id', '=', tunedModelId).execute();
      await trx.updateTable('jobs').set({ project: to }).where('tuned_model_id', '=', tunedModelId).execute();
      await trx.deleteFrom('permissions').where('tuned_model_id', '=', tunedModelId).where('grantee', 'in', [to, from]).execute();
      await trx
        .insertInto('permissions')
        .values({ tuned_model_id: tunedModelId, grantee: from, grantee_type: 'USER', role: 'WRITER', create_time: time })
        .execute();
    });
  }
}
