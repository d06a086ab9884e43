// The Gemini API over gRPC (google.ai.generativelanguage), on the versions the HTTP routes serve: ModelService
// (base models on v1, v1beta and v1beta3; tuned models on v1beta and v1beta3: create, which answers a
// long-running operation, get, list, update, delete), PermissionService on v1beta and v1beta3 (a tuned model's
// permissions and transferOwnership), GenerativeService on v1 and v1beta (generateContent,
// streamGenerateContent, countTokens on tunedModels/* and models/*), TextService generateText (and
// countTextTokens on models/*) on v1beta and v1beta3, and google.longrunning.Operations for the tuning
// operations. The handlers call the same methods the HTTP routes call (api/gemini/tuned-models.ts, models.ts,
// generate.ts).
import type protobuf from 'protobufjs';
import type { Services } from '../../service/services.js';
import { invalidArgument } from '../../service/errors.js';
import type { ModelRef } from '../../service/serving/inference.js';
import { tunedModelMethods, type TunedModelBody } from '../gemini/tuned-models.js';
import { baseModelMethods } from '../gemini/models.js';
import { permissionMethods, permissionVersions, type PermissionBody } from '../gemini/permissions.js';
import { contentCalls, contentVersions, textVersions } from '../gemini/generate.js';
import { apiVersions, type ApiVersion } from '../gemini/custom-methods.js';
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

/** `tunedModels/{id}/permissions/{permission}`, the name of a permission. */
function permissionOf(name: unknown, field: string): { id: string; permission: string } {
  const [collection, id, permissions, permission, ...rest] = typeof name === 'string' ? name.split('/') : [];
  if (collection !== 'tunedModels' || !id || permissions !== 'permissions' || !permission || rest.length) {
    throw invalidArgument(`${field} must be tunedModels/{id}/permissions/{permission}, not ${JSON.stringify(name ?? '')}.`, field);
  }
  return { id, permission };
}

type Bound = [protobuf.Service, Record<string, Handler>];

export function geminiHandlers(services: Services, root: protobuf.Root, auth: GrpcAuth): Bound[] {
  const tuned = tunedModelMethods(services);
  const sharing = permissionMethods(services);
  const base = baseModelMethods(services);
  const content = contentCalls(services);
  const tunedModelId = (name: unknown, field = 'name') => nameOf(name, field, ['tunedModels']).id;
  const refOf = (name: unknown, version: ApiVersion, project: string): ModelRef => ({
    project,
    apiVersion: version,
    ...nameOf(name, 'model', ['tunedModels', 'models']),
  });
  const withoutModel = ({ model: _m, ...body }: Json) => body;
  const service = (version: ApiVersion, name: string) => root.lookupService(`${packageName}.${version}.${name}`);

  /** Base models on every version; tuned models where the version has them (v1beta, and PaLM's v1beta3). */
  const modelService = (version: ApiVersion): Bound => [
    service(version, 'ModelService'),
    {
      GetModel: async ({ name }, call) => {
        await auth.projectOf(call);
        return base.get(nameOf(name, 'name', ['models']).id, version);
      },
      ListModels: async (request, call) => {
        await auth.projectOf(call);
        return base.list(checkedPaging(request));
      },
      ...(version === 'v1'
        ? {}
        : {
            CreateTunedModel: async ({ tunedModelId: id, tunedModel }, call) =>
              tuned.create(await auth.projectOf(call), version, id as string | undefined, (tunedModel ?? {}) as TunedModelBody, wire),
            GetTunedModel: async ({ name }, call) => tuned.get(await auth.projectOf(call), tunedModelId(name), wire),
            ListTunedModels: async (request, call) =>
              tuned.list(await auth.projectOf(call), { ...checkedPaging(request), filter: request.filter as string | undefined }, wire),
            UpdateTunedModel: async ({ tunedModel, updateMask }, call) => {
              const body = (tunedModel ?? {}) as TunedModelBody & { name?: unknown };
              const id = tunedModelId(body.name, 'tuned_model.name');
              return tuned.update(await auth.projectOf(call), version, id, body, (updateMask as string | undefined) || undefined, wire);
            },
            DeleteTunedModel: async ({ name }, call) => tuned.delete(await auth.projectOf(call), tunedModelId(name)),
          }),
    },
  ];

  const generativeService = (version: ApiVersion): Bound => [
    service(version, 'GenerativeService'),
    {
      GenerateContent: async (request, call) => content.generateContent(refOf(request.model, version, await auth.projectOf(call)), withoutModel(request), call.signal, wire, call.timeoutSeconds),
      StreamGenerateContent: async (request, call) =>
        content.streamGenerateContent(refOf(request.model, version, await auth.projectOf(call)), withoutModel(request), call.signal, wire, call.timeoutSeconds),
      CountTokens: async (request, call) => content.countTokens(refOf(request.model, version, await auth.projectOf(call)), withoutModel(request)),
    },
  ];

  const textService = (version: ApiVersion): Bound => [
    service(version, 'TextService'),
    {
      GenerateText: async (request, call) => content.generateText(refOf(request.model, version, await auth.projectOf(call)), withoutModel(request), call.signal, wire, call.timeoutSeconds),
      // Bound to models/* only, as in text_service.proto.
      CountTextTokens: async (request, call) =>
        content.countTextTokens({ project: await auth.projectOf(call), apiVersion: version, ...nameOf(request.model, 'model', ['models']) }, withoutModel(request)),
    },
  ];

  /** Sharing tuned models (permission_service.proto); corpora are not served. */
  const permissionService = (version: ApiVersion): Bound => [
    service(version, 'PermissionService'),
    {
      CreatePermission: async ({ parent, permission }, call) =>
        sharing.create(await auth.projectOf(call), tunedModelId(parent, 'parent'), (permission ?? {}) as PermissionBody, wire),
      GetPermission: async ({ name }, call) => {
        const { id, permission } = permissionOf(name, 'name');
        return sharing.get(await auth.projectOf(call), id, permission, wire);
      },
      ListPermissions: async (request, call) => sharing.list(await auth.projectOf(call), tunedModelId(request.parent, 'parent'), checkedPaging(request), wire),
      UpdatePermission: async ({ permission, updateMask }, call) => {
        const body = (permission ?? {}) as PermissionBody;
        const { id, permission: permissionId } = permissionOf(body.name, 'permission.name');
        return sharing.update(await auth.projectOf(call), id, permissionId, body, (updateMask as string | undefined) || undefined, wire);
      },
      DeletePermission: async ({ name }, call) => {
        const { id, permission } = permissionOf(name, 'name');
        return sharing.delete(await auth.projectOf(call), id, permission);
      },
      TransferOwnership: async ({ name, emailAddress }, call) =>
        sharing.transferOwnership(await auth.projectOf(call), tunedModelId(name), { emailAddress: emailAddress as string | undefined }),
    },
  ];

  return [
    ...apiVersions.map(modelService),
    ...permissionVersions.map(permissionService),
    ...contentVersions.map(generativeService),
    ...textVersions.map(textService),
    [
      root.lookupService('google.longrunning.Operations'),
      {
        GetOperation: async ({ name }, call) => {
          const { id, operation } = operationOf(name);
          return tuned.getOperation(await auth.projectOf(call), id, operation, wire);
        },
        ListOperations: async (request, call) => tuned.listOperations(await auth.projectOf(call), checkedPaging(request), wire),
        CancelOperation: async ({ name }, call) => {
          const { id, operation } = operationOf(name);
          return tuned.cancelOperation(await auth.projectOf(call), id, operation);
        },
        // "The client is no longer interested in the result": nothing to free, since the operation lives with its model.
        DeleteOperation: async ({ name }, call) => {
          const { id, operation } = operationOf(name);
          await tuned.getOperation(await auth.projectOf(call), id, operation, wire);
          return {};
        },
      },
    ],
  ];
}
