// Sharing tuned models between projects: the Gemini API's PermissionService (tunedModels/{id}/permissions and
// :transferOwnership) and TunedModel.readerProjectNumbers, over the grants the store keeps. How Google's grantees
// map onto Attune (README, "Sharing tuned models"):
//   - A project is the one principal. USER and GROUP grantees name one by its identity email
//     (identity.ts), readerProjectNumbers by its project number; EVERYONE is every project with a valid key.
//   - The owner is the model's project and is listed as the OWNER permission; grants are WRITER or READER.
//     EVERYONE may only be a READER.
//   - A permission's id is the grantee's project number, or `everyone`: one permission per grantee, and a name
//     that stays the same across transfers.
// Roles are checked by TuningService.access; what each method needs is named here.
import { ServiceError, invalidArgument, notFound } from '../errors.js';
import type { KeyStore } from '../auth/keys.js';
import { projectIdPattern } from '../auth/keys.js';
import type { ServiceLimits } from '../limits.js';
import type { Database } from '../store/database.js';
import { everyone, type Grant, type GrantedRole, type GranteeType } from '../store/permissions.js';
import { now, type TunedModel } from '../tuning/tuned-model.js';
import type { Role, TuningService } from '../tuning/service.js';
import { identityDomain, projectEmail, projectNumber, projectOfEmail } from './identity.js';
import type { ListScope } from '../store/tuned-models.js';

export interface Permission {
  /** Its id within the model: the grantee's project number, or `everyone`. */
  id: string;
  granteeType: GranteeType;
  /** The grantee project's identity email (absent for EVERYONE). */
  emailAddress?: string;
  role: Role;
}

export interface PermissionRequest {
  granteeType?: string;
  emailAddress?: string;
  role?: string;
}

const everyoneId = 'everyone';
export const granteeTypes: readonly GranteeType[] = ['USER', 'GROUP', 'EVERYONE'];
export const roles: readonly Role[] = ['OWNER', 'WRITER', 'READER'];

/** Page sizes of ListPermissions (permission_service.proto: 10 by default, at most 1000). */
const permissionPages = { default: 10, max: 1000 };

/** Filter operators of ListTunedModels (tuned_model.proto), and what each shows. */
const filterOperators: Record<string, ListScope['show'][number]> = {
  'owner:me': 'owned',
  'writers:me': 'writable',
  'readers:me': 'readable',
  'readers:everyone': 'everyone',
};

/**
 * A ListTunedModels filter: its operators, and the rest as full-text search. Without one, a project sees its own
 * models and those granted to it, never those shared only with everyone ("By default, results will not include
 * tuned models shared with everyone").
 */
export function parseTunedModelFilter(filter: string | undefined): { show: ListScope['show']; text: string } {
  const show: ListScope['show'] = [];
  const text = (filter ?? '')
    .replace(/\b[a-z]+:[a-z]+\b/gi, (token) => {
      const operator = filterOperators[token.toLowerCase()];
      if (!operator) {
        throw invalidArgument(`filter operator '${token}' is not supported; use ${Object.keys(filterOperators).join(', ')} or text`, 'filter');
      }
      show.push(operator);
      return '';
    })
    .replace(/\s+/g, ' ')
    .trim();
  return { show: show.length ? show : ['readable'], text };
}

export class SharingService {
  constructor(
    private readonly tuning: TuningService,
    private readonly keys: KeyStore,
    private readonly database: Database,
    private readonly options: { limits: ServiceLimits; keyless: boolean },
  ) {}

  private get permissions() {
    return this.tuning.permissions;
  }

  /** The model's permissions: its owner first, then its grants, oldest first. */
  async permissionsOf(model: TunedModel): Promise<Permission[]> {
    const owner: Permission = { id: projectNumber(model.project), granteeType: 'USER', emailAddress: projectEmail(model.project), role: 'OWNER' };
    return [owner, ...(await this.permissions.grants(model.id)).map(permissionOf)];
  }

  async list(project: string, modelId: string, pageSize?: number, pageToken?: string): Promise<{ items: Permission[]; nextPageToken?: string }> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'list the permissions of');
    const all = await this.permissionsOf(model);
    const size = Math.min(Math.max(1, pageSize || permissionPages.default), permissionPages.max);
    let start = 0;
    if (pageToken) {
      start = all.findIndex((p) => p.id === pageToken);
      if (start < 0) throw invalidArgument('pageToken is invalid: pass the nextPageToken of a previous list call', 'page_token');
    }
    return { items: all.slice(start, start + size), nextPageToken: all[start + size]?.id };
  }

  async get(project: string, modelId: string, permissionId: string): Promise<Permission> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'read the permissions of');
    return this.permissionOf(model, permissionId);
  }

  /** WRITER shares: grants WRITER or READER to a project, or READER to everyone. */
  async create(project: string, modelId: string, request: PermissionRequest): Promise<Permission> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'share');
    const role = roleOf(request.role, 'permission.role');
    if (role === 'OWNER') {
      throw invalidArgument('A permission cannot grant OWNER: a tuned model has one owner; transfer it with tunedModels/{id}:transferOwnership.', 'permission.role');
    }
    const grantee = await this.granteeOf(request);
    if (grantee.grantee === everyone && role !== 'READER') {
      throw invalidArgument('EVERYONE can only be granted READER: everyone may use a shared model, never change it.', 'permission.role');
    }
    if (grantee.grantee === model.project) {
      throw invalidArgument(`${projectEmail(model.project)} already owns tunedModels/${model.id}.`, 'permission.email_address');
    }
    const grants = await this.permissions.grants(model.id);
    if (grants.some((g) => g.grantee === grantee.grantee)) {
      throw new ServiceError('ALREADY_EXISTS', `Permission tunedModels/${model.id}/permissions/${idOf(grantee.grantee)} already exists: update its role instead.`);
    }
    const { permissionsPerTunedModel } = this.options.limits;
    if (grants.length >= permissionsPerTunedModel) {
      throw new ServiceError('RESOURCE_EXHAUSTED', `tunedModels/${model.id} has ${grants.length} permissions, the limit permissionsPerTunedModel (${permissionsPerTunedModel}).`);
    }
    const grant: Grant = { tunedModelId: model.id, ...grantee, role, createTime: now() };
    await this.permissions.insert(grant);
    return permissionOf(grant);
  }

  /** UpdatePermission: the role only (the grantee is immutable); the owner's changes only by transfer. */
  async updateRole(project: string, modelId: string, permissionId: string, requestedRole: string | undefined): Promise<Permission> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'share');
    const permission = await this.permissionOf(model, permissionId);
    const role = roleOf(requestedRole, 'permission.role');
    if (permission.role === 'OWNER' || role === 'OWNER') {
      throw invalidArgument('The OWNER permission changes only by tunedModels/{id}:transferOwnership.', 'permission.role');
    }
    if (permission.id === everyoneId && role !== 'READER') {
      throw invalidArgument('EVERYONE can only be granted READER: everyone may use a shared model, never change it.', 'permission.role');
    }
    await this.permissions.setRole(model.id, granteeOfId(permission), role);
    return { ...permission, role };
  }

  /** Revoking ends access at once: every request checks the grants as it arrives. */
  async delete(project: string, modelId: string, permissionId: string): Promise<void> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'share');
    const permission = await this.permissionOf(model, permissionId);
    if (permission.role === 'OWNER') {
      throw new ServiceError('FAILED_PRECONDITION', `The OWNER permission of tunedModels/${model.id} cannot be deleted: transfer the model, or delete it.`);
    }
    await this.permissions.delete(model.id, granteeOfId(permission));
  }

  /** The owner hands the model to another project; it keeps the model as a WRITER. */
  async transferOwnership(project: string, modelId: string, emailAddress: string | undefined): Promise<void> {
    const { model } = await this.tuning.access(project, modelId, 'OWNER', 'transfer');
    const to = await this.projectOfEmail(emailAddress, 'email_address');
    if (to === model.project) throw invalidArgument(`${projectEmail(to)} already owns tunedModels/${model.id}.`, 'email_address');
    await this.database.transaction(async (trx) => {
      // The new owner's model count is its quota's: take the project's turn, as creates do.
      await this.database.lockProject(trx, to);
      const { tunedModelsPerProject } = this.options.limits;
      const held = await this.tuning.store.in(trx).count(to);
      if (held >= tunedModelsPerProject) {
        throw new ServiceError('RESOURCE_EXHAUSTED', `Project ${to} holds ${held} tuned models, the limit tunedModelsPerProject (${tunedModelsPerProject}).`);
      }
      await this.permissions.in(trx).transfer(model.id, model.project, to, now());
    });
  }

  /** The numbers of the projects that may use the model and no more (TunedModel.readerProjectNumbers). */
  async readerProjectNumbers(model: TunedModel): Promise<string[]> {
    return (await this.permissions.grants(model.id)).filter((g) => g.role === 'READER' && g.grantee !== everyone).map((g) => projectNumber(g.grantee));
  }

  /**
   * Makes the model's project READERs exactly those numbered (a WRITER keeps its role, the owner is the owner).
   * Checked in full before anything changes.
   */
  async setReaderProjectNumbers(project: string, modelId: string, numbers: unknown, field = 'tuned_model.reader_project_numbers'): Promise<void> {
    const { model } = await this.tuning.access(project, modelId, 'WRITER', 'share');
    const wanted = new Set<string>();
    for (const [i, number] of (Array.isArray(numbers) ? numbers : numbers === undefined || numbers === null ? [] : [numbers]).entries()) {
      wanted.add(await this.projectOfNumber(number, `${field}[${i}]`));
    }
    wanted.delete(model.project);
    const grants = await this.permissions.grants(model.id);
    const { permissionsPerTunedModel } = this.options.limits;
    const kept = grants.filter((g) => g.role !== 'READER' || g.grantee === everyone || wanted.has(g.grantee));
    const added = [...wanted].filter((p) => !grants.some((g) => g.grantee === p));
    if (kept.length + added.length > permissionsPerTunedModel) {
      throw invalidArgument(`tunedModels/${model.id} may have at most ${permissionsPerTunedModel} permissions (the limit permissionsPerTunedModel).`, field);
    }
    await this.database.transaction(async (trx) => {
      const store = this.permissions.in(trx);
      for (const g of grants) if (g.role === 'READER' && g.grantee !== everyone && !wanted.has(g.grantee)) await store.delete(model.id, g.grantee);
      for (const grantee of added) await store.insert({ tunedModelId: model.id, grantee, granteeType: 'USER', role: 'READER', createTime: now() });
    });
  }

  /** Validates readerProjectNumbers before a model exists (create), so a bad one creates nothing. */
  async checkProjectNumbers(numbers: unknown, field = 'tuned_model.reader_project_numbers'): Promise<void> {
    for (const [i, number] of (Array.isArray(numbers) ? numbers : [numbers]).entries()) await this.projectOfNumber(number, `${field}[${i}]`);
  }

  private async permissionOf(model: TunedModel, permissionId: string): Promise<Permission> {
    const permission = (await this.permissionsOf(model)).find((p) => p.id === permissionId);
    if (!permission) throw notFound(`Permission tunedModels/${model.id}/permissions/${permissionId} does not exist.`);
    return permission;
  }

  private async granteeOf({ granteeType, emailAddress }: PermissionRequest): Promise<Pick<Grant, 'grantee' | 'granteeType'>> {
    const type = (granteeType === undefined || granteeType === 'GRANTEE_TYPE_UNSPECIFIED' ? (emailAddress ? 'USER' : undefined) : granteeType) as GranteeType | undefined;
    if (!type || !granteeTypes.includes(type)) {
      throw invalidArgument(`permission.grantee_type must be one of ${granteeTypes.join(', ')}, not ${JSON.stringify(granteeType ?? '')}.`, 'permission.grantee_type');
    }
    if (type === 'EVERYONE') {
      if (emailAddress) throw invalidArgument('permission.email_address must not be set when grantee_type is EVERYONE.', 'permission.email_address');
      return { grantee: everyone, granteeType: type };
    }
    return { grantee: await this.projectOfEmail(emailAddress, 'permission.email_address'), granteeType: type };
  }

  /** The project an identity email names; it must be a project Attune knows. */
  private async projectOfEmail(email: string | undefined, field: string): Promise<string> {
    if (!email) throw invalidArgument(`${field} is required: the grantee project's identity email, <project>@${identityDomain}.`, field);
    const project = projectOfEmail(email);
    if (!project || !(await this.isProject(project))) {
      throw invalidArgument(
        `${JSON.stringify(email)} names no project here. A project's identity email is <project id>@${identityDomain}; the console's Sharing panel shows yours.`,
        field,
      );
    }
    return project;
  }

  private async projectOfNumber(number: unknown, field: string): Promise<string> {
    const text = typeof number === 'number' || typeof number === 'bigint' ? String(number) : typeof number === 'string' ? number : '';
    if (/^\d{12}$/.test(text)) {
      for (const project of await this.knownProjects()) if (projectNumber(project) === text) return project;
    }
    throw invalidArgument(`${JSON.stringify(number ?? null)} is not the number of a project here; the console's Sharing panel shows each project's number.`, field);
  }

  /** A project with keys or tuned models; on a keyless server, any valid project id too (every one can act there). */
  private async isProject(project: string): Promise<boolean> {
    if (this.options.keyless && (project === 'local' || projectIdPattern.test(project)) && !(await this.keys.hasProject(project))) return true;
    return (await this.knownProjects()).includes(project);
  }

  private async knownProjects(): Promise<string[]> {
    const withModels = (await this.tuning.store.projects()).map((p) => p.project);
    return [...new Set([...withModels, ...(await this.keys.projects()), ...(this.options.keyless ? ['local'] : [])])];
  }
}

const idOf = (grantee: string) => (grantee === everyone ? everyoneId : projectNumber(grantee));

function permissionOf(grant: Grant): Permission {
  return grant.grantee === everyone
    ? { id: everyoneId, granteeType: 'EVERYONE', role: grant.role }
    : { id: idOf(grant.grantee), granteeType: grant.granteeType, emailAddress: projectEmail(grant.grantee), role: grant.role };
}

const granteeOfId = (permission: Permission) => (permission.id === everyoneId ? everyone : projectOfEmail(permission.emailAddress!)!);

function roleOf(value: string | undefined, field: string): GrantedRole | 'OWNER' {
  if (!value || !roles.includes(value as Role)) throw invalidArgument(`${field} must be one of ${roles.join(', ')}, not ${JSON.stringify(value ?? '')}.`, field);
  return value as GrantedRole | 'OWNER';
}
