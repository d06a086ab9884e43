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
  /** Bytes of objects one project may hold in the object store. */
  storageBytesPerProject: number;
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
  storageBytesPerProject: 10 * 1024 * 1024 * 1024,
};

export const limitNames = Object.keys(limitDefaults) as (keyof ServiceLimits)[];

/** NAME → ATTUNE_LIMIT_NAME_IN_SNAKE_CASE (promptChars → ATTUNE_LIMIT_PROMPT_CHARS). */
export const limitEnvName = (name: keyof ServiceLimits) => `ATTUNE_LIMIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
