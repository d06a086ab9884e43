// Serving on Vertex paths (vertex-api.md §8): endpoints/{n} is the tuned model of tuning job n, and
// publishers/google/models/{m} a base model; both with generateContent, streamGenerateContent (?alt=sse or a
// streamed JSON array) and countTokens, with or without the projects/{p}/locations/{l} prefix.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { notFound } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { contentMethods } from '../gemini/generate.js';
import { parseVertexVersion, splitCustomMethod, withoutVersion, type VertexVersion } from './names.js';

type Verb = keyof ReturnType<typeof contentMethods>;
const verbs: readonly string[] = ['generateContent', 'streamGenerateContent', 'countTokens'] satisfies Verb[];

interface Params {
  version: string;
  project?: string;
  location?: string;
  publisher?: string;
  name: string;
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
export function endpointRef(services: Services, { version, project, location, collection, publisher, name }: EndpointTarget): ModelRef {
  if (collection === 'models' && publisher !== 'google') {
    throw notFound(`Publisher model ${publisher}/${name} not found; Attune serves publishers/google/models/*.`);
  }
  const ref: ModelRef = { project, collection, id: withoutVersion(name), apiVersion: version };
  // Endpoints live in their job's location; the path without one finds any.
  if (collection === 'tunedModels' && (!/^\d+$/.test(ref.id) || (location && services.tuning.get(ref.project, ref.id).location !== location))) {
    throw notFound(`Endpoint ${name} not found.`);
  }
  return ref;
}

export function endpointRoutes(app: FastifyInstance, services: Services): void {
  const content = contentMethods(services);
  const serve = (collection: ModelRef['collection']) => async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const version = parseVertexVersion(request.params.version);
    const { id, verb } = splitCustomMethod(request.params.name);
    if (!verbs.includes(verb)) throw notFound(`Method not found: POST ${request.url.split('?')[0]}`);
    const { project, location, publisher } = { ...request.params, project: request.project };
    const ref = endpointRef(services, { version, project, location, collection, publisher, name: id });
    return content[verb as Verb](request, reply, ref);
  };
  for (const prefix of ['/:version/projects/:project/locations/:location', '/:version']) {
    app.post(`${prefix}/endpoints/:name`, serve('tunedModels'));
    app.post(`${prefix}/publishers/:publisher/models/:name`, serve('models'));
  }
}
