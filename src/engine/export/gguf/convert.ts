// Hugging Face model directories and PEFT adapters to GGUF files for llama.cpp and Ollama.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readModelWeights } from '../../io/safetensors.js';
import { readModelConfig } from '../../model/load.js';
import { tidy, type DType } from '../../tensor/index.js';
import { Tokenizer } from '../../tokenizer/tokenizer.js';
import { readPeftAdapter } from '../peft-files.js';
import { ggufArchitecture } from './architecture.js';
import { encodeTensor, storageType } from './encode.js';
import { gguf, writeGguf, type GgmlType, type GgufTensor, type GgufValue } from './file.js';
import { vocabularyMetadata } from './vocabulary.js';

/** The GGUF tensor types offered for a base model, by the names llama.cpp's tools use. */
export const ggufBaseTypes = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' } as const satisfies Record<string, GgmlType>;
export type GgufBaseType = keyof typeof ggufBaseTypes;

/** llama_ftype numbers for general.file_type. */
const fileTypes: Record<GgmlType, number> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };

/** The lossless type for a checkpoint's dtype: the file keeps the weights as they are. */
function losslessType(dtype: DType): GgmlType {
  return dtype === 'bfloat16' ? 'BF16' : dtype === 'float16' ? 'F16' : 'F32';
}

function generalMetadata(architecture: string, kind: 'model' | 'adapter', name: string, type: GgmlType): Map<string, GgufValue> {
  return new Map([
    ['general.architecture', gguf.string(architecture)],
    ['general.type', gguf.string(kind)],
    ['general.name', gguf.string(name)],
    ['general.file_type', gguf.uint32(fileTypes[type])],
    ['general.quantization_version', gguf.uint32(2)],
  ]);
}

/**
 * Writes a base model as a GGUF model file, its matrices in `type` (by default the checkpoint's own
 * dtype, so nothing is lost) and its vectors in f32. Returns the type used.
 */
export async function writeBaseGguf(modelDir: string, file: string, type?: GgufBaseType, name = path.basename(path.resolve(modelDir))): Promise<GgmlType> {
  const config = readModelConfig(modelDir);
  const arch = ggufArchitecture(config);
  const tokenizer = existsSync(path.join(modelDir, 'tokenizer.json')) ? await Tokenizer.load(modelDir) : undefined;
  const weights = readModelWeights(modelDir);
  const wanted = type ? ggufBaseTypes[type] : losslessType(weights.get('model.embed_tokens.weight')?.dtype ?? 'float32');
  const metadata = generalMetadata(arch.name, 'model', name, wanted);
  for (const [key, value] of arch.hyperparameters(config)) metadata.set(key, value);
  for (const [key, value] of vocabularyMetadata(modelDir, config, tokenizer)) metadata.set(key, value);

  const tensors: GgufTensor[] = arch.extraTensors(config).map(({ name: tensorName, values }) => ({
    name: tensorName,
    shape: [values.length],
    type: 'F32',
    encode: () => Buffer.from(values.buffer, values.byteOffset, values.byteLength),
  }));
  for (const [hfName, t] of weights) {
    const ggufName = arch.tensorName(hfName, config);
    if (ggufName === null) continue;
    const stored = storageType(wanted, t.shape);
    tensors.push({ name: ggufName, shape: t.shape, type: stored, encode: () => tidy(() => encodeTensor(arch.convert(hfName, t, config), stored)) });
  }
  try {
    writeGguf(file, metadata, tensors);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
  return wanted;
}

/**
 * Writes a PEFT adapter as a GGUF LoRA adapter for the base model in baseDir (its architecture names the
 * tensors). Tensors are `<base tensor>.lora_a` ([r, in]) and `.lora_b` ([out, r]) in f32; llama.cpp
 * scales B·A by adapter.lora.alpha / r, as PEFT does.
 */
export function writeAdapterGguf(adapterDir: string, baseDir: string, file: string, name = path.basename(path.resolve(adapterDir))): void {
  const config = readModelConfig(baseDir);
  const arch = ggufArchitecture(config);
  const adapter = readPeftAdapter(adapterDir);
  // llama.cpp multiplies by alpha / r; rsLoRA's alpha / √r is the same scale with a larger alpha.
  const metadata = generalMetadata(arch.name, 'adapter', name, 'F32');
  metadata.set('adapter.type', gguf.string('lora'));
  metadata.set('adapter.lora.alpha', gguf.float32(adapter.scale * adapter.rank));
  const tensors: GgufTensor[] = [];
  for (const { module, a, b } of adapter.loras) {
    const ggufName = arch.tensorName(`${module}.weight`, config);
    if (ggufName === null) throw new Error(`${adapterDir}: the adapter changes ${module}, which the GGUF model leaves out`);
    tensors.push({ name: `${ggufName}.lora_a`, shape: a.shape, type: 'F32', encode: () => tidy(() => encodeTensor(a, 'F32')) });
    tensors.push({ name: `${ggufName}.lora_b`, shape: b.shape, type: 'F32', encode: () => tidy(() => encodeTensor(arch.convertLoraB(module, b, config), 'F32')) });
  }
  try {
    writeGguf(file, metadata, tensors);
  } finally {
    for (const { a, b } of adapter.loras) {
      a.dispose();
      b.dispose();
    }
  }
}
