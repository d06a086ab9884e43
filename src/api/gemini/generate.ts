// Generation on tuned and base models: generateContent, streamGenerateContent (SSE or a streamed JSON
// array), countTokens (v1, v1beta) and PaLM's generateText and countTextTokens (v1beta3, v1beta). gemini-api.md §8, §9.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument } from '../../service/errors.js';
import type { Turn } from '../../engine/data/examples.js';
import type { FinishReason } from '../../engine/generate/generate.js';
import {
  servingLimits,
  type GenerateRequest,
  type GenerationResult,
  type GenerationStream,
  type ModelRef,
  type PromptRequest,
  type SamplingConfig,
} from '../../service/serving/inference.js';
import { classify, rpcErrorBody } from '../plugins/errors.js';
import type { ApiVersion, CustomMethod, CustomMethodTarget, CustomMethods } from './custom-methods.js';
import { isObject, listOf, wireOptions, type WireOptions } from '../proto-json.js';
import type { Surface } from '../../service/tuning/defaults.js';

type Json = Record<string, unknown>;


/** The API versions each method is served on. */
export const contentVersions: readonly ApiVersion[] = ['v1', 'v1beta'];
export const textVersions: readonly ApiVersion[] = ['v1beta', 'v1beta3'];

/** PaLM's text limits differ from Gemini's (text_service.proto). */
const palmLimits = { maxTemperature: 1 } as const;

// ---------------------------------------------------------------------------------------------------
// Requests

const partKinds = ['inlineData', 'fileData', 'functionCall', 'functionResponse', 'executableCode', 'codeExecutionResult'];

/** The text of a Content's parts, concatenated; any other kind of part is refused. */
function textOfParts(parts: unknown, field: string): string {
  const list = listOf(parts);
  if (list.length === 0) throw invalidArgument(`* GenerateContentRequest.${field}: contents.parts must not be empty.`, field);
  let text = '';
  list.forEach((part, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(part)) throw invalidArgument(`Invalid value at '${at}': a part must be an object like {"text": "..."}.`, at);
    if (typeof part.text === 'string') {
      if (part.thought !== true) text += part.text; // thought summaries are not part of the conversation
      return;
    }
    const kind = partKinds.find((k) => part[k] !== undefined) ?? (part.text !== undefined ? 'a text that is not a string' : 'no text');
    throw invalidArgument(`Only text is supported: ${at} has ${kind}. Send text parts, {"text": "..."}.`, at);
  });
  return text;
}

function roleOf(value: unknown, field: string): Turn['role'] {
  if (value === undefined || value === null || value === '') return 'user';
  const role = typeof value === 'string' ? value.toLowerCase() : '';
  if (role === 'user' || role === 'model') return role;
  throw invalidArgument('Please use a valid role: user, model.', field);
}

export function parseContents(value: unknown, field = 'contents'): Turn[] {
  if (value !== undefined && value !== null && typeof value !== 'object') {
    throw invalidArgument(`Invalid value at '${field}': expected a list of contents like [{"role": "user", "parts": [{"text": "..."}]}].`, field);
  }
  return listOf(value).map((content, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(content)) throw invalidArgument(`Invalid value at '${at}': a content must be an object with parts.`, at);
    return { role: roleOf(content.role, `${at}.role`), text: textOfParts(content.parts, `${at}.parts`) };
  });
}

function parseSystemInstruction(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value || undefined;
  if (!isObject(value)) throw invalidArgument("Invalid value at 'system_instruction': expected a content with text parts.", 'system_instruction');
  const text = textOfParts(value.parts, 'system_instruction.parts');
  return text === '' ? undefined : text;
}

/** A number as proto3 JSON gives it: a JSON number or a numeric string. */
function numberAt(value: unknown, field: string, type: 'TYPE_FLOAT' | 'TYPE_INT32'): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || (type === 'TYPE_INT32' && !Number.isInteger(n))) {
    throw invalidArgument(`Invalid value at '${field}' (${type}), ${JSON.stringify(value)}`, field);
  }
  return n;
}

function checkRange(value: number | undefined, field: string, min: number, max: number): void {
  if (value !== undefined && !(value >= min && value <= max)) {
    throw invalidArgument(`${field} must be between ${min} and ${max} (inclusive), not ${value}.`, snake(field));
  }
}

const snake = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

interface SamplingFields {
  candidateCount?: unknown;
  stopSequences?: unknown;
  maxOutputTokens?: unknown;
  temperature?: unknown;
  topP?: unknown;
  topK?: unknown;
  seed?: unknown;
}

/** generationConfig (or generateText's top-level fields); `prefix` names them in errors. */
function parseSampling(fields: SamplingFields, prefix: string, maxTemperature: number): SamplingConfig {
  const at = (name: string) => (prefix ? `${prefix}.${name}` : name);
  const config: SamplingConfig = {
    candidateCount: numberAt(fields.candidateCount, snake(at('candidateCount')), 'TYPE_INT32'),
    maxOutputTokens: numberAt(fields.maxOutputTokens, snake(at('maxOutputTokens')), 'TYPE_INT32'),
    temperature: numberAt(fields.temperature, snake(at('temperature')), 'TYPE_FLOAT'),
    topP: numberAt(fields.topP, snake(at('topP')), 'TYPE_FLOAT'),
    topK: numberAt(fields.topK, snake(at('topK')), 'TYPE_INT32'),
    seed: numberAt(fields.seed, snake(at('seed')), 'TYPE_INT32'),
  };
  checkRange(config.candidateCount, at('candidateCount'), 1, servingLimits.maxCandidateCount);
  if (config.maxOutputTokens !== undefined && config.maxOutputTokens < 1) {
    throw invalidArgument(`${at('maxOutputTokens')} must be a positive integer, not ${config.maxOutputTokens}.`, snake(at('maxOutputTokens')));
  }
  checkRange(config.temperature, at('temperature'), 0, maxTemperature);
  checkRange(config.topP, at('topP'), 0, 1);
  if (config.topK !== undefined && config.topK < 0) {
    throw invalidArgument(`${at('topK')} must not be negative, not ${config.topK}.`, snake(at('topK')));
  }
  if (fields.stopSequences !== undefined && fields.stopSequences !== null) {
    const stops = listOf(fields.stopSequences);
    const field = snake(at('stopSequences'));
    if (!stops.every((s): s is string => typeof s === 'string')) throw invalidArgument(`${at('stopSequences')} must be a list of strings.`, field);
    if (stops.length > servingLimits.maxStopSequences) {
      throw invalidArgument(
        `${at('stopSequences')} has ${stops.length} stop sequences; at most ${servingLimits.maxStopSequences} are allowed.`,
        field,
      );
    }
    config.stopSequences = stops;
  }
  return config;
}

/** Fields that ask for something Attune's text models cannot do: refused rather than silently ignored. */
function refuseUnsupported(body: Json, config: Json): void {
  const mime = config.responseMimeType;
  if (mime !== undefined && mime !== null && mime !== '' && mime !== 'text/plain') {
    throw invalidArgument(`JSON mode is not supported: responseMimeType must be text/plain, not ${JSON.stringify(mime)}.`, 'generation_config.response_mime_type');
  }
  for (const schema of ['responseSchema', 'responseJsonSchema'] as const) {
    if (isObject(config[schema]) && Object.keys(config[schema] as Json).length) {
      throw invalidArgument(`JSON mode is not supported: remove generationConfig.${schema}.`, `generation_config.${snake(schema)}`);
    }
  }
  if (listOf(body.tools).length) throw invalidArgument('Tools (function calling, code execution, search) are not supported by this model.', 'tools');
  if (typeof body.cachedContent === 'string' && body.cachedContent !== '') {
    throw invalidArgument('cachedContent is not supported by this model.', 'cached_content');
  }
}

export function parseGenerateContentRequest(body: unknown): GenerateRequest {
  const request = isObject(body) ? body : {};
  const config = isObject(request.generationConfig) ? request.generationConfig : {};
  refuseUnsupported(request, config);
  return {
    turns: parseContents(request.contents),
    systemInstruction: parseSystemInstruction(request.systemInstruction),
    config: parseSampling(config, 'generationConfig', servingLimits.maxTemperature),
  };
}

export function parseCountTokensRequest(body: unknown): PromptRequest {
  const request = isObject(body) ? body : {};
  const inner = request.generateContentRequest;
  if (inner !== undefined && request.contents !== undefined) {
    throw invalidArgument('Set contents or generateContentRequest, not both.', 'contents');
  }
  if (isObject(inner)) {
    return { turns: parseContents(inner.contents, 'generate_content_request.contents'), systemInstruction: parseSystemInstruction(inner.systemInstruction) };
  }
  return { turns: parseContents(request.contents), systemInstruction: parseSystemInstruction(request.systemInstruction) };
}

export function parseGenerateTextRequest(body: unknown): GenerateRequest {
  const request = isObject(body) ? body : {};
  const prompt = request.prompt;
  const text = isObject(prompt) ? prompt.text : typeof prompt === 'string' ? prompt : undefined;
  if (typeof text !== 'string') throw invalidArgument('prompt.text is required: {"prompt": {"text": "..."}}.', 'prompt');
  return { turns: [{ role: 'user', text }], config: parseSampling(request, '', palmLimits.maxTemperature) };
}

// ---------------------------------------------------------------------------------------------------
// Responses

const finishReasonNumbers: Record<FinishReason, number> = { STOP: 1, MAX_TOKENS: 2 };
const harmCategoryNumbers = {
  HARM_CATEGORY_DEROGATORY: 1,
  HARM_CATEGORY_TOXICITY: 2,
  HARM_CATEGORY_VIOLENCE: 3,
  HARM_CATEGORY_SEXUAL: 4,
  HARM_CATEGORY_MEDICAL: 5,
  HARM_CATEGORY_DANGEROUS: 6,
} as const;
const NEGLIGIBLE = 1;

const responseId = () => randomBytes(16).toString('base64url');

interface CandidateChunk {
  index: number;
  text?: string;
  finishReason?: FinishReason;
}

function candidateWire({ index, text, finishReason }: CandidateChunk, options: WireOptions) {
  return {
    ...(text !== undefined ? { content: { parts: [{ text }], role: 'model' } } : {}),
    ...(finishReason ? { finishReason: options.integerEnums ? finishReasonNumbers[finishReason] : finishReason } : {}),
    index, // optional int32: emitted even when 0
  };
}

function usageWire(promptTokenCount: number, candidatesTokenCount: number) {
  return { promptTokenCount, candidatesTokenCount, totalTokenCount: promptTokenCount + candidatesTokenCount };
}

/**
 * The model a response names: the Gemini API names the tuned model (tunedModels/{id}); Vertex names the base
 * model, for a tuned endpoint too (vertex-api.md §8.3).
 */
const modelVersionOf = (result: Pick<GenerationResult, 'modelVersion' | 'baseModelVersion'>, surface: Surface) =>
  surface === 'vertex' ? result.baseModelVersion : result.modelVersion;

export function generateContentWire(result: GenerationResult, id: string, options: WireOptions, surface: Surface = 'gemini') {
  return {
    candidates: result.candidates.map((c, index) => candidateWire({ index, text: c.text, finishReason: c.finishReason }, options)),
    usageMetadata: usageWire(result.promptTokenCount, result.candidatesTokenCount),
    modelVersion: modelVersionOf(result, surface),
    responseId: id,
  };
}

function generateTextWire(result: GenerationResult, options: WireOptions) {
  const safetyRatings = Object.entries(harmCategoryNumbers).map(([category, number]) =>
    options.integerEnums ? { category: number, probability: NEGLIGIBLE } : { category, probability: 'NEGLIGIBLE' },
  );
  return {
    candidates: result.candidates.map((c) => ({ ...(c.text !== '' ? { output: c.text } : {}), safetyRatings })),
  };
}

/**
 * The chunks of a streamed generation. Each delta is held until the next text for its candidate (or the
 * end) arrives, so that the last chunk carries the last text together with every finishReason and the
 * usage, rather than an empty trailer.
 */
async function* responseChunks(stream: GenerationStream, id: string, options: WireOptions, surface: Surface): AsyncGenerator<Json> {
  const pending = new Map<number, string>();
  const chunk = (candidates: CandidateChunk[], extra: Json = {}): Json => ({
    candidates: candidates.sort((a, b) => a.index - b.index).map((c) => candidateWire(c, options)),
    ...extra,
    modelVersion: modelVersionOf(stream, surface),
    responseId: id,
  });
  for await (const { candidate, text } of stream) {
    if (pending.has(candidate)) {
      yield chunk([...pending].map(([index, t]) => ({ index, text: t })));
      pending.clear();
    }
    pending.set(candidate, text);
  }
  const result = await stream.result;
  const last = result.candidates.map((c, index) => ({ index, text: pending.get(index) ?? '', finishReason: c.finishReason }));
  yield chunk(last, { usageMetadata: usageWire(result.promptTokenCount, result.candidatesTokenCount) });
}

/** The body of a streamGenerateContent reply: SSE events, or one JSON array written as it grows. */
async function* streamBody(chunks: AsyncGenerator<Json>, sse: boolean): AsyncGenerator<string> {
  let first = true;
  const frame = (json: Json): string => {
    const text = JSON.stringify(json);
    if (sse) return `data: ${text}\r\n\r\n`;
    const framed = (first ? '[' : ',\r\n') + text;
    first = false;
    return framed;
  };
  try {
    for await (const json of chunks) yield frame(json);
  } catch (error) {
    // Headers are gone: the error travels as a chunk, which @google/genai turns into an ApiError.
    const { status, message, violations } = classify(error);
    yield frame(rpcErrorBody(status, message, violations));
  }
  if (!sse) yield first ? '[]' : ']';
}

// ---------------------------------------------------------------------------------------------------
// Routes

function modelRef(request: FastifyRequest, collection: ModelRef['collection'], target: CustomMethodTarget): ModelRef {
  return { project: request.project, collection, id: target.id, apiVersion: target.version };
}

function requireVersion(versions: readonly ApiVersion[], target: CustomMethodTarget, collection: string, verb: string): void {
  if (!versions.includes(target.version)) {
    throw new ServiceError('NOT_FOUND', `Method not found: POST /${target.version}/${collection}/${target.id}:${verb}`);
  }
}

/** X-Server-Timeout: the seconds a client will wait (Google's client libraries send it when given a timeout). */
function serverTimeout(request: FastifyRequest): number | undefined {
  const value = Number(request.headers['x-server-timeout']);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** Aborts when the client goes away before the reply is complete. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * generateContent, streamGenerateContent, countTokens, generateText and countTextTokens on a model, free of any
 * transport: proto3 JSON in, proto3 JSON out. The HTTP routes and the gRPC services (api/grpc) both call these.
 * `timeout` is the caller's server-side limit in seconds, if it set one.
 */
export function contentCalls({ inference }: Services, surface: Surface = 'gemini') {
  return {
    async generateContent(ref: ModelRef, body: unknown, signal: AbortSignal, options: WireOptions, timeout?: number) {
      const result = await inference.generate(ref, parseGenerateContentRequest(body), signal, timeout);
      return generateContentWire(result, responseId(), options, surface);
    },

    /** Everything that can be refused (model, state, prompt) is refused before this resolves; the chunks follow. */
    async streamGenerateContent(ref: ModelRef, body: unknown, signal: AbortSignal, options: WireOptions, timeout?: number): Promise<AsyncGenerator<Json>> {
      const stream = await inference.stream(ref, parseGenerateContentRequest(body), signal, timeout);
      return responseChunks(stream, responseId(), options, surface);
    },

    async countTokens(ref: ModelRef, body: unknown) {
      return { totalTokens: await inference.countTokens(ref, parseCountTokensRequest(body)) };
    },

    async generateText(ref: ModelRef, body: unknown, signal: AbortSignal, options: WireOptions, timeout?: number) {
      const result = await inference.generate(ref, parseGenerateTextRequest(body), signal, timeout);
      return generateTextWire(result, options);
    },

    /** The prompt's tokens as generateText frames it. */
    async countTextTokens(ref: ModelRef, body: unknown) {
      const { turns } = parseGenerateTextRequest(body);
      return { tokenCount: await inference.countTokens(ref, { turns }) };
    },
  };
}

/** generateContent, streamGenerateContent and countTokens on a model, for any surface that names one. */
export function contentMethods(services: Services, surface: Surface = 'gemini') {
  const calls = contentCalls(services, surface);
  return {
    async generateContent(request: FastifyRequest, reply: FastifyReply, ref: ModelRef) {
      return calls.generateContent(ref, request.body, clientGone(reply), wireOptions(request), serverTimeout(request));
    },

    async streamGenerateContent(request: FastifyRequest, reply: FastifyReply, ref: ModelRef) {
      const chunks = await calls.streamGenerateContent(ref, request.body, clientGone(reply), wireOptions(request), serverTimeout(request));
      const sse = (request.query as Json).alt === 'sse';
      reply.type(sse ? 'text/event-stream' : 'application/json; charset=UTF-8');
      reply.header('cache-control', 'no-cache');
      return reply.send(Readable.from(streamBody(chunks, sse)));
    },

    async countTokens(request: FastifyRequest, _reply: FastifyReply, ref: ModelRef) {
      return calls.countTokens(ref, request.body);
    },
  };
}

export function generateRoutes(services: Services, customMethods: CustomMethods): void {
  const calls = contentCalls(services);
  const content = contentMethods(services);

  for (const collection of ['tunedModels', 'models'] as const) {
    const methods = customMethods[collection];
    const on = (verb: string, versions: readonly ApiVersion[], method: CustomMethod) =>
      methods.set(verb, async (request, reply, target) => {
        requireVersion(versions, target, collection, verb);
        return method(request, reply, target);
      });

    on('generateContent', contentVersions, (request, reply, target) => content.generateContent(request, reply, modelRef(request, collection, target)));
    on('streamGenerateContent', contentVersions, (request, reply, target) =>
      content.streamGenerateContent(request, reply, modelRef(request, collection, target)),
    );
    on('countTokens', contentVersions, (request, reply, target) => content.countTokens(request, reply, modelRef(request, collection, target)));

    on('generateText', textVersions, (request, reply, target) =>
      calls.generateText(modelRef(request, collection, target), request.body, clientGone(reply), wireOptions(request), serverTimeout(request)),
    );
  }

  // PaLM's countTextTokens is bound to models/* only (text_service.proto): the prompt's tokens as generateText frames it.
  customMethods.models.set('countTextTokens', async (request, _reply, target) => {
    requireVersion(textVersions, target, 'models', 'countTextTokens');
    return calls.countTextTokens(modelRef(request, 'models', target), request.body);
  });
}
