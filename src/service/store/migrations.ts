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
  };
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
