// tuningJobs create/get/list/:cancel on v1 and v1beta1 (vertex-api.md §4). A tuning job is a view of a
// tuned model: one created here is also tunedModels/{id} on the Gemini API, and the other way round.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument, notFound } from '../../service/errors.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import { wireOptions, type WireOptions } from '../proto-json.js';
import { ListQuery } from '../paging.js';
import { parseFilter } from './filter.js';
import { parseVertexVersion, splitCustomMethod, type LocationParams, type VertexVersion } from './names.js';
import { hasVertexResources } from './resources.js';
import { parseTuningJob, trainingDatasetField, validationDatasetField } from './request.js';
import { jobStateOf, terminalStates, tuningJobWire } from './wire.js';

export const tuningJobsPath = '/:version/projects/:project/locations/:location/tuningJobs';

/** Where a tuning job lives: the API version and the caller's project and location. */
export interface JobParent {
  version: VertexVersion;
  project: string;
  location: string;
}

/** The tuned model tuningJobs/{n} names, within the caller's project and the location. */
export async function findJob(services: Services, { project, location }: JobParent, job: string): Promise<TunedModel> {
  const name = `projects/${project}/locations/${location}/tuningJobs/${job}`;
  if (!/^\d+$/.test(job)) throw notFound(`The TuningJob does not exist: ${name}.`);
  let model: TunedModel;
  try {
    model = await services.tuning.get(project, job);
  } catch (error) {
    if (error instanceof ServiceError && error.status === 'NOT_FOUND') throw notFound(`The TuningJob does not exist: ${name}.`);
    throw error;
  }
  // Jobs live in the location they were created in (Gemini-API models in the default one).
  if (model.location !== location) throw notFound(`The TuningJob does not exist: ${name}.`);
  return model;
}

/** The tuned model a tuningJobs/{n} path names, within the caller's project. */
export async function jobOf(services: Services, request: FastifyRequest<{ Params: LocationParams & { job: string } }>, job: string): Promise<TunedModel> {
  return findJob(services, parentOf(request), job);
}

const parentOf = (request: FastifyRequest<{ Params: LocationParams }>): JobParent => ({
  version: parseVertexVersion(request.params.version),
  project: request.project,
  location: request.params.location,
});

/** The TuningJob, with its tuned model's checkpoints once it has an adapter: what GET and the metrics stream both send. */
export async function tuningJobWithCheckpoints(services: Services, model: TunedModel, options: WireOptions, version: VertexVersion) {
  return tuningJobWire(model, options, version, model.state === 'ACTIVE' ? await services.tuning.checkpoints(model) : []);
}

/**
 * The tuning-job methods, free of any transport: each takes the caller's parent and a proto3-JSON request
 * and returns proto3 JSON. The HTTP routes below and the gRPC services (api/grpc) both call these.
 */
export function tuningJobMethods(services: Services) {
  const { tuning } = services;
  const jobWire = (model: TunedModel, options: WireOptions, version: VertexVersion) => tuningJobWithCheckpoints(services, model, options, version);
  return {
    async create(parent: JobParent, body: unknown, options: WireOptions, validateOnly = false) {
      const { version } = parent;
      const job = parseTuningJob(body);
      if (job.baseModel && job.preTunedModel) {
        throw invalidArgument('Set baseModel or preTunedModel, not both: a continued run tunes the pre-tuned model\'s base model.', 'tuning_job.base_model');
      }
      const source = job.preTunedModel && (await tunedModelOfName(services, parent.project, job.preTunedModel.tunedModelName));
      const create = {
        surface: 'vertex' as const,
        project: parent.project,
        apiVersion: version,
        location: parent.location,
        displayName: job.displayName,
        description: job.description,
        labels: job.labels,
        baseModel: source ? undefined : (job.baseModel ?? (job.customBaseModel ? undefined : missingBaseModel())),
        sourceTunedModel: source?.id,
        sourceCheckpointId: job.preTunedModel?.checkpointId,
        tuningMethod: job.method,
        hyperparameters: job.hyperparameters,
        training: { uri: job.trainingDatasetUri, field: trainingDatasetField(job.method) },
        validation: job.validationDatasetUri ? { uri: job.validationDatasetUri, field: validationDatasetField(job.method) } : undefined,
        exportLastCheckpointOnly: job.exportLastCheckpointOnly,
        customBaseModel: job.customBaseModel,
        outputUri: job.outputUri,
      };
      if (validateOnly) {
        // AIP-163: what would be created, without the name, state and times it would get.
        const { model } = await tuning.plan(create);
        const { name: _name, state: _state, createTime: _c, updateTime: _u, tuningJobMetadata: _m, ...wouldBe } = tuningJobWire(model, options, version);
        return wouldBe;
      }
      return jobWire(await tuning.create(create), options, version);
    },

    async list(parent: JobParent, { pageSize, pageToken, filter }: ListQuery, options: WireOptions) {
      const matches = parseFilter(filter);
      const page = await tuning.listMatching(parent.project, (m) => m.location === parent.location && matches(m), pageSize, pageToken);
      const tuningJobs = await Promise.all(page.items.map((m) => jobWire(m, options, parent.version)));
      return { tuningJobs: tuningJobs.length ? tuningJobs : undefined, nextPageToken: page.nextPageToken };
    },

    async get(parent: JobParent, job: string, options: WireOptions) {
      return jobWire(await findJob(services, parent, job), options, parent.version);
    },

    async cancel(parent: JobParent, job: string) {
      const model = await findJob(services, parent, job);
      const state = jobStateOf(model);
      if (terminalStates.includes(state)) {
        throw new ServiceError('FAILED_PRECONDITION', `The TuningJob ${job} is in state ${state} and cannot be cancelled.`);
      }
      await tuning.cancel(parent.project, model.id);
      return {};
    },
  };
}

export function tuningJobRoutes(app: FastifyInstance, services: Services): void {
  const jobs = tuningJobMethods(services);

  app.post<{ Params: LocationParams; Querystring: { validateOnly?: string } }>(tuningJobsPath, async (request) =>
    jobs.create(parentOf(request), request.body, wireOptions(request), String(request.query.validateOnly) === 'true'),
  );

  app.get<{ Params: LocationParams; Querystring: ListQuery }>(
    tuningJobsPath,
    { schema: { querystring: ListQuery } },
    async (request) => jobs.list(parentOf(request), request.query, wireOptions(request)),
  );

  app.get<{ Params: LocationParams & { job: string } }>(`${tuningJobsPath}/:job`, async (request) =>
    jobs.get(parentOf(request), request.params.job, wireOptions(request)),
  );

  app.post<{ Params: LocationParams & { job: string } }>(`${tuningJobsPath}/:job`, { config: { customMethods: ['cancel'] } }, async (request) => {
    const { id, verb } = splitCustomMethod(request.params.job);
    if (verb !== 'cancel') throw notFound(`Method not found: POST ${request.url.split('?')[0]}`);
    return jobs.cancel(parentOf(request), id);
  });
}

/**
 * preTunedModel.tunedModelName → the tuned model: a version of one of the caller's Models,
 * `projects/{p}/locations/{l}/models/{n}` (its default version), `…@{version}` or `…@default`. Another project's
 * model answers as a missing one.
 */
async function tunedModelOfName(services: Services, project: string, name: string): Promise<TunedModel> {
  const field = 'tuning_job.pre_tuned_model.tuned_model_name';
  const match = /^(?:projects\/([^/]+)\/locations\/([^/]+)\/)?models\/(\d+)(?:@(\d+|default))?$/.exec(name);
  if (!match) throw invalidArgument(`preTunedModel.tunedModelName must name a tuned model, projects/{project}/locations/{location}/models/{id}[@version], not ${name}.`, field);
  const [, nameProject, location, number, version] = match;
  const model =
    nameProject === undefined || nameProject === project
      ? await services.tuning.modelVersion(project, number!, version ?? 'default', hasVertexResources)
      : undefined;
  if (!model || (location !== undefined && model.location !== location)) {
    throw new ServiceError('NOT_FOUND', `The pre-tuned model ${name} does not exist, or its tuning has not succeeded.`, [{ field, description: 'no such tuned model' }]);
  }
  return model;
}

function missingBaseModel(): never {
  throw invalidArgument('baseModel is required (or preTunedModel to tune a tuned model further).', 'tuning_job.base_model');
}
