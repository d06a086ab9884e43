// Where training data comes from: examples in a request body (Gemini API) or a JSONL file named by a
// gs:// URI in Attune's object store or a local path (Vertex). Both end as a parsed Dataset.
import { readFile } from 'node:fs/promises';
import { DatasetError, parseExamples, parseJsonl, type Dataset, type ParseOptions } from '../../engine/data/examples.js';
import { ServiceError, invalidArgument } from '../errors.js';
import type { ObjectStore } from '../storage/object-store.js';

export type DatasetSource =
  /** `field` is the request field the data came in, named in errors. */
  | { examples: unknown[]; field: string }
  | { uri: string; field: string };

export async function loadDataset(source: DatasetSource, objects: ObjectStore, options: ParseOptions): Promise<Dataset> {
  try {
    if ('examples' in source) return parseExamples(source.examples, options);
    return parseJsonl(await readDatasetFile(source.uri, objects), options);
  } catch (error) {
    if (error instanceof DatasetError) {
      throw invalidArgument('uri' in source ? `${source.uri}: ${error.message}` : error.message, source.field);
    }
    if (error instanceof ServiceError && error.fieldViolations.length === 0) {
      throw new ServiceError(error.status, error.message, [{ field: source.field, description: error.message }]);
    }
    throw error;
  }
}

async function readDatasetFile(uri: string, objects: ObjectStore): Promise<string> {
  const file = objects.resolveDatasetUri(uri);
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ServiceError('NOT_FOUND', `Dataset ${uri} not found: no file ${file}.`);
    if (code === 'EISDIR') throw invalidArgument(`Dataset ${uri} is a directory; it must be a JSONL file.`);
    if (code === 'EACCES') throw new ServiceError('PERMISSION_DENIED', `Dataset ${uri}: Attune may not read ${file}.`);
    throw error;
  }
}
