// Service settings: where data lives, how many tunings run at once, how Attune listens.
import path from 'node:path';
import os from 'node:os';
import type { ServiceLimits } from './limits.js';
import type { DtypeChoice } from '../engine/placement.js';
import type { InferenceOptions } from './serving/inference.js';

export interface ServiceConfig {
  /** Root of everything Attune writes: the SQLite file, adapters, checkpoints, base models, the object store. */
  dataDir: string;
  /** A postgres:// URL or a SQLite file; default: attune.sqlite in the data dir. */
  database?: string;
  host: string;
  port: number;
  /** Tuning jobs this process trains at the same time, each in a training process of its own (0: none, an API server only). */
  concurrency: number;
  /** Accept requests without an API key (as project "local"); refused unless listening on loopback only. */
  keyless: boolean;
  /** Overrides of the size caps and quotas in limits.ts (the rest keep their defaults). */
  limits?: Partial<ServiceLimits>;
  /** The one local directory the API may read datasets from (confined to it); none: only gs:// objects. */
  datasetDir?: string;
  /** Where checkpoints, adapters and uploaded objects live: a directory every machine mounts, or gs://bucket/prefix; default: the data dir. */
  storage?: string;
  /** A Cloud Storage endpoint other than Google's, and an API key to send it (another Attune as the bucket). */
  storageEndpoint?: string;
  storageKey?: string;
  /** The local workers' device and dtype (auto: a CUDA GPU when visible; bfloat16 where it multiplies much faster), and the memory they offer (default: free memory, on CPU). */
  device?: string;
  dtype?: DtypeChoice;
  memoryBytes?: number;
  /** How long a job's lease lasts without a heartbeat (default schedulerDefaults.leaseMs). */
  leaseMs?: number;
  /** Generation: the scheduler, batch rows, resident adapters and KV cache per base model (serving/inference.ts). */
  serving?: Omit<InferenceOptions, 'limits' | 'placement'>;
}

export const serviceDefaults = {
  host: '127.0.0.1',
  port: 8080,
  /** `attune serve --grpc-port`: Google's gRPC services, plaintext HTTP/2 on the same host; 0 turns them off. */
  grpcPort: 8081,
  concurrency: 1,
  dataDir: path.join(os.homedir(), '.attune'),
  /** The project a keyless request acts for. */
  keylessProject: 'local',
  /** The Vertex location of tuned models created through the Gemini API, which has none. */
  location: 'us-central1',
} as const;

/** Literal loopback only: a name that merely starts with 127. may resolve anywhere. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
