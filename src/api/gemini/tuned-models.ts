// tunedModels create/get/list/patch/delete and :cancel, on v1beta and (PaLM) v1beta3.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Services } from '../../service/services.js';
import { invalidArgument, notFound } from '../../service/errors.js';
import { patchableFields, type TunedModelPatch } from '../../service/tuning/service.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import { camelCase } from '../plugins/lenient-json.js';
import { parseTunedModelFilter } from '../../service/sharing/sharing.js';
import { parseVersion, type ApiVersion, type CustomMethods } from './custom-methods.js';
import { operationWire, tunedModelWire } from './wire.js';
import { wireOptions, type WireOptions } from '../proto-json.js';
import { ListQuery, pagingQuery } from '../paging.js';

/**
 * The TunedModel body: types are checked, unknown and output-only fields are ignored (as old SDKs PATCH whole
 * models). One TypeBox schema gives both the check and the type; over gRPC Google's descriptor gives the same fields.
 */
const TunedModelBody = Type.Object({
  displayName: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  baseModel: Type.Optional(Type.String()),
  tunedModelSource: Type.Optional(Type.Object({ tunedModel: Type.Optional(Type.String()) })),
  temperature: Type.Optional(Type.Number()),
  topP: Type.Optional(Type.Number()),
  topK: Type.Optional(Type.Integer()),
  /** int64s: strings in proto3 JSON, numbers from lenient clients. */
  readerProjectNumbers: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Integer()]))),
  tuningTask: Type.Optional(
    Type.Object({
      hyperparameters: Type.Optional(
        Type.Object({
          epochCount: Type.Optional(Type.Integer()),
          batchSize: Type.Optional(Type.Integer()),
          learningRate: Type.Optional(Type.Number()),
          learningRateMultiplier: Type.Optional(Type.Number()),
        }),
      ),
      trainingData: Type.Optional(
        Type.Object({
          examples: Type.Optional(Type.Object({ examples: Type.Optional(Type.Array(Type.Object({}))) })),
        }),
      ),
    }),
  ),
});
export type TunedModelBody = Static<typeof TunedModelBody>;

const trainingDataField = 'tuned_model.tuning_task.training_data';
/** Sharing, patched through the model (v1beta; v1beta3's TunedModel has no such field). */
const readersField = 'readerProjectNumbers';

/**
 * The tuned-model and operation methods, free of any transport: the caller's project and a proto3-JSON request
 * in, proto3 JSON out. The HTTP routes below and the gRPC services (api/grpc) both call these.
 */
export function tunedModelMethods(services: Services) {
  const { tuning, store, sharing } = services;
  const snapshotsOf = (model: TunedModel) => store.metrics(model.id, 'train');
  /**
   * The model as `project` sees it: who else may read it is for those who may share it (WRITER and OWNER), on the
   * versions whose TunedModel has the field.
   */
  const modelWire = async (model: TunedModel, options: WireOptions, project: string, version?: ApiVersion) => {
    const role = version === 'v1beta3' ? undefined : await tuning.roleOf(model, project);
    const readers = role === 'OWNER' || role === 'WRITER' ? await sharing.readerProjectNumbers(model) : [];
    return { ...tunedModelWire(model, await snapshotsOf(model), options), readerProjectNumbers: readers.length ? readers : undefined };
  };
  const operation = async (model: TunedModel, options: WireOptions) => operationWire(model, await snapshotsOf(model), options);
  return {
    async create(project: string, version: ApiVersion, tunedModelId: string | undefined, body: TunedModelBody, options: WireOptions) {
      if ((body as Record<string, unknown>).preferenceOptimizationSpec !== undefined) {
        throw invalidArgument(
          'Preference tuning is not available in the Gemini API, as at Google: use Vertex AI\'s tuningJobs with preferenceOptimizationSpec.',
          'tuned_model.preference_optimization_spec',
        );
      }
      // Checked first, so that a bad number creates nothing.
      if (body.readerProjectNumbers?.length) await sharing.checkProjectNumbers(body.readerProjectNumbers);
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
        project,
        apiVersion: version,
        tunedModelId: tunedModelId || undefined,
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
      if (body.readerProjectNumbers?.length) await sharing.setReaderProjectNumbers(project, model.id, body.readerProjectNumbers);
      return operationWire(model, [], options);
    },

    /** Its own models and those granted to it; `filter` takes Google's owner:me, writers:me, readers:me and readers:everyone. */
    async list(project: string, { pageSize, pageToken, filter }: ListQuery, options: WireOptions, version?: ApiVersion) {
      const page = await tuning.list(project, pageSize, pageToken, parseTunedModelFilter(filter));
      const tunedModels = await Promise.all(page.items.map((m) => modelWire(m, options, project, version)));
      return { tunedModels: tunedModels.length ? tunedModels : undefined, nextPageToken: page.nextPageToken };
    },

    get: async (project: string, id: string, options: WireOptions, version?: ApiVersion) =>
      modelWire((await tuning.access(project, id, 'READER', 'read')).model, options, project, version),

    /** AIP-134: without a mask, every updatable field present in the body is the mask (v1beta3 requires one). */
    async update(project: string, version: ApiVersion, id: string, body: TunedModelBody, updateMask: string | undefined, options: WireOptions) {
      const fields = body as Record<string, unknown>;
      const present = [...patchableFields, ...(version === 'v1beta3' ? [] : [readersField])].filter((f) => fields[f] !== undefined);
      const mask = updateMask ? updateMask.split(',').map((p) => camelCase(p.trim())) : present;
      if (version === 'v1beta3' && !updateMask) throw invalidArgument('updateMask is required', 'update_mask');
      const patch: TunedModelPatch = {};
      const updatable = version === 'v1beta3' ? patchableFields : [...patchableFields, readersField];
      for (const path of mask) {
        if (!(updatable as readonly string[]).includes(path)) {
          throw invalidArgument(`updateMask path '${path}' cannot be updated; updatable: ${updatable.join(', ')}`, 'update_mask');
        }
        if (path !== readersField) (patch as Record<string, unknown>)[path] = fields[path] ?? (path === 'displayName' || path === 'description' ? '' : undefined);
      }
      // The numbers are checked before anything changes; the patch checks its own fields before it writes.
      const readers = mask.includes(readersField) ? (body.readerProjectNumbers ?? []) : undefined;
      if (readers) await sharing.checkProjectNumbers(readers);
      const model = await tuning.patch(project, id, patch);
      if (readers) await sharing.setReaderProjectNumbers(project, id, readers);
      return modelWire(model, options, project, version);
    },

    /** Only the owner deletes; a project the model is shared with gets PERMISSION_DENIED, any other NOT_FOUND. */
    async delete(project: string, id: string) {
      await tuning.access(project, id, 'OWNER', 'delete');
      await tuning.delete(project, id);
      return {};
    },

    getOperation: async (project: string, id: string, op: string, options: WireOptions) => operation(await checkedOperation(tuning, project, id, op), options),

    async listOperations(project: string, { pageSize, pageToken }: ListQuery, options: WireOptions) {
      const page = await tuning.list(project, pageSize, pageToken);
      const operations = await Promise.all(page.items.map((m) => operation(m, options)));
      return { operations: operations.length ? operations : undefined, nextPageToken: page.nextPageToken };
    },

    async cancelOperation(project: string, id: string, op: string) {
      await tuning.cancel(project, (await checkedOperation(tuning, project, id, op)).id);
      return {};
    },
  };
}

export function tunedModelRoutes(app: FastifyInstance, services: Services, customMethods: CustomMethods): void {
  const { tuning } = services;
  const methods = tunedModelMethods(services);

  app.post<{ Params: { version: string }; Querystring: { tunedModelId?: string }; Body: TunedModelBody }>(
    '/:version/tunedModels',
    { schema: { body: TunedModelBody, querystring: Type.Object({ tunedModelId: Type.Optional(Type.String()) }) } },
    async (request) =>
      methods.create(request.project, parseVersion(request.params.version), request.query.tunedModelId, request.body ?? {}, wireOptions(request)),
  );

  app.get<{ Params: { version: string }; Querystring: ListQuery }>(
    '/:version/tunedModels',
    { schema: { querystring: ListQuery } },
    async (request) => {
      return methods.list(request.project, request.query, wireOptions(request), parseVersion(request.params.version));
    },
  );

  app.get<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id', async (request) => {
    return methods.get(request.project, request.params.id, wireOptions(request), parseVersion(request.params.version));
  });

  app.patch<{ Params: { version: string; id: string }; Querystring: { updateMask?: string }; Body: TunedModelBody }>(
    '/:version/tunedModels/:id',
    { schema: { body: TunedModelBody } },
    async (request) =>
      methods.update(request.project, parseVersion(request.params.version), request.params.id, request.body ?? {}, request.query.updateMask, wireOptions(request)),
  );

  app.delete<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id', async (request) => {
    parseVersion(request.params.version);
    return methods.delete(request.project, request.params.id);
  });

  // @google/genai's tunings.cancel() posts tunedModels/x:cancel: an alias of the operation's cancel.
  customMethods.tunedModels.set('cancel', async (request, _reply, { id }) => {
    await tuning.cancel(request.project, id);
    return {};
  });
}

export function operationRoutes(app: FastifyInstance, services: Services): void {
  const methods = tunedModelMethods(services);
  app.get<{ Params: { version: string; id: string; op: string } }>('/:version/tunedModels/:id/operations/:op', async (request) => {
    parseVersion(request.params.version);
    return methods.getOperation(request.project, request.params.id, request.params.op, wireOptions(request));
  });

  app.get<{ Params: { version: string; id: string } }>('/:version/tunedModels/:id/operations', async (request) => {
    parseVersion(request.params.version);
    const model = await services.tuning.get(request.project, request.params.id);
    return { operations: [await methods.getOperation(request.project, model.id, model.operationId, wireOptions(request))] };
  });

  app.post<{ Params: { version: string; id: string; op: string } }>('/:version/tunedModels/:id/operations/:op', async (request) => {
    parseVersion(request.params.version);
    const [operation, verb] = request.params.op.split(':');
    if (verb !== 'cancel') throw invalidArgument(`unknown method ${verb ?? '(none)'}; operations support :cancel`);
    return methods.cancelOperation(request.project, request.params.id, operation ?? '');
  });

  app.get<{ Querystring: ListQuery }>('/v1/operations', { schema: { querystring: { type: 'object', properties: pagingQuery } } }, async (request) =>
    methods.listOperations(request.project, request.query, wireOptions(request)),
  );

  // "The client is no longer interested in the result": nothing to free, since the operation lives with its model.
  app.delete<{ Params: { '*': string } }>('/v1/operations/*', async (request) => {
    const [, id, , operation] = request.params['*'].split('/');
    await checkedOperation(services.tuning, request.project, id ?? '', operation ?? '');
    return {};
  });
}

export async function checkedOperation(tuning: Services['tuning'], project: string, id: string, operation: string): Promise<TunedModel> {
  const model = await tuning.get(project, id);
  if (model.operationId !== operation) throw notFound(`Operation tunedModels/${id}/operations/${operation} does not exist.`);
  return model;
}
