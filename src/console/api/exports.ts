// Exports of a tuned model (an Attune extension route): fetched with the key header, then handed to the
// browser as a file, so the key never appears in a URL.
import { apiFetch, withQuery } from './http';
import { tunedModelPath } from './gemini';

export const exportFormats = ['peft', 'merged', 'gguf', 'ollama'] as const;
export type ExportFormat = (typeof exportFormats)[number];
export const baseTypes = ['f16', 'bf16', 'q8_0', 'f32'] as const;
export type BaseType = (typeof baseTypes)[number];

export interface ExportChoice {
  format: ExportFormat;
  /** gguf: include the base model. */
  withBase?: boolean;
  /** The base GGUF's type; unset keeps the checkpoint's own dtype. */
  baseType?: BaseType;
  /** One of the model's checkpoints; unset: the one it serves. */
  checkpoint?: string;
}

export const exportPath = (id: string, { format, withBase, baseType, checkpoint }: ExportChoice): string =>
  withQuery(`/v1beta/${tunedModelPath(id)}/export`, { format, withBase: withBase || undefined, baseType, checkpoint });

export async function downloadExport(id: string, choice: ExportChoice): Promise<void> {
  const response = await apiFetch(exportPath(id, choice));
  const blob = await response.blob();
  const disposition = response.headers.get('content-disposition') ?? '';
  const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `${id}-${choice.format}${choice.checkpoint ? `-checkpoint-${choice.checkpoint}` : ''}.zip`;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
