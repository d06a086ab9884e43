// Every size cap and quota the service applies to what clients send, in one place. Each is a named setting
// with a documented default (README and SECURITY.md list them); `attune serve --limit NAME=VALUE` or the
// environment variable ATTUNE_LIMIT_<NAME_IN_SNAKE_CASE> overrides one. Exceeding a limit is answered with a
// google.rpc error that names it (INVALID_ARGUMENT for a size, RESOURCE_EXHAUSTED for a quota).

export interface ServiceLimits {
  /** Bytes of a JSON request body from an authenticated caller. */
  requestBodyBytes: number;
  /** Bytes of a request body before the caller is known: anything larger is refused unread. */
  unauthenticatedBodyBytes: number;
  /** Bytes of one uploaded object (media or multipart). */
  uploadBytes: number;
  /** Bytes of one dataset JSONL file (Vertex documents 1 GB per file). */
  datasetFileBytes: number;
  /** Examples in one training or validation dataset. */
  datasetExamples: number;
  /** Characters (code points) of one prompt (system instruction plus turns), for every model. */
  promptChars: number;
  /** Jobs of one project that are queued or running at once. */
  queuedJobsPerProject: number;
  /** Tuned models one project may hold. */
  tunedModelsPerProject: number;
  /** Projects (and everyone) one tuned model may be shared with. */
  permissionsPerTunedModel: number;
  /** Bytes of objects one project may hold in the object store. */
  storageBytesPerProject: number;
  /** The work of one tuning job: examples it trains on, counting every epoch (epochs × examples). */
  trainedExamplesPerJob: number;
  /** Generation requests of one project waiting for one base model (running ones do not count). */
  queuedGenerationsPerProject: number;
  /** Generation requests waiting for one base model, every project together. */
  queuedGenerationsPerBaseModel: number;
  /** Seconds a generation may take from its arrival to its last token (a client's X-Server-Timeout may shorten it). */
  generationTimeoutSeconds: number;
}

export const limitDefaults: ServiceLimits = {
  requestBodyBytes: 32 * 1024 * 1024,
  unauthenticatedBodyBytes: 64 * 1024,
  uploadBytes: 1024 * 1024 * 1024,
  datasetFileBytes: 1024 * 1024 * 1024,
  datasetExamples: 100_000,
  promptChars: 40_000,
  queuedJobsPerProject: 20,
  tunedModelsPerProject: 1_000,
  permissionsPerTunedModel: 1_000,
  storageBytesPerProject: 10 * 1024 * 1024 * 1024,
  trainedExamplesPerJob: 1_000_000,
  queuedGenerationsPerProject: 64,
  queuedGenerationsPerBaseModel: 256,
  generationTimeoutSeconds: 600,
};

export const limitNames = Object.keys(limitDefaults) as (keyof ServiceLimits)[];

/** NAME → ATTUNE_LIMIT_NAME_IN_SNAKE_CASE (promptChars → ATTUNE_LIMIT_PROMPT_CHARS). */
export const limitEnvName = (name: keyof ServiceLimits) => `ATTUNE_LIMIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Overrides from the environment and from `NAME=VALUE` pairs (the pairs win); throws a plain Error naming a bad one. */
export function limitOverrides(pairs: readonly string[], env: NodeJS.ProcessEnv = process.env): Partial<ServiceLimits> {
  const overrides: Partial<ServiceLimits> = {};
  const set = (name: string, value: string, where: string) => {
    if (!(limitNames as string[]).includes(name)) {
      throw new Error(`${where}: unknown limit '${name}'; the limits are ${limitNames.join(', ')}`);
    }
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: ${name} must be a non-negative integer, not '${value}'`);
    overrides[name as keyof ServiceLimits] = n;
  };
  for (const name of limitNames) {
    const value = env[limitEnvName(name)];
    if (value !== undefined) set(name, value, limitEnvName(name));
  }
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--limit takes NAME=VALUE, not '${pair}'`);
    set(pair.slice(0, at), pair.slice(at + 1), '--limit');
  }
  return overrides;
}
