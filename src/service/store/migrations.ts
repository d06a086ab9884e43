// The schema's history, applied in order by Kysely's Migrator on open (it takes a lock, so servers starting
// together migrate once). One list serves SQLite and PostgreSQL: column types are the ones both accept
// (SQLite reads 'double precision' as REAL and 'bigint' as INTEGER). A migration, once on main, never changes.
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { serviceDefaults } from '../config.js';
import { jobNumber } from '../tuning/ids.js';
import type { Dialect } from './database.js';

type Db = Kysely<any>;

function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    // The schema Attune had before migrations; data dirs from then already hold these tables.
    '0001_initial': {
      async up(db: Db) {
        await db.schema
          .createTable('api_keys').ifNotExists()
          .addColumn('key_hash', 'text', (c) => c.primaryKey())
          .addColumn('project', 'text', (c) => c.notNull())
          .addColumn('label', 'text')
          .addColumn('create_time', 'text', (c) => c.notNull())
          .execute();
        const legacyModels = dialect === 'sqlite' && (await sqliteColumns(db, 'tuned_models')).size > 0;
        await db.schema
          .createTable('tuned_models').ifNotExists()
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('job_number', 'text', (c) => c.notNull().unique())
          .addColumn('project', 'text', (c) => c.notNull())
          .addColumn('location', 'text', (c) => c.notNull())
          .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
          .addColumn('api_version', 'text', (c) => c.notNull())
          .addColumn('display_name', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('base_model', 'text', (c) => c.notNull())
          .addColumn('base_dir', 'text', (c) => c.notNull())
          .addColumn('source_tuned_model', 'text')
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('create_time', 'text', (c) => c.notNull())
          .addColumn('update_time', 'text', (c) => c.notNull())
          .addColumn('start_time', 'text')
          .addColumn('complete_time', 'text')
          .addColumn('temperature', 'double precision')
          .addColumn('top_p', 'double precision')
          .addColumn('top_k', 'integer')
          .addColumn('hyperparameters', 'text', (c) => c.notNull())
          .addColumn('training_dataset_uri', 'text')
          .addColumn('validation_dataset_uri', 'text')
          .addColumn('data_stats', 'text')
          .addColumn('total_steps', 'integer', (c) => c.notNull())
          .addColumn('completed_steps', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('error_code', 'integer')
          .addColumn('error_message', 'text')
          .addColumn('operation_id', 'text', (c) => c.notNull().unique())
          .addColumn('operation_done', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        if (legacyModels) await addVertexColumns(db);
        await db.schema.createIndex('tuned_models_by_project').ifNotExists().on('tuned_models').columns(['project', 'create_time']).execute();
        await db.schema
          .createTable('datasets').ifNotExists()
          .addColumn('tuned_model_id', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('examples', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('datasets_pkey', ['tuned_model_id', 'role'])
          .execute();
        await db.schema
          .createTable('metrics').ifNotExists()
          .addColumn('tuned_model_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('step', 'integer', (c) => c.notNull())
          .addColumn('epoch', 'integer', (c) => c.notNull())
          .addColumn('loss', 'double precision', (c) => c.notNull())
          .addColumn('accuracy', 'double precision', (c) => c.notNull())
          .addColumn('predictions', 'integer', (c) => c.notNull())
          .addColumn('time', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('metrics_pkey', ['tuned_model_id', 'kind', 'step'])
          .execute();
        await db.schema
          .createTable('jobs').ifNotExists()
          .addColumn('tuned_model_id', 'text', (c) => c.primaryKey())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('enqueue_time', 'text', (c) => c.notNull())
          .execute();
      },
    },
    // Many servers and workers on one database: jobs are leased (a heartbeat and a fencing token), projects take
    // turns, the last checkpoint and the adapter are named in storage, workers advertise what they can run.
    '0002_leases': {
      async up(db: Db) {
        const add = (table: string, column: string, type: 'text' | 'integer' | 'bigint', notNullDefault?: number) =>
          addColumnIfMissing(db, dialect, table, column, type, notNullDefault);
        // The job's project, so a claim orders by project turns without reading the models.
        await add('jobs', 'project', 'text');
        await sql`UPDATE jobs SET project = (SELECT project FROM tuned_models WHERE tuned_models.id = jobs.tuned_model_id) WHERE project IS NULL`.execute(db);
        await add('jobs', 'lease_token', 'bigint', 0);
        await add('jobs', 'lease_owner', 'text');
        await add('jobs', 'lease_expires_ms', 'bigint');
        await add('jobs', 'checkpoint_key', 'text');
        await add('jobs', 'checkpoint_step', 'integer');
        await add('metrics', 'lease_token', 'bigint');
        await add('tuned_models', 'adapter_key', 'text');
        // Models trained before adapters were named by lease keep theirs where they were written.
        await sql`UPDATE tuned_models SET adapter_key = 'adapters/' || id WHERE state = 'ACTIVE' AND adapter_key IS NULL`.execute(db);
        await db.schema.createIndex('jobs_by_state').ifNotExists().on('jobs').columns(['state', 'enqueue_time']).execute();
        // In which order projects were last served: they take turns.
        await db.schema
          .createTable('project_turns').ifNotExists()
          .addColumn('project', 'text', (c) => c.primaryKey())
          .addColumn('last_claim', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('leases').ifNotExists()
          .addColumn('tuned_model_id', 'text', (c) => c.notNull())
          .addColumn('token', 'bigint', (c) => c.notNull())
          .addColumn('worker_id', 'text', (c) => c.notNull())
          .addColumn('claim_ms', 'bigint', (c) => c.notNull())
          .addColumn('heartbeat_ms', 'bigint', (c) => c.notNull())
          .addColumn('end_ms', 'bigint')
          .addColumn('outcome', 'text')
          .addPrimaryKeyConstraint('leases_pkey', ['tuned_model_id', 'token'])
          .execute();
        await db.schema
          .createTable('workers').ifNotExists()
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('host', 'text', (c) => c.notNull())
          .addColumn('boot_id', 'text', (c) => c.notNull())
          .addColumn('pid', 'integer', (c) => c.notNull())
          .addColumn('device', 'text', (c) => c.notNull())
          .addColumn('dtype', 'text', (c) => c.notNull())
          .addColumn('memory_bytes', 'bigint')
          .addColumn('concurrency', 'integer', (c) => c.notNull())
          .addColumn('start_ms', 'bigint', (c) => c.notNull())
          .addColumn('heartbeat_ms', 'bigint', (c) => c.notNull())
          .addColumn('stop_ms', 'bigint')
          .execute();
      },
    },
    // API keys that expire or are revoked (data dirs of an earlier release may have these columns already).
    '0003_key_lifecycle': {
      async up(db: Db) {
        await addColumnIfMissing(db, dialect, 'api_keys', 'expire_time', 'text');
        await addColumnIfMissing(db, dialect, 'api_keys', 'revoke_time', 'text');
      },
    },
    // When the last checkpoint was recorded (a job's event log shows it).
    '0004_checkpoint_time': {
      async up(db: Db) {
        await db.schema.alterTable('jobs').addColumn('checkpoint_time', 'text').execute();
      },
    },
    // Continuous tuning (a run continues a tuned model, as a new version of its Vertex Model) and preference tuning.
    '0005_continuous_and_preference_tuning': {
      async up(db: Db) {
        await db.schema.alterTable('tuned_models').addColumn('pre_tuned_model', 'text').execute();
        await db.schema.alterTable('tuned_models').addColumn('source_adapter_key', 'text').execute();
        await db.schema.alterTable('tuned_models').addColumn('tuning_method', 'text', (c) => c.notNull().defaultTo('supervised')).execute();
        await db.schema.alterTable('tuned_models').addColumn('model_number', 'text').execute();
        await db.schema.alterTable('tuned_models').addColumn('model_version', 'integer', (c) => c.notNull().defaultTo(1)).execute();
        await sql`UPDATE tuned_models SET model_number = job_number`.execute(db);
        await db.schema.createIndex('tuned_models_by_model_number').ifNotExists().on('tuned_models').columns(['model_number', 'model_version']).execute();
        await db.schema.alterTable('metrics').addColumn('reward_margin', 'double precision').execute();
      },
    },
    // Sharing: a tuned model's grants to other projects or to everyone (its owner is its project).
    '0006_permissions': {
      async up(db: Db) {
        await db.schema
          .createTable('permissions')
          .addColumn('tuned_model_id', 'text', (c) => c.notNull())
          .addColumn('grantee', 'text', (c) => c.notNull())
          .addColumn('grantee_type', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('create_time', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('permissions_pkey', ['tuned_model_id', 'grantee'])
          .execute();
        // Lists ask which models a project, or everyone, was granted.
        await db.schema.createIndex('permissions_by_grantee').on('permissions').columns(['grantee', 'role']).execute();
      },
    },
    // A tuned model's checkpoints (each an adapter with an endpoint of its own), its default one, and Vertex's
    // open-model fields (customBaseModel, outputUri) and exportLastCheckpointOnly.
    '0007_tuned_checkpoints': {
      async up(db: Db) {
        await db.schema
          .createTable('tuned_checkpoints')
          .addColumn('tuned_model_id', 'text', (c) => c.notNull())
          .addColumn('checkpoint_id', 'text', (c) => c.notNull())
          .addColumn('step', 'integer', (c) => c.notNull())
          .addColumn('epoch', 'integer', (c) => c.notNull())
          .addColumn('endpoint_number', 'text', (c) => c.notNull().unique())
          .addColumn('adapter_key', 'text', (c) => c.notNull())
          .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('create_time', 'text', (c) => c.notNull())
          .addColumn('project', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('tuned_checkpoints_pkey', ['tuned_model_id', 'checkpoint_id'])
          .execute();
        await db.schema.createIndex('tuned_checkpoints_by_project').on('tuned_checkpoints').column('project').execute();
        await db.schema.alterTable('tuned_models').addColumn('default_checkpoint_id', 'text').execute();
        await db.schema.alterTable('tuned_models').addColumn('export_last_checkpoint_only', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.alterTable('tuned_models').addColumn('custom_base_model', 'text').execute();
        await db.schema.alterTable('tuned_models').addColumn('output_uri', 'text').execute();
      },
    },
  };
}

/** ADD COLUMN unless an earlier release (SQLite data dirs) added it already. */
async function addColumnIfMissing(db: Db, dialect: Dialect, table: string, column: string, type: string, notNullDefault?: number): Promise<void> {
  if (dialect === 'sqlite' && (await sqliteColumns(db, table)).has(column)) return;
  await db.schema
    .alterTable(table)
    .addColumn(column, type as 'text', (c) => (notNullDefault === undefined ? c : c.notNull().defaultTo(notNullDefault)))
    .execute();
}

export function migrationProvider(dialect: Dialect): MigrationProvider {
  return { getMigrations: async () => migrations(dialect) };
}

async function sqliteColumns(db: Db, table: string): Promise<Set<string>> {
  const { rows } = await sql<{ name: string }>`SELECT name FROM pragma_table_info(${table})`.execute(db);
  return new Set(rows.map((r) => r.name));
}

/** SQLite data dirs written before the Vertex surface lack its columns: add them, numbering the old models. */
async function addVertexColumns(db: Db): Promise<void> {
  if ((await sqliteColumns(db, 'tuned_models')).has('job_number')) return;
  for (const column of [
    'job_number TEXT',
    `location TEXT NOT NULL DEFAULT '${serviceDefaults.location}'`,
    "labels TEXT NOT NULL DEFAULT '{}'",
    'training_dataset_uri TEXT',
    'validation_dataset_uri TEXT',
    'data_stats TEXT',
  ]) {
    await sql.raw(`ALTER TABLE tuned_models ADD COLUMN ${column}`).execute(db);
  }
  const { rows } = await sql<{ id: string }>`SELECT id FROM tuned_models`.execute(db);
  for (const { id } of rows) await sql`UPDATE tuned_models SET job_number = ${jobNumber()} WHERE id = ${id}`.execute(db);
  await sql`CREATE UNIQUE INDEX tuned_models_by_job_number ON tuned_models(job_number)`.execute(db);
}
