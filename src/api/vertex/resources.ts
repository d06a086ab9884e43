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
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument, notFound } from '../../service/errors.js';
import { operationId } from '../../service/tuning/ids.js';
import { now, type TunedModel } from '../../service/tuning/tuned-model.js';
import type { TunedCheckpoint } from '../../service/tuning/checkpoints.js';
import { bodyChecker } from '../check-body.js';
import { wireOptions } from '../proto-json.js';
import { parseFilter, type FilterFields } from './filter.js';
import { defaultVersionAlias, parseVertexVersion, splitCustomMethod, type LocationParams } from './names.js';
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

const checkUpdateModel = bodyChecker(UpdateModelBody, 'Send a Model: {"defaultCheckpointId": "2"} with ?updateMask=defaultCheckpointId.');

/** UpdateModel's mask paths Attune can change, in either case. */
const updatableModelFields = { default_checkpoint_id: 'defaultCheckpointId', display_name: 'displayName', description: 'description' } as const;

export function resourceRoutes(app: FastifyInstance, services: Services): void {
  const base = '/:version/projects/:project/locations/:location';
  const modelOf = (request: FastifyRequest<{ Params: ResourceParams }>, id = request.params.id) => {
    parseVertexVersion(request.params.version);
    return tunedModelOfResource(services, request.project, 'Model', id, request.params.location);
  };
  const modelResource = async (model: TunedModel, request: FastifyRequest, defaults?: Set<string>) =>
    modelWire(model, wireOptions(request), await services.tuning.checkpoints(model), (defaults ?? (await defaultVersions(services, request.project))).has(model.id));

  for (const kind of ['Endpoint', 'Model'] as const) {
    const collection = collections[kind];

    app.get<{ Params: LocationParams; Querystring: ListQuery }>(`${base}/${collection}`, { schema: { querystring: ListQuery } }, async (request) => {
      parseVertexVersion(request.params.version);
      const { pageSize, pageToken, filter, orderBy } = request.query;
      if (orderBy?.trim() && !/^\s*create_time\s+desc\s*$/i.test(orderBy)) {
        throw invalidArgument(`orderBy ${JSON.stringify(orderBy)} is not supported: ${collection} are listed newest first ("create_time desc").`, 'order_by');
      }
      const matches = parseFilter(filter, filterFields[kind]);
      const { location } = request.params;
      // A Model is listed once, as its default version; each version has its own Endpoints, one per checkpoint.
      const defaults = await defaultVersions(services, request.project);
      const listed = (m: TunedModel) => m.location === location && hasVertexResources(m) && (kind === 'Endpoint' || defaults.has(m.id)) && matches(m);
      const page = await services.tuning.listMatching(request.project, listed, pageSize, pageToken);
      // A page holds whole tuned models: an endpoint list gives each model's endpoints together, newest checkpoint first.
      const items =
        kind === 'Model' ? await Promise.all(page.items.map((m) => modelResource(m, request, defaults)))
        : (await Promise.all(page.items.map(async (m) => (await endpointsOf(services, m)).reverse().map(endpointWire)))).flat();
      return { [collection]: items.length ? items : undefined, nextPageToken: page.nextPageToken };
    });
  }

  app.get<{ Params: ResourceParams }>(`${base}/endpoints/:id`, async (request) => {
    parseVertexVersion(request.params.version);
    return endpointWire(await endpointOf(services, request.project, request.params.id, request.params.location));
  });

  app.get<{ Params: ResourceParams; Querystring: ListQuery }>(`${base}/models/:id`, { schema: { querystring: ListQuery } }, async (request) => {
    const { id, verb } = splitCustomMethod(request.params.id);
    if (verb === 'listCheckpoints') {
      // ListModelVersionCheckpoints: every checkpoint on one page (a run keeps at most about 11).
      const checkpoints = await services.tuning.checkpoints(await modelOf(request, id));
      return { checkpoints: checkpoints.length ? checkpoints.map(checkpointWire) : undefined };
    }
    if (verb) throw notFound(`Method not found: GET ${request.url.split('?')[0]}`);
    return modelResource(await modelOf(request), request);
  });

  app.patch<{ Params: ResourceParams; Querystring: UpdateModelQuery }>(`${base}/models/:id`, { schema: { querystring: UpdateModelQuery } }, async (request) => {
    const model = await modelOf(request);
    const body = checkUpdateModel(request.body);
    const paths = (request.query.updateMask ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    if (paths.length === 0) throw invalidArgument(`updateMask is required: one or more of ${Object.values(updatableModelFields).join(', ')}.`, 'update_mask');
    let updated = model;
    for (const path of paths) {
      const field = updatableModelFields[path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as keyof typeof updatableModelFields];
      if (!field) throw invalidArgument(`updateMask path ${JSON.stringify(path)} cannot be changed; Attune updates ${Object.values(updatableModelFields).join(', ')}.`, 'update_mask');
      if (field === 'defaultCheckpointId') {
        if (!body.defaultCheckpointId) throw invalidArgument('model.defaultCheckpointId is required when updateMask names it.', 'model.default_checkpoint_id');
        updated = await services.tuning.setDefaultCheckpoint(request.project, model.id, body.defaultCheckpointId);
      } else {
        updated = await services.tuning.patch(request.project, model.id, { [field]: body[field] ?? '' });
      }
    }
    return modelResource(updated, request);
  });

  for (const kind of ['Endpoint', 'Model'] as const) {
    app.delete<{ Params: ResourceParams }>(`${base}/${collections[kind]}/:id`, async (request) => {
      const version = parseVertexVersion(request.params.version);
      if (kind === 'Endpoint') {
        const { model } = await endpointOf(services, request.project, request.params.id, request.params.location);
        throw new ServiceError(
          'FAILED_PRECONDITION',
          `Endpoint ${request.params.id} has a deployed model (models/${model.modelNumber}@${model.modelVersion}), and Attune does not undeploy models. ` +
            `Delete the model, DELETE /${version}/projects/${model.project}/locations/${model.location}/models/${model.modelNumber}, which deletes its endpoints with it.`,
        );
      }
      const model = await modelOf(request);
      if (request.params.id.includes('@')) {
        throw invalidArgument(`DeleteModel takes the model's name without a version: models/${model.modelNumber}.`, 'name');
      }
      // A Model goes with all its versions, each a tuned model with its endpoints.
      for (const each of await services.tuning.store.modelVersions(request.project, model.modelNumber)) await services.tuning.delete(request.project, each.id);
      return deleteOperationWire(`projects/${model.project}/locations/${model.location}`, operationId(), version, now());
    });
  }
}
