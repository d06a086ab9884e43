// Uploads datasets to Attune's object store (the Cloud Storage JSON API subset), and lists what is there to
// pick from; jobs name them as gs:// URIs. Each project's uploads go to its own bucket, which only that
// project can read.
import { apiJson } from './http';
import { getSettings } from '../settings';
import { consoleBucketFor } from '../../service/storage/buckets';

export interface StoredObject {
  bucket: string;
  name: string;
  size?: string;
}

export const gsUri = (object: StoredObject): string => `gs://${object.bucket}/${object.name}`;

export async function uploadDataset(file: Blob, fileName: string): Promise<StoredObject> {
  // A time prefix keeps re-uploads of files with the same name apart.
  const safeName = fileName.replace(/[^\w.-]+/g, '_') || 'dataset.jsonl';
  const name = `datasets/${new Date().toISOString().replace(/[:.]/g, '-')}-${safeName}`;
  return apiJson<StoredObject>(`/upload/storage/v1/b/${consoleBucketFor(getSettings().project)}/o`, {
    method: 'POST',
    query: { uploadType: 'media', name },
    body: file,
    contentType: 'application/jsonl',
  });
}

/** Objects listed per bucket at most (one page): enough to pick from; a URI can still be typed. */
const listedPerBucket = 1000;

/** Every object in the project's buckets (the console's uploads and any a client put there). */
export async function listDatasets(signal?: AbortSignal): Promise<StoredObject[]> {
  const { items: buckets = [] } = await apiJson<{ items?: { name: string }[] }>('/storage/v1/b', { signal }); // the caller's project's
  const pages = await Promise.all(
    buckets.map((b) => apiJson<{ items?: StoredObject[] }>(`/storage/v1/b/${encodeURIComponent(b.name)}/o`, { query: { maxResults: listedPerBucket }, signal })),
  );
  return pages.flatMap((page) => page.items ?? []);
}

/** gs://bucket/object: what a job's dataset URI must look like. */
export const isGsUri = (uri: string): boolean => /^gs:\/\/[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]\/.+/.test(uri);
