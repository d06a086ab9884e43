// The tuned model: the one domain object behind both a Gemini-API tunedModel and a Vertex tuningJob
// (with its model and endpoint). A tuning run belongs to exactly one tuned model.
export type TunedModelState = 'CREATING' | 'ACTIVE' | 'FAILED';

/** Supervised tuning on examples, or preference tuning (DPO) on pairs of completions. */
export type TuningMethod = 'supervised' | 'preference';

export interface Hyperparameters {
  epochCount: number;
  batchSize: number;
  /** Exactly one of learningRate and learningRateMultiplier is set. */
  learningRate?: number;
  learningRateMultiplier?: number;
  /** LoRA rank. */
  adapterRank: number;
  /** Preference tuning's beta (DPO). */
  beta?: number;
  /** The run's random seed (adapter initialisation, example order); absent in models from before it was recorded, which used trainingDefaults.seed. */
  seed?: number;
}

export interface TuningError {
  /** google.rpc.Code: 1 for cancelled, 3 for bad data, 13 for internal failures. */
  code: number;
  message: string;
}

export interface TunedModel {
  /** The Gemini API id: tunedModels/{id}. */
  id: string;
  /** The Vertex id, 19 digits: tuningJobs/{n}, endpoints/{n} and models/{n} name the same tuned model. */
  jobNumber: string;
  project: string;
  /** The Vertex location it was created in (its resource names carry it). */
  location: string;
  labels: Record<string, string>;
  /** The API version it was created through; it decides the Operation's type URLs. */
  apiVersion: string;
  displayName: string;
  description: string;
  /** The base model's name as the client gave it, e.g. models/gemini-1.0-pro-001. */
  baseModel: string;
  /** The local Hugging Face directory it resolved to. */
  baseDir: string;
  /** Continuous tuning: the tuned model this one continues, as tunedModels/{id}, and its Vertex version's name. */
  sourceTunedModel?: string;
  preTunedModel?: string;
  /** Where the adapter this run starts from is in storage (a copy of the source's, made at create). */
  sourceAdapterKey?: string;
  tuningMethod: TuningMethod;
  /**
   * Its Vertex Model: models/{modelNumber}@{modelVersion}. A model tuned from a base model is its own Model (its job
   * number, version 1); a continued run without a new display name is the next version of its source's Model.
   */
  modelNumber: string;
  modelVersion: number;
  state: TunedModelState;
  createTime: string;
  updateTime: string;
  startTime?: string;
  completeTime?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  hyperparameters: Hyperparameters;
  /** Where the datasets came from, when they were files (Vertex); the examples themselves are stored. */
  trainingDatasetUri?: string;
  validationDatasetUri?: string;
  dataStats: DataStats;
  totalSteps: number;
  completedSteps: number;
  error?: TuningError;
  operationId: string;
  operationDone: boolean;
  /** Where its adapter is in storage (adapters/<id>/<lease token>), once a run saved one. */
  adapterKey?: string;
  /** A cancel was asked for and the run has not ended yet (read from the job queue). */
  cancelRequested: boolean;
  /** The checkpoint it serves, when changed from its last (Vertex models.patch defaultCheckpointId). */
  defaultCheckpointId?: string;
  /** Vertex supervisedTuningSpec.exportLastCheckpointOnly: keep no intermediate checkpoints. */
  exportLastCheckpointOnly?: boolean;
  /** Vertex customBaseModel: the gs:// folder in the project's bucket that baseDir is. */
  customBaseModel?: string;
  /** Vertex outputUri: the gs:// prefix in the project's bucket its PEFT files are written to. */
  outputUri?: string;
}

/** Summary statistics of a token count (or message count) over the training examples. */
export interface Distribution {
  sum: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p5: number;
  p95: number;
  buckets: { count: number; left: number; right: number }[];
}

export interface DroppedExample {
  /** 1-based position in the dataset. */
  index: number;
  reason: string;
}

/** What the training data looked like once parsed and tokenized (Vertex's SupervisedTuningDataStats). */
export interface DataStats {
  exampleCount: number;
  characterCount: number;
  tokenCount: number;
  inputTokens: Distribution;
  outputTokens: Distribution;
  messagesPerExample: Distribution;
  /** The first example's turns, as a sample. */
  sample: { role: 'user' | 'model'; text: string }[];
  dropped: DroppedExample[];
  /** Tokens of the longest framed example (what the memory plan needs); absent in models stored before it was kept. */
  longestExampleTokens?: number;
}

export interface StepMetric {
  kind: 'train' | 'eval';
  step: number;
  epoch: number;
  loss: number;
  /** Supervised: next-token accuracy. Preference: reward accuracy (pairs whose chosen completion won). */
  accuracy: number;
  /** Preference only: the mean reward margin. */
  rewardMargin?: number;
  predictions: number;
  time: string;
}

/** RFC 3339 with microseconds, as Google's timestamps look. */
export const now = (): string => new Date().toISOString().replace(/(\.\d{3})Z$/, '$1000Z');
