// The web console: its static files at /console/ and the extension routes only it needs (the projects a
// keyless caller may switch to, the list's final losses); its downloads use the export route (../export/routes.ts).
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { projectRoutes } from './projects.js';
import { consoleStaticRoutes } from './static.js';
import { jobSummaryRoutes } from './summaries.js';

export interface ConsolePluginOptions {
  services: Pick<Services, 'config' | 'keys' | 'store' | 'tuning'>;
  /** Where the built console is (default: dist/console beside this build). */
  root?: string;
}

export async function consolePlugin(app: FastifyInstance, { services, root }: ConsolePluginOptions): Promise<void> {
  await consoleStaticRoutes(app, { root });
  projectRoutes(app, services);
  jobSummaryRoutes(app, services);
}
