// The tables as Kysely sees them, the same in SQLite and PostgreSQL. Flags are integers (0/1) and times are
// RFC 3339 text, so rows read alike from both; lease clocks are epoch milliseconds from the database's clock.
export interface ApiKeyTable {
  key_hash: string;
  project: string;
  label: string | null;
  create_time: string;
  /** When it stops working (RFC 3339), if it does. */
  expire_time: string | null;
  /** When it was revoked, if it was. */
  revoke_time: string | null;
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
  pre_tuned_model: string | null;
  source_adapter_key: string | null;
  tuning_method: string;
  model_number: string | null;
  model_version: number;
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
  /** Where the adapter is in storage (adapters/<id>/<lease token>); set when the run saved one. */
  adapter_key: string | null;
  /** The checkpoint the model serves (null: its last). */
  default_checkpoint_id: string | null;
  export_last_checkpoint_only: number;
  /** Vertex customBaseModel: the gs:// folder of the base model it was tuned from. */
  custom_base_model: string | null;
  /** Vertex outputUri: the gs:// prefix its PEFT files are copied to. */
  output_uri: string | null;
}

/** A tuned model's checkpoints: an adapter each, with an endpoint of its own. */
export interface TunedCheckpointTable {
  tuned_model_id: string;
  checkpoint_id: string;
  step: number;
  epoch: number;
  endpoint_number: string;
  adapter_key: string;
  bytes: number;
  create_time: string;
  /** The tuned model's project (the storage quota sums a project's checkpoints). */
  project: string;
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
  reward_margin: number | null;
  predictions: number;
  time: string;
  /** The lease under which it was recorded (null before leases). */
  lease_token: number | null;
}

export interface JobTable {
  tuned_model_id: string;
  /** queued | running | finished */
  state: string;
  /** Workers started for it that did not end cleanly. */
  attempts: number;
  cancel_requested: number;
  enqueue_time: string;
  /** The tuned model's project (projects take turns at claims). */
  project: string | null;
  /** The fencing token: incremented by every claim; a write carrying an older one is refused. */
  lease_token: number;
  /** The worker holding the lease, and until when (database clock, epoch ms) unless it heartbeats. */
  lease_owner: string | null;
  lease_expires_ms: number | null;
  /** The last checkpoint a lease holder recorded: its storage key and step. */
  checkpoint_key: string | null;
  checkpoint_step: number | null;
  checkpoint_time: string | null;
}

/**
 * A tuned model's grants (Gemini PermissionService): one per grantee, a project or everyone. The owner holds no
 * row: it is the model's project.
 */
export interface PermissionTable {
  tuned_model_id: string;
  /** The project granted, or '*' for everyone (project ids cannot contain '*'). */
  grantee: string;
  /** USER | GROUP | EVERYONE, as the grant was asked for (a project is named the same by either). */
  grantee_type: string;
  /** WRITER | READER */
  role: string;
  create_time: string;
}

/** The order in which projects were last served (a counter): the project served longest ago goes next. */
export interface ProjectTurnTable {
  project: string;
  last_claim: number;
}

/** Every lease ever granted: who held which job when, and how it ended. */
export interface LeaseTable {
  tuned_model_id: string;
  token: number;
  worker_id: string;
  claim_ms: number;
  heartbeat_ms: number;
  end_ms: number | null;
  /** released | finished | expired | lost | deleted */
  outcome: string | null;
}

/** Workers as they advertise themselves: where they run and what they can hold. */
export interface WorkerTable {
  id: string;
  host: string;
  /** The host's boot id: with host and pid, tells a dead local worker from a live one. */
  boot_id: string;
  pid: number;
  device: string;
  /** Its --dtype; for auto, what auto gives models of real size there (`auto:bfloat16`). */
  dtype: string;
  /** Memory it offers one job alone (--memory, or free memory plus its running jobs' estimates); null: not measured. */
  memory_bytes: number | null;
  concurrency: number;
  start_ms: number;
  heartbeat_ms: number;
  stop_ms: number | null;
}

export interface Schema {
  api_keys: ApiKeyTable;
  tuned_models: TunedModelTable;
  datasets: DatasetTable;
  metrics: MetricTable;
  jobs: JobTable;
  leases: LeaseTable;
  workers: WorkerTable;
  project_turns: ProjectTurnTable;
  permissions: PermissionTable;
  tuned_checkpoints: TunedCheckpointTable;
}
