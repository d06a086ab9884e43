// Vertex AI v1 and v1beta1 over gRPC (google.cloud.aiplatform.{v1,v1beta1}): GenAiTuningService
// (create/get/list/cancel), EndpointService and ModelService (get, list, delete: the views of tuned models
// api/vertex/resources.ts serves), PredictionService generateContent, streamGenerateContent and countTokens
// (LlmUtilityService's in v1), and LlmUtilityService computeTokens, on tuned endpoints and base models. Each
// handler reads the resource name, asks auth for the project, and calls the same methods the HTTP routes call
// (api/vertex/tuning-jobs.ts, api/vertex/endpoints.ts, api/gemini/generate.ts).
import type protobuf from 'protobufjs';
import type { Services } from '../../service/services.js';
import { invalidArgument } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { tuningJobMethods, type JobParent } from '../vertex/tuning-jobs.js';
import { computeTokensCall, endpointRef } from '../vertex/endpoints.js';
import { resourceMethods } from '../vertex/resources.js';
import type { ListQuery as ResourceListQuery } from '../vertex/resource-wire.js';
import { vertexVersions, type VertexVersion } from '../vertex/names.js';
import { contentCalls } from '../gemini/generate.js';
import { checkedPaging } from '../paging.js';
import type { WireOptions } from '../proto-json.js';
import type { GrpcAuth } from './auth.js';
import type { GrpcCall, Handler, Json } from './bind.js';

const wire: WireOptions = { integerEnums: false };

/** `projects/{p}/locations/{l}` and what follows it; anything else is the client's mistake. */
function locationOf(name: unknown, field: string): { project: string; location: string; rest: string[] } {
  const parts = typeof name === 'string' ? name.split('/') : [];
  if (parts.length < 4 || parts[0] !== 'projects' || parts[2] !== 'locations' || !parts[1] || !parts[3]) {
    throw invalidArgument(`${field} must be a resource name projects/{project}/locations/{location}/…, not ${JSON.stringify(name ?? '')}.`, field);
  }
  return { project: parts[1], location: parts[3], rest: parts.slice(4) };
}

/** The services of both API versions the HTTP routes serve (v1beta1 adds batchSize and learningRate). */
export function vertexHandlers(services: Services, root: protobuf.Root, auth: GrpcAuth): [protobuf.Service, Record<string, Handler>][] {
  return vertexVersions.flatMap((version) => versionHandlers(services, root, auth, version));
}

function versionHandlers(services: Services, root: protobuf.Root, auth: GrpcAuth, version: VertexVersion): [protobuf.Service, Record<string, Handler>][] {
  const packageName = `google.cloud.aiplatform.${version}`;
  const jobs = tuningJobMethods(services);
  const content = contentCalls(services, 'vertex');
  const computeTokens = computeTokensCall(services);

  const parentOf = async (name: unknown, field: string, call: GrpcCall, collection?: string) => {
    const { project, location, rest } = locationOf(name, field);
    const parent: JobParent = { version, project: await auth.projectOf(call, project), location };
    if (collection === undefined) {
      if (rest.length) throw invalidArgument(`${field} must be projects/{project}/locations/{location}, not ${JSON.stringify(name)}.`, field);
      return { parent, id: '' };
    }
    if (rest.length !== 2 || rest[0] !== collection || !rest[1]) {
      throw invalidArgument(`${field} must be projects/{project}/locations/{location}/${collection}/{id}, not ${JSON.stringify(name)}.`, field);
    }
    return { parent, id: rest[1] };
  };

  /** endpoints/{n} (a tuned model) or publishers/google/models/{m} (a base model), under a location. */
  const modelOf = async (name: unknown, field: string, call: GrpcCall): Promise<ModelRef> => {
    const { project, location, rest } = locationOf(name, field);
    const acting = await auth.projectOf(call, project);
    if (rest.length === 2 && rest[0] === 'endpoints' && rest[1]) {
      return endpointRef(services, { version, project: acting, location, collection: 'tunedModels', name: rest[1] });
    }
    if (rest.length === 4 && rest[0] === 'publishers' && rest[2] === 'models' && rest[3]) {
      return endpointRef(services, { version, project: acting, location, collection: 'models', publisher: rest[1], name: rest[3] });
    }
    throw invalidArgument(
      `${field} must name an endpoint (projects/{project}/locations/{location}/endpoints/{id}) or a publisher model (…/publishers/google/models/{model}), not ${JSON.stringify(name)}.`,
      field,
    );
  };

  const resources = resourceMethods(services);
  /** A resource's location and id (projects/{p}/locations/{l}/{collection}/{id}), as ResourceParent. */
  const resourceOf = async (name: unknown, call: GrpcCall, collection: string) => {
    const { parent, id } = await parentOf(name, 'name', call, collection);
    return { parent: { version, project: parent.project, location: parent.location }, id };
  };
  const listParent = async (request: Json, call: GrpcCall) => {
    const { parent } = await parentOf(request.parent, 'parent', call);
    return { version, project: parent.project, location: parent.location };
  };
  const listQuery = (request: Json): ResourceListQuery => ({
    ...checkedPaging(request),
    filter: (request.filter as string | undefined) || undefined,
    orderBy: (request.orderBy as string | undefined) || undefined,
  });

  const withoutName = ({ model: _m, endpoint: _e, ...body }: Json) => body;
  // countTokens is PredictionService's in v1beta1 and LlmUtilityService's in v1.
  const countTokens: Handler = async (request, call) => content.countTokens(await modelOf(request.endpoint, 'endpoint', call), withoutName(request));
  const prediction = root.lookupService(`${packageName}.PredictionService`);
  const utility = root.lookupService(`${packageName}.LlmUtilityService`);

  const modelService = root.lookupService(`${packageName}.ModelService`);
  return [
    [
      root.lookupService(`${packageName}.GenAiTuningService`),
      {
        CreateTuningJob: async ({ parent, tuningJob }, call) => jobs.create((await parentOf(parent, 'parent', call)).parent, tuningJob ?? {}, wire),
        GetTuningJob: async ({ name }, call) => {
          const { parent, id } = await parentOf(name, 'name', call, 'tuningJobs');
          return jobs.get(parent, id, wire);
        },
        ListTuningJobs: async (request, call) =>
          jobs.list((await parentOf(request.parent, 'parent', call)).parent, { ...checkedPaging(request), filter: request.filter as string | undefined }, wire),
        CancelTuningJob: async ({ name }, call) => {
          const { parent, id } = await parentOf(name, 'name', call, 'tuningJobs');
          return jobs.cancel(parent, id);
        },
      },
    ],
    [
      root.lookupService(`${packageName}.EndpointService`),
      {
        GetEndpoint: async ({ name }, call) => {
          const { parent, id } = await resourceOf(name, call, 'endpoints');
          return resources.get('Endpoint', parent, id, wire);
        },
        ListEndpoints: async (request, call) => resources.list('Endpoint', await listParent(request, call), listQuery(request), wire),
        DeleteEndpoint: async ({ name }, call) => {
          const { parent, id } = await resourceOf(name, call, 'endpoints');
          return resources.delete('Endpoint', parent, id);
        },
      },
    ],
    [
      modelService,
      {
        GetModel: async ({ name }, call) => {
          const { parent, id } = await resourceOf(name, call, 'models');
          return resources.get('Model', parent, id, wire);
        },
        UpdateModel: async ({ model, updateMask }, call) => {
          const { parent, id } = await resourceOf((model as { name?: unknown } | undefined)?.name, call, 'models');
          // A FieldMask is a comma-separated string in proto3 JSON.
          const paths = typeof updateMask === 'string' ? updateMask.split(',') : [];
          return resources.update(parent, id, paths, model ?? {}, wire);
        },
        // v1beta1 only: ListModelVersionCheckpoints.
        ...(modelService.methods.ListModelVersionCheckpoints && {
          ListModelVersionCheckpoints: async ({ name }: { name?: unknown }, call: GrpcCall) => {
            const { parent, id } = await resourceOf(name, call, 'models');
            return resources.listCheckpoints(parent, id);
          },
        }),
        ListModels: async (request, call) => resources.list('Model', await listParent(request, call), listQuery(request), wire),
        DeleteModel: async ({ name }, call) => {
          const { parent, id } = await resourceOf(name, call, 'models');
          return resources.delete('Model', parent, id);
        },
      },
    ],
    [
      prediction,
      {
        GenerateContent: async (request, call) => content.generateContent(await modelOf(request.model, 'model', call), withoutName(request), call.signal, wire, call.timeoutSeconds),
        StreamGenerateContent: async (request, call) =>
          content.streamGenerateContent(await modelOf(request.model, 'model', call), withoutName(request), call.signal, wire, call.timeoutSeconds),
        ...(prediction.methods.CountTokens ? { CountTokens: countTokens } : {}),
      },
    ],
    [
      utility,
      {
        ComputeTokens: async (request, call) => computeTokens(await modelOf(request.endpoint, 'endpoint', call), withoutName(request)),
        ...(utility.methods.CountTokens ? { CountTokens: countTokens } : {}),
      },
    ],
  ];
}
