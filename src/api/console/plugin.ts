// The web console: its static files at /console/ and the extension routes it needs (adapter download, the
// projects a keyless caller may switch to).
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { adapterDownloadRoute } from './adapter-download.js';
import { projectRoutes } from './projects.js';
import { consoleStaticRoutes } from './static.js';

export interface ConsolePluginOptions {
  services: Pick<Services, 'tuning' | 'config' | 'keys' | 'store'>;
  /** Where the built console is (default: dist/console beside this build). */
  root?: string;
}

export async function consolePlugin(app: FastifyInstance, { services, root }: ConsolePluginOptions): Promise<void> {
  await consoleStaticRoutes(app, { root });
  adapterDownloadRoute(app, services);
  projectRoutes(app, services);
}
