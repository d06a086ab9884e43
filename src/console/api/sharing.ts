// Sharing a tuned model (the Gemini API's PermissionService): its permissions, grants by a project's identity
// email or to everyone, role changes, revocation and transferOwnership; and the models others shared with
// this project (tunedModels?filter=readers:me and readers:everyone, less its own).
import { apiJson } from './http';
import type { TunedModel } from './gemini';

export type Role = 'OWNER' | 'WRITER' | 'READER';
export type GranteeType = 'USER' | 'GROUP' | 'EVERYONE';

export interface Permission {
  name: string;
  granteeType?: GranteeType;
  emailAddress?: string;
  role: Role;
}

const permissionsPath = (id: string) => `/v1beta/tunedModels/${encodeURIComponent(id)}/permissions`;

export async function listPermissions(id: string, signal?: AbortSignal): Promise<Permission[]> {
  const { permissions = [] } = await apiJson<{ permissions?: Permission[] }>(permissionsPath(id), { query: { pageSize: 1000 }, signal });
  return permissions;
}

export function createPermission(id: string, permission: { granteeType: GranteeType; emailAddress?: string; role: Role }): Promise<Permission> {
  return apiJson<Permission>(permissionsPath(id), { method: 'POST', body: permission });
}

export function setPermissionRole(permission: Permission, role: Role): Promise<Permission> {
  return apiJson<Permission>(`/v1beta/${permission.name}`, { method: 'PATCH', query: { updateMask: 'role' }, body: { role } });
}

export function deletePermission(permission: Permission): Promise<unknown> {
  return apiJson(`/v1beta/${permission.name}`, { method: 'DELETE' });
}

export function transferOwnership(id: string, emailAddress: string): Promise<unknown> {
  return apiJson(`/v1beta/tunedModels/${encodeURIComponent(id)}:transferOwnership`, { method: 'POST', body: { emailAddress } });
}

async function tunedModels(filter: string, signal?: AbortSignal): Promise<TunedModel[]> {
  const { tunedModels: models = [] } = await apiJson<{ tunedModels?: TunedModel[] }>('/v1beta/tunedModels', { query: { pageSize: 1000, filter }, signal });
  return models;
}

export interface SharedModel extends TunedModel {
  /** Shared with this project by name, or with everyone. */
  via: 'project' | 'everyone';
}

/** Tuned models of other projects this one may use: shared with it, then shared with everyone. */
export async function listSharedWithMe(signal?: AbortSignal): Promise<SharedModel[]> {
  const [own, mine, everyone] = await Promise.all(['owner:me', 'readers:me', 'readers:everyone'].map((f) => tunedModels(f, signal)));
  const owned = new Set(own.map((m) => m.name));
  const direct = mine.filter((m) => !owned.has(m.name));
  const seen = new Set(direct.map((m) => m.name));
  return [
    ...direct.map((m) => ({ ...m, via: 'project' as const })),
    ...everyone.filter((m) => !owned.has(m.name) && !seen.has(m.name)).map((m) => ({ ...m, via: 'everyone' as const })),
  ];
}
