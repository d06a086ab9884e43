// Vertex resource names (vertex-api.md §2, §8): one tuned model is tuningJobs/{n}, models/{n}@1 and
// endpoints/{n} under its project and location, n being its 19-digit job number; a continued run that makes a new
// version of its source's Model is tuningJobs/{m}, models/{n}@{version} and endpoints/{m}.
import { ServiceError } from '../../service/errors.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';

export const vertexVersions = ['v1', 'v1beta1'] as const;
export type VertexVersion = (typeof vertexVersions)[number];

export function parseVertexVersion(version: string): VertexVersion {
  if (!(vertexVersions as readonly string[]).includes(version)) throw new ServiceError('NOT_FOUND', `API version ${version} is not served`);
  return version as VertexVersion;
}

/** The path parameters of a location's collections. */
export interface LocationParams {
  version: string;
  project: string;
  location: string;
}

const parentOf = (model: TunedModel) => `projects/${model.project}/locations/${model.location}`;

export const tuningJobName = (model: TunedModel) => `${parentOf(model)}/tuningJobs/${model.jobNumber}`;
/** The Model in the registry; its versions are `…@{versionId}`. */
export const modelResourceName = (model: TunedModel) => `${parentOf(model)}/models/${model.modelNumber}`;
/** The alias of a Model's latest version whose run succeeded. */
export const defaultVersionAlias = 'default';
export const modelName = (model: TunedModel) => `${modelResourceName(model)}@${model.modelVersion}`;
/** The endpoint of the run's last adapter; each intermediate checkpoint has one of its own (endpointNumber). */
export const endpointName = (model: TunedModel, endpointNumber = model.jobNumber) => `${parentOf(model)}/endpoints/${endpointNumber}`;

/** Splits `123:cancel` into the id and the verb ('' when there is none). */
export function splitCustomMethod(segment: string): { id: string; verb: string } {
  const at = segment.lastIndexOf(':');
  return at < 0 ? { id: segment, verb: '' } : { id: segment.slice(0, at), verb: segment.slice(at + 1) };
}

/** `models/123@1` and `123` name the same tuned model. */
export const withoutVersion = (id: string) => id.replace(/@\d+$/, '');
