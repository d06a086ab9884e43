// The Gemini API over gRPC (google.ai.generativelanguage): v1beta ModelService (tuned models: create, which
// answers a long-running operation, get, list, delete), GenerativeService (generateContent,
// streamGenerateContent, countTokens on tunedModels/* and models/*), google.longrunning.Operations for the
// tuning operations, and v1beta3 TextService generateText. The handlers call the same methods the HTTP routes
// call (api/gemini/tuned-models.ts, api/gemini/generate.ts).
import type protobuf from 'protobufjs';
import type { Services } from '../../service/services.js';
import { invalidArgument } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { tunedModelMethods, type TunedModelBody } from '../gemini/tuned-models.js';
import { contentCalls } from '../gemini/generate.js';
import type { ApiVersion } from '../gemini/custom-methods.js';
import { checkedPaging } from '../paging.js';
import type { WireOptions } from '../proto-json.js';
import type { GrpcAuth } from './auth.js';
import type { Handler, Json } from './bind.js';

const wire: WireOptions = { integerEnums: false };
const packageName = 'google.ai.generativelanguage';

/** `tunedModels/{id}` (or `models/{id}` where `collections` allows it) → its collection and id. */
function nameOf(name: unknown, field: string, collections: readonly ModelRef['collection'][]): { collection: ModelRef['collection']; id: string } {
  const [collection, id, ...rest] = typeof name === 'string' ? name.split('/') : [];
  if (!collections.includes(collection as ModelRef['collection']) || !id || rest.length) {
    throw invalidArgument(`${field} must be ${collections.map((c) => `${c}/{id}`).join(' or ')}, not ${JSON.stringify(name ?? '')}.`, field);
  }
  return { collection: collection as ModelRef['collection'], id };
}

/** `tunedModels/{id}/operations/{operation}`, the name of a tuning operation. */
function operationOf(name: unknown): { id: string; operation: string } {
  const [collection, id, operations, operation, ...rest] = typeof name === 'string' ? name.split('/') : [];
  if (collection !== 'tunedModels' || !id || operations !== 'operations' || !operation || rest.length) {
    throw invalidArgument(`name must be tunedModels/{id}/operations/{operation}, not ${JSON.stringify(name ?? '')}.`, 'name');
  }
  return { id, operation };
}

export function geminiHandlers(services: Services, root: protobuf.Root, auth: GrpcAuth): [protobuf.Service, Record<string, Handler>][] {
  const models = tunedModelMethods(services);
  const content = contentCalls(services);
  const tunedModelId = (name: unknown) => nameOf(name, 'name', ['tunedModels']).id;
  const refOf = (name: unknown, version: ApiVersion, project: string): ModelRef => ({
    project,
    apiVersion: version,
    ...nameOf(name, 'model', ['tunedModels', 'models']),
  });
  const withoutModel = ({ model: _m, ...body }: Json) => body;

  return [
    [
      root.lookupService(`${packageName}.v1beta.ModelService`),
      {
        CreateTunedModel: ({ tunedModelId: id, tunedModel }, call) =>
          models.create(auth.projectOf(call), 'v1beta', id as string | undefined, (tunedModel ?? {}) as TunedModelBody, wire),
        GetTunedModel: ({ name }, call) => models.get(auth.projectOf(call), tunedModelId(name), wire),
        ListTunedModels: (request, call) =>
          models.list(auth.projectOf(call), { ...checkedPaging(request), filter: request.filter as string | undefined }, wire),
        DeleteTunedModel: ({ name }, call) => models.delete(auth.projectOf(call), tunedModelId(name)),
      },
    ],
    [
      root.lookupService(`${packageName}.v1beta.GenerativeService`),
      {
        GenerateContent: (request, call) =>
          content.generateContent(refOf(request.model, 'v1beta', auth.projectOf(call)), withoutModel(request), call.signal, wire),
        StreamGenerateContent: (request, call) =>
          content.streamGenerateContent(refOf(request.model, 'v1beta', auth.projectOf(call)), withoutModel(request), call.signal, wire),
        CountTokens: (request, call) => content.countTokens(refOf(request.model, 'v1beta', auth.projectOf(call)), withoutModel(request)),
      },
    ],
    [
      root.lookupService(`${packageName}.v1beta3.TextService`),
      {
        GenerateText: (request, call) =>
          content.generateText(refOf(request.model, 'v1beta3', auth.projectOf(call)), withoutModel(request), call.signal, wire),
      },
    ],
    [
      root.lookupService('google.longrunning.Operations'),
      {
        GetOperation: ({ name }, call) => {
          const { id, operation } = operationOf(name);
          return models.getOperation(auth.projectOf(call), id, operation, wire);
        },
        ListOperations: (request, call) => models.listOperations(auth.projectOf(call), checkedPaging(request), wire),
        CancelOperation: ({ name }, call) => {
          const { id, operation } = operationOf(name);
          return models.cancelOperation(auth.projectOf(call), id, operation);
        },
        // "The client is no longer interested in the result": nothing to free, since the operation lives with its model.
        DeleteOperation: ({ name }, call) => {
          const { id, operation } = operationOf(name);
          models.getOperation(auth.projectOf(call), id, operation, wire);
          return {};
        },
      },
    ],
  ];
}
