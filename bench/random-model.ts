// A Llama-shaped transformer with random weights (std 0.02), built in memory for benchmarks.
import { randn, keep, noGrad, ones } from '../src/engine/tensor/index.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { Linear } from '../src/engine/model/linear.js';
import { Transformer, type Block } from '../src/engine/model/transformer.js';
import type { BenchShape } from './shapes.js';

export function randomLlama(shape: BenchShape): Transformer {
  const config = parseModelConfig({
    architectures: ['LlamaForCausalLM'],
    hidden_size: shape.dim,
    intermediate_size: shape.hidden,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    vocab_size: shape.vocab,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
  });
  return noGrad(() => {
    const weight = (rows: number, cols: number) => keep(randn([rows, cols]).mul_(0.02));
    const norm = () => keep(ones([shape.dim]));
    const headDim = shape.dim / shape.heads;
    const blocks: Block[] = Array.from({ length: shape.layers }, () => ({
      inputNorm: norm(),
      postAttentionNorm: norm(),
      q: new Linear(weight(shape.heads * headDim, shape.dim)),
      k: new Linear(weight(shape.kvHeads * headDim, shape.dim)),
      v: new Linear(weight(shape.kvHeads * headDim, shape.dim)),
      o: new Linear(weight(shape.dim, shape.heads * headDim)),
      gate: new Linear(weight(shape.hidden, shape.dim)),
      up: new Linear(weight(shape.hidden, shape.dim)),
      down: new Linear(weight(shape.dim, shape.hidden)),
    }));
    const embed = weight(shape.vocab, shape.dim);
    return new Transformer(config, { embed, blocks, finalNorm: norm(), head: embed });
  });
}
