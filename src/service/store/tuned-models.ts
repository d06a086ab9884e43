// Tuned models, their datasets and their metrics in SQLite. Rows map to domain objects here and only here.
import type { Db } from './database.js';
import type { Example } from '../../engine/data/examples.js';
import type { StepMetric, TunedModel } from '../tuning/tuned-model.js';

interface Row {
  id: string; job_number: string; project: string; location: string; labels: string; api_version: string; display_name: string; description: string;
  base_model: string; base_dir: string; source_tuned_model: string | null; state: string;
  create_time: string; update_time: string; start_time: string | null; complete_time: string | null;
  temperature: number | null; top_p: number | null; top_k: number | null; hyperparameters: string;
  training_dataset_uri: string | null; validation_dataset_uri: string | null; data_stats: string | null; total_steps: number; completed_steps: number; error_code: number | null; error_message: string | null;
  operation_id: string; operation_done: number;
}

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
  cancelRequested: r.cancel_requested === 1 && r.operation_done !== 1,
});

const toRow = (m: TunedModel): Row => ({
  id: m.id, job_number: m.jobNumber, project: m.project, location: m.location, labels: JSON.stringify(m.labels), api_version: m.apiVersion, display_name: m.displayName, description: m.description,
  base_model: m.baseModel, base_dir: m.baseDir, source_tuned_model: m.sourceTunedModel ?? null, state: m.state,
  create_time: m.createTime, update_time: m.updateTime, start_time: m.startTime ?? null,
  complete_time: m.completeTime ?? null, temperature: m.temperature ?? null, top_p: m.topP ?? null,
  top_k: m.topK ?? null, hyperparameters: JSON.stringify(m.hyperparameters),
  training_dataset_uri: m.trainingDatasetUri ?? null, validation_dataset_uri: m.validationDatasetUri ?? null,
  data_stats: m.dataStats ? JSON.stringify(m.dataStats) : null, total_steps: m.totalSteps,
  completed_steps: m.completedSteps, error_code: m.error?.code ?? null, error_message: m.error?.message ?? null,
  operation_id: m.operationId, operation_done: m.operationDone ? 1 : 0,
});

const columns = Object.keys(toRow({ hyperparameters: {}, labels: {} } as TunedModel));

const selectModels = `SELECT m.*, j.cancel_requested FROM tuned_models m LEFT JOIN jobs j ON j.tuned_model_id = m.id`;

export interface ListPosition {
  createTime: string;
  id: string;
}

export class TunedModelStore {
  constructor(private readonly db: Db) {}

  /** Runs fn in one SQLite transaction (nested calls become savepoints). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The datasets come as JSON arrays of examples (the CPU pool serialised them off the event loop). */
  insert(model: TunedModel, training: string, validation?: string): void {
    const insertModel = this.db.prepare(
      `INSERT INTO tuned_models (${columns.join(', ')}) VALUES (${columns.map((c) => '@' + c).join(', ')})`,
    );
    const insertDataset = this.db.prepare('INSERT INTO datasets (tuned_model_id, role, examples) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      insertModel.run(toRow(model));
      insertDataset.run(model.id, 'training', training);
      if (validation) insertDataset.run(model.id, 'validation', validation);
    })();
  }

  /** Writes every column of the model back (the caller changed some of them). */
  save(model: TunedModel): void {
    const sets = columns.filter((c) => c !== 'id').map((c) => `${c} = @${c}`);
    this.db.prepare(`UPDATE tuned_models SET ${sets.join(', ')} WHERE id = @id`).run(toRow(model));
  }

  /** By Gemini id or by Vertex number (the two never look alike: ids start with a letter). */
  get(idOrNumber: string): TunedModel | undefined {
    const row = this.db.prepare(`${selectModels} WHERE m.id = ? OR m.job_number = ?`).get(idOrNumber, idOrNumber) as ReadRow | undefined;
    return row && fromRow(row);
  }

  /** How many tuned models a project holds. */
  count(project: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM tuned_models WHERE project = ?').get(project) as { n: number }).n;
  }

  /** Every project that holds tuned models, with how many, by name. */
  projects(): { project: string; count: number }[] {
    return this.db.prepare('SELECT project, COUNT(*) AS count FROM tuned_models GROUP BY project ORDER BY project').all() as { project: string; count: number }[];
  }

  exists(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM tuned_models WHERE id = ?').get(id) !== undefined;
  }

  /** All of a project's models, newest first (Vertex lists filter on derived states, so they page in memory). */
  all(project: string): TunedModel[] {
    const rows = this.db.prepare(`${selectModels} WHERE m.project = ? ORDER BY m.create_time DESC, m.id DESC`).all(project) as ReadRow[];
    return rows.map(fromRow);
  }

  /**
   * A page of a project's models, oldest first, after a position (keyset paging, so models created or
   * deleted between pages neither repeat nor vanish). `text` filters on display name and description.
   */
  list(project: string, after: ListPosition | undefined, limit: number, text?: string): TunedModel[] {
    const like = `%${(text ?? '').replace(/[%_]/g, '')}%`;
    const { createTime = '', id = '' } = after ?? {};
    const rows = this.db
      .prepare(
        `${selectModels} WHERE m.project = ? AND (m.display_name LIKE ? OR m.description LIKE ?)
           AND (m.create_time > ? OR (m.create_time = ? AND m.id > ?))
         ORDER BY m.create_time, m.id LIMIT ?`,
      )
      .all(project, like, like, createTime, createTime, id, limit) as ReadRow[];
    return rows.map(fromRow);
  }

  delete(id: string): void {
    this.db.transaction(() => {
      for (const table of ['metrics', 'checkpoints', 'datasets', 'jobs']) this.db.prepare(`DELETE FROM ${table} WHERE tuned_model_id = ?`).run(id);
      this.db.prepare('DELETE FROM tuned_models WHERE id = ?').run(id);
    })();
  }

  examples(id: string, role: 'training' | 'validation'): Example[] {
    const row = this.db.prepare('SELECT examples FROM datasets WHERE tuned_model_id = ? AND role = ?').get(id, role) as
      | { examples: string }
      | undefined;
    return row ? JSON.parse(row.examples) : [];
  }

  addMetric(id: string, metric: StepMetric): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO metrics (tuned_model_id, kind, step, epoch, loss, accuracy, predictions, time)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, metric.kind, metric.step, metric.epoch, metric.loss, metric.accuracy, metric.predictions, metric.time);
  }

  metrics(id: string, kind: 'train' | 'eval'): StepMetric[] {
    return this.db
      .prepare('SELECT kind, step, epoch, loss, accuracy, predictions, time FROM metrics WHERE tuned_model_id = ? AND kind = ? ORDER BY step')
      .all(id, kind) as StepMetric[];
  }

  /** The metric of the last step recorded (the console's list shows the final loss). */
  lastMetric(id: string, kind: 'train' | 'eval'): StepMetric | undefined {
    return this.db
      .prepare('SELECT kind, step, epoch, loss, accuracy, predictions, time FROM metrics WHERE tuned_model_id = ? AND kind = ? ORDER BY step DESC LIMIT 1')
      .get(id, kind) as StepMetric | undefined;
  }

  /** Drops metrics and checkpoints past a step: a resumed run re-records the steps after its checkpoint. */
  truncateMetrics(id: string, afterStep: number): void {
    this.db.prepare('DELETE FROM metrics WHERE tuned_model_id = ? AND step > ?').run(id, afterStep);
    this.db.prepare('DELETE FROM checkpoints WHERE tuned_model_id = ? AND step > ?').run(id, afterStep);
  }

  /** A checkpoint the run saved at a step. */
  addCheckpoint(id: string, step: number, time: string): void {
    this.db.prepare('INSERT OR REPLACE INTO checkpoints (tuned_model_id, step, time) VALUES (?, ?, ?)').run(id, step, time);
  }

  checkpoints(id: string): { step: number; time: string }[] {
    return this.db.prepare('SELECT step, time FROM checkpoints WHERE tuned_model_id = ? ORDER BY step').all(id) as { step: number; time: string }[];
  }
}
