// Picks the next token of each row from its logits: greedy at temperature 0, otherwise temperature,
// top-k and nucleus (top-p) filtering, then a draw. Logits are scaled in float32 after subtracting each row's
// maximum, so a tiny temperature sends every other token to -Infinity (a one-hot draw, greedy in the limit)
// rather than overflowing to +Infinity, whose softmax is NaN.
import { multinomial, type Tensor } from '../tensor/index.js';

export interface SamplingOptions {
  temperature: number;
  topK?: number;
  topP?: number;
}

/** logits [rows, vocab] → token ids [rows]. */
export function sampleNext(logits: Tensor, { temperature, topK, topP }: SamplingOptions): Tensor {
  // A temperature float32 rounds to 0 would divide by zero: it is greedy.
  if (!(Math.fround(temperature) > 0)) return logits.argmax(-1);
  const float = logits.float();
  let scaled = float.sub(float.amax(-1, true)).div(temperature);
  const vocab = scaled.size(-1);
  if (topK && topK > 0 && topK < vocab) {
    const [kept] = scaled.topk(topK, -1);
    const threshold = kept.slice(-1, topK - 1, topK); // [rows, 1]
    scaled = scaled.maskedFill(scaled.lt(threshold), -Infinity);
  }
  if (topP !== undefined && topP > 0 && topP < 1) {
    const [sorted] = scaled.sort(-1, true);
    const probs = sorted.softmax(-1);
    // A token stays while the tokens ranked above it have not yet reached topP; the first always stays.
    const kept = probs.cumsum(-1).sub(probs).lt(topP).sum(-1, true); // [rows, 1]
    const smallestKept = sorted.gather(-1, kept.sub(1));
    scaled = scaled.maskedFill(scaled.lt(smallestKept), -Infinity);
  }
  return multinomial(scaled.softmax(-1), 1).squeeze(-1);
}
