// The built console (Vite's output in dist/console) at /console/: hashed assets are cached for good,
// index.html never, and any other path without a file extension is a client-side route, so it gets
// index.html (the app's router reads the URL). Open to everyone: the page holds no data, and the API
// calls it makes carry the user's key.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import { ServiceError } from '../../service/errors.js';

/** dist/src/api/console/static.js → dist/console/ (where `npm run build:console` writes). */
export const builtConsoleDir = fileURLToPath(new URL('../../../console/', import.meta.url));

const immutable = 'public, max-age=31536000, immutable';

export async function consoleStaticRoutes(app: FastifyInstance, { root = builtConsoleDir }: { root?: string } = {}): Promise<void> {
  // serve: false only decorates reply.sendFile (safe path resolution, types, ETags, ranges); routing is ours.
  await app.register(fastifyStatic, { root, serve: false });

  app.get('/console', { config: { public: true } }, async (_request, reply) => reply.redirect('/console/', 301));

  app.get<{ Params: { '*': string } }>('/console/*', { config: { public: true } }, async (request, reply) => {
    if (!existsSync(path.join(root, 'index.html'))) {
      throw new ServiceError('UNAVAILABLE', 'The console is not built: run `npm run build` (or `bash scripts/setup.sh`).');
    }
    const rest = request.params['*'];
    const segments = rest.split('/');
    const lastSegment = segments.at(-1) ?? '';
    if (lastSegment.includes('.')) {
      // '..' never names a console file; refusing it here also keeps existsSync inside the root.
      if (segments.includes('..') || !existsSync(path.join(root, rest))) throw new ServiceError('NOT_FOUND', `No console file ${rest}.`);
      // Vite names files under assets/ by content hash, so they never change under one name.
      const cacheControl = rest.startsWith('assets/') ? immutable : 'no-cache';
      return reply.header('cache-control', cacheControl).sendFile(rest, { cacheControl: false });
    }
    return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
  });
}
