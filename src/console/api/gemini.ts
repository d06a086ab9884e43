// The Gemini API routes the console needs: base models, a tuned model's sampling defaults, delete,
// and (streamed) generation and token counting for the Test page.
import { apiFetch, apiJson } from './http';
import { sseData } from './sse';

export interface BaseModel {
  name: string;
  baseModelId?: string;
  displayName?: string;
  description?: string;
  supportedGenerationMethods?: string[];
  inputTokenLimit?: number;
  outputTokenLimit?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTemperature?: number;
}

export interface TunedModel {
  name: string;
  displayName?: string;
  baseModel?: string;
  state?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
}

export interface Content {
  role: 'user' | 'model';
  parts: { text: string }[];
}

export interface GenerationConfig {
  temperature?: number;
  topP?: number;
  topK?: number;
  maxOutputTokens?: number;
}

export interface UsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  totalTokenCount?: number;
}

/** A system instruction as the API takes it (left out when empty). */
const system = (instruction: string | undefined) => (instruction?.trim() ? { systemInstruction: { parts: [{ text: instruction }] } } : {});

export interface GenerateChunk {
  candidates?: { content?: { parts?: { text?: string }[] }; finishReason?: string }[];
  usageMetadata?: UsageMetadata;
}

/** "tunedModels/123" or "models/gemini-…": what goes before :generateContent. */
export type ModelPath = string;

export const baseModelPath = (baseModel: string): ModelPath => (baseModel.startsWith('models/') ? baseModel : `models/${baseModel}`);
export const tunedModelPath = (id: string): ModelPath => `tunedModels/${id}`;

/** The base models one can tune (supportedGenerationMethods includes createTunedModel). */
export async function listTunableModels(): Promise<BaseModel[]> {
  const { models = [] } = await apiJson<{ models?: BaseModel[] }>('/v1beta/models', { query: { pageSize: 1000 } });
  return models.filter((m) => m.supportedGenerationMethods?.includes('createTunedModel'));
}

export function getBaseModel(path: ModelPath): Promise<BaseModel> {
  return apiJson<BaseModel>(`/v1beta/${path}`);
}

export function getTunedModel(id: string): Promise<TunedModel> {
  return apiJson<TunedModel>(`/v1beta/tunedModels/${encodeURIComponent(id)}`);
}

/** Renames a tuned model (and so its job): PATCH with updateMask=displayName. */
export function renameTunedModel(id: string, displayName: string): Promise<TunedModel> {
  return apiJson<TunedModel>(`/v1beta/tunedModels/${encodeURIComponent(id)}`, { method: 'PATCH', query: { updateMask: 'displayName' }, body: { displayName } });
}

/** Vertex has no job delete; the Gemini API deletes the tuned model (by its id or job number) and so the job. */
export function deleteTunedModel(id: string): Promise<unknown> {
  return apiJson(`/v1beta/tunedModels/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

export async function countTokens(model: ModelPath, contents: Content[], systemInstruction?: string, signal?: AbortSignal): Promise<number> {
  const body = { contents, ...system(systemInstruction) };
  const { totalTokens = 0 } = await apiJson<{ totalTokens?: number }>(`/v1beta/${model}:countTokens`, { method: 'POST', body, signal });
  return totalTokens;
}

/** Streams the answer (SSE); each chunk carries new text, the last one the token counts. */
export async function* streamGenerate(
  model: ModelPath,
  contents: Content[],
  generationConfig: GenerationConfig,
  systemInstruction?: string,
  signal?: AbortSignal,
): AsyncGenerator<GenerateChunk> {
  const body = { contents, generationConfig, ...system(systemInstruction) };
  const response = await apiFetch(`/v1beta/${model}:streamGenerateContent`, { method: 'POST', query: { alt: 'sse' }, body, signal });
  for await (const data of sseData(response)) yield JSON.parse(data) as GenerateChunk;
}

export const chunkText = (chunk: GenerateChunk): string =>
  (chunk.candidates?.[0]?.content?.parts ?? []).map((part) => part.text ?? '').join('');

/** The whole answer at once (:generateContent). */
export function generate(model: ModelPath, contents: Content[], generationConfig: GenerationConfig, systemInstruction?: string, signal?: AbortSignal): Promise<GenerateChunk> {
  const body = { contents, generationConfig, ...system(systemInstruction) };
  return apiJson<GenerateChunk>(`/v1beta/${model}:generateContent`, { method: 'POST', body, signal });
}
