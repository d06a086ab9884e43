// Where training data comes from: examples in a request body (Gemini API) or a JSONL file named by a URI
// (Vertex: a gs:// object of the caller's project, or a file in the server's --dataset-dir). Either way the
// parsing, and the framing for the data statistics, run in the CPU pool's threads, never on the event loop.
import { DatasetFailure, type CpuPool } from '../cpu/pool.js';
import type { PreparedDataset } from '../cpu/tasks.js';
import type { ParseOptions } from '../../engine/data/examples.js';
import { ServiceError, invalidArgument } from '../errors.js';
import { openDatasetFile, type DatasetFileAccess } from './dataset-files.js';

export type DatasetSource =
  /** `field` is the request field the data came in, named in errors. */
  | { examples: unknown[]; field: string }
  | { uri: string; field: string };

export interface DatasetLoad {
  cpu: CpuPool;
  access: DatasetFileAccess;
  /** ParseOptions.maxExamples is limits.datasetExamples, named in the error. */
  parse: ParseOptions & { maxExamples: number };
  /** Frame the examples with this base model's tokenizer for the data statistics (tokens from vocabSize on are refused). */
  stats?: { baseDir: string; vocabSize: number };
  keepExamples: boolean;
}

export async function loadDataset(source: DatasetSource, { cpu, access, parse, stats: statsFor, keepExamples }: DatasetLoad): Promise<PreparedDataset> {
  const stats = statsFor && { ...statsFor, field: source.field };
  try {
    if ('examples' in source) return await cpu.prepareDataset({ input: { examples: source.examples }, parse, stats, keepExamples });
    const file = await openDatasetFile(source.uri, access);
    try {
      return await cpu.prepareDataset({ input: { file, uri: source.uri, maxBytes: access.maxBytes }, parse, stats, keepExamples });
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof DatasetFailure) {
      const message =
        error.tooManyExamples === undefined ? error.message : `the dataset has more than ${error.tooManyExamples} examples, the limit datasetExamples`;
      throw invalidArgument('uri' in source ? `${source.uri}: ${message}` : message, source.field);
    }
    if (error instanceof ServiceError && error.fieldViolations.length === 0) {
      throw new ServiceError(error.status, error.message, [{ field: source.field, description: error.message }]);
    }
    throw error;
  }
}
