// Serving on Vertex paths (vertex-api.md §8): endpoints/{n} is the tuned model of tuning job n, and
// publishers/google/models/{m} a base model; both with generateContent, streamGenerateContent (?alt=sse or a
// streamed JSON array) and countTokens, with or without the projects/{p}/locations/{l} prefix.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { notFound } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { contentMethods } from '../gemini/generate.js';
import { parseVertexVersion, splitCustomMethod, withoutVersion } from './names.js';

type Verb = keyof ReturnType<typeof contentMethods>;
const verbs: readonly string[] = ['generateContent', 'streamGenerateContent', 'countTokens'] satisfies Verb[];

interface Params {
  version: string;
  project?: string;
  location?: string;
  publisher?: string;
  name: string;
}

export function endpointRoutes(app: FastifyInstance, services: Services): void {
  const content = contentMethods(services);
  const serve = (collection: ModelRef['collection']) => async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const version = parseVertexVersion(request.params.version);
    const { id, verb } = splitCustomMethod(request.params.name);
    if (!verbs.includes(verb)) throw notFound(`Method not found: POST ${request.url.split('?')[0]}`);
    if (collection === 'models' && request.params.publisher !== 'google') {
      throw notFound(`Publisher model ${request.params.publisher}/${id} not found; Attune serves publishers/google/models/*.`);
    }
    const ref: ModelRef = { project: request.project, collection, id: withoutVersion(id), apiVersion: version };
    if (collection === 'tunedModels') {
      const { location } = request.params;
      // Endpoints live in their job's location; the path without one finds any.
      if (!/^\d+$/.test(ref.id) || (location && (await services.tuning.get(ref.project, ref.id)).location !== location)) {
        throw notFound(`Endpoint ${id} not found.`);
      }
    }
    return content[verb as Verb](request, reply, ref);
  };
  for (const prefix of ['/:version/projects/:project/locations/:location', '/:version']) {
    app.post(`${prefix}/endpoints/:name`, serve('tunedModels'));
    app.post(`${prefix}/publishers/:publisher/models/:name`, serve('models'));
  }
}
