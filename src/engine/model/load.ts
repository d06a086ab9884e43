// Loads a Hugging Face model directory (config.json + safetensors) into a Transformer.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { cudaDeviceCount, keep, noGrad, tidy, type DType, type Tensor } from '../tensor/index.js';
import { readModelWeights } from '../io/safetensors.js';
import { parseModelConfig, type ModelConfig } from './config.js';
import { Linear } from './linear.js';
import { Transformer, type Block } from './transformer.js';

export interface LoadOptions {
  /** Compute dtype of the weights; float32 by default. */
  dtype?: DType;
  device?: string;
}

export function readModelConfig(modelDir: string): ModelConfig {
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) throw new Error(`model directory not found: ${modelDir}`);
  const file = path.join(modelDir, 'config.json');
  if (!existsSync(file)) throw new Error(`${modelDir} is not a Hugging Face model directory: config.json is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseModelConfig(raw as Record<string, unknown>, file);
}

export function loadTransformer(modelDir: string, { dtype = 'float32', device = 'cpu' }: LoadOptions = {}): Transformer {
  const config = readModelConfig(modelDir);
  if (device.startsWith('cuda') && cudaDeviceCount() === 0) {
    throw new Error(`device '${device}' is not available: no CUDA GPU, or a libtorch built without CUDA (see README, GPU)`);
  }
  const weights = noGrad(() =>
    tidy(() => {
      const tensors = readModelWeights(modelDir);
      // Multimodal Gemma 3 checkpoints keep the text model under language_model.
      const take = (name: string): Tensor => {
        const t = tensors.get(name) ?? tensors.get(`language_model.${name}`);
        if (!t) throw new Error(`${modelDir}: weight '${name}' is missing`);
        return keep(t.dtype === dtype && t.device === device ? t : t.to({ dtype, device }));
      };
      const maybe = (name: string): Tensor | undefined =>
        tensors.has(name) || tensors.has(`language_model.${name}`) ? take(name) : undefined;
      const projection = (prefix: string, bias: boolean) =>
        new Linear(take(`${prefix}.weight`), bias ? take(`${prefix}.bias`) : null);

      const blocks: Block[] = Array.from({ length: config.numLayers }, (_, i) => {
        const p = `model.layers.${i}`;
        const gemma = config.family === 'gemma3';
        return {
          inputNorm: take(`${p}.input_layernorm.weight`),
          postAttentionNorm: take(`${p}.post_attention_layernorm.weight`),
          preFeedforwardNorm: gemma ? take(`${p}.pre_feedforward_layernorm.weight`) : undefined,
          postFeedforwardNorm: gemma ? take(`${p}.post_feedforward_layernorm.weight`) : undefined,
          qNorm: config.qkNorm ? take(`${p}.self_attn.q_norm.weight`) : undefined,
          kNorm: config.qkNorm ? take(`${p}.self_attn.k_norm.weight`) : undefined,
          q: projection(`${p}.self_attn.q_proj`, config.attentionBias),
          k: projection(`${p}.self_attn.k_proj`, config.attentionBias),
          v: projection(`${p}.self_attn.v_proj`, config.attentionBias),
          o: projection(`${p}.self_attn.o_proj`, config.family !== 'qwen2' && config.attentionBias),
          gate: projection(`${p}.mlp.gate_proj`, false),
          up: projection(`${p}.mlp.up_proj`, false),
          down: projection(`${p}.mlp.down_proj`, false),
        };
      });
      const embed = take('model.embed_tokens.weight');
      const head = config.tieWordEmbeddings ? embed : (maybe('lm_head.weight') ?? embed);
      return { embed, blocks, finalNorm: take('model.norm.weight'), head };
    }),
  );
  return new Transformer(config, weights, device);
}
