// Once the browser check passes, the dataset goes to Attune's store and the server checks the would-be
// job (validateOnly): its tuningDataStats give the step count and token totals before anything starts.
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

/**
 * `training` undefined means "not ready" (no data, or the browser check failed): nothing is uploaded.
 * `request` builds the job from the uploaded URIs; `requestKey` changes whenever its result would.
 */
export function useDatasetPreview(
  training: DatasetText | undefined,
  validation: DatasetText | undefined,
  request: (uris: DatasetUris) => NewTuningJob,
  requestKey: string,
  delayMs: number,
): Preview {
  const [preview, setPreview] = useState<Preview>({ phase: 'idle' });
  useEffect(() => {
    if (!training) {
      setPreview({ phase: 'idle' });
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      try {
        setPreview((p) => ({ ...p, phase: 'uploading', error: undefined }));
        const uris = await uploadDatasets(training, validation);
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
  }, [training?.text, training?.fileName, validation?.text, validation?.fileName, requestKey]);
  return preview;
}
