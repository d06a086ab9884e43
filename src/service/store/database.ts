// The SQLite file under the data dir (WAL mode) and its schema. Only the server process writes it;
// worker processes report to the server over IPC instead.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { serviceDefaults } from '../config.js';
import { jobNumber } from '../tuning/ids.js';

export type Db = Database.Database;

const schema = `
CREATE TABLE IF NOT EXISTS api_keys (
  key_hash    TEXT PRIMARY KEY,
  project     TEXT NOT NULL,
  label       TEXT,
  create_time TEXT NOT NULL,
  expire_time TEXT,
  revoke_time TEXT
);
CREATE TABLE IF NOT EXISTS tuned_models (
  id            TEXT PRIMARY KEY,
  job_number    TEXT NOT NULL UNIQUE,
  project       TEXT NOT NULL,
  location      TEXT NOT NULL,
  labels        TEXT NOT NULL DEFAULT '{}',
  api_version   TEXT NOT NULL,
  display_name  TEXT NOT NULL DEFAULT '',
  description   TEXT NOT NULL DEFAULT '',
  base_model    TEXT NOT NULL,
  base_dir      TEXT NOT NULL,
  source_tuned_model TEXT,
  state         TEXT NOT NULL,
  create_time   TEXT NOT NULL,
  update_time   TEXT NOT NULL,
  start_time    TEXT,
  complete_time TEXT,
  temperature   REAL,
  top_p         REAL,
  top_k         INTEGER,
  hyperparameters TEXT NOT NULL,
  training_dataset_uri   TEXT,
  validation_dataset_uri TEXT,
  data_stats    TEXT,
  total_steps   INTEGER NOT NULL,
  completed_steps INTEGER NOT NULL DEFAULT 0,
  error_code    INTEGER,
  error_message TEXT,
  operation_id  TEXT NOT NULL UNIQUE,
  operation_done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tuned_models_by_project ON tuned_models(project, create_time);
CREATE TABLE IF NOT EXISTS datasets (
  tuned_model_id TEXT NOT NULL,
  role           TEXT NOT NULL,
  examples       TEXT NOT NULL,
  PRIMARY KEY (tuned_model_id, role)
);
CREATE TABLE IF NOT EXISTS metrics (
  tuned_model_id TEXT NOT NULL,
  kind           TEXT NOT NULL,
  step           INTEGER NOT NULL,
  epoch          INTEGER NOT NULL,
  loss           REAL NOT NULL,
  accuracy       REAL NOT NULL,
  predictions    INTEGER NOT NULL,
  time           TEXT NOT NULL,
  PRIMARY KEY (tuned_model_id, kind, step)
);
CREATE TABLE IF NOT EXISTS checkpoints (
  tuned_model_id TEXT NOT NULL,
  step           INTEGER NOT NULL,
  time           TEXT NOT NULL,
  PRIMARY KEY (tuned_model_id, step)
);
CREATE TABLE IF NOT EXISTS jobs (
  tuned_model_id   TEXT PRIMARY KEY,
  state            TEXT NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  enqueue_time     TEXT NOT NULL,
  claim_seq        INTEGER
);
`;

export function openDatabase(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'attune.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.exec(schema);
  addVertexColumns(db);
  addKeyLifetimeColumns(db);
  addClaimSequence(db);
  return db;
}

/** Data dirs written before fair scheduling lack the jobs' claim order. */
function addClaimSequence(db: Db): void {
  const present = (db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[]).some((c) => c.name === 'claim_seq');
  if (!present) db.exec('ALTER TABLE jobs ADD COLUMN claim_seq INTEGER');
}

/** Data dirs written before the Vertex surface lack its columns: add them, numbering the old models. */
function addVertexColumns(db: Db): void {
  const present = new Set((db.prepare('PRAGMA table_info(tuned_models)').all() as { name: string }[]).map((c) => c.name));
  if (present.has('job_number')) return;
  db.transaction(() => {
    for (const column of [
      'job_number TEXT',
      `location TEXT NOT NULL DEFAULT '${serviceDefaults.location}'`,
      "labels TEXT NOT NULL DEFAULT '{}'",
      'training_dataset_uri TEXT',
      'validation_dataset_uri TEXT',
      'data_stats TEXT',
    ]) {
      db.exec(`ALTER TABLE tuned_models ADD COLUMN ${column}`);
    }
    const number = db.prepare('UPDATE tuned_models SET job_number = ? WHERE id = ?');
    for (const { id } of db.prepare('SELECT id FROM tuned_models').all() as { id: string }[]) number.run(jobNumber(), id);
    db.exec('CREATE UNIQUE INDEX tuned_models_by_job_number ON tuned_models(job_number)');
  })();
}

/** Data dirs written before keys could expire or be revoked lack those columns: existing keys get neither. */
function addKeyLifetimeColumns(db: Db): void {
  const present = new Set((db.prepare('PRAGMA table_info(api_keys)').all() as { name: string }[]).map((c) => c.name));
  for (const column of ['expire_time', 'revoke_time']) {
    if (!present.has(column)) db.exec(`ALTER TABLE api_keys ADD COLUMN ${column} TEXT`);
  }
}
