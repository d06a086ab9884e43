// The tuned model: the one domain object behind both a Gemini-API tunedModel and (later) a Vertex
// tuningJob. A tuning run belongs to exactly one tuned model.
export type TunedModelState = 'CREATING' | 'ACTIVE' | 'FAILED';

export interface Hyperparameters {
  epochCount: number;
  batchSize: number;
  /** Exactly one of learningRate and learningRateMultiplier is set. */
  learningRate?: number;
  learningRateMultiplier?: number;
  /** LoRA rank. */
  adapterRank: number;
}

export interface TuningError {
  /** google.rpc.Code: 1 for cancelled, 3 for bad data, 13 for internal failures. */
  code: number;
  message: string;
}

export interface TunedModel {
  id: string;
  project: string;
  /** The API version it was created through; it decides the Operation's type URLs. */
  apiVersion: string;
  displayName: string;
  description: string;
  /** The base model's name as the client gave it, e.g. models/gemini-1.0-pro-001. */
  baseModel: string;
  /** The local Hugging Face directory it resolved to. */
  baseDir: string;
  sourceTunedModel?: string;
  state: TunedModelState;
  createTime: string;
  updateTime: string;
  startTime?: string;
  completeTime?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  hyperparameters: Hyperparameters;
  totalSteps: number;
  completedSteps: number;
  error?: TuningError;
  operationId: string;
  operationDone: boolean;
}

export interface StepMetric {
  kind: 'train' | 'eval';
  step: number;
  epoch: number;
  loss: number;
  accuracy: number;
  predictions: number;
  time: string;
}

/** RFC 3339 with microseconds, as Google's timestamps look. */
export const now = (): string => new Date().toISOString().replace(/(\.\d{3})Z$/, '$1000Z');
