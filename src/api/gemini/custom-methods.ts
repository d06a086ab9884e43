// Google's custom methods put a verb after the resource name: POST /v1beta/tunedModels/x:generateContent.
// One route per collection receives them all; each concern registers the verbs it serves here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServiceError } from '../../service/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The verbs a custom-method route dispatches (`x:verb`; '' for the plain method on the same path), for docs/api.md's test. */
    customMethods?: readonly string[];
  }
}

export const apiVersions = ['v1', 'v1beta', 'v1beta3'] as const;
export type ApiVersion = (typeof apiVersions)[number];

export interface CustomMethodTarget {
  version: ApiVersion;
  /** The resource id, without its collection: `x` for tunedModels/x. */
  id: string;
}

export type CustomMethod = (request: FastifyRequest, reply: FastifyReply, target: CustomMethodTarget) => Promise<unknown>;

export class CustomMethods {
  readonly tunedModels = new Map<string, CustomMethod>();
  readonly models = new Map<string, CustomMethod>();

  register(app: FastifyInstance): void {
    for (const collection of ['tunedModels', 'models'] as const) {
      const config = { customMethods: [...this[collection].keys()] };
      app.post<{ Params: { version: string; name: string } }>(`/:version/${collection}/:name`, { config }, async (request, reply) => {
        const version = parseVersion(request.params.version);
        const at = request.params.name.lastIndexOf(':');
        const verb = at >= 0 ? request.params.name.slice(at + 1) : '';
        const method = this[collection].get(verb);
        if (!method) {
          throw new ServiceError('NOT_FOUND', `Method not found: POST /${version}/${collection}/${request.params.name}`);
        }
        return method(request, reply, { version, id: request.params.name.slice(0, at) });
      });
    }
  }
}

export function parseVersion(version: string): ApiVersion {
  if (!(apiVersions as readonly string[]).includes(version)) throw new ServiceError('NOT_FOUND', `API version ${version} is not served`);
  return version as ApiVersion;
}
