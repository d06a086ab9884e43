// Service settings: where data lives, how many tunings run at once, how Attune listens.
import path from 'node:path';
import os from 'node:os';
import type { ServiceLimits } from './limits.js';

export interface ServiceConfig {
  /** Root of everything Attune writes: the SQLite file, adapters, checkpoints, base models, the object store. */
  dataDir: string;
  /** A postgres:// URL or a SQLite file; default: attune.sqlite in the data dir. */
  database?: string;
  host: string;
  port: number;
  /** Tuning jobs that train at the same time, each in its own worker process. */
  concurrency: number;
  /** Accept requests without an API key (as project "local"); refused unless listening on loopback only. */
  keyless: boolean;
  /** Overrides of the size caps and quotas in limits.ts (the rest keep their defaults). */
  limits?: Partial<ServiceLimits>;
  /** The one local directory the API may read datasets from (confined to it); none: only gs:// objects. */
  datasetDir?: string;
}

export const serviceDefaults = {
  host: '127.0.0.1',
  port: 8080,
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
