// GET /console/api/adapters/{id}: the tuned model's adapter directory (PEFT adapter_config.json and
// adapter_model.safetensors, plus attune.json) as a ZIP. An Attune extension, authorised like every API
// route: the caller's project must own the model.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { ServiceError } from '../../service/errors.js';
import { zipFiles, type ZipEntry } from './zip.js';

async function adapterEntries(dir: string): Promise<ZipEntry[]> {
  const files = await readdir(dir, { withFileTypes: true, recursive: true });
  return files
    .filter((f) => f.isFile())
    .map((f) => {
      const full = path.join(f.parentPath, f.name);
      return { name: path.relative(dir, full).split(path.sep).join('/'), path: full };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function adapterDownloadRoute(app: FastifyInstance, services: Pick<Services, 'tuning'>): void {
  app.get<{ Params: { id: string } }>('/console/api/adapters/:id', async (request, reply) => {
    const model = await services.tuning.get(request.project, request.params.id);
    if (model.state !== 'ACTIVE') {
      throw new ServiceError('FAILED_PRECONDITION', `Tuned model tunedModels/${model.id} has no adapter yet: it is ${model.state}.`);
    }
    let entries: ZipEntry[];
    try {
      entries = await adapterEntries(await services.tuning.adapterDirectory(model));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ServiceError('NOT_FOUND', `The adapter of tunedModels/${model.id} is missing.`);
      throw error;
    }
    const filename = `${model.id}-adapter.zip`;
    return reply
      .type('application/zip')
      .header('content-disposition', `attachment; filename="${filename}"`)
      .header('cache-control', 'no-store')
      .send(Readable.from(zipFiles(entries)));
  });
}
