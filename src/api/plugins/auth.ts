// Who is calling, decided when the request arrives (onRequest), before its body is read: a caller without
// valid credentials is answered at once and never costs more than its headers.
//
// An API key as x-goog-api-key, ?key= or Authorization: Bearer (as Google accepts them) names the project. A
// Vertex path (projects/{project}/…) or x-goog-user-project may name it too, but only the key's own. In
// keyless mode (loopback only) a request without credentials acts for the project the path or
// x-goog-user-project names, or the local project, unless that project has API keys.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { KeyCheck, KeyStore } from '../../service/auth/keys.js';
import { ServiceError } from '../../service/errors.js';
import { serviceDefaults } from '../../service/config.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The project the caller acts for; '' until authenticated, and on public routes and unknown paths. */
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

const firstOf = (value: unknown): string | undefined => {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first !== '' ? first : undefined;
};

function credentials(request: FastifyRequest): { key?: string; bearer?: string } {
  // onRequest runs before the query is camelCased: Google's own names, and the camelCase ones clients also send.
  const query = request.query as Record<string, unknown>;
  const key = firstOf(request.headers['x-goog-api-key']) ?? firstOf(query.key);
  const bearer = request.headers.authorization?.match(/^Bearer\s+(.+)$/i)?.[1] ?? firstOf(query.access_token) ?? firstOf(query.accessToken);
  return { key, bearer };
}

const invalidKey = () => new ServiceError('INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');

/** A key that is no longer valid: Google's 401 with what happened to it. */
function lapsedKey(problem: 'revoked' | 'expired'): ServiceError {
  return new ServiceError(
    'UNAUTHENTICATED',
    problem === 'expired' ? 'API key expired. Please renew the API key.' : 'API key revoked. Please pass a valid API key.',
  );
}

const projectOrThrow = (checked: KeyCheck, unknown: () => ServiceError): string => {
  if ('project' in checked) return checked.project;
  throw checked.problem === 'unknown' ? unknown() : lapsedKey(checked.problem);
};

/** Who presented credentials: a key's project, or nobody on a keyless server (the project is named later). */
export type Caller = { project: string } | { keyless: true };

/**
 * The caller behind a key (x-goog-api-key, ?key=) or bearer token, for the HTTP and gRPC fronts alike. Throws
 * Google's answers for a bad, lapsed or missing credential.
 */
export async function identify({ key, bearer }: { key?: string; bearer?: string }, keys: KeyStore, keyless: boolean): Promise<Caller> {
  if (key) return { project: projectOrThrow(await keys.check(key), invalidKey) };
  if (bearer) {
    // Bearer tokens are Attune API keys too: the tutorials send `Authorization: Bearer $(gcloud …)`.
    // A keyless server takes any token that is no key at all (SDKs in Vertex mode always send one).
    const checked = await keys.check(bearer);
    if (!('problem' in checked && checked.problem === 'unknown' && keyless)) {
      return {
        project: projectOrThrow(
          checked,
          () =>
            new ServiceError(
              'UNAUTHENTICATED',
              'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
            ),
        ),
      };
    }
  }
  if (!keyless) {
    throw new ServiceError(
      'PERMISSION_DENIED',
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    );
  }
  return { keyless: true };
}

/**
 * The project a caller acts for, given the project the request names (a resource name's projects/{p}, or
 * x-goog-user-project): a key acts for its own project only; a keyless caller for the named one, or the local
 * project, unless that project has API keys.
 */
export async function actingProject(caller: Caller, named: string | undefined, keys: KeyStore): Promise<string> {
  if ('project' in caller) {
    if (named && named !== caller.project) {
      throw new ServiceError('PERMISSION_DENIED', `The caller does not have permission to act for project ${named}.`);
    }
    return caller.project;
  }
  const project = named || serviceDefaults.keylessProject;
  // Keyless callers never act for a project that has keys: its models stay its own.
  if (await keys.hasProject(project)) throw new ServiceError('PERMISSION_DENIED', `Project ${project} requires an API key.`);
  return project;
}

export const authPlugin = fp(async (app: FastifyInstance, { keys, keyless }: AuthOptions) => {
  app.decorateRequest('project', '');
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public || request.is404) return; // an unknown route is a 404 for everyone
    const caller = await identify(credentials(request), keys, keyless);
    const pathProject = (request.params as Record<string, string | undefined> | undefined)?.project;
    request.project = await actingProject(caller, pathProject ?? firstOf(request.headers['x-goog-user-project']), keys);
  });
});
