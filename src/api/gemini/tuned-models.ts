// tunedModels create/get/list/patch/delete and :cancel, on v1beta and (PaLM) v1beta3.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { invalidArgument, notFound } from '../../service/errors.js';
import { patchableFields, type TunedModelPatch } from '../../service/tuning/service.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import { camelCase } from '../plugins/lenient-json.js';
import { parseVersion, type CustomMethods } from './custom-methods.js';
import { operationWire, tunedModelWire } from './wire.js';
import { wireOptions, type WireOptions } from '../proto-json.js';
import { pagingQuery } from '../paging.js';

const number = { type: 'number' };
const integer = { type: 'integer' };
const string = { type: 'string' };

/** The TunedModel body: types are checked, unknown and output-only fields are ignored (as old SDKs PATCH whole models). */
const tunedModelBody = {
  type: 'object',
  properties: {
    displayName: string,
    description: string,
    baseModel: string,
    tunedModelSource: { type: 'object', properties: { tunedModel: string } },
    temperature: number,
    topP: number,
    topK: integer,
    tuningTask: {
      type: 'object',
      properties: {
        hyperparameters: {
          type: 'object',
          properties: { epochCount: integer, batchSize: integer, learningRate: number, learningRateMultiplier: number },
        },
        trainingData: {
          type: 'object',
          properties: { examples: { type: 'object', properties: { examples: { type: 'array', items: { type: 'object' } } } } },
        },
      },
    },
  },
} as const;

interface TunedModelBody {
  displayName?: string;
  description?: string;
  baseModel?: string;
  tunedModelSource?: { tunedModel?: string };
  temperature?: number;
  topP?: number;
  topK?: number;
  tuningTask?: {
    hyperparameters?: { epochCount?: number; batchSize?: number; learningRate?: number; learningRateMultiplier?: number };
    trainingData?: { examples?: { examples?: unknown[] } };
  };
}

const trainingDataField = 'tuned_model.tuning_task.training_data';

interface ListQuery {
  pageSize?: number;
  pageToken?: string;
  filter?: string;
}

export function tunedModelRoutes(app: FastifyInstance, services: Services, customMethods: CustomMethods): void {
  const { tuning, store } = services;
  const modelWire = async (model: TunedModel, options: WireOptions) => tunedModelWire(model, await store.metrics(model.id, 'train'), options);

  app.post<{ Params: { version: string }; Querystring: { tunedModelId?: string }; Body: TunedModelBody }>(
    '/:version/tunedModels',
    { schema: { body: tunedModelBody, querystring: { type: 'object', properties: { tunedModelId: string } } } },
    async (request) => {
      const version = parseVersion(request.params.version);
      const body = request.body ?? {};
      const examples = body.tuningTask?.trainingData?.examples?.examples ?? [];
      if (examples.length === 0) {
        throw invalidArgument(
          'tuningTask.trainingData.examples must contain at least one training example. (@google/genai 1.28 and later drop ' +
            'the training examples in Gemini API mode: send them in the REST body, or use Vertex AI mode with a dataset URI.)',
          trainingDataField,
        );
      }
      const model = await tuning.create({
        surface: 'gemini',
        project: request.project,
        apiVersion: version,
        tunedModelId: request.query.tunedModelId,
        displayName: body.displayName,
        description: body.description,
        baseModel: body.baseModel,
        sourceTunedModel: body.tunedModelSource?.tunedModel,
        temperature: body.temperature,
        topP: body.topP,
        topK: body.topK,
        hyperparameters: body.tuningTask?.hyperparameters,
        training: { examples, field: trainingDataField },
      });
      return operationWire(model, [], wireOptions(request));
    },
  );

  app.get<{ Params: { version: string }; Querystring: ListQuery }>(
    '/:version/tunedModels',
    { schema: { querystring: { type: 'object', properties: { ...pagingQuery, filter: string } } } },
    async (request) => {
      parseVersion(request.params.version);
      const { pageSize, pageToken, filter } = request.query;
      const page = await tuning.list(request.project, pageSize, pageToken, filter);
      const options = wireOptions(request);
      const tunedModels = await Promise.all(page.items.map((m) => modelWire(m, options)));
      return { tunedModels: tunedModels.length ? tunedModels : undefined, nextPageToken: page.nextPageToken };
    },
  );

  app.get<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id', async (request) => {
    parseVersion(request.params.version);
    return modelWire(await tuning.get(request.project, request.params.id), wireOptions(request));
  });

  app.patch<{ Params: { version: string; id: string }; Querystring: { updateMask?: string }; Body: TunedModelBody }>(
    '/:version/tunedModels/:id',
    { schema: { body: tunedModelBody } },
    async (request) => {
      const version = parseVersion(request.params.version);
      const body = (request.body ?? {}) as Record<string, unknown>;
      // Without a mask every updatable field present in the body is the mask (AIP-134).
      const mask = request.query.updateMask
        ? request.query.updateMask.split(',').map((p) => camelCase(p.trim()))
        : patchableFields.filter((f) => body[f] !== undefined);
      if (version === 'v1beta3' && !request.query.updateMask) throw invalidArgument('updateMask is required', 'update_mask');
      const patch: TunedModelPatch = {};
      for (const path of mask) {
        if (!(patchableFields as readonly string[]).includes(path)) {
          throw invalidArgument(`updateMask path '${path}' cannot be updated; updatable: ${patchableFields.join(', ')}`, 'update_mask');
        }
        (patch as Record<string, unknown>)[path] = body[path] ?? (path === 'displayName' || path === 'description' ? '' : undefined);
      }
      return modelWire(await tuning.patch(request.project, request.params.id, patch), wireOptions(request));
    },
  );

  app.delete<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id', async (request) => {
    parseVersion(request.params.version);
    await tuning.delete(request.project, request.params.id);
    return {};
  });

  // @google/genai's tunings.cancel() posts tunedModels/x:cancel: an alias of the operation's cancel.
  customMethods.tunedModels.set('cancel', async (request, _reply, { id }) => {
    await tuning.cancel(request.project, id);
    return {};
  });
}

export function operationRoutes(app: FastifyInstance, services: Services): void {
  const { tuning, store } = services;
  const wire = async (model: TunedModel, options: WireOptions) => operationWire(model, await store.metrics(model.id, 'train'), options);
  app.get<{ Params: { version: string; id: string; op: string } }>('/:version/tunedModels/:id/operations/:op', async (request) => {
    parseVersion(request.params.version);
    return wire(await checkedOperation(tuning, request.project, request.params.id, request.params.op), wireOptions(request));
  });

  app.get<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id/operations', async (request) => {
    parseVersion(request.params.version);
    return { operations: [await wire(await tuning.get(request.project, request.params.id), wireOptions(request))] };
  });

  app.post<{ Params: { version: string; id: string; op: string } }>('/:version/tunedModels/:id/operations/:op', async (request) => {
    parseVersion(request.params.version);
    const [operation, verb] = request.params.op.split(':');
    if (verb !== 'cancel') throw invalidArgument(`unknown method ${verb ?? '(none)'}; operations support :cancel`);
    const model = await checkedOperation(tuning, request.project, request.params.id, operation);
    await tuning.cancel(request.project, model.id);
    return {};
  });

  app.get<{ Querystring: ListQuery }>('/v1/operations', { schema: { querystring: { type: 'object', properties: pagingQuery } } }, async (request) => {
    const page = await tuning.list(request.project, request.query.pageSize, request.query.pageToken);
    const options = wireOptions(request);
    const operations = await Promise.all(page.items.map((m) => wire(m, options)));
    return { operations: operations.length ? operations : undefined, nextPageToken: page.nextPageToken };
  });

  // "The client is no longer interested in the result": nothing to free, since the operation lives with its model.
  app.delete<{ Params: { '*': string } }>('/v1/operations/*', async (request) => {
    const [, id, , operation] = request.params['*'].split('/');
    await checkedOperation(tuning, request.project, id ?? '', operation ?? '');
    return {};
  });
}

async function checkedOperation(tuning: Services['tuning'], project: string, id: string, operation: string): Promise<TunedModel> {
  const model = await tuning.get(project, id);
  if (model.operationId !== operation) throw notFound(`Operation tunedModels/${id}/operations/${operation} does not exist.`);
  return model;
}
