// The web console: its static files at /console/ and the one extension route only it needs (the projects a
// keyless caller may switch to); its downloads use the export route (../export/routes.ts).
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { projectRoutes } from './projects.js';
import { consoleStaticRoutes } from './static.js';

export interface ConsolePluginOptions {
  services: Pick<Services, 'config' | 'keys' | 'store'>;
  /** Where the built console is (default: dist/console beside this build). */
  root?: string;
}

export async function consolePlugin(app: FastifyInstance, { services, root }: ConsolePluginOptions): Promise<void> {
  await consoleStaticRoutes(app, { root });
  projectRoutes(app, services);
}
