// A PEFT adapter read as files, without a loaded model: its config and its A/B matrices per module.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import { adapterFiles, checkAdapterDir } from '../lora/peft.js';
import type { Tensor } from '../tensor/index.js';

export interface PeftLora {
  /** The module path, e.g. model.layers.0.self_attn.q_proj. */
  module: string;
  /** [r, in] */
  a: Tensor;
  /** [out, r] */
  b: Tensor;
}

export interface PeftAdapterFiles {
  rank: number;
  alpha: number;
  /** alpha / rank, or alpha / √rank for rsLoRA: what B·A is multiplied by. */
  scale: number;
  loras: PeftLora[];
}

export function readPeftAdapter(dir: string): PeftAdapterFiles {
  const configFile = path.join(dir, adapterFiles.config);
  const weightsFile = path.join(dir, adapterFiles.weights);
  checkAdapterDir(dir);
  let config: Record<string, any>;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8'));
  } catch (error) {
    throw new Error(`${configFile} is not valid JSON: ${(error as Error).message}`);
  }
  if (config.peft_type !== 'LORA' || config.use_dora) throw new Error(`${configFile}: only plain LoRA adapters can be exported`);
  const rank = Number(config.r);
  const alpha = Number(config.lora_alpha);
  if (!(rank > 0) || !Number.isFinite(alpha)) throw new Error(`${configFile}: r and lora_alpha must be numbers`);
  const tensors = readSafetensors(weightsFile);
  const loras: PeftLora[] = [];
  for (const [name, a] of tensors) {
    const match = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(name);
    if (!match) {
      if (!/\.lora_B\.weight$/.test(name)) throw new Error(`${weightsFile}: ${name} is not a LoRA A/B matrix of a linear layer`);
      continue;
    }
    const module = match[1]!;
    const b = tensors.get(`base_model.model.${module}.lora_B.weight`);
    if (!b) throw new Error(`${weightsFile}: ${module} has lora_A but no lora_B`);
    loras.push({ module, a, b });
  }
  if (loras.length === 0) throw new Error(`${weightsFile} holds no LoRA weights`);
  return { rank, alpha, scale: config.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank, loras };
}
