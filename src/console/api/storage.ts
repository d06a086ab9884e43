// Uploads datasets to Attune's object store (the Cloud Storage JSON API subset); jobs name them as gs:// URIs.
// Each project's uploads go to its own bucket, which only that project can read.
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
