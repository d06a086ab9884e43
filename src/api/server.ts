// The HTTP server: plugins for errors, lenient JSON and auth, then one route module per concern.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Services } from '../service/services.js';
import { errorsPlugin } from './plugins/errors.js';
import { lenientJsonPlugin } from './plugins/lenient-json.js';
import { authPlugin } from './plugins/auth.js';
import { CustomMethods } from './gemini/custom-methods.js';
import { tunedModelRoutes, operationRoutes } from './gemini/tuned-models.js';
import { generateRoutes } from './gemini/generate.js';
import { modelRoutes } from './gemini/models.js';
import { storageRoutes } from './storage/routes.js';
import { tuningJobRoutes } from './vertex/tuning-jobs.js';
import { metricRoutes } from './vertex/metrics.js';
import { endpointRoutes } from './vertex/endpoints.js';
import { consolePlugin } from './console/plugin.js';

export const requestLimits = {
  /** Bodies carry training examples: 40,000 + 5,000 characters each, hundreds of them. */
  bodyBytes: 64 * 1024 * 1024,
} as const;

export interface ServerOptions {
  logger?: boolean | object;
}

export async function buildServer(services: Services, { logger = false }: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger, bodyLimit: requestLimits.bodyBytes, routerOptions: { maxParamLength: 500 } });
  // Google pretty-prints its JSON; scripts grep single lines such as '"state": "ACTIVE"'.
  app.setReplySerializer((payload) => JSON.stringify(payload, null, 2));
  await app.register(errorsPlugin);
  await app.register(lenientJsonPlugin);
  await app.register(authPlugin, { keys: services.keys, keyless: services.config.keyless });
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
    });
  });

  const customMethods = new CustomMethods();
  tunedModelRoutes(app, services, customMethods);
  operationRoutes(app, services);
  modelRoutes(app, services);
  generateRoutes(services, customMethods);
  customMethods.register(app);
  tuningJobRoutes(app, services);
  metricRoutes(app, services);
  endpointRoutes(app, services);
  await app.register(storageRoutes, { store: services.objects });
  await app.register(consolePlugin, { services });
  return app;
}
