// Saves and loads adapters in Hugging Face PEFT's format, so PEFT, vLLM, llama.cpp's converter and
// others load them as they are: adapter_config.json + adapter_model.safetensors, keys
// `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r].
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { keep, type Tensor } from '../tensor/index.js';
import { readSafetensors, readSafetensorsAsync, writeSafetensors } from '../io/safetensors.js';
import { replaceFileDurably, writeFileDurably } from '../io/durable.js';
import type { Transformer } from '../model/transformer.js';
import type { LoraWeights } from '../model/linear.js';
import { LoraAdapter, loraConfig, type LoraConfig } from './lora.js';

export const adapterFiles = { config: 'adapter_config.json', weights: 'adapter_model.safetensors' } as const;

export function peftConfig(config: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: config.targetModules,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_rslora: false,
    use_dora: false,
    revision: null,
  };
}

export function saveAdapter(dir: string, adapter: LoraAdapter, baseModel: string): void {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  for (const [module, { a, b }] of adapter.weights) {
    tensors.set(`base_model.model.${module}.lora_A.weight`, a);
    tensors.set(`base_model.model.${module}.lora_B.weight`, b);
  }
  replaceFileDurably(path.join(dir, adapterFiles.weights), (temporary) => writeSafetensors(temporary, tensors, { format: 'pt' }));
  writeJson(path.join(dir, adapterFiles.config), peftConfig(adapter.config, baseModel));
}

/** Throws unless dir holds a PEFT adapter's two files. */
export function checkAdapterDir(dir: string): void {
  if (!existsSync(path.join(dir, adapterFiles.config)) || !existsSync(path.join(dir, adapterFiles.weights))) {
    throw new Error(`${dir} is not a LoRA adapter: it needs ${adapterFiles.config} and ${adapterFiles.weights}`);
  }
}

export function loadAdapter(dir: string, model: Transformer): LoraAdapter {
  const { configFile, weightsFile } = adapterPaths(dir);
  return adapterFrom(readFileSync(configFile, 'utf8'), readSafetensors(weightsFile), model, configFile, weightsFile);
}

/** loadAdapter with the files read off the event loop (serving loads adapters while it decodes). */
export async function loadAdapterAsync(dir: string, model: Transformer): Promise<LoraAdapter> {
  const { configFile, weightsFile } = adapterPaths(dir);
  const [config, tensors] = await Promise.all([readFile(configFile, 'utf8'), readSafetensorsAsync(weightsFile)]);
  return adapterFrom(config, tensors, model, configFile, weightsFile);
}

function adapterPaths(dir: string): { configFile: string; weightsFile: string } {
  const configFile = path.join(dir, adapterFiles.config);
  const weightsFile = path.join(dir, adapterFiles.weights);
  checkAdapterDir(dir);
  return { configFile, weightsFile };
}

function adapterFrom(configText: string, tensors: Map<string, Tensor>, model: Transformer, configFile: string, weightsFile: string): LoraAdapter {
  let raw: Record<string, any>;
  try {
    raw = JSON.parse(configText);
  } catch (error) {
    throw new Error(`${configFile} is not valid JSON: ${(error as Error).message}`);
  }
  if (raw.peft_type !== 'LORA') throw new Error(`${configFile}: peft_type '${raw.peft_type}' is not LORA`);
  if (raw.use_dora) throw new Error(`${configFile}: DoRA adapters are not supported`);
  const targets = typeof raw.target_modules === 'string' ? [raw.target_modules] : raw.target_modules;
  const config = loraConfig({ rank: raw.r, alpha: raw.lora_alpha, dropout: raw.lora_dropout ?? 0, targetModules: targets });
  const scale = raw.use_rslora ? config.alpha / Math.sqrt(config.rank) : config.alpha / config.rank;
  const weights = new Map<string, LoraWeights>();
  for (const [module, linear] of model.linears()) {
    const a = tensors.get(`base_model.model.${module}.lora_A.weight`);
    const b = tensors.get(`base_model.model.${module}.lora_B.weight`);
    if (!a || !b) continue;
    if (a.size(1) !== linear.inFeatures || b.size(0) !== linear.outFeatures) {
      throw new Error(`${weightsFile}: ${module} has shapes that do not fit the base model`);
    }
    const placement = { dtype: 'float32' as const, device: model.device };
    weights.set(module, { a: keep(a.to(placement)), b: keep(b.to(placement)), scale, dropout: config.dropout });
  }
  if (weights.size === 0) throw new Error(`${weightsFile} has no LoRA weights for this base model's modules`);
  return new LoraAdapter(config, weights);
}

/** Each file of an adapter is replaced durably (temporary file, fsync, rename), so a crash never leaves half of one. */
export function writeJson(file: string, value: unknown): void {
  writeFileDurably(file, JSON.stringify(value, null, 2) + '\n');
}
