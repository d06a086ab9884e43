// Tuned models, their datasets and their metrics. Rows map to domain objects here and only here.
import type { Kysely, Selectable } from 'kysely';
import type { Example } from '../../engine/data/examples.js';
import type { StepMetric, TunedModel } from '../tuning/tuned-model.js';
import type { TunedCheckpoint } from '../tuning/checkpoints.js';
import type { Dialect } from './database.js';
import type { Schema, TunedModelTable } from './schema.js';
import { atomically } from './transactions.js';

type Row = Selectable<TunedModelTable>;

/** A row as read: the job queue's cancel flag comes along. */
type ReadRow = Row & { cancel_requested: number | null };

const fromRow = (r: ReadRow): TunedModel => ({
  id: r.id,
  jobNumber: r.job_number,
  project: r.project,
  location: r.location,
  labels: JSON.parse(r.labels),
  apiVersion: r.api_version,
  displayName: r.display_name,
  description: r.description,
  baseModel: r.base_model,
  baseDir: r.base_dir,
  sourceTunedModel: r.source_tuned_model ?? undefined,
  preTunedModel: r.pre_tuned_model ?? undefined,
  sourceAdapterKey: r.source_adapter_key ?? undefined,
  tuningMethod: r.tuning_method as TunedModel['tuningMethod'],
  modelNumber: r.model_number ?? r.job_number,
  modelVersion: r.model_version,
  state: r.state as TunedModel['state'],
  createTime: r.create_time,
  updateTime: r.update_time,
  startTime: r.start_time ?? undefined,
  completeTime: r.complete_time ?? undefined,
  temperature: r.temperature ?? undefined,
  topP: r.top_p ?? undefined,
  topK: r.top_k ?? undefined,
  hyperparameters: JSON.parse(r.hyperparameters),
  trainingDatasetUri: r.training_dataset_uri ?? undefined,
  validationDatasetUri: r.validation_dataset_uri ?? undefined,
  dataStats: r.data_stats === null ? undefined : JSON.parse(r.data_stats),
  totalSteps: r.total_steps,
  completedSteps: r.completed_steps,
  error: r.error_code === null ? undefined : { code: r.error_code, message: r.error_message ?? '' },
  operationId: r.operation_id,
  operationDone: r.operation_done === 1,
  adapterKey: r.adapter_key ?? undefined,
  cancelRequested: r.cancel_requested === 1 && r.operation_done !== 1,
  defaultCheckpointId: r.default_checkpoint_id ?? undefined,
  exportLastCheckpointOnly: r.export_last_checkpoint_only === 1 || undefined,
  customBaseModel: r.custom_base_model ?? undefined,
  outputUri: r.output_uri ?? undefined,
});

/** The columns of the fields a patch names (undefined clears a nullable column). */
function toColumns(m: Partial<TunedModel>): Partial<Row> {
  const row: Partial<Row> = {};
  const set = <K extends keyof TunedModel>(field: K, write: (value: TunedModel[K]) => Partial<Row>) => {
    if (field in m) Object.assign(row, write(m[field] as TunedModel[K]));
  };
  set('id', (v) => ({ id: v }));
  set('jobNumber', (v) => ({ job_number: v }));
  set('project', (v) => ({ project: v }));
  set('location', (v) => ({ location: v }));
  set('labels', (v) => ({ labels: JSON.stringify(v) }));
  set('apiVersion', (v) => ({ api_version: v }));
  set('displayName', (v) => ({ display_name: v }));
  set('description', (v) => ({ description: v }));
  set('baseModel', (v) => ({ base_model: v }));
  set('baseDir', (v) => ({ base_dir: v }));
  set('sourceTunedModel', (v) => ({ source_tuned_model: v ?? null }));
  set('preTunedModel', (v) => ({ pre_tuned_model: v ?? null }));
  set('sourceAdapterKey', (v) => ({ source_adapter_key: v ?? null }));
  set('tuningMethod', (v) => ({ tuning_method: v }));
  set('modelNumber', (v) => ({ model_number: v }));
  set('modelVersion', (v) => ({ model_version: v }));
  set('state', (v) => ({ state: v }));
  set('createTime', (v) => ({ create_time: v }));
  set('updateTime', (v) => ({ update_time: v }));
  set('startTime', (v) => ({ start_time: v ?? null }));
  set('completeTime', (v) => ({ complete_time: v ?? null }));
  set('temperature', (v) => ({ temperature: v ?? null }));
  set('topP', (v) => ({ top_p: v ?? null }));
  set('topK', (v) => ({ top_k: v ?? null }));
  set('hyperparameters', (v) => ({ hyperparameters: JSON.stringify(v) }));
  set('trainingDatasetUri', (v) => ({ training_dataset_uri: v ?? null }));
  set('validationDatasetUri', (v) => ({ validation_dataset_uri: v ?? null }));
  set('dataStats', (v) => ({ data_stats: v ? JSON.stringify(v) : null }));
  set('totalSteps', (v) => ({ total_steps: v }));
  set('completedSteps', (v) => ({ completed_steps: v }));
  set('error', (v) => ({ error_code: v?.code ?? null, error_message: v?.message ?? null }));
  set('operationId', (v) => ({ operation_id: v }));
  set('operationDone', (v) => ({ operation_done: v ? 1 : 0 }));
  set('adapterKey', (v) => ({ adapter_key: v ?? null }));
  set('defaultCheckpointId', (v) => ({ default_checkpoint_id: v ?? null }));
  set('exportLastCheckpointOnly', (v) => ({ export_last_checkpoint_only: v ? 1 : 0 }));
  set('customBaseModel', (v) => ({ custom_base_model: v ?? null }));
  set('outputUri', (v) => ({ output_uri: v ?? null }));
  return row;
}

const metricOf = ({ reward_margin, ...m }: Omit<StepMetric, 'rewardMargin' | 'kind'> & { kind: string; reward_margin: number | null }): StepMetric =>
  ({ ...m, kind: m.kind as StepMetric['kind'], ...(reward_margin === null ? {} : { rewardMargin: reward_margin }) });

export interface ListPosition {
  createTime: string;
  id: string;
}

/**
 * Which models a Gemini list shows a project, one condition or several (all must hold): `owned` its own;
 * `readable` its own and those granted to it; `writable` its own and those it may update; `everyone` those
 * granted to everyone, whoever owns them.
 */
export type ListScope = { project: string; show: ('owned' | 'readable' | 'writable' | 'everyone')[] };

export class TunedModelStore {
  constructor(
    private readonly db: Kysely<Schema>,
    readonly dialect: Dialect,
  ) {}

  /** The same store, reading and writing inside a transaction. */
  in(trx: Kysely<Schema>): TunedModelStore {
    return new TunedModelStore(trx, this.dialect);
  }

  private selectModels(db = this.db) {
    return db
      .selectFrom('tuned_models as m')
      .leftJoin('jobs as j', 'j.tuned_model_id', 'm.id')
      .selectAll('m')
      .select('j.cancel_requested');
  }

  /** The datasets come as JSON arrays of examples (the CPU pool serialised them off the event loop). */
  async insert(model: TunedModel, training: string, validation?: string): Promise<void> {
    const { cancelRequested: _, ...fields } = model;
    await atomically(this.db, async (trx) => {
      await trx.insertInto('tuned_models').values(toColumns(fields) as Row).execute();
      await trx.insertInto('datasets').values({ tuned_model_id: model.id, role: 'training', examples: training }).execute();
      if (validation) await trx.insertInto('datasets').values({ tuned_model_id: model.id, role: 'validation', examples: validation }).execute();
    });
  }

  /** Writes the fields the patch names, and only those (other writers may be changing the rest). */
  async update(id: string, patch: Partial<Omit<TunedModel, 'id' | 'cancelRequested'>>): Promise<void> {
    const columns = toColumns(patch);
    if (Object.keys(columns).length === 0) return;
    await this.db.updateTable('tuned_models').set(columns).where('id', '=', id).execute();
  }

  /** By Gemini id or by Vertex number (the two never look alike: ids start with a letter). */
  async get(idOrNumber: string): Promise<TunedModel | undefined> {
    const row = await this.selectModels()
      .where((eb) => eb.or([eb('m.id', '=', idOrNumber), eb('m.job_number', '=', idOrNumber)]))
      .executeTakeFirst();
    return row && fromRow(row);
  }

  /** How many tuned models a project holds. */
  async count(project: string): Promise<number> {
    const row = await this.db.selectFrom('tuned_models').select((eb) => eb.fn.countAll<number>().as('n')).where('project', '=', project).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Every project that holds tuned models, with how many, by name. */
  async projects(): Promise<{ project: string; count: number }[]> {
    const rows = await this.db
      .selectFrom('tuned_models')
      .select(['project', (eb) => eb.fn.countAll<number | string>().as('count')])
      .groupBy('project')
      .orderBy('project')
      .execute();
    return rows.map((r) => ({ project: r.project, count: Number(r.count) }));
  }

  async exists(id: string): Promise<boolean> {
    return (await this.db.selectFrom('tuned_models').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
  }

  /** All of a project's models, newest first (Vertex lists filter on derived states, so they page in memory). */
  async all(project: string): Promise<TunedModel[]> {
    const rows = await this.selectModels().where('m.project', '=', project).orderBy('m.create_time', 'desc').orderBy('m.id', 'desc').execute();
    return rows.map(fromRow);
  }

  /**
   * A page of a project's models, oldest first, after a position (keyset paging, so models created or
   * deleted between pages neither repeat nor vanish). `text` filters on display name and description.
   */
  async list(scope: ListScope, after: ListPosition | undefined, limit: number, text?: string): Promise<TunedModel[]> {
    const like = `%${(text ?? '').replace(/[%_]/g, '')}%`;
    // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE is the same match.
    const op = this.dialect === 'postgres' ? 'ilike' : 'like';
    const { createTime = '', id = '' } = after ?? {};
    const { project } = scope;
    const rows = await this.selectModels()
      .where((eb) => {
        const granted = (grantee: string, roles: string[]) =>
          eb.exists(
            eb
              .selectFrom('permissions as p')
              .select('p.tuned_model_id')
              .whereRef('p.tuned_model_id', '=', 'm.id')
              .where('p.grantee', '=', grantee)
              .where('p.role', 'in', roles),
          );
        const owned = eb('m.project', '=', project);
        const conditions = {
          owned,
          readable: eb.or([owned, granted(project, ['READER', 'WRITER'])]),
          writable: eb.or([owned, granted(project, ['WRITER'])]),
          everyone: granted('*', ['READER']),
        };
        return eb.and(scope.show.map((s) => conditions[s]));
      })
      .where((eb) => eb.or([eb('m.display_name', op, like), eb('m.description', op, like)]))
      .where((eb) => eb.or([eb('m.create_time', '>', createTime), eb.and([eb('m.create_time', '=', createTime), eb('m.id', '>', id)])]))
      .orderBy('m.create_time')
      .orderBy('m.id')
      .limit(limit)
      .execute();
    return rows.map(fromRow);
  }

  /** The highest version of a Vertex Model (0 when it has none). */
  async lastModelVersion(modelNumber: string): Promise<number> {
    const row = await this.db
      .selectFrom('tuned_models')
      .select((eb) => eb.fn.max('model_version').as('version'))
      .where('model_number', '=', modelNumber)
      .executeTakeFirst();
    return Number(row?.version ?? 0);
  }

  /** Every version of a project's Vertex Model, oldest first. */
  async modelVersions(project: string, modelNumber: string): Promise<TunedModel[]> {
    const rows = await this.selectModels().where('m.project', '=', project).where('m.model_number', '=', modelNumber).orderBy('m.model_version').execute();
    return rows.map(fromRow);
  }

  /** Removes the model with everything recorded for it. */
  async delete(id: string): Promise<void> {
    await atomically(this.db, async (trx) => {
      // The job row first: deleting it waits for a fenced write under way (which holds the row) to commit, and
      // fences out those after; the metrics are deleted after that write, so none outlives the model.
      for (const table of ['jobs', 'leases', 'metrics', 'datasets', 'permissions', 'tuned_checkpoints'] as const) await trx.deleteFrom(table).where('tuned_model_id', '=', id).execute();
      await trx.deleteFrom('tuned_models').where('id', '=', id).execute();
    });
  }

  async examples(id: string, role: 'training' | 'validation'): Promise<Example[]> {
    const row = await this.db.selectFrom('datasets').select('examples').where('tuned_model_id', '=', id).where('role', '=', role).executeTakeFirst();
    return row ? JSON.parse(row.examples) : [];
  }

  /** Records a metric; leaseToken names the lease it was recorded under. */
  async addMetric(id: string, metric: StepMetric, leaseToken: number | null = null): Promise<void> {
    const { kind, step, epoch, loss, accuracy, predictions, time } = metric;
    const reward_margin = metric.rewardMargin ?? null;
    await this.db
      .insertInto('metrics')
      .values({ tuned_model_id: id, kind, step, epoch, loss, accuracy, reward_margin, predictions, time, lease_token: leaseToken })
      .onConflict((oc) => oc.columns(['tuned_model_id', 'kind', 'step']).doUpdateSet({ epoch, loss, accuracy, reward_margin, predictions, time, lease_token: leaseToken }))
      .execute();
  }

  /** Train metrics with the lease each was recorded under, by step. */
  async metricLeases(id: string): Promise<{ step: number; leaseToken: number | null }[]> {
    return this.db
      .selectFrom('metrics')
      .select(['step', 'lease_token as leaseToken'])
      .where('tuned_model_id', '=', id)
      .where('kind', '=', 'train')
      .orderBy('step')
      .execute();
  }

  async metrics(id: string, kind: 'train' | 'eval'): Promise<StepMetric[]> {
    const rows = await this.db
      .selectFrom('metrics')
      .select(['kind', 'step', 'epoch', 'loss', 'accuracy', 'reward_margin', 'predictions', 'time'])
      .where('tuned_model_id', '=', id)
      .where('kind', '=', kind)
      .orderBy('step')
      .execute();
    return rows.map(metricOf);
  }

  /** Drops metrics past a step: a resumed run re-records the steps after its checkpoint. */
  async truncateMetrics(id: string, afterStep: number): Promise<void> {
    await this.db.deleteFrom('metrics').where('tuned_model_id', '=', id).where('step', '>', afterStep).execute();
  }

  /** The metric of the last step recorded (the console's list shows the final loss). */
  async lastMetric(id: string, kind: 'train' | 'eval'): Promise<StepMetric | undefined> {
    const row = await this.db
      .selectFrom('metrics')
      .select(['kind', 'step', 'epoch', 'loss', 'accuracy', 'reward_margin', 'predictions', 'time'])
      .where('tuned_model_id', '=', id)
      .where('kind', '=', kind)
      .orderBy('step', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && metricOf(row);
  }

  /** The checkpoint a run would resume from (the job's event log shows it while the run goes on). */
  async checkpoints(id: string): Promise<{ step: number; time: string }[]> {
    const row = await this.db
      .selectFrom('jobs')
      .select(['checkpoint_step', 'checkpoint_time'])
      .where('tuned_model_id', '=', id)
      .executeTakeFirst();
    return row?.checkpoint_step != null && row.checkpoint_time != null ? [{ step: row.checkpoint_step, time: row.checkpoint_time }] : [];
  }

  /** The model's checkpoints, in the order the run reached them. */
  async tunedCheckpoints(id: string): Promise<TunedCheckpoint[]> {
    const rows = await this.db.selectFrom('tuned_checkpoints').selectAll().where('tuned_model_id', '=', id).orderBy('step').execute();
    return rows.map((r) => ({
      checkpointId: r.checkpoint_id,
      step: r.step,
      epoch: r.epoch,
      endpointNumber: r.endpoint_number,
      adapterKey: r.adapter_key,
      bytes: Number(r.bytes),
      createTime: r.create_time,
    }));
  }

  /** Records a checkpoint (again, after a resumed run reached it anew: the newer adapter replaces the older). */
  async putTunedCheckpoint(id: string, project: string, c: TunedCheckpoint): Promise<void> {
    const { checkpointId, step, epoch, endpointNumber, adapterKey, bytes, createTime } = c;
    await this.db
      .insertInto('tuned_checkpoints')
      .values({ tuned_model_id: id, project, checkpoint_id: checkpointId, step, epoch, endpoint_number: endpointNumber, adapter_key: adapterKey, bytes, create_time: createTime })
      .onConflict((oc) => oc.columns(['tuned_model_id', 'checkpoint_id']).doUpdateSet({ step, epoch, adapter_key: adapterKey, bytes, create_time: createTime }))
      .execute();
  }

  /** The model and checkpoint an endpoint number names, if a checkpoint has it. */
  async checkpointOfEndpoint(endpointNumber: string): Promise<{ tunedModelId: string; checkpointId: string } | undefined> {
    const row = await this.db
      .selectFrom('tuned_checkpoints')
      .select(['tuned_model_id', 'checkpoint_id'])
      .where('endpoint_number', '=', endpointNumber)
      .executeTakeFirst();
    return row && { tunedModelId: row.tuned_model_id, checkpointId: row.checkpoint_id };
  }

  /** Bytes the project's checkpoints hold in storage. */
  async checkpointBytes(project: string): Promise<number> {
    const row = await this.db
      .selectFrom('tuned_checkpoints')
      .select((eb) => eb.fn.sum<number>('bytes').as('total'))
      .where('project', '=', project)
      .executeTakeFirst();
    return Number(row?.total ?? 0);
  }
}
