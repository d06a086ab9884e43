// The Gemini API's PermissionService on tuned models (gemini-api.md §3.3, §4.6): tunedModels/{id}/permissions
// create/list/get/patch/delete and tunedModels/{id}:transferOwnership, on v1beta and v1beta3. What a grantee
// means and who may do what is the domain's (service/sharing/sharing.ts); this is the wire.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Services } from '../../service/services.js';
import { ServiceError, invalidArgument } from '../../service/errors.js';
import { granteeTypes, roles, type Permission } from '../../service/sharing/sharing.js';
import { camelCase } from '../plugins/lenient-json.js';
import { ListQuery } from '../paging.js';
import { wireOptions, type WireOptions } from '../proto-json.js';
import { bodyChecker } from '../check-body.js';
import { parseVersion, type ApiVersion, type CustomMethods } from './custom-methods.js';

/** The versions that have PermissionService (v1 has none). */
export const permissionVersions: readonly ApiVersion[] = ['v1beta', 'v1beta3'];

/** Enums by name or by number (the REST transports of Google's clients send numbers), as permission.proto numbers them. */
const Enum = Type.Union([Type.String(), Type.Integer()]);
export const PermissionBody = Type.Object({
  name: Type.Optional(Type.String()),
  granteeType: Type.Optional(Enum),
  emailAddress: Type.Optional(Type.String()),
  role: Type.Optional(Enum),
});
export type PermissionBody = Static<typeof PermissionBody>;

export const TransferOwnershipBody = Type.Object({ emailAddress: Type.Optional(Type.String()) });
export type TransferOwnershipBody = Static<typeof TransferOwnershipBody>;
const transferBody = bodyChecker(TransferOwnershipBody, 'TransferOwnershipRequest is {"emailAddress": "<project>@…"}.');

const granteeTypeNumbers = ['GRANTEE_TYPE_UNSPECIFIED', ...granteeTypes];
const roleNumbers = ['ROLE_UNSPECIFIED', ...roles];

/**
 * An enum as its name: a number (or a number's digits, as the body's schema may coerce it) is looked up; an unknown
 * one stays as given, for the domain to refuse.
 */
const enumName = (value: string | number | undefined, names: readonly string[]) =>
  value !== undefined && /^\d+$/.test(String(value)) ? (names[Number(value)] ?? String(value)) : (value as string | undefined);

export function permissionWire(modelId: string, p: Permission, { integerEnums }: WireOptions) {
  return {
    name: `tunedModels/${modelId}/permissions/${p.id}`,
    granteeType: integerEnums ? granteeTypeNumbers.indexOf(p.granteeType) : p.granteeType,
    emailAddress: p.emailAddress,
    role: integerEnums ? roleNumbers.indexOf(p.role) : p.role,
  };
}

/** The permission methods, free of any transport; the HTTP routes below and gRPC (api/grpc/gemini.ts) call them. */
export function permissionMethods({ sharing, tuning }: Services) {
  const modelIdOf = async (project: string, id: string) => (await tuning.access(project, id, 'READER', 'read')).model.id;
  return {
    async create(project: string, id: string, body: PermissionBody, options: WireOptions) {
      const permission = await sharing.create(project, id, {
        granteeType: enumName(body.granteeType, granteeTypeNumbers),
        emailAddress: body.emailAddress,
        role: enumName(body.role, roleNumbers),
      });
      return permissionWire(await modelIdOf(project, id), permission, options);
    },

    async list(project: string, id: string, { pageSize, pageToken }: ListQuery, options: WireOptions) {
      const page = await sharing.list(project, id, pageSize, pageToken);
      const modelId = await modelIdOf(project, id);
      return { permissions: page.items.map((p) => permissionWire(modelId, p, options)), nextPageToken: page.nextPageToken };
    },

    get: async (project: string, id: string, permissionId: string, options: WireOptions) =>
      permissionWire(await modelIdOf(project, id), await sharing.get(project, id, permissionId), options),

    /** update_mask is required and may name only `role` (permission_service.proto). */
    async update(project: string, id: string, permissionId: string, body: PermissionBody, updateMask: string | undefined, options: WireOptions) {
      const paths = (updateMask ?? '').split(',').map((p) => camelCase(p.trim())).filter(Boolean);
      if (paths.length === 0) throw invalidArgument('update_mask is required; the one updatable field is role.', 'update_mask');
      const other = paths.find((p) => p !== 'role');
      if (other) throw invalidArgument(`updateMask path '${other}' cannot be updated; updatable: role`, 'update_mask');
      const permission = await sharing.updateRole(project, id, permissionId, enumName(body.role, roleNumbers));
      return permissionWire(await modelIdOf(project, id), permission, options);
    },

    async delete(project: string, id: string, permissionId: string) {
      await sharing.delete(project, id, permissionId);
      return {};
    },

    async transferOwnership(project: string, id: string, body: TransferOwnershipBody) {
      await sharing.transferOwnership(project, id, body.emailAddress);
      return {};
    },
  };
}

export function permissionRoutes(app: FastifyInstance, services: Services, customMethods: CustomMethods): void {
  const methods = permissionMethods(services);
  const versionOf = (version: string) => {
    const parsed = parseVersion(version);
    if (!permissionVersions.includes(parsed)) throw new ServiceError('NOT_FOUND', `Method not found: permissions are served on ${permissionVersions.join(' and ')}.`);
    return parsed;
  };
  type Params = { version: string; id: string };
  type PermissionParams = Params & { permission: string };

  app.post<{ Params: Params; Body: PermissionBody }>('/:version/tunedModels/:id/permissions', { schema: { body: PermissionBody } }, async (request) => {
    versionOf(request.params.version);
    return methods.create(request.project, request.params.id, request.body ?? {}, wireOptions(request));
  });

  app.get<{ Params: Params; Querystring: ListQuery }>('/:version/tunedModels/:id/permissions', { schema: { querystring: ListQuery } }, async (request) => {
    versionOf(request.params.version);
    return methods.list(request.project, request.params.id, request.query, wireOptions(request));
  });

  app.get<{ Params: PermissionParams }>('/:version/tunedModels/:id/permissions/:permission', async (request) => {
    versionOf(request.params.version);
    return methods.get(request.project, request.params.id, request.params.permission, wireOptions(request));
  });

  app.patch<{ Params: PermissionParams; Querystring: { updateMask?: string }; Body: PermissionBody }>(
    '/:version/tunedModels/:id/permissions/:permission',
    { schema: { body: PermissionBody } },
    async (request) => {
      versionOf(request.params.version);
      const { id, permission } = request.params;
      return methods.update(request.project, id, permission, request.body ?? {}, request.query.updateMask, wireOptions(request));
    },
  );

  app.delete<{ Params: PermissionParams }>('/:version/tunedModels/:id/permissions/:permission', async (request) => {
    versionOf(request.params.version);
    return methods.delete(request.project, request.params.id, request.params.permission);
  });

  customMethods.tunedModels.set('transferOwnership', async (request, _reply, { version, id }) => {
    versionOf(version);
    return methods.transferOwnership(request.project, id, transferBody(request.body));
  });
}
