// A tuned adapter, exported for where people run models:
// - peft:   the adapter as Hugging Face PEFT files (+ attune.json), as Attune writes it;
// - merged: a Hugging Face model directory with the adapter folded into the base weights;
// - gguf:   a GGUF LoRA adapter for llama.cpp (and the base model as GGUF, withBase);
// - ollama: the base and adapter as GGUF plus a Modelfile, ready for `ollama create`.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { adapterFiles } from '../lora/peft.js';
import { readTuningRecord, tuningRecordFile } from '../lora/tuned-adapter.js';
import { writeAdapterGguf, writeBaseGguf, type GgufBaseType } from './gguf/convert.js';
import { writeMergedModel } from './merged.js';
import { modelfile, type SamplingDefaults } from './modelfile.js';
import { exportReadme } from './readme.js';

export { UnsupportedExportError } from './errors.js';

export const exportFormats = ['peft', 'merged', 'gguf', 'ollama'] as const;

export type ExportFormat = (typeof exportFormats)[number];

/** File names inside an export, one place for the CLI, the API and the docs. */
export const exportFiles = { adapterGguf: 'adapter.gguf', baseGguf: 'base.gguf', modelfile: 'Modelfile', readme: 'README.md' } as const;

export interface ExportRequest {
  /** A tuned adapter directory (PEFT files, usually with attune.json). */
  adapterDir: string;
  /** The base model directory the adapter was tuned on. */
  baseDir: string;
  format: ExportFormat;
  /** Created if needed; files of the same names are replaced. */
  outDir: string;
  /** A name for the model inside the files (general.name, the Ollama model name). */
  name: string;
  /** gguf: also write the base model as GGUF (ollama always does). */
  withBase?: boolean;
  /** The base GGUF's tensor type; by default the checkpoint's own dtype, which loses nothing. */
  baseType?: GgufBaseType;
  /** ollama: the tuned model's sampling defaults. */
  sampling?: SamplingDefaults;
}

/** Writes the export; returns the names of the files written, relative to outDir. */
export async function exportTunedAdapter(request: ExportRequest): Promise<string[]> {
  const { adapterDir, baseDir, format, outDir, name } = request;
  const record = readTuningRecord(adapterDir);
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  const out = (file: string): string => {
    written.push(file);
    return path.join(outDir, file);
  };

  if (format === 'peft') {
    for (const file of [adapterFiles.config, adapterFiles.weights, tuningRecordFile]) {
      if (existsSync(path.join(adapterDir, file))) copyFileSync(path.join(adapterDir, file), out(file));
    }
  } else if (format === 'merged') {
    written.push(...writeMergedModel(baseDir, adapterDir, outDir));
  } else {
    writeAdapterGguf(adapterDir, baseDir, out(exportFiles.adapterGguf), name);
    if (format === 'ollama' || request.withBase) {
      await writeBaseGguf(baseDir, out(exportFiles.baseGguf), request.baseType);
    }
    if (format === 'ollama') {
      const text = modelfile({ name, baseFile: exportFiles.baseGguf, adapterFile: exportFiles.adapterGguf, framing: record?.framing, sampling: request.sampling });
      writeFileSync(out(exportFiles.modelfile), text);
    }
  }
  writeFileSync(out(exportFiles.readme), exportReadme({ ...request, framing: record?.framing }));
  return written;
}
