// How each supported Hugging Face family maps onto llama.cpp's GGUF architectures: the hyperparameter
// keys, the tensor names, and the layout changes llama.cpp's HF converter (convert_hf_to_gguf.py) makes.
//
// Llama is the one family whose q/k rows are reordered: Hugging Face's Llama applies rotary embeddings
// to the two halves of each head (rotate_half), while llama.cpp's "llama" architecture rotates adjacent
// pairs, so the converter interleaves each head's halves. q is permuted by the head count and k by the
// KV head count (they differ under GQA). A LoRA update B·A changes the same output rows, so B gets the
// same permutation and A (which indexes input features) none.
import type { Tensor } from '../../tensor/index.js';
import type { Family, ModelConfig } from '../../model/config.js';
import { gguf, type GgufValue } from './file.js';
import { UnsupportedExportError } from '../errors.js';

export interface GgufArchitecture {
  /** general.architecture, and the prefix of the hyperparameter keys. */
  name: string;
  hyperparameters(config: ModelConfig): Map<string, GgufValue>;
  /** Extra tensors llama.cpp's graph needs that the checkpoint does not hold (Llama 3's rope_freqs). */
  extraTensors(config: ModelConfig): { name: string; values: Float32Array }[];
  /** The GGUF name of a Hugging Face tensor, or null when llama.cpp does without it (a tied head). */
  tensorName(hfName: string, config: ModelConfig): string | null;
  /** A base tensor in llama.cpp's layout. */
  convert(hfName: string, t: Tensor, config: ModelConfig): Tensor;
  /** A LoRA B matrix ([out, r]) of the projection hfName, in llama.cpp's layout. */
  convertLoraB(projectionName: string, b: Tensor, config: ModelConfig): Tensor;
}

const layerNames: Record<string, string> = {
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
};

const topNames: Record<string, string> = {
  'model.embed_tokens': 'token_embd',
  'model.norm': 'output_norm',
  lm_head: 'output',
};

function ggufTensorName(hfName: string, config: ModelConfig): string | null {
  const match = /^(?:language_model\.)?(.*)\.(weight|bias)$/.exec(hfName);
  if (!match) throw new Error(`unexpected tensor name ${hfName}`);
  const [, module, kind] = match as unknown as [string, string, string];
  if (module === 'lm_head' && config.tieWordEmbeddings) return null;
  const top = topNames[module];
  if (top) return `${top}.${kind}`;
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(module);
  const mapped = layer && layerNames[layer[2]!];
  if (!layer || !mapped) throw new Error(`no GGUF name for tensor ${hfName}`);
  return `blk.${layer[1]}.${mapped}.${kind}`;
}

/** Interleaves each head's two rotary halves: rows (h, half, i) → (h, i, half). */
export function permuteRotaryRows(t: Tensor, heads: number): Tensor {
  const [rows, ...rest] = t.shape as [number, ...number[]];
  return t
    .reshape(heads, 2, rows / heads / 2, ...rest)
    .transpose(1, 2)
    .reshape(rows, ...rest)
    .contiguous();
}

/** Heads whose rotary rows a Llama tensor needs permuting by, or null. */
function llamaRotaryHeads(hfName: string, config: ModelConfig): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return config.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return config.numKvHeads;
  return null;
}

function commonHyperparameters(arch: string, config: ModelConfig): Map<string, GgufValue> {
  const keys = new Map<string, GgufValue>([
    [`${arch}.context_length`, gguf.uint32(config.maxPositions)],
    [`${arch}.embedding_length`, gguf.uint32(config.hiddenSize)],
    [`${arch}.block_count`, gguf.uint32(config.numLayers)],
    [`${arch}.feed_forward_length`, gguf.uint32(config.intermediateSize)],
    [`${arch}.attention.head_count`, gguf.uint32(config.numHeads)],
    [`${arch}.attention.head_count_kv`, gguf.uint32(config.numKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.float32(config.rmsNormEps)],
    [`${arch}.rope.freq_base`, gguf.float32(config.ropeTheta)],
    [`${arch}.rope.dimension_count`, gguf.uint32(config.headDim)],
    [`${arch}.vocab_size`, gguf.uint32(config.vocabSize)],
  ]);
  if (config.headDim * config.numHeads !== config.hiddenSize) {
    keys.set(`${arch}.attention.key_length`, gguf.uint32(config.headDim));
    keys.set(`${arch}.attention.value_length`, gguf.uint32(config.headDim));
  }
  const scaling = config.ropeScaling;
  if (scaling.type === 'linear') {
    keys.set(`${arch}.rope.scaling.type`, gguf.string('linear'));
    keys.set(`${arch}.rope.scaling.factor`, gguf.float32(scaling.factor));
  }
  return keys;
}

/** Llama 3's frequency factors, as llama.cpp takes them (a rope_freqs tensor dividing each frequency). */
function llama3RopeFactors(config: ModelConfig): Float32Array {
  const { factor, lowFreqFactor = 1, highFreqFactor = 4, originalMaxPositions = 8192 } = config.ropeScaling;
  const lowWavelength = originalMaxPositions / lowFreqFactor;
  const highWavelength = originalMaxPositions / highFreqFactor;
  const half = config.headDim / 2;
  const factors = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const frequency = 1 / config.ropeTheta ** ((2 * i) / config.headDim);
    const wavelength = (2 * Math.PI) / frequency;
    if (wavelength < highWavelength) factors[i] = 1;
    else if (wavelength > lowWavelength) factors[i] = factor;
    else {
      const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      factors[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return factors;
}

const llama: GgufArchitecture = {
  name: 'llama',
  hyperparameters: (config) => commonHyperparameters('llama', config),
  extraTensors: (config) => (config.ropeScaling.type === 'llama3' ? [{ name: 'rope_freqs.weight', values: llama3RopeFactors(config) }] : []),
  tensorName: ggufTensorName,
  convert(hfName, t, config) {
    const heads = llamaRotaryHeads(hfName, config);
    return heads === null ? t : permuteRotaryRows(t, heads);
  },
  convertLoraB(projectionName, b, config) {
    const heads = llamaRotaryHeads(`${projectionName}.weight`, config);
    return heads === null ? b : permuteRotaryRows(b, heads);
  },
};

/** Families llama.cpp runs with NEOX-style rotary embeddings, which is Hugging Face's own layout. */
function unpermuted(name: string): GgufArchitecture {
  return {
    name,
    hyperparameters: (config) => commonHyperparameters(name, config),
    extraTensors: () => [],
    tensorName: ggufTensorName,
    convert: (_name, t) => t,
    convertLoraB: (_name, b) => b,
  };
}

const architectures: Partial<Record<Family, GgufArchitecture>> = {
  llama,
  qwen2: unpermuted('qwen2'),
  qwen3: unpermuted('qwen3'),
};

export const ggufFamilies = Object.keys(architectures);

export function ggufArchitecture(config: ModelConfig): GgufArchitecture {
  const arch = architectures[config.family];
  if (!arch) {
    throw new UnsupportedExportError(`GGUF export supports the ${ggufFamilies.join(', ')} families, not ${config.architecture}; export --format merged and convert that with llama.cpp's convert_hf_to_gguf.py`);
  }
  if (config.ropeScaling.type === 'llama3' && config.family !== 'llama') throw new UnsupportedExportError(`llama3 rope scaling on ${config.family} has no GGUF mapping`);
  return arch;
}
