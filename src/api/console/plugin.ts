// The web console: its static files at /console/ and the one extension route it needs (adapter download).
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { adapterDownloadRoute } from './adapter-download.js';
import { consoleStaticRoutes } from './static.js';

export interface ConsolePluginOptions {
  services: Pick<Services, 'tuning'>;
  /** Where the built console is (default: dist/console beside this build). */
  root?: string;
}

export async function consolePlugin(app: FastifyInstance, { services, root }: ConsolePluginOptions): Promise<void> {
  await consoleStaticRoutes(app, { root });
  adapterDownloadRoute(app, services);
}
