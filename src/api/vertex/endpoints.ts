// Serving on Vertex paths (vertex-api.md §8): endpoints/{n} is the tuned model of tuning job n, and
// publishers/google/models/{m} a base model; both with generateContent, streamGenerateContent (?alt=sse or a
// streamed JSON array), countTokens and computeTokens (LlmUtilityService), with or without the
// projects/{p}/locations/{l} prefix. Answers name the base model as modelVersion, as Vertex's do.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { invalidArgument, notFound } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { contentMethods, parseContents } from '../gemini/generate.js';
import { bodyChecker } from '../check-body.js';
import { isObject } from '../proto-json.js';
import { parseVertexVersion, splitCustomMethod, withoutVersion, type VertexVersion } from './names.js';
import { ComputeTokensRequest, tokensInfoWire, type ComputeTokensResponse } from './resource-wire.js';
import { endpointOf } from './resources.js';

type Verb = keyof ReturnType<typeof contentMethods> | 'computeTokens';
const verbs: readonly string[] = ['generateContent', 'streamGenerateContent', 'countTokens', 'computeTokens'] satisfies Verb[];

interface Params {
  version: string;
  project?: string;
  location?: string;
  publisher?: string;
  name: string;
}

const checkComputeTokens = bodyChecker(ComputeTokensRequest, 'Send {"contents": [{"role": "user", "parts": [{"text": "..."}]}]}.');

/** The texts to tokenize, each with its role: one per content, or one per PaLM-era instance ({prompt} or {content}). */
function textsOf(body: ComputeTokensRequest): { role?: string; text: string }[] {
  const instances = body.instances ?? [];
  if (body.contents !== undefined && instances.length) throw invalidArgument('Set contents or instances, not both.', 'contents');
  if (instances.length) {
    return instances.map((instance, i) => {
      const text = typeof instance === 'string' ? instance : isObject(instance) ? (instance.prompt ?? instance.content) : undefined;
      if (typeof text !== 'string') throw invalidArgument(`instances[${i}] must be {"prompt": "..."} or {"content": "..."}.`, `instances[${i}]`);
      return { text };
    });
  }
  const turns = parseContents(body.contents);
  if (turns.length === 0) throw invalidArgument('contents is required: [{"role": "user", "parts": [{"text": "..."}]}].', 'contents');
  return turns;
}

export interface EndpointTarget {
  version: VertexVersion;
  project: string;
  location?: string;
  collection: ModelRef['collection'];
  publisher?: string;
  /** The endpoint's number, or the publisher model's id. */
  name: string;
}

/** The model an endpoint or publisher-model name serves, for the caller's project (NOT_FOUND otherwise). */
export async function endpointRef(services: Services, { version, project, location, collection, publisher, name }: EndpointTarget): Promise<ModelRef> {
  if (collection === 'models' && publisher !== 'google') {
    throw notFound(`Publisher model ${publisher}/${name} not found; Attune serves publishers/google/models/*.`);
  }
  if (collection === 'tunedModels') {
    // An endpoint exists while its job's tunedModel names it, in its job's location (the path without one finds
    // any); it serves its checkpoint (models tuned before checkpoints: their adapter).
    const { model, checkpoint } = await endpointOf(services, project, name, location);
    return { project, collection, id: model.id, apiVersion: version, checkpointId: checkpoint?.checkpointId };
  }
  return { project, collection, id: withoutVersion(name), apiVersion: version };
}

/** computeTokens, free of any transport (the HTTP route below and api/grpc call it). */
export function computeTokensCall(services: Services) {
  return async (ref: ModelRef, body: unknown): Promise<ComputeTokensResponse> => {
    const texts = textsOf(checkComputeTokens(body));
    const tokens = await services.inference.computeTokens(ref, texts.map((t) => t.text));
    return { tokensInfo: tokens.map((t, i) => tokensInfoWire(t, texts[i]!.role)) };
  };
}

export function endpointRoutes(app: FastifyInstance, services: Services): void {
  const content = contentMethods(services, 'vertex');
  const computeTokens = computeTokensCall(services);

  const serve = (collection: ModelRef['collection']) => async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const version = parseVertexVersion(request.params.version);
    const { id, verb } = splitCustomMethod(request.params.name);
    if (!verbs.includes(verb)) throw notFound(`Method not found: POST ${request.url.split('?')[0]}`);
    const { location, publisher } = request.params;
    const ref = await endpointRef(services, { version, project: request.project, location, collection, publisher, name: id });
    if (verb === 'computeTokens') return computeTokens(ref, request.body);
    return content[verb as Exclude<Verb, 'computeTokens'>](request, reply, ref);
  };
  for (const prefix of ['/:version/projects/:project/locations/:location', '/:version']) {
    app.post(`${prefix}/endpoints/:name`, serve('tunedModels'));
    app.post(`${prefix}/publishers/:publisher/models/:name`, serve('models'));
  }
}
