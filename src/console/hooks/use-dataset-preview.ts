// Once the browser check passes, the dataset goes to Attune's store (or names one already there) and the
// server checks the would-be job (validateOnly): its tuningDataStats give the step count and token totals
// before anything starts.
import { useEffect, useState } from 'preact/hooks';
import { gsUri, uploadDataset } from '../api/storage';
import { createJob, type NewTuningJob, type TuningJob } from '../api/vertex';
import { getSettings } from '../settings';

export interface DatasetText {
  text: string;
  fileName: string;
}

export interface DatasetUris {
  trainingUri: string;
  validationUri?: string;
}

export interface Preview {
  phase: 'idle' | 'uploading' | 'checking' | 'done' | 'error';
  /** The job as the server would create it (hyperparameters with defaults filled, tuningDataStats). */
  job?: TuningJob;
  uris?: DatasetUris;
  error?: unknown;
}

// Each distinct text is uploaded once per page load, however often the hyperparameters change.
const uploads = new Map<string, Promise<string>>();

function uploadOnce({ text, fileName }: DatasetText): Promise<string> {
  const { apiKey, project } = getSettings();
  const key = `${apiKey}\n${project}\n${fileName}\n${text}`;
  let pending = uploads.get(key);
  if (!pending) {
    pending = uploadDataset(new Blob([text], { type: 'application/jsonl' }), fileName).then(gsUri);
    pending.catch(() => uploads.delete(key));
    uploads.set(key, pending);
  }
  return pending;
}

export async function uploadDatasets(training: DatasetText, validation?: DatasetText): Promise<DatasetUris> {
  const [trainingUri, validationUri] = await Promise.all([uploadOnce(training), validation ? uploadOnce(validation) : undefined]);
  return { trainingUri, validationUri };
}

/** Texts to upload, or objects already in the store. */
export type DatasetSource = { kind: 'upload'; training: DatasetText; validation?: DatasetText } | { kind: 'stored'; uris: DatasetUris };

export const datasetUris = (source: DatasetSource): Promise<DatasetUris> =>
  source.kind === 'stored' ? Promise.resolve(source.uris) : uploadDatasets(source.training, source.validation);

const sourceKey = (source: DatasetSource | undefined): string =>
  !source ? '' : source.kind === 'stored' ? JSON.stringify(source.uris) : JSON.stringify([source.training, source.validation]);

/**
 * `source` undefined means "not ready" (no data, or the browser check failed): nothing is uploaded.
 * `request` builds the job from the datasets' URIs; `requestKey` changes whenever its result would.
 */
export function useDatasetPreview(
  source: DatasetSource | undefined,
  request: (uris: DatasetUris) => NewTuningJob,
  requestKey: string,
  delayMs: number,
): Preview {
  const [preview, setPreview] = useState<Preview>({ phase: 'idle' });
  useEffect(() => {
    if (!source) {
      setPreview({ phase: 'idle' });
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      try {
        setPreview((p) => ({ ...p, phase: source.kind === 'upload' ? 'uploading' : 'checking', error: undefined }));
        const uris = await datasetUris(source);
        if (controller.signal.aborted) return;
        setPreview((p) => ({ ...p, phase: 'checking', uris }));
        const job = await createJob(request(uris), { validateOnly: true, signal: controller.signal });
        setPreview({ phase: 'done', job, uris });
      } catch (error) {
        if (!controller.signal.aborted) setPreview({ phase: 'error', error });
      }
    }, delayMs);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [sourceKey(source), requestKey]);
  return preview;
}
