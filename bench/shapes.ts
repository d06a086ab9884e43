// The benchmark's model shapes (random weights, real Hugging Face configs) and batch sizes. The PyTorch
// reference (bench/reference/llama_lora_bench.py) keeps the same table by name; keep the two equal.
export interface BenchShape {
  name: string;
  /** config.json as Hugging Face ships it (the fields Attune reads). */
  config: Record<string, unknown>;
  /** Examples per step and tokens per example. */
  batch: number;
  seqLen: number;
  /** The dtype of the weights on disk, as the real checkpoint ships them. */
  fileDtype: 'float32' | 'bfloat16';
  /** Largest safetensors shard, as the real checkpoint is split. */
  shardBytes?: number;
  /** Steps timed for the train figure. */
  trainSteps: number;
}

const llama = (fields: Record<string, unknown>) => ({
  architectures: ['LlamaForCausalLM'], hidden_act: 'silu', rms_norm_eps: 1e-5, max_position_embeddings: 2048, ...fields,
});
const llama3Rope = (factor: number) => ({
  rope_theta: 500000, max_position_embeddings: 131072,
  rope_scaling: { rope_type: 'llama3', factor, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
});

export const benchShapes: BenchShape[] = [
  {
    name: 'stories260K', batch: 8, seqLen: 128, fileDtype: 'float32', trainSteps: 20,
    config: llama({ hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, tie_word_embeddings: true }),
  },
  {
    name: 'stories15M', batch: 8, seqLen: 128, fileDtype: 'float32', trainSteps: 8,
    config: llama({ hidden_size: 288, intermediate_size: 768, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 6, vocab_size: 32000, tie_word_embeddings: true }),
  },
  {
    name: 'smollm2-135M', batch: 2, seqLen: 128, fileDtype: 'bfloat16', trainSteps: 3,
    config: llama({ hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, rope_theta: 100000, tie_word_embeddings: true }),
  },
  {
    name: 'qwen2.5-0.5b', batch: 2, seqLen: 256, fileDtype: 'bfloat16', trainSteps: 3,
    config: {
      architectures: ['Qwen2ForCausalLM'], hidden_act: 'silu', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
      num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
      rope_theta: 1000000, tie_word_embeddings: true,
    },
  },
  {
    name: 'llama-3.2-1b', batch: 2, seqLen: 256, fileDtype: 'bfloat16', trainSteps: 3,
    config: llama({ hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true, ...llama3Rope(32) }),
  },
  {
    name: 'llama-3.2-3b', batch: 2, seqLen: 256, fileDtype: 'bfloat16', shardBytes: 5e9, trainSteps: 2,
    config: llama({ hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, tie_word_embeddings: true, ...llama3Rope(32) }),
  },
  {
    name: 'llama-3.1-8b', batch: 1, seqLen: 256, fileDtype: 'bfloat16', shardBytes: 5e9, trainSteps: 2,
    config: llama({ hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256, tie_word_embeddings: false, ...llama3Rope(8) }),
  },
];

export const loraRank = 8;
export const loraAlpha = 16;

/** The serving benchmark's load (bench/serve-load.ts; the PyTorch reference's --mode serve builds the same requests). */
export const servingLoad = {
  clients: 32,
  adapters: 8,
  newTokens: 64,
  /** Prompt i's length: 8 to 64 tokens, mixed. */
  promptLength: (i: number) => 8 + ((i * 37) % 57),
  /** Concurrent requests of the flooding project in the fairness measurement. */
  floodRequests: 200,
};
