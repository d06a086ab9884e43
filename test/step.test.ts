// Memory-bounded steps are exact: a step run as micro-batches, with or without activation checkpointing,
// gives the loss and gradients of the one big batch (float32, to 1e-5); the fused ops equal the op-by-op
// math they replace, forward and backward; libtorch's fused attention agrees with the eager path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTransformer } from '../src/engine/model/load.js';
import type { Transformer } from '../src/engine/model/transformer.js';
import { multipliesIn } from '../src/engine/placement.js';
import { LoraAdapter } from '../src/engine/lora/lora.js';
import { accumulateGradients, microBatches, packedTokens, unboundedStepPlan, type StepPlan } from '../src/engine/train/step.js';
import { IGNORE_INDEX, type FramedExample } from '../src/engine/data/framing.js';
import {
  crossEntropy, gatedActivation, ids, keep, linear, linearCrossEntropy, loraLinear, manualSeed, noGrad, randn, rmsNorm, sdpaSupport, tidy,
  type Tensor,
} from '../src/engine/tensor/index.js';
import { liveAdapter, maxAbs, maxAbsDiff, repoPath } from './helpers/engine.js';

const fixture = (name: string) => repoPath('test', 'fixtures', 'models', name);

/** Random examples of the given lengths; the first third of each is prompt (not trained). */
function randomExamples(vocab: number, lengths: number[], seed: number): FramedExample[] {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) % vocab;
  return lengths.map((length) => {
    const tokens = Array.from({ length: length + 1 }, next);
    const targets = tokens.slice(1).map((t, i) => (i < length / 3 ? IGNORE_INDEX : t));
    return { ids: tokens.slice(0, -1), targets };
  });
}

/** The step's mean loss and a copy of every adapter gradient, then the gradients cleared. */
function gradientsOf(model: Transformer, adapter: LoraAdapter, examples: FramedExample[], plan: StepPlan) {
  const outcome = accumulateGradients(model, examples, plan);
  const grads = adapter.parameters().map((p) => {
    const values = p.grad!.toFloat32Array();
    p.clearGrad();
    return values;
  });
  return { loss: outcome.lossSum / outcome.predicted, grads, predicted: outcome.predicted };
}

function assertSameGradients(
  expected: ReturnType<typeof gradientsOf>,
  actual: ReturnType<typeof gradientsOf>,
  tolerance: number,
  what: string,
): void {
  assert.equal(actual.predicted, expected.predicted, `${what}: predicted tokens`);
  assert.ok(Math.abs(actual.loss - expected.loss) < tolerance, `${what}: loss ${actual.loss} vs ${expected.loss}`);
  let worst = 0;
  for (const [i, grad] of expected.grads.entries()) worst = Math.max(worst, maxAbsDiff(grad, actual.grads[i]));
  const scale = Math.max(...expected.grads.map(maxAbs));
  assert.ok(scale > 1e-4, `${what}: the gradients are not trivially zero (largest ${scale})`);
  assert.ok(worst < tolerance, `${what}: gradients differ by up to ${worst} (largest gradient ${scale})`);
}

for (const name of ['llama3-tiny', 'qwen2-tiny', 'gemma3-tiny']) {
  test(`${name}: micro-batches and activation checkpointing give the one big batch's loss and gradients (float32, 1e-5)`, () => {
    const model = loadTransformer(fixture(name));
    const adapter = liveAdapter(model);
    try {
      const examples = randomExamples(model.config.vocabSize, [9, 17, 5, 12, 17, 3], 7);
      const whole = gradientsOf(model, adapter, examples, unboundedStepPlan);
      const budgets = [17, 30];
      for (const budget of budgets) {
        assert.ok(microBatches(examples, budget).length > 1, `budget ${budget} splits the step`);
        for (const group of microBatches(examples, budget)) assert.ok(group.length === 1 || packedTokens(group) <= budget);
      }
      const plans: [string, StepPlan][] = [
        ['checkpointing', { ...unboundedStepPlan, checkpointing: true }],
        ...budgets.map((b): [string, StepPlan] => [`micro-batches of ${b} tokens`, { ...unboundedStepPlan, microBatchTokens: b }]),
        ['micro-batches of 17 tokens with checkpointing', { microBatchTokens: 17, checkpointing: true, lossChunkRows: 3 }],
        ['loss chunks of 2 rows', { ...unboundedStepPlan, lossChunkRows: 2 }],
      ];
      for (const [what, plan] of plans) assertSameGradients(whole, gradientsOf(model, adapter, examples, plan), 1e-5, `${name}, ${what}`);
    } finally {
      LoraAdapter.detach(model);
      adapter.dispose();
    }
  });
}

test('a micro-batch holds at least one example, however long', () => {
  const examples = randomExamples(100, [40, 3, 50], 1);
  assert.deepEqual(microBatches(examples, 10).map((g) => g.length), [1, 1, 1]);
  assert.deepEqual(microBatches(examples, 90).map((g) => g.length), [2, 1]);
});

/** Runs fn's scalar output backward and returns it with the inputs' gradients (inputs are cloned leaves). */
function valueAndGrads(inputs: Tensor[], fn: (...leaves: Tensor[]) => Tensor): Float32Array[] {
  return tidy(() => {
    const leaves = inputs.map((t) => t.detach().requiresGrad_(true));
    const out = fn(...leaves);
    manualSeed(99); // the same probe for the two computations compared
    const probe = randn(out.shape, { dtype: out.dtype });
    out.float().mul(probe.float()).sum().backward();
    return [out.float().toFloat32Array(), ...leaves.map((l) => l.grad!.float().toFloat32Array())];
  });
}

function assertClose(actual: Float32Array[], expected: Float32Array[], tolerance: number, what: string): void {
  for (const [i, e] of expected.entries()) {
    const diff = maxAbsDiff(actual[i], e);
    assert.ok(diff <= tolerance * Math.max(1, maxAbs(e)), `${what}: output ${i} differs by ${diff}`);
  }
}

test('fused ops equal the op-by-op math, forward and backward, in float32 and bfloat16', () => {
  for (const [dtype, tolerance] of [['float32', 1e-5], ['bfloat16', 2e-2]] as const) {
    manualSeed(1);
    const x = randn([3, 5, 16], { dtype });
    const weight = randn([16], { dtype });
    for (const offset of [0, 1]) {
      const fused = valueAndGrads([x, weight], (a, w) => rmsNorm(a, w, 1e-6, offset));
      const plain = valueAndGrads([x, weight], (a, w) => {
        const a32 = a.float();
        const normed = a32.mul(a32.mul(a32).mean(-1, true).add(1e-6).rsqrt());
        return offset ? normed.mul(w.float().add(1)).to({ dtype }) : w.mul(normed.to({ dtype }));
      });
      assertClose(fused, plain, tolerance, `rmsNorm ${dtype} offset ${offset}`);
    }

    const w = randn([12, 16], { dtype });
    const bias = randn([12], { dtype });
    const a = randn([4, 16], { dtype });
    const b = randn([12, 4], { dtype });
    const z = randn([3, 5, 16], { dtype });
    const lora = valueAndGrads([x, a, b], (xx, aa, bb) => loraLinear(xx, w, bias, aa, bb, 0.5));
    const plainLora = valueAndGrads([x, a, b], (xx, aa, bb) => linear(xx, w, bias).add(linear(linear(xx, aa), bb).mul(0.5)));
    assertClose(lora, plainLora, tolerance, `loraLinear ${dtype}`);
    const dropped = valueAndGrads([x, a, b, z], (xx, aa, bb, zz) => loraLinear(xx, w, null, aa, bb, 2, zz));
    const plainDropped = valueAndGrads([x, a, b, z], (xx, aa, bb, zz) => linear(xx, w).add(linear(linear(zz, aa), bb).mul(2)));
    assertClose(dropped, plainDropped, tolerance, `loraLinear ${dtype} with a separate LoRA input`);

    const gateUp = randn([3, 5, 24], { dtype });
    for (const activation of ['silu', 'gelu_tanh'] as const) {
      const fused = valueAndGrads([gateUp], (g) => gatedActivation(g, activation));
      const plain = valueAndGrads([gateUp], (g) => {
        const [gate, up] = g.split([12, 12], -1);
        return (activation === 'silu' ? gate.silu() : gate.gelu('tanh')).mul(up);
      });
      assertClose(fused, plain, tolerance, `gatedActivation ${activation} ${dtype}`);
    }
  }
});

test('linearCrossEntropy equals cross-entropy over the full logits: sum, accuracy, gradient, softcap, ignored rows', () => {
  manualSeed(2);
  const hidden = randn([7, 16]);
  const weight = randn([50, 16]);
  const targets = ids([3, IGNORE_INDEX, 49, 0, 7, IGNORE_INDEX, 12]);
  for (const softcap of [0, 5]) {
    for (const chunkRows of [1, 3, 100]) {
      const [fusedLoss, fusedHidden] = tidy(() => {
        const h = hidden.detach().requiresGrad_(true);
        const [loss] = linearCrossEntropy(h, weight, targets, { chunkRows, softcap, withGrad: true });
        loss.mul(0.5).backward();
        return [loss.item(), h.grad!.toFloat32Array()];
      });
      const [plainLoss, plainHidden, plainCorrect] = tidy(() => {
        const h = hidden.detach().requiresGrad_(true);
        let logits = linear(h, weight);
        if (softcap) logits = logits.div(softcap).tanh().mul(softcap);
        const loss = crossEntropy(logits, targets, { reduction: 'sum' });
        loss.mul(0.5).backward();
        const correct = noGrad(() => logits.argmax(-1).eq(targets).sum().item());
        return [loss.item(), h.grad!.toFloat32Array(), correct];
      });
      const [, correct] = linearCrossEntropy(hidden, weight, targets, { chunkRows, softcap });
      assert.ok(Math.abs(fusedLoss - plainLoss) < 1e-4, `softcap ${softcap}, chunks of ${chunkRows}: loss ${fusedLoss} vs ${plainLoss}`);
      assert.ok(maxAbsDiff(fusedHidden, plainHidden) < 1e-5, `softcap ${softcap}, chunks of ${chunkRows}: gradient`);
      assert.equal(correct.item(), plainCorrect);
    }
  }
});

test('the eager attention path runs in bfloat16 and float16 (libtorch 1.13 has no fused kernel): masks use the dtype\'s own lowest value, logits stay finite and near float32\'s', () => {
  for (const name of ['llama3-tiny', 'gemma3-tiny']) {
    const reference = loadTransformer(fixture(name));
    const prompt = ids(randomExamples(reference.config.vocabSize, [17], 3)[0].ids, [1, 17]);
    reference.attentionKernel = 'eager';
    const expected = noGrad(() => tidy(() => keep(reference.forward(prompt).toFloat32Array())));
    // float16 where this libtorch multiplies in it on the CPU (Debian's 1.13 does not: placement refuses it there).
    for (const dtype of (['bfloat16', 'float16'] as const).filter((d) => multipliesIn('cpu', d))) {
      const model = loadTransformer(fixture(name), { dtype });
      model.attentionKernel = 'eager';
      const logits = noGrad(() => tidy(() => keep(model.forward(prompt).to({ dtype: 'float32' }).toFloat32Array())));
      assert.ok(logits.every(Number.isFinite), `${name} ${dtype}: finite logits`);
      assert.ok(maxAbsDiff(logits, expected) < 0.1 * Math.max(1, maxAbs(expected)), `${name} ${dtype}: logits near float32's (${maxAbsDiff(logits, expected)})`);
    }
  }
});

test('fused attention (scaled_dot_product_attention) agrees with the eager path: logits and gradients', (t) => {
  if (!sdpaSupport().sdpa) {
    t.skip('this libtorch has no scaled_dot_product_attention (it came with 2.0)');
    return;
  }
  for (const name of ['llama3-tiny', 'gemma3-tiny', 'qwen3-tiny']) {
    const model = loadTransformer(fixture(name));
    const adapter = liveAdapter(model);
    try {
      // Packed rows (segments), a plain causal batch and a cached decode all take different mask paths.
      const examples = randomExamples(model.config.vocabSize, [9, 17, 5, 12], 5);
      const run = (kernel: 'sdpa' | 'eager') => {
        model.attentionKernel = kernel;
        const grads = gradientsOf(model, adapter, examples, unboundedStepPlan);
        const logits = noGrad(() => tidy(() => keep(model.forward(ids(examples[1].ids, [1, 17])).toFloat32Array())));
        return { grads, logits };
      };
      const eager = run('eager');
      const fused = run('sdpa');
      assert.ok(maxAbsDiff(eager.logits, fused.logits) < 1e-4, `${name}: logits`);
      assertSameGradients(eager.grads, fused.grads, 1e-5, `${name}: gradients`);
    } finally {
      model.attentionKernel = 'sdpa';
      LoraAdapter.detach(model);
      adapter.dispose();
    }
  }
});

test('a loaded model puts q/k/v and gate/up in fused weights whose parts are views', () => {
  const model = loadTransformer(fixture('qwen2-tiny'));
  const block = model.weights.blocks[0];
  assert.deepEqual(block.qkv!.parts, [block.q, block.k, block.v]);
  assert.ok(block.q.bias, 'qwen2 has q/k/v biases');
  noGrad(() => block.k.weight.fill_(0.25)); // written through the part: the fused product must see it
  const [k, expected] = noGrad(() =>
    tidy(() => {
      const x = randn([2, model.config.hiddenSize]);
      return [block.qkv!.forward(x)[1].toFloat32Array(), x.sum(-1, true).mul(0.25).add(block.k.bias!).toFloat32Array()];
    }),
  );
  assert.ok(maxAbsDiff(k, expected) < 1e-5);
});
