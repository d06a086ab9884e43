// Loads a Hugging Face model directory (config.json + safetensors) into a Transformer. Each weight is
// allocated once in the compute dtype on the device and filled from the files, q/k/v and gate/up
// straight into their fused matrices, so peak memory is the weights themselves.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { cudaDeviceCount, emptyForWeights, keep, noGrad, type DType, type Tensor } from '../tensor/index.js';
import { ModelWeightFiles } from '../io/safetensors.js';
import { parseModelConfig, type ModelConfig } from './config.js';
import { FusedLinear, Linear } from './linear.js';
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
  const files = ModelWeightFiles.open(modelDir);
  try {
    return noGrad(() => new Transformer(config, readWeights(modelDir, config, files, { dtype, device }), device));
  } finally {
    files.close();
  }
}

function readWeights(modelDir: string, config: ModelConfig, files: ModelWeightFiles, placement: { dtype: DType; device: string }) {
  // Multimodal Gemma 3 checkpoints keep the text model under language_model.
  const stored = (name: string): string | undefined =>
    files.tensors.has(name) ? name : files.tensors.has(`language_model.${name}`) ? `language_model.${name}` : undefined;
  const need = (name: string): string => {
    const found = stored(name);
    if (!found) throw new Error(`${modelDir}: weight '${name}' is missing`);
    return found;
  };
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, vocabSize: V } = config;
  /** The shape config.json implies for a weight, by the end of its name. */
  const expectedShape = (name: string): number[] => {
    const key = name.replace(/^model\.layers\.\d+\./, '');
    const shapes: Record<string, number[]> = {
      'self_attn.q_proj.weight': [H * D, d], 'self_attn.k_proj.weight': [K * D, d], 'self_attn.v_proj.weight': [K * D, d],
      'self_attn.q_proj.bias': [H * D], 'self_attn.k_proj.bias': [K * D], 'self_attn.v_proj.bias': [K * D],
      'self_attn.o_proj.weight': [d, H * D], 'self_attn.o_proj.bias': [d],
      'self_attn.q_norm.weight': [D], 'self_attn.k_norm.weight': [D],
      'mlp.gate_proj.weight': [ff, d], 'mlp.up_proj.weight': [ff, d], 'mlp.down_proj.weight': [d, ff],
      'model.embed_tokens.weight': [V, d], 'lm_head.weight': [V, d],
    };
    return shapes[key] ?? [d]; // the norms
  };
  /** The named tensors stacked along their first dimension into one new tensor. */
  const read = (...names: string[]): Tensor => {
    const parts = names.map((n) => {
      const part = files.tensors.get(need(n))!;
      const expected = expectedShape(n);
      if (part.shape.join() !== expected.join()) throw new Error(`${part.file}: ${n} has shape [${part.shape}], not the model's [${expected}]`);
      return part;
    });
    const [, ...rest] = parts[0].shape;
    const rows = parts.reduce((n, p) => n + p.shape[0], 0);
    const target = keep(emptyForWeights([rows, ...rest], placement));
    let offset = 0;
    for (const [i, part] of parts.entries()) {
      const n = part.shape[0];
      const slice = names.length === 1 ? target : target.slice(0, offset, offset + n);
      files.readInto(need(names[i]), slice);
      if (slice !== target) slice.dispose();
      offset += n;
    }
    return target;
  };
  const fused = (prefix: string, parts: string[], bias: boolean): FusedLinear =>
    new FusedLinear(
      read(...parts.map((p) => `${prefix}.${p}.weight`)),
      bias ? read(...parts.map((p) => `${prefix}.${p}.bias`)) : null,
      parts.map((p) => files.tensors.get(need(`${prefix}.${p}.weight`))!.shape[0]),
    );
  const projection = (prefix: string, bias: boolean) => new Linear(read(`${prefix}.weight`), bias ? read(`${prefix}.bias`) : null);

  const gemma = config.family === 'gemma3';
  const blocks: Block[] = Array.from({ length: config.numLayers }, (_, i) => {
    const p = `model.layers.${i}`;
    const norms = {
      inputNorm: read(`${p}.input_layernorm.weight`),
      postAttentionNorm: read(`${p}.post_attention_layernorm.weight`),
      preFeedforwardNorm: gemma ? read(`${p}.pre_feedforward_layernorm.weight`) : undefined,
      postFeedforwardNorm: gemma ? read(`${p}.post_feedforward_layernorm.weight`) : undefined,
      qNorm: config.qkNorm ? read(`${p}.self_attn.q_norm.weight`) : undefined,
      kNorm: config.qkNorm ? read(`${p}.self_attn.k_norm.weight`) : undefined,
    };
    const qkv = fused(`${p}.self_attn`, ['q_proj', 'k_proj', 'v_proj'], config.attentionBias);
    const gateUp = fused(`${p}.mlp`, ['gate_proj', 'up_proj'], false);
    const [q, k, v] = qkv.parts;
    const [gate, up] = gateUp.parts;
    return {
      ...norms,
      q, k, v, qkv,
      o: projection(`${p}.self_attn.o_proj`, config.family !== 'qwen2' && config.attentionBias),
      gate, up, gateUp,
      down: projection(`${p}.mlp.down_proj`, false),
    };
  });
  const embed = read('model.embed_tokens.weight');
  const head = config.tieWordEmbeddings || !stored('lm_head.weight') ? embed : read('lm_head.weight');
  return { embed, blocks, finalNorm: read('model.norm.weight'), head };
}
