// tuningJobs create/get/list/:cancel on v1 and v1beta1 (vertex-api.md §4). A tuning job is a view of a
// tuned model: one created here is also tunedModels/{id} on the Gemini API, and the other way round.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument, notFound } from '../../service/errors.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import { wireOptions } from '../proto-json.js';
import { pagingQuery } from '../paging.js';
import { parseFilter } from './filter.js';
import { parseVertexVersion, splitCustomMethod, withoutVersion, type LocationParams } from './names.js';
import { parseTuningJob, trainingDatasetField, validationDatasetField } from './request.js';
import { jobStateOf, terminalStates, tuningJobWire } from './wire.js';

export const tuningJobsPath = '/:version/projects/:project/locations/:location/tuningJobs';

interface ListQuery {
  pageSize?: number;
  pageToken?: string;
  filter?: string;
}

/** The tuned model a tuningJobs/{n} path names, within the caller's project. */
export async function jobOf(services: Services, request: FastifyRequest<{ Params: LocationParams & { job: string } }>, job: string): Promise<TunedModel> {
  parseVertexVersion(request.params.version);
  const { project, location } = request.params;
  const name = `projects/${project}/locations/${location}/tuningJobs/${job}`;
  if (!/^\d+$/.test(job)) throw notFound(`The TuningJob does not exist: ${name}.`);
  let model: TunedModel;
  try {
    model = await services.tuning.get(request.project, job);
  } catch (error) {
    if (error instanceof ServiceError && error.status === 'NOT_FOUND') throw notFound(`The TuningJob does not exist: ${name}.`);
    throw error;
  }
  // Jobs live in the location they were created in (Gemini-API models in the default one).
  if (model.location !== location) throw notFound(`The TuningJob does not exist: ${name}.`);
  return model;
}

export function tuningJobRoutes(app: FastifyInstance, services: Services): void {
  const { tuning } = services;

  app.post<{ Params: LocationParams; Querystring: { validateOnly?: string } }>(tuningJobsPath, async (request) => {
    const version = parseVertexVersion(request.params.version);
    const job = parseTuningJob(request.body);
    const sourceTunedModel = job.preTunedModel && (await tunedModelOfName(services, request.project, job.preTunedModel));
    const create = {
      surface: 'vertex' as const,
      project: request.project,
      apiVersion: version,
      location: request.params.location,
      displayName: job.displayName,
      description: job.description,
      labels: job.labels,
      baseModel: sourceTunedModel ? undefined : (job.baseModel ?? missingBaseModel()),
      sourceTunedModel,
      hyperparameters: job.hyperparameters,
      training: { uri: job.trainingDatasetUri, field: trainingDatasetField },
      validation: job.validationDatasetUri ? { uri: job.validationDatasetUri, field: validationDatasetField } : undefined,
    };
    if (String(request.query.validateOnly) === 'true') {
      // AIP-163: what would be created, without the name, state and times it would get.
      const { model } = await tuning.plan(create);
      const { name: _name, state: _state, createTime: _c, updateTime: _u, tuningJobMetadata: _m, ...wouldBe } = tuningJobWire(model, wireOptions(request), version);
      return wouldBe;
    }
    return tuningJobWire(await tuning.create(create), wireOptions(request), version);
  });

  app.get<{ Params: LocationParams; Querystring: ListQuery }>(
    tuningJobsPath,
    { schema: { querystring: { type: 'object', properties: { ...pagingQuery, filter: { type: 'string' } } } } },
    async (request) => {
      const version = parseVertexVersion(request.params.version);
      const { pageSize, pageToken, filter } = request.query;
      const { location } = request.params;
      const matches = parseFilter(filter);
      const page = await tuning.listMatching(request.project, (m) => m.location === location && matches(m), pageSize, pageToken);
      const options = wireOptions(request);
      return { tuningJobs: page.items.length ? page.items.map((m) => tuningJobWire(m, options, version)) : undefined, nextPageToken: page.nextPageToken };
    },
  );

  app.get<{ Params: LocationParams & { job: string } }>(`${tuningJobsPath}/:job`, async (request) => {
    const version = parseVertexVersion(request.params.version);
    return tuningJobWire(await jobOf(services, request, request.params.job), wireOptions(request), version);
  });

  app.post<{ Params: LocationParams & { job: string } }>(`${tuningJobsPath}/:job`, async (request) => {
    const { id, verb } = splitCustomMethod(request.params.job);
    if (verb !== 'cancel') throw notFound(`Method not found: POST ${request.url.split('?')[0]}`);
    const model = await jobOf(services, request, id);
    const state = jobStateOf(model);
    if (terminalStates.includes(state)) {
      throw new ServiceError('FAILED_PRECONDITION', `The TuningJob ${id} is in state ${state} and cannot be cancelled.`);
    }
    await tuning.cancel(request.project, model.id);
    return {};
  });
}

/** preTunedModel.tunedModelName (projects/…/models/{n}[@v]) → the Gemini name of that tuned model. */
async function tunedModelOfName(services: Services, project: string, name: string): Promise<string> {
  const number = withoutVersion(name.split('/').at(-1) ?? '');
  if (!/^\d+$/.test(number)) throw invalidArgument(`preTunedModel.tunedModelName must name a tuned model, projects/…/models/{id}, not ${name}.`, 'tuning_job.pre_tuned_model.tuned_model_name');
  return `tunedModels/${(await services.tuning.get(project, number)).id}`;
}

function missingBaseModel(): never {
  throw invalidArgument('baseModel is required (or preTunedModel to tune a tuned model further).', 'tuning_job.base_model');
}
