// Reads a Hugging Face config.json into the one normalised shape the transformer code uses.
// Each supported family differs from Llama in a few switches; they are all named here.

export type Family = 'llama' | 'qwen2' | 'qwen3' | 'gemma3';

export interface RopeScaling {
  type: 'default' | 'linear' | 'llama3';
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

export interface ModelConfig {
  family: Family;
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  /** 'silu' (SwiGLU) or 'gelu_tanh' (GeGLU, Gemma). */
  activation: 'silu' | 'gelu_tanh';
  /** Per-head RMSNorm of queries and keys before RoPE (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** Gemma's RMSNorm scales by (1 + weight) and it adds norms after attention and the MLP. */
  gemma?: GemmaSettings;
  bosTokenId?: number;
  eosTokenIds: number[];
}

export interface GemmaSettings {
  /** Per layer: true when the layer attends only within the sliding window. */
  slidingLayers: boolean[];
  slidingWindow: number;
  ropeLocalTheta: number;
  queryPreAttnScalar: number;
  finalLogitSoftcapping: number | null;
  attnLogitSoftcapping: number | null;
}

const families: Record<string, Family> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  Gemma3ForCausalLM: 'gemma3',
};

export const supportedArchitectures = Object.keys(families);

type Raw = Record<string, any>;

export function parseModelConfig(raw: Raw, source = 'config.json'): ModelConfig {
  const architecture = (raw.architectures?.[0] as string | undefined) ?? '';
  const family = families[architecture] ?? (raw.model_type === 'gemma3_text' ? 'gemma3' : undefined);
  if (!family) {
    throw new Error(
      `${source}: unsupported architecture '${architecture || raw.model_type}'; supported: ${supportedArchitectures.join(', ')}`,
    );
  }
  const need = (key: string): number => {
    if (typeof raw[key] !== 'number') throw new Error(`${source}: missing or non-numeric '${key}'`);
    return raw[key];
  };
  const hiddenSize = need('hidden_size');
  const numHeads = need('num_attention_heads');
  const numLayers = need('num_hidden_layers');
  const eos = raw.eos_token_id;
  const config: ModelConfig = {
    family,
    architecture: architecture || 'Gemma3ForCausalLM',
    hiddenSize,
    intermediateSize: need('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads: raw.num_key_value_heads ?? numHeads,
    headDim: raw.head_dim ?? hiddenSize / numHeads,
    vocabSize: need('vocab_size'),
    maxPositions: raw.max_position_embeddings ?? 2048,
    rmsNormEps: raw.rms_norm_eps ?? 1e-6,
    ropeTheta: raw.rope_theta ?? 10000,
    ropeScaling: parseRopeScaling(raw.rope_scaling, source),
    tieWordEmbeddings: raw.tie_word_embeddings ?? family === 'gemma3',
    attentionBias: family === 'qwen2' ? true : Boolean(raw.attention_bias),
    activation: family === 'gemma3' ? 'gelu_tanh' : 'silu',
    qkNorm: family === 'qwen3' || family === 'gemma3',
    bosTokenId: raw.bos_token_id ?? undefined,
    eosTokenIds: eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos],
  };
  const act = raw.hidden_act ?? raw.hidden_activation;
  if (family !== 'gemma3' && act && act !== 'silu') throw new Error(`${source}: unsupported hidden_act '${act}'`);
  if (family === 'gemma3') config.gemma = parseGemma(raw, numLayers);
  if (config.numHeads % config.numKvHeads !== 0) {
    throw new Error(`${source}: num_attention_heads must be a multiple of num_key_value_heads`);
  }
  return config;
}

function parseRopeScaling(raw: Raw | null | undefined, source: string): RopeScaling {
  if (!raw) return { type: 'default', factor: 1 };
  const type = raw.rope_type ?? raw.type;
  if (type === 'default') return { type: 'default', factor: 1 };
  if (type === 'linear') return { type: 'linear', factor: raw.factor };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: raw.factor,
      lowFreqFactor: raw.low_freq_factor,
      highFreqFactor: raw.high_freq_factor,
      originalMaxPositions: raw.original_max_position_embeddings,
    };
  }
  throw new Error(`${source}: unsupported rope_scaling type '${type}'; supported: default, linear, llama3`);
}

function parseGemma(raw: Raw, numLayers: number): GemmaSettings {
  // Newer configs list layer_types; older ones give a period where every Nth layer is global.
  const slidingLayers: boolean[] = Array.isArray(raw.layer_types)
    ? raw.layer_types.map((t: string) => t === 'sliding_attention')
    : Array.from({ length: numLayers }, (_, i) => (i + 1) % (raw.sliding_window_pattern ?? 6) !== 0);
  return {
    slidingLayers,
    slidingWindow: raw.sliding_window ?? 4096,
    ropeLocalTheta: raw.rope_local_base_freq ?? 10000,
    queryPreAttnScalar: raw.query_pre_attn_scalar ?? raw.head_dim ?? 256,
    finalLogitSoftcapping: raw.final_logit_softcapping ?? null,
    attnLogitSoftcapping: raw.attn_logit_softcapping ?? null,
  };
}

/** Parameters of the model the config describes (embeddings, head when untied, blocks, norms). */
export function parameterCount(config: ModelConfig): number {
  const { hiddenSize: d, intermediateSize: ff, numHeads: H, numKvHeads: K, headDim: D, vocabSize: V, numLayers } = config;
  const attention = d * (H + 2 * K) * D + H * D * d + (config.attentionBias ? (H + 2 * K) * D : 0) + (config.qkNorm ? 2 * D : 0);
  const norms = (config.gemma ? 4 : 2) * d;
  const block = attention + 3 * d * ff + norms;
  return V * d * (config.tieWordEmbeddings ? 1 : 2) + numLayers * block + d;
}
