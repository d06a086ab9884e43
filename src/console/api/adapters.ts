// The adapter download (an Attune extension route). Fetched with the key header, then handed to the
// browser as a file, so the key never appears in a URL.
import { apiFetch } from './http';

export const adapterPath = (id: string): string => `/console/api/adapters/${encodeURIComponent(id)}`;

export async function downloadAdapter(id: string): Promise<void> {
  const response = await apiFetch(adapterPath(id));
  const blob = await response.blob();
  const disposition = response.headers.get('content-disposition') ?? '';
  const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `${id}-adapter.zip`;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
