// GET /{version}/tunedModels/{id}/export?format=peft|merged|gguf|ollama[&withBase=true][&baseType=f16][&checkpoint=N]:
// a tuned model (one of its checkpoints with `checkpoint`; by default the one it serves) exported for other engines, as a ZIP of the files `attune export` writes. An Attune
// extension (the console's download buttons and `attune export --server` use it), authorised like every
// API route: the caller's project must own the model. {id} is the tunedModels id or the 19-digit job number.
import { Readable } from 'node:stream';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { exportFormats, type ExportFormat } from '../../engine/export/export.js';
import { ggufBaseTypes, type GgufBaseType } from '../../engine/export/gguf/convert.js';
import { invalidArgument } from '../../service/errors.js';
import { parseVersion } from '../gemini/custom-methods.js';
import { zipFiles } from './zip.js';

interface ExportQuery {
  format: ExportFormat;
  withBase?: boolean;
  baseType?: GgufBaseType;
  checkpoint?: string;
}

const exportQuery = {
  type: 'object',
  required: ['format'],
  properties: {
    format: { type: 'string', enum: [...exportFormats] },
    withBase: { type: 'boolean' },
    baseType: { type: 'string', enum: Object.keys(ggufBaseTypes) },
    checkpoint: { type: 'string', pattern: '^[0-9]{1,9}$' },
  },
} as const;

export function exportRoutes(app: FastifyInstance, services: Pick<Services, 'exports'>): void {
  app.get<{ Params: { version: string; id: string }; Querystring: ExportQuery }>(
    '/:version/tunedModels/:id/export',
    { schema: { querystring: exportQuery } },
    async (request, reply) => {
      parseVersion(request.params.version);
      const { format, withBase, baseType, checkpoint } = request.query;
      if (baseType && !(format === 'ollama' || (format === 'gguf' && withBase))) {
        throw invalidArgument('baseType applies to a base model in the export: format ollama, or gguf with withBase=true', 'base_type');
      }
      const prepared = await services.exports.prepare(request.project, request.params.id, { format, withBase, baseType, checkpoint });
      const entries = prepared.files.map((name) => ({ name, path: path.join(prepared.dir, name) }));
      return reply
        .type('application/zip')
        .header('content-disposition', `attachment; filename="${prepared.fileName}"`)
        .header('cache-control', 'no-store')
        .send(Readable.from(zipFiles(entries)));
    },
  );
}
