// A Hugging Face model directory with a LoRA adapter folded into the base weights (W + scale·B·A),
// each tensor in the base checkpoint's own dtype, so transformers, Attune and llama.cpp's converter load
// it as a plain model. Tensors the adapter does not touch are copied byte for byte.
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readModelWeights, writeSafetensorsEntries, type SafetensorsEntry } from '../io/safetensors.js';
import { readModelConfig } from '../model/load.js';
import { tidy } from '../tensor/index.js';
import { readPeftAdapter } from './peft-files.js';

/** Files of a model directory other than its weights that a merged model keeps: config, tokenizer, template, licence. */
const keptFile = /^(?!model\.safetensors\.index\.json$)(.*\.json|.*\.jinja|tokenizer\.model|merges\.txt|vocab\.txt|LICENSE.*|NOTICE.*|USE_POLICY.*)$/i;

/** Returns the names of the files written. */
export function writeMergedModel(baseDir: string, adapterDir: string, outDir: string): string[] {
  readModelConfig(baseDir); // a clear error for a directory that is not a model
  const adapter = readPeftAdapter(adapterDir);
  const weights = readModelWeights(baseDir);
  try {
    const deltas = new Map(adapter.loras.map((l) => [`${l.module}.weight`, l]));
    for (const name of deltas.keys()) {
      if (!weights.has(name)) throw new Error(`${adapterDir}: the adapter changes ${name}, which the base model does not have`);
    }
    const entries: SafetensorsEntry[] = [...weights].map(([name, t]) => {
      const lora = deltas.get(name);
      const data = lora
        ? () => tidy(() => Buffer.from(t.float().add(lora.b.float().matmul(lora.a.float()).mul(adapter.scale)).to({ dtype: t.dtype }).toBuffer()))
        : () => t.toBuffer();
      return { name, dtype: t.dtype, shape: t.shape, data };
    });
    mkdirSync(outDir, { recursive: true });
    writeSafetensorsEntries(path.join(outDir, 'model.safetensors'), entries, { format: 'pt' });
    const written = ['model.safetensors'];
    for (const file of readdirSync(baseDir)) {
      const from = path.join(baseDir, file);
      if (keptFile.test(file) && statSync(from).isFile()) {
        copyFileSync(from, path.join(outDir, file));
        written.push(file);
      }
    }
    return written;
  } finally {
    for (const t of weights.values()) t.dispose();
    for (const { a, b } of adapter.loras) {
      a.dispose();
      b.dispose();
    }
  }
}
