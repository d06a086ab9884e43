// attune export: a tuned adapter (a directory, or a tuned model on an Attune server) written as PEFT
// files, a merged Hugging Face model, a GGUF LoRA adapter (and base), or an Ollama folder.
import { mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import path from 'node:path';
import { exportFormats, exportTunedAdapter, type ExportFormat } from '../engine/export/export.js';
import { ggufBaseTypes, type GgufBaseType } from '../engine/export/gguf/convert.js';
import { unzipStored } from '../api/export/unzip.js';
import { parseOptions } from './args.js';
import { baseDirFor } from './adapter-base.js';
import { checkOutDir } from './out-dir.js';
import { UsageError, numberOption, nonNegative, positiveInteger } from './usage-error.js';

const baseTypes = Object.keys(ggufBaseTypes);

export const exportUsage = `attune export --format ${exportFormats.join('|')} --out <dir> (--adapter <dir> | --server URL --model tunedModels/ID)
  --adapter <dir>              a tuned adapter directory (from attune tune)
  --base <model dir>           its base model (default: the one recorded in the adapter's attune.json)
  --server URL, --model NAME   or a tuned model on an Attune server, exported there and downloaded;
                               the API key is ATTUNE_API_KEY or --key K (not needed on a keyless server)
  --format peft                the adapter as Hugging Face PEFT files
           merged              a Hugging Face model directory with the adapter merged into the weights
           gguf                a GGUF LoRA adapter for llama.cpp (--with-base adds the base model as GGUF)
           ollama              base and adapter GGUF with a Modelfile, for ollama create
  --base-type ${baseTypes.join('|')}   the base GGUF's tensor type (default: the checkpoint's own dtype)
  --name NAME                  the model's name in the files (default: the adapter directory's name)
  --temperature T, --top-p P, --top-k K   ollama: sampling defaults for the Modelfile
  --force                      write into an --out directory that is not empty`;

export async function exportCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, {
    adapter: { type: 'string' }, base: { type: 'string' }, server: { type: 'string' }, model: { type: 'string' }, key: { type: 'string' },
    format: { type: 'string' }, out: { type: 'string' }, 'with-base': { type: 'boolean' }, 'base-type': { type: 'string' },
    name: { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' },
    force: { type: 'boolean' },
  });
  const format = values.format as ExportFormat | undefined;
  if (!format) throw new UsageError(`--format is required: ${exportFormats.join(', ')}`);
  if (!exportFormats.includes(format)) throw new UsageError(`--format must be one of ${exportFormats.join(', ')}, not '${format}'`);
  if (!values.out) throw new UsageError('--out <dir> is required');
  const baseType = values['base-type'] as GgufBaseType | undefined;
  if (baseType !== undefined && !baseTypes.includes(baseType)) throw new UsageError(`--base-type must be one of ${baseTypes.join(', ')}, not '${baseType}'`);
  const withBase = values['with-base'] ?? false;
  if (withBase && format !== 'gguf') throw new UsageError('--with-base is for --format gguf (ollama always includes the base)');
  if (baseType && !(format === 'ollama' || withBase)) throw new UsageError('--base-type applies to a base GGUF: --format ollama, or gguf with --with-base');
  if (Boolean(values.adapter) === Boolean(values.server)) throw new UsageError('give --adapter <dir>, or --server URL with --model');
  checkOutDir('out', values.out, values.force ?? false);

  if (values.server) {
    if (!values.model) throw new UsageError('--model tunedModels/ID is required with --server');
    for (const local of ['base', 'name', 'temperature', 'top-p', 'top-k'] as const) {
      if (values[local] !== undefined) throw new UsageError(`--${local} is for --adapter; the server exports the tuned model as it is`);
    }
    const files = await download(values.server, values.model, values.key ?? process.env.ATTUNE_API_KEY, { format, withBase, baseType }, values.out);
    console.log(`${values.out}: ${files.join(', ')}`);
    return;
  }
  const adapterDir = values.adapter!;
  const baseDir = baseDirFor(adapterDir, values.base);
  const files = await exportTunedAdapter({
    adapterDir,
    baseDir,
    format,
    outDir: values.out,
    name: values.name ?? path.basename(path.resolve(adapterDir)),
    withBase,
    baseType,
    sampling: {
      temperature: numberOption('temperature', values.temperature, nonNegative, 'a number ≥ 0'),
      topP: numberOption('top-p', values['top-p'], (n) => n > 0 && n <= 1, 'in (0, 1]'),
      topK: numberOption('top-k', values['top-k'], positiveInteger, 'a positive integer'),
    },
  });
  console.log(`${values.out}: ${files.join(', ')}`);
}

async function download(
  server: string,
  model: string,
  key: string | undefined,
  query: { format: ExportFormat; withBase: boolean; baseType?: GgufBaseType },
  outDir: string,
): Promise<string[]> {
  const id = model.replace(/^tunedModels\//, '');
  let url: URL;
  try {
    url = new URL(`/v1beta/tunedModels/${encodeURIComponent(id)}/export`, server);
  } catch {
    throw new UsageError(`--server must be a URL such as http://127.0.0.1:8080, not '${server}'`);
  }
  url.searchParams.set('format', query.format);
  if (query.withBase) url.searchParams.set('withBase', 'true');
  if (query.baseType) url.searchParams.set('baseType', query.baseType);
  let response: Response;
  try {
    response = await fetch(url, { headers: key ? { 'x-goog-api-key': key } : {} });
  } catch (error) {
    throw new Error(`cannot reach ${url.origin}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`);
  }
  if (!response.ok || !response.body) {
    const text = await response.text();
    let message = text;
    try {
      message = JSON.parse(text).error?.message ?? text;
    } catch {
      // not a google.rpc error body: show it as it is
    }
    throw new Error(`${url.origin} answered ${response.status}: ${message}`);
  }
  mkdirSync(outDir, { recursive: true });
  return unzipStored(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), outDir);
}
