// Exports of tuned models (PEFT, merged, GGUF, Ollama), made on first request and kept under
// <data dir>/exports/<id>/<variant>/ until the model is deleted: an ACTIVE model's adapter never changes.
// Conversions run one at a time in a child process; identical requests share one run.
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportTunedAdapter, UnsupportedExportError, type ExportFormat, type ExportRequest } from '../../engine/export/export.js';
import type { GgufBaseType } from '../../engine/export/gguf/convert.js';
import { ServiceError } from '../errors.js';
import { randomId } from '../tuning/ids.js';
import type { TunedModel } from '../tuning/tuned-model.js';
import type { TuningService } from '../tuning/service.js';
import type { ExportWorkerReply } from './export-worker.js';

const workerPath = fileURLToPath(new URL('./export-worker.js', import.meta.url));

export interface ExportOptions {
  format: ExportFormat;
  /** gguf: include the base model. */
  withBase?: boolean;
  baseType?: GgufBaseType;
  /** One of the model's checkpoints (Vertex checkpointId); by default the one it serves. */
  checkpoint?: string;
}

export interface PreparedExport {
  dir: string;
  files: string[];
  /** What the download is called: <id>-<variant>.zip. */
  fileName: string;
}

/** One directory name per distinct output: options that change nothing do not make another copy. */
function variantOf({ format, withBase, baseType, checkpoint }: ExportOptions): string {
  const base = format === 'ollama' || (format === 'gguf' && withBase);
  const variant = base ? `${format}-base-${baseType ?? 'auto'}` : format;
  return checkpoint === undefined ? variant : `${variant}-checkpoint-${checkpoint}`;
}

export class ExportService {
  private readonly running = new Map<string, Promise<PreparedExport>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly tuning: TuningService,
    /** This server's own directory: exports are a cache, made again by any server that lacks one. */
    private readonly exportsDir: string,
  ) {
    tuning.onDeleted((id) => rmSync(this.modelDir(id), { recursive: true, force: true }));
    removeUnfinished(exportsDir);
  }

  private modelDir(id: string): string {
    return path.join(this.exportsDir, id);
  }

  /** The export of a project's ACTIVE tuned model, made now unless an earlier request made it. */
  async prepare(project: string, id: string, options: ExportOptions): Promise<PreparedExport> {
    const model = await this.tuning.get(project, id);
    if (model.state !== 'ACTIVE') {
      throw new ServiceError('FAILED_PRECONDITION', `Tuned model tunedModels/${model.id} has no adapter yet: it is ${model.state}.`);
    }
    // The default checkpoint can change (models.patch): an export names the checkpoint it was made from.
    options = { ...options, checkpoint: options.checkpoint ?? model.defaultCheckpointId };
    if (options.checkpoint !== undefined) await this.tuning.checkpoint(model, options.checkpoint);
    const variant = variantOf(options);
    const dir = path.join(this.modelDir(model.id), variant);
    const fileName = `${model.id}-${variant}.zip`;
    if (existsSync(dir)) return { dir, files: readdirSync(dir).sort(), fileName };
    const key = `${model.id}/${variant}`;
    let pending = this.running.get(key);
    if (!pending) {
      pending = this.make(model, options, dir).then((files) => ({ dir, files, fileName }));
      pending.finally(() => this.running.delete(key)).catch(() => {});
      this.running.set(key, pending);
    }
    return pending;
  }

  private async make(model: TunedModel, options: ExportOptions, dir: string): Promise<string[]> {
    // The shared adapter (a mounted directory), or a local copy of a bucket's.
    const adapterDir = await this.tuning.adapterDirectory(model, options.checkpoint);
    if (!existsSync(adapterDir)) throw new ServiceError('NOT_FOUND', `The adapter of tunedModels/${model.id} is missing.`);
    // Written beside the final directory and renamed into place, so a half-written export is never served.
    const staging = `${dir}.partial-${randomId(8)}`;
    const request: ExportRequest = {
      adapterDir,
      baseDir: model.baseDir,
      format: options.format,
      outDir: staging,
      name: model.id,
      withBase: options.withBase,
      baseType: options.baseType,
      sampling: { temperature: model.temperature, topP: model.topP, topK: model.topK },
    };
    const run = async (): Promise<string[]> => {
      mkdirSync(path.dirname(dir), { recursive: true });
      try {
        // A PEFT export copies a few small files; everything else converts tensors, away from the event loop.
        const files = options.format === 'peft' ? await exportTunedAdapter(request) : await inWorker(request);
        renameSync(staging, dir);
        return files.sort();
      } catch (error) {
        rmSync(staging, { recursive: true, force: true });
        if (error instanceof UnsupportedExportError) {
          throw new ServiceError('FAILED_PRECONDITION', `tunedModels/${model.id} cannot be exported as ${options.format}: ${error.message}`);
        }
        throw error;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }
}

function inWorker(request: ExportRequest): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    let reply: ExportWorkerReply | undefined;
    child.once('message', (message: ExportWorkerReply) => (reply = message));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (reply?.type === 'done') resolve(reply.files);
      else if (reply?.type === 'failed') reject(reply.unsupported ? new UnsupportedExportError(reply.message) : new Error(`Export failed: ${reply.message}`));
      else reject(new ServiceError('INTERNAL', `The export worker stopped (${signal ?? `exit code ${code}`}) before it finished.`));
    });
    child.send(request);
  });
}

/** Staging folders a crash or kill left behind (exports are renamed into place only when complete). */
function removeUnfinished(exportsDir: string): void {
  if (!existsSync(exportsDir)) return;
  for (const model of readdirSync(exportsDir)) {
    const dir = path.join(exportsDir, model);
    for (const entry of readdirSync(dir)) if (entry.includes('.partial-')) rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}
