// The benchmark's model shapes (random weights) and batch sizes. The PyTorch reference
// (bench/reference/llama_lora_bench.py) keeps the same table by name; keep the two equal.
export interface BenchShape {
  name: string;
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  batch: number;
  seqLen: number;
}

export const benchShapes: BenchShape[] = [
  { name: 'stories260K', dim: 64, hidden: 172, layers: 5, heads: 8, kvHeads: 4, vocab: 512, batch: 8, seqLen: 128 },
  { name: 'stories15M', dim: 288, hidden: 768, layers: 6, heads: 6, kvHeads: 6, vocab: 32000, batch: 8, seqLen: 128 },
  { name: 'smollm2-135M', dim: 576, hidden: 1536, layers: 30, heads: 9, kvHeads: 3, vocab: 49152, batch: 2, seqLen: 128 },
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
