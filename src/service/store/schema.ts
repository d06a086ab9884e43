// The tables as Kysely sees them, the same in SQLite and PostgreSQL. Flags are integers (0/1) and times are
// RFC 3339 text, so rows read alike from both; lease clocks are epoch milliseconds from the database's clock.
export interface ApiKeyTable {
  key_hash: string;
  project: string;
  label: string | null;
  create_time: string;
}

export interface TunedModelTable {
  id: string;
  job_number: string;
  project: string;
  location: string;
  labels: string;
  api_version: string;
  display_name: string;
  description: string;
  base_model: string;
  base_dir: string;
  source_tuned_model: string | null;
  state: string;
  create_time: string;
  update_time: string;
  start_time: string | null;
  complete_time: string | null;
  temperature: number | null;
  top_p: number | null;
  top_k: number | null;
  hyperparameters: string;
  training_dataset_uri: string | null;
  validation_dataset_uri: string | null;
  data_stats: string | null;
  total_steps: number;
  completed_steps: number;
  error_code: number | null;
  error_message: string | null;
  operation_id: string;
  operation_done: number;
}

export interface DatasetTable {
  tuned_model_id: string;
  role: string;
  examples: string;
}

export interface MetricTable {
  tuned_model_id: string;
  kind: string;
  step: number;
  epoch: number;
  loss: number;
  accuracy: number;
  predictions: number;
  time: string;
}

export interface JobTable {
  tuned_model_id: string;
  state: string;
  attempts: number;
  cancel_requested: number;
  enqueue_time: string;
}

export interface Schema {
  api_keys: ApiKeyTable;
  tuned_models: TunedModelTable;
  datasets: DatasetTable;
  metrics: MetricTable;
  jobs: JobTable;
}
