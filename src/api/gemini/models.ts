// GET /{version}/models and /{version}/models/{id}: the base models (local ones and Google's names aliased
// to them) as Model resources (gemini-api.md §6; model.proto).
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { invalidArgument } from '../../service/errors.js';
import { supportedGenerationMethods, type BaseModelInfo } from '../../service/models/registry.js';
import { servingLimits } from '../../service/serving/inference.js';
import { parseVersion, type ApiVersion } from './custom-methods.js';
import { pagingQuery } from '../paging.js';

export const modelPageSizes = { default: 50, max: 1000 } as const;

/** `gemini-1.5-flash-001-tuning` → "001"; names without a three-digit version part are "001". */
function versionOf(id: string): string {
  return id.match(/-(\d{3})(?:-|$)/)?.[1] ?? '001';
}

export function modelWire(info: BaseModelInfo) {
  const id = info.name.replace(/^models\//, '');
  return {
    name: info.name,
    // An alias runs as a local model; pass either name to a generation or tuning request.
    ...(info.aliasOf ? { baseModelId: info.aliasOf.replace(/^models\//, '') } : {}),
    version: versionOf(id),
    displayName: info.displayName,
    description: info.description,
    inputTokenLimit: info.inputTokenLimit,
    outputTokenLimit: info.outputTokenLimit,
    supportedGenerationMethods: [...supportedGenerationMethods],
    temperature: info.sampling.temperature,
    maxTemperature: servingLimits.maxTemperature,
    topP: info.sampling.topP,
    topK: info.sampling.topK,
  };
}

const encodePageToken = (offset: number) => Buffer.from(JSON.stringify({ m: offset })).toString('base64url');

function decodePageToken(token: string): number {
  try {
    const { m } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Number.isInteger(m) && m >= 0) return m;
  } catch {
    // falls through to the error below
  }
  throw invalidArgument('pageToken is invalid: pass the nextPageToken of a previous ListModels call', 'page_token');
}

/** ListModels and GetModel, free of any transport (the HTTP routes below and api/grpc call these). */
export function baseModelMethods({ registry }: Services) {
  return {
    list({ pageSize, pageToken }: { pageSize?: number; pageToken?: string }) {
      const size = Math.min(pageSize || modelPageSizes.default, modelPageSizes.max);
      const offset = pageToken ? decodePageToken(pageToken) : 0;
      const all = registry.list();
      const page = all.slice(offset, offset + size);
      return {
        models: page.map(modelWire),
        ...(offset + size < all.length ? { nextPageToken: encodePageToken(offset + size) } : {}),
      };
    },
    get: (id: string, version: ApiVersion) => modelWire(registry.resolve(id, version)),
  };
}

export function modelRoutes(app: FastifyInstance, services: Services): void {
  const models = baseModelMethods(services);

  app.get<{ Params: { version: string }; Querystring: { pageSize?: number; pageToken?: string } }>(
    '/:version/models',
    { schema: { querystring: { type: 'object', properties: pagingQuery } } },
    async (request) => {
      parseVersion(request.params.version);
      return models.list(request.query);
    },
  );

  app.get<{ Params: { version: string; id: string } }>('/:version/models/:id', async (request) =>
    models.get(request.params.id, parseVersion(request.params.version)),
  );
}
