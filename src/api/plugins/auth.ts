// Who is calling: an API key as x-goog-api-key, ?key= or Authorization: Bearer (as Google accepts them)
// names the project. A Vertex path (projects/{project}/…) or x-goog-user-project may name it too, but only
// the key's own. In keyless mode (loopback only) a request without credentials acts for the project the
// path or x-goog-user-project names, or the local project, unless that project has API keys.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { KeyStore } from '../../service/auth/keys.js';
import { ServiceError } from '../../service/errors.js';
import { serviceDefaults } from '../../service/config.js';

declare module 'fastify' {
  interface FastifyRequest {
    project: string;
  }
  interface FastifyContextConfig {
    /** Routes open to everyone (health, console assets). */
    public?: boolean;
  }
}

export interface AuthOptions {
  keys: KeyStore;
  keyless: boolean;
}

function credentials(request: FastifyRequest): { key?: string; bearer?: string } {
  const query = request.query as Record<string, unknown>;
  const header = request.headers['x-goog-api-key'];
  const key = (Array.isArray(header) ? header[0] : header) ?? (typeof query.key === 'string' ? query.key : undefined);
  const authorization = request.headers.authorization;
  const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1] ?? (typeof query.accessToken === 'string' ? query.accessToken : undefined);
  return { key, bearer };
}

export const authPlugin = fp(async (app: FastifyInstance, { keys, keyless }: AuthOptions) => {
  app.decorateRequest('project', '');
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config?.public || request.is404) return; // an unknown route is a 404 for everyone
    const { key, bearer } = credentials(request);
    const pathProject = (request.params as Record<string, string | undefined> | undefined)?.project;
    const userProject = pathProject ?? (request.headers['x-goog-user-project'] as string | undefined);
    let project: string | undefined;
    if (key) {
      project = await keys.projectOf(key);
      if (!project) throw new ServiceError('INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');
    } else if (bearer) {
      // Bearer tokens are Attune API keys too: the tutorials send `Authorization: Bearer $(gcloud …)`.
      project = await keys.projectOf(bearer);
      if (!project && !keyless) {
        throw new ServiceError(
          'UNAUTHENTICATED',
          'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        );
      }
    }
    if (!project) {
      if (!keyless) {
        throw new ServiceError(
          'PERMISSION_DENIED',
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        );
      }
      const project = userProject || serviceDefaults.keylessProject;
      // Keyless callers never act for a project that has keys: its models stay its own.
      if (await keys.hasProject(project)) {
        throw new ServiceError('PERMISSION_DENIED', `Project ${project} requires an API key.`);
      }
      request.project = project;
      return;
    }
    if (userProject && userProject !== project) {
      throw new ServiceError('PERMISSION_DENIED', `The caller does not have permission to act for project ${userProject}.`);
    }
    request.project = project;
  });
});
