// The HTTP server: plugins for errors, lenient JSON, auth, the request policy and body limits, then one route
// module per concern. The last three hook in when a request arrives, before its body is read, in this order:
// auth (who is asking), policy (keyless Host/Origin, content types), body limits (how much they may send).
import Fastify, { type FastifyInstance } from 'fastify';
import type { Services } from '../service/services.js';
import { errorsPlugin, frameworkErrorHandler } from './plugins/errors.js';
import { lenientJsonPlugin } from './plugins/lenient-json.js';
import { authPlugin } from './plugins/auth.js';
import { requestPolicyPlugin } from './plugins/request-policy.js';
import { bodyLimitPlugin } from './plugins/body-limit.js';
import { loggerOptions } from './log.js';
import { permissionRoutes } from './gemini/permissions.js';
import { CustomMethods } from './gemini/custom-methods.js';
import { tunedModelRoutes, operationRoutes } from './gemini/tuned-models.js';
import { generateRoutes } from './gemini/generate.js';
import { modelRoutes } from './gemini/models.js';
import { storageRoutes } from './storage/routes.js';
import { tuningJobRoutes } from './vertex/tuning-jobs.js';
import { metricRoutes } from './vertex/metrics.js';
import { eventRoutes } from './vertex/events.js';
import { endpointRoutes } from './vertex/endpoints.js';
import { resourceRoutes } from './vertex/resources.js';
import { consolePlugin } from './console/plugin.js';
import { exportRoutes } from './export/routes.js';

export interface ServerOptions {
  /** Pino's level for the request log (secrets redacted); none: no log. */
  logLevel?: string;
}

export async function buildServer(services: Services, { logLevel }: ServerOptions = {}): Promise<FastifyInstance> {
  const { limits } = services;
  const app = Fastify({
    logger: logLevel ? loggerOptions(logLevel) : false,
    // The per-request limit (body-limit.ts) is at most this; Fastify's own check stays as a backstop.
    bodyLimit: Math.max(limits.requestBodyBytes, limits.unauthenticatedBodyBytes),
    routerOptions: { maxParamLength: 500 },
    frameworkErrors: frameworkErrorHandler,
  });
  // Google pretty-prints its JSON; scripts grep single lines such as '"state": "ACTIVE"'.
  app.setReplySerializer((payload) => JSON.stringify(payload, null, 2));
  await app.register(errorsPlugin);
  await app.register(lenientJsonPlugin);
  await app.register(authPlugin, { keys: services.keys, keyless: services.config.keyless });
  await app.register(requestPolicyPlugin, { keyless: services.config.keyless });
  await app.register(bodyLimitPlugin, { limits });
  // Readiness for a load balancer: whether this server reaches the database and the storage now.
  app.get('/healthz', { config: { public: true } }, async (_request, reply) => {
    const [database, storage] = await Promise.all([
      services.database.ping(),
      services.artifacts.check().then(() => true, () => false),
    ]);
    const ok = database && storage;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      database: database ? 'ok' : 'unreachable',
      storage: storage ? 'ok' : 'unreachable',
      device: services.placement.device,
      dtype: services.placement.dtype,
    });
  });

  const customMethods = new CustomMethods();
  tunedModelRoutes(app, services, customMethods);
  operationRoutes(app, services);
  permissionRoutes(app, services, customMethods);
  modelRoutes(app, services);
  generateRoutes(services, customMethods);
  customMethods.register(app);
  tuningJobRoutes(app, services);
  metricRoutes(app, services);
  eventRoutes(app, services);
  endpointRoutes(app, services);
  resourceRoutes(app, services);
  await app.register(storageRoutes, { store: services.objects });
  exportRoutes(app, services);
  await app.register(consolePlugin, { services });
  return app;
}
