// The Vertex resources a tuning job names (vertex-api.md §2.4): endpoints/{n} and models/{n} get, list and
// delete on v1 and v1beta1, models patch (defaultCheckpointId, displayName, description) and
// models/{n}:listCheckpoints. A job whose run kept an adapter (SUCCEEDED, or CANCELLED after it trained) has a
// Model version (version 1, alias "default", named by its 19-digit number; a continued run without a new display
// name is instead the next version of its source's Model, models/{n}@2, the alias "default" on the latest) and an
// Endpoint per checkpoint: the last one's is the job's number, each intermediate one's a number of its own. They
// are views of the tuned model, as the job is:
//   - DELETE models/{n} deletes the Model's tuned models, every version: Model, Endpoints, job, adapters (Attune
//     deploys a model when it is tuned and never undeploys it, so deleting the Model takes its deployment with it);
//   - DELETE endpoints/{n} is refused as Vertex refuses an endpoint that still has a deployed model
//     (FAILED_PRECONDITION); delete the model instead.
// Another project's resources, and those of jobs that did not succeed, answer 404 exactly like missing ones.
// resourceMethods serves both transports: the REST routes and gRPC's EndpointService and ModelService.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument, notFound } from '../../service/errors.js';
import { operationId } from '../../service/tuning/ids.js';
import { now, type TunedModel } from '../../service/tuning/tuned-model.js';
import type { TunedCheckpoint } from '../../service/tuning/checkpoints.js';
import { bodyChecker } from '../check-body.js';
import { wireOptions, type WireOptions } from '../proto-json.js';
import { parseFilter, type FilterFields } from './filter.js';
import { defaultVersionAlias, parseVertexVersion, splitCustomMethod, type LocationParams, type VertexVersion } from './names.js';
import { ListQuery, UpdateModelBody, UpdateModelQuery, checkpointWire, deleteOperationWire, endpointWire, modelWire } from './resource-wire.js';

export type ResourceKind = 'Endpoint' | 'Model';

const collections: Record<ResourceKind, string> = { Endpoint: 'endpoints', Model: 'models' };

/** Vertex shows a tuned model as a Model and Endpoints once its run kept an adapter (tuningJob.tunedModel). */
export const hasVertexResources = (model: TunedModel) => model.state === 'ACTIVE';

/**
 * The tuned model a Vertex Endpoint or Model name points at, within the caller's project (and the location,
 * when the path has one): `n` for endpoints; `n` or `n@default` (the latest version with an adapter) or
 * `n@{version}` for models.
 */
export async function tunedModelOfResource(
  services: Services,
  project: string,
  kind: ResourceKind,
  id: string,
  location: string | undefined,
): Promise<TunedModel> {
  const name = location ? `projects/${project}/locations/${location}/${collections[kind]}/${id}` : `${collections[kind]}/${id}`;
  const missing = () => notFound(`${kind} \`${name}\` not found.`);
  const [number = '', version, ...rest] = id.split('@');
  const versionNamed = version === undefined || (kind === 'Model' && (version === defaultVersionAlias || /^\d+$/.test(version)));
  if (!/^\d+$/.test(number) || rest.length || !versionNamed) throw missing();
  let model: TunedModel | undefined;
  if (kind === 'Model') model = await services.tuning.modelVersion(project, number, version ?? defaultVersionAlias, hasVertexResources);
  else {
    try {
      model = await services.tuning.get(project, number);
    } catch (error) {
      if (error instanceof ServiceError && error.status === 'NOT_FOUND') throw missing();
      throw error;
    }
  }
  if (!model || (location && model.location !== location) || !hasVertexResources(model)) throw missing();
  return model;
}

/** The ids of a project's default Model versions: each Model's latest version with an adapter. */
async function defaultVersions(services: Services, project: string): Promise<Set<string>> {
  const latest = new Map<string, TunedModel>();
  for (const m of await services.tuning.store.all(project)) {
    const seen = latest.get(m.modelNumber);
    if (hasVertexResources(m) && (!seen || m.modelVersion > seen.modelVersion)) latest.set(m.modelNumber, m);
  }
  return new Set([...latest.values()].map((m) => m.id));
}

/** An endpoint: the tuned model it serves, and which of its checkpoints (none for models tuned before checkpoints). */
export interface EndpointOf {
  model: TunedModel;
  checkpoints: TunedCheckpoint[];
  checkpoint?: TunedCheckpoint;
  number: string;
}

/**
 * The endpoint `n` names within the caller's project (and location, when the path has one): the job's number is
 * its last checkpoint's endpoint, any other a checkpoint's own. NOT_FOUND otherwise, as for a missing one.
 */
export async function endpointOf(services: Services, project: string, id: string, location: string | undefined): Promise<EndpointOf> {
  const name = location ? `projects/${project}/locations/${location}/endpoints/${id}` : `endpoints/${id}`;
  const missing = () => notFound(`Endpoint \`${name}\` not found.`);
  if (!/^\d+$/.test(id)) throw missing();
  const byCheckpoint = await services.tuning.checkpointOfEndpoint(project, id);
  const model = byCheckpoint?.model ?? (await tunedModelOfResource(services, project, 'Endpoint', id, location));
  if ((location && model.location !== location) || !hasVertexResources(model)) throw missing();
  const checkpoints = await services.tuning.checkpoints(model);
  return { model, checkpoints, checkpoint: checkpoints.find((c) => c.endpointNumber === id), number: id };
}

/** A tuned model's endpoints: one per checkpoint (the job's number alone for models tuned before checkpoints). */
async function endpointsOf(services: Services, model: TunedModel): Promise<EndpointOf[]> {
  const checkpoints = await services.tuning.checkpoints(model);
  if (checkpoints.length === 0) return [{ model, checkpoints, number: model.jobNumber }];
  return checkpoints.map((checkpoint) => ({ model, checkpoints, checkpoint, number: checkpoint.endpointNumber }));
}

/** AIP-160 filter fields of ListModels and ListEndpoints (labels.<key> too). */
const sharedFields: FilterFields = {
  displayName: (m) => m.displayName,
  description: (m) => m.description,
  baseModelName: (m) => m.baseModel.replace(/^models\//, ''),
  createTime: (m) => m.completeTime,
  updateTime: (m) => m.updateTime,
};
const filterFields: Record<ResourceKind, FilterFields> = {
  Endpoint: { endpoint: (m) => m.jobNumber, ...sharedFields }, // matches a model's endpoints by the job's number
  Model: { model: (m) => m.modelNumber, ...sharedFields },
};

type ResourceParams = LocationParams & { id: string };

/** Where a list or a resource lives: the caller's project (auth has checked the path's), a location, a version. */
export interface ResourceParent {
  version: VertexVersion;
  project: string;
  location: string;
}

const checkUpdateModel = bodyChecker(UpdateModelBody, 'Send a Model: {"defaultCheckpointId": "2"} with ?updateMask=defaultCheckpointId.');

/** UpdateModel's mask paths Attune can change, in either case. */
const updatableModelFields = { default_checkpoint_id: 'defaultCheckpointId', display_name: 'displayName', description: 'description' } as const;

/**
 * Endpoints and models get, list and delete, models update and listCheckpoints, free of any transport: the HTTP
 * routes below and gRPC's EndpointService and ModelService (api/grpc/vertex.ts) call these.
 */
export function resourceMethods(services: Services) {
  const modelOf = ({ project, location }: ResourceParent, id: string) => tunedModelOfResource(services, project, 'Model', id, location);
  const modelResource = async (model: TunedModel, options: WireOptions, defaults?: Set<string>) =>
    modelWire(model, options, await services.tuning.checkpoints(model), (defaults ?? (await defaultVersions(services, model.project))).has(model.id));
  return {
    async list(kind: ResourceKind, parent: ResourceParent, { pageSize, pageToken, filter, orderBy }: ListQuery, options: WireOptions) {
      const collection = collections[kind];
      if (orderBy?.trim() && !/^\s*create_time\s+desc\s*$/i.test(orderBy)) {
        throw invalidArgument(`orderBy ${JSON.stringify(orderBy)} is not supported: ${collection} are listed newest first ("create_time desc").`, 'order_by');
      }
      const matches = parseFilter(filter, filterFields[kind]);
      // A Model is listed once, as its default version; each version has its own Endpoints, one per checkpoint.
      const defaults = await defaultVersions(services, parent.project);
      const listed = (m: TunedModel) => m.location === parent.location && hasVertexResources(m) && (kind === 'Endpoint' || defaults.has(m.id)) && matches(m);
      const page = await services.tuning.listMatching(parent.project, listed, pageSize, pageToken);
      // A page holds whole tuned models: an endpoint list gives each model's endpoints together, newest checkpoint first.
      const items =
        kind === 'Model' ? await Promise.all(page.items.map((m) => modelResource(m, options, defaults)))
        : (await Promise.all(page.items.map(async (m) => (await endpointsOf(services, m)).reverse().map(endpointWire)))).flat();
      return { [collection]: items.length ? items : undefined, nextPageToken: page.nextPageToken };
    },

    get: async (kind: ResourceKind, parent: ResourceParent, id: string, options: WireOptions) =>
      kind === 'Endpoint' ? endpointWire(await endpointOf(services, parent.project, id, parent.location)) : modelResource(await modelOf(parent, id), options),

    /** ListModelVersionCheckpoints: every checkpoint on one page (a run keeps at most about 11). */
    async listCheckpoints(parent: ResourceParent, id: string) {
      const checkpoints = await services.tuning.checkpoints(await modelOf(parent, id));
      return { checkpoints: checkpoints.length ? checkpoints.map(checkpointWire) : undefined };
    },

    /** UpdateModel: defaultCheckpointId (the checkpoint the version serves), displayName, description. */
    async update(parent: ResourceParent, id: string, updateMask: string[], model: unknown, options: WireOptions) {
      const target = await modelOf(parent, id);
      const body = checkUpdateModel(model);
      const paths = updateMask.map((p) => p.trim()).filter(Boolean);
      if (paths.length === 0) throw invalidArgument(`updateMask is required: one or more of ${Object.values(updatableModelFields).join(', ')}.`, 'update_mask');
      let updated = target;
      for (const path of paths) {
        const field = updatableModelFields[path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as keyof typeof updatableModelFields];
        if (!field) throw invalidArgument(`updateMask path ${JSON.stringify(path)} cannot be changed; Attune updates ${Object.values(updatableModelFields).join(', ')}.`, 'update_mask');
        if (field === 'defaultCheckpointId') {
          if (!body.defaultCheckpointId) throw invalidArgument('model.defaultCheckpointId is required when updateMask names it.', 'model.default_checkpoint_id');
          updated = await services.tuning.setDefaultCheckpoint(parent.project, target.id, body.defaultCheckpointId);
        } else {
          updated = await services.tuning.patch(parent.project, target.id, { [field]: body[field] ?? '' });
        }
      }
      return modelResource(updated, options);
    },

    async delete(kind: ResourceKind, { version, project, location }: ResourceParent, id: string) {
      if (kind === 'Endpoint') {
        const { model } = await endpointOf(services, project, id, location);
        throw new ServiceError(
          'FAILED_PRECONDITION',
          `Endpoint ${id} has a deployed model (models/${model.modelNumber}@${model.modelVersion}), and Attune does not undeploy models. ` +
            `Delete the model, DELETE /${version}/projects/${model.project}/locations/${model.location}/models/${model.modelNumber}, which deletes its endpoints with it.`,
        );
      }
      const model = await modelOf({ version, project, location }, id);
      if (id.includes('@')) throw invalidArgument(`DeleteModel takes the model's name without a version: models/${model.modelNumber}.`, 'name');
      // A Model goes with all its versions, each a tuned model with its endpoints.
      for (const each of await services.tuning.store.modelVersions(project, model.modelNumber)) await services.tuning.delete(project, each.id);
      return deleteOperationWire(`projects/${model.project}/locations/${model.location}`, operationId(), version, now());
    },
  };
}

export function resourceRoutes(app: FastifyInstance, services: Services): void {
  const base = '/:version/projects/:project/locations/:location';
  const methods = resourceMethods(services);
  const parentOf = (request: FastifyRequest<{ Params: LocationParams }>): ResourceParent => ({
    version: parseVertexVersion(request.params.version),
    project: request.project,
    location: request.params.location,
  });

  for (const kind of ['Endpoint', 'Model'] as const) {
    const collection = collections[kind];
    app.get<{ Params: LocationParams; Querystring: ListQuery }>(`${base}/${collection}`, { schema: { querystring: ListQuery } }, async (request) =>
      methods.list(kind, parentOf(request), request.query, wireOptions(request)),
    );
    app.get<{ Params: ResourceParams }>(`${base}/${collection}/:id`, async (request) => {
      const { id, verb } = splitCustomMethod(request.params.id);
      if (kind === 'Model' && verb === 'listCheckpoints') return methods.listCheckpoints(parentOf(request), id);
      if (verb) throw notFound(`Method not found: GET ${request.url.split('?')[0]}`);
      return methods.get(kind, parentOf(request), id, wireOptions(request));
    });
    app.delete<{ Params: ResourceParams }>(`${base}/${collection}/:id`, async (request) => methods.delete(kind, parentOf(request), request.params.id));
  }
  app.patch<{ Params: ResourceParams; Querystring: UpdateModelQuery }>(`${base}/models/:id`, { schema: { querystring: UpdateModelQuery } }, async (request) =>
    methods.update(parentOf(request), request.params.id, (request.query.updateMask ?? '').split(','), request.body, wireOptions(request)),
  );
}
