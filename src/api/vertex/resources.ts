// The Vertex resources a tuning job names (vertex-api.md §2.4): endpoints/{n} and models/{n} get, list and
// delete on v1 and v1beta1. A job that SUCCEEDED has both, named by its 19-digit number: the Model (version 1,
// alias "default") deployed once on the Endpoint; a continued run without a new display name is instead the next
// version of its source's Model (models/{n}@2, the alias "default" on the latest succeeded version) with an
// Endpoint of its own. They are views of the tuned model, as the job is:
//   - DELETE models/{n} deletes the Model's tuned models, every version: Model, Endpoint, job, adapter (Attune
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
import { wireOptions, type WireOptions } from '../proto-json.js';
import { parseFilter, type FilterFields } from './filter.js';
import { defaultVersionAlias, parseVertexVersion, type LocationParams, type VertexVersion } from './names.js';
import { ListQuery, deleteOperationWire, endpointWire, modelWire } from './resource-wire.js';
import { jobStateOf } from './wire.js';

export type ResourceKind = 'Endpoint' | 'Model';

const collections: Record<ResourceKind, string> = { Endpoint: 'endpoints', Model: 'models' };

/** Vertex shows a tuned model as a Model and an Endpoint once its job has SUCCEEDED (tuningJob.tunedModel). */
export const hasVertexResources = (model: TunedModel) => jobStateOf(model) === 'JOB_STATE_SUCCEEDED';

/**
 * The tuned model a Vertex Endpoint or Model name points at, within the caller's project (and the location,
 * when the path has one): `n` for endpoints; `n` or `n@default` (the latest version whose run succeeded) or
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

/** The ids of a project's default Model versions: each Model's latest version whose run succeeded. */
async function defaultVersions(services: Services, project: string): Promise<Set<string>> {
  const latest = new Map<string, TunedModel>();
  for (const m of await services.tuning.store.all(project)) {
    const seen = latest.get(m.modelNumber);
    if (hasVertexResources(m) && (!seen || m.modelVersion > seen.modelVersion)) latest.set(m.modelNumber, m);
  }
  return new Set([...latest.values()].map((m) => m.id));
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
  Endpoint: { endpoint: (m) => m.jobNumber, ...sharedFields },
  Model: { model: (m) => m.modelNumber, ...sharedFields },
};

type ResourceParams = LocationParams & { id: string };

/** Where a list or a resource lives: the caller's project (auth has checked the path's), a location, a version. */
export interface ResourceParent {
  version: VertexVersion;
  project: string;
  location: string;
}

/**
 * Endpoints and models get, list and delete, free of any transport: the HTTP routes below and gRPC's
 * EndpointService and ModelService (api/grpc/vertex.ts) call these.
 */
export function resourceMethods(services: Services) {
  const wire = (kind: ResourceKind, model: TunedModel, options: WireOptions, defaults: Set<string>) =>
    kind === 'Endpoint' ? endpointWire(model) : modelWire(model, options, defaults.has(model.id));
  return {
    async list(kind: ResourceKind, parent: ResourceParent, { pageSize, pageToken, filter, orderBy }: ListQuery, options: WireOptions) {
      const collection = collections[kind];
      if (orderBy?.trim() && !/^\s*create_time\s+desc\s*$/i.test(orderBy)) {
        throw invalidArgument(`orderBy ${JSON.stringify(orderBy)} is not supported: ${collection} are listed newest first ("create_time desc").`, 'order_by');
      }
      const matches = parseFilter(filter, filterFields[kind]);
      // A Model is listed once, as its default version; each version has its own Endpoint.
      const defaults = await defaultVersions(services, parent.project);
      const listed = (m: TunedModel) => m.location === parent.location && hasVertexResources(m) && (kind === 'Endpoint' || defaults.has(m.id)) && matches(m);
      const page = await services.tuning.listMatching(parent.project, listed, pageSize, pageToken);
      const items = page.items.map((m) => wire(kind, m, options, defaults));
      return { [collection]: items.length ? items : undefined, nextPageToken: page.nextPageToken };
    },

    get: async (kind: ResourceKind, parent: ResourceParent, id: string, options: WireOptions) =>
      wire(kind, await tunedModelOfResource(services, parent.project, kind, id, parent.location), options, await defaultVersions(services, parent.project)),

    async delete(kind: ResourceKind, { version, project, location }: ResourceParent, id: string) {
      const model = await tunedModelOfResource(services, project, kind, id, location);
      if (kind === 'Endpoint') {
        throw new ServiceError(
          'FAILED_PRECONDITION',
          `Endpoint ${id} has a deployed model (models/${model.modelNumber}@${model.modelVersion}), and Attune does not undeploy models. ` +
            `Delete the model, DELETE /${version}/projects/${model.project}/locations/${model.location}/models/${model.modelNumber}, which deletes its endpoint with it.`,
        );
      }
      if (id.includes('@')) throw invalidArgument(`DeleteModel takes the model's name without a version: models/${model.modelNumber}.`, 'name');
      // A Model goes with all its versions, each a tuned model with its endpoint.
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
    app.get<{ Params: ResourceParams }>(`${base}/${collection}/:id`, async (request) => methods.get(kind, parentOf(request), request.params.id, wireOptions(request)));
    app.delete<{ Params: ResourceParams }>(`${base}/${collection}/:id`, async (request) => methods.delete(kind, parentOf(request), request.params.id));
  }
}
