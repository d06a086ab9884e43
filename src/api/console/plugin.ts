// The web console's static files at /console/; its downloads use the export route (../export/routes.ts).
import type { FastifyInstance } from 'fastify';
import { consoleStaticRoutes } from './static.js';

export interface ConsolePluginOptions {
  /** Where the built console is (default: dist/console beside this build). */
  root?: string;
}

export async function consolePlugin(app: FastifyInstance, { root }: ConsolePluginOptions): Promise<void> {
  await consoleStaticRoutes(app, { root });
}
