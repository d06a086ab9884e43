// The product over a weight packed once (native/src/packed-matmul.h), on whichever kernel this CPU has
// (AMX tiles or AVX512-BF16), equals the plain product, and so does the product by its transpose from the
// same tiles; LoRA's forward and backward through them, and a
// vocabulary loss through a packed head, give the unpacked path's outputs and gradients, with the tiles
// beside the weight or instead of it; a weight changed after packing is refused, never multiplied stale;
// a weight whose tiles stood in for it comes back value for value; a training run packs only when its plan
// says so and drops the tiles at the end; the memory plan counts the copies. On a CPU with neither kernel
// the tests that need one say why and skip; on an AMX CPU the file runs a second time on the AVX512-BF16
// kernel (ATTUNE_PACKED_KERNEL=avx512bf16), so both kernels are tested there.
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { loadTransformer } from '../src/engine/model/load.js';
import { accumulateGradients, unboundedStepPlan } from '../src/engine/train/step.js';
import { train } from '../src/engine/train/trainer.js';
import { planTraining } from '../src/engine/train/memory-plan.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { IGNORE_INDEX, type FramedExample } from '../src/engine/data/framing.js';
import { packedKernel, ids, linearCrossEntropy, loraLinear, manualSeed, noGrad, PackedMatrix, PackedWeight, randn, tidy, type Tensor } from '../src/engine/tensor/index.js';
import { liveAdapter, maxAbs, maxAbsDiff, repoPath } from './helpers/engine.js';

const noKernel = packedKernel() ? false : 'this CPU has neither AMX-BF16 tiles this process may use nor AVX512-BF16';

test('on an AMX CPU, the same tests pass on the AVX512-BF16 kernel', { skip: packedKernel() === 'amx' ? false : 'only an AMX CPU has a second kernel to test' }, () => {
  const run = spawnSync(process.execPath, ['--test', fileURLToPath(import.meta.url)], {
    env: { ...process.env, ATTUNE_PACKED_KERNEL: 'avx512bf16' },
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stdout.slice(-4000));
  assert.match(run.stdout, /# pass [1-9]/);
  assert.match(run.stdout, /# fail 0/);
});

/** a and b agree to bfloat16's rounding of the larger values: within 1% of b's largest magnitude. */
function assertNear(a: Float32Array, b: Float32Array, what: string): void {
  const scale = maxAbs(b);
  assert.ok(scale > 0.1, `${what}: the expected values are not trivially small (largest ${scale})`);
  const diff = maxAbsDiff(a, b);
  assert.ok(diff <= 1e-2 * scale, `${what}: differs by ${diff} (largest value ${scale})`);
}

test('the packed product equals the plain one: row tails, slabs of k, several column blocks', { skip: noKernel }, () => {
  manualSeed(5);
  // 300 rows: ten 32-row blocks of which the last is partial; k = 4,096 is two slabs of a thread's rows.
  for (const [rows, k, n] of [[300, 4096, 96], [64, 32, 32], [77, 640, 2048]]) {
    tidy(() => {
      const left = randn([rows, k], { dtype: 'bfloat16' });
      const w = randn([k, n], { dtype: 'bfloat16' });
      const packed = PackedMatrix.of(w);
      try {
        assert.deepEqual(packed.tiles.shape, [n / 32, k / 32, 1024]);
        assert.ok(packed.takes(left));
        const exact = left.float().matmul(w.float()).toFloat32Array();
        assertNear(packed.times(left).float().toFloat32Array(), exact, `[${rows}, ${k}] · [${k}, ${n}]`);
      } finally {
        packed.dispose();
      }
    });
  }
});

test('the product by the transpose comes from the same tiles, for any rows; the tiles give the matrix back exactly; a transposed view packs as its copy would', { skip: noKernel }, () => {
  manualSeed(15);
  // w [k, n] packed once; left [rows, n] · wᵀ. 77 and 300 rows end in partial blocks; 3 rows fill none.
  // n = 4,096 is several slabs; k = 2,048 is several groups of w's rows for each thread.
  for (const [rows, k, n] of [[77, 2048, 640], [300, 96, 4096], [3, 64, 64], [64, 32, 32]]) {
    tidy(() => {
      const left = randn([rows, n], { dtype: 'bfloat16' });
      const w = randn([k, n], { dtype: 'bfloat16' });
      const packed = PackedMatrix.of(w);
      try {
        const exact = left.float().matmul(w.float().transpose(0, 1)).toFloat32Array();
        assertNear(packed.timesTransposed(left).float().toFloat32Array(), exact, `[${rows}, ${n}] · [${k}, ${n}]ᵀ`);
        assert.equal(packed.unpacked().float().sub(w.float()).abs().amax([0, 1]).item(), 0, 'unpacked equals w');
        const g = randn([rows, k], { dtype: 'bfloat16' });
        assertNear(packed.times(g).float().toFloat32Array(), g.float().matmul(w.float()).toFloat32Array(), `${rows} rows (any number) · w`);
        // wᵀ packed from the transposed view (read as w lies) and from a transposed copy: the same tiles.
        const fromView = PackedMatrix.of(w.transpose(0, 1));
        const fromCopy = PackedMatrix.of(w.transpose(0, 1).contiguous());
        try {
          assert.equal(fromView.tiles.float().sub(fromCopy.tiles.float()).abs().amax([0, 1, 2]).item(), 0, 'the tiles of a transposed view');
        } finally {
          fromView.dispose();
          fromCopy.dispose();
        }
      } finally {
        packed.dispose();
      }
    });
  }
});

test('the packed product takes only what it can multiply well, and packing refuses what it cannot lay out', { skip: noKernel }, () => {
  tidy(() => {
    const w = randn([64, 64], { dtype: 'bfloat16' });
    const packed = PackedMatrix.of(w);
    try {
      assert.equal(packed.takes(randn([8, 64], { dtype: 'bfloat16' })), false, 'too few rows to fill the threads');
      assert.equal(packed.takes(randn([128, 64])), false, 'float32');
      assert.equal(packed.takes(randn([128, 32], { dtype: 'bfloat16' })), false, 'k does not match');
    } finally {
      packed.dispose();
    }
    assert.equal(PackedMatrix.fits(randn([48, 64], { dtype: 'bfloat16' })), false);
    assert.equal(PackedMatrix.fits(randn([64, 64])), false);
    assert.throws(() => PackedMatrix.of(randn([48, 64], { dtype: 'bfloat16' })), /multiples of 32/);
  });
});

/** loraLinear's output and the gradients of x, A and both B blocks, under one random probe. */
function loraValueAndGrads(x: Tensor, w: Tensor, a: Tensor, bs: Tensor[], packed?: PackedWeight): Float32Array[] {
  return tidy(() => {
    const leaves = [x, a, ...bs].map((t) => t.detach().requiresGrad_(true));
    const [xx, aa, ...bb] = leaves;
    const out = loraLinear(xx, w, null, aa, bb, 2, undefined, packed);
    manualSeed(99);
    out.float().mul(randn(out.shape)).sum().backward();
    return [out.float().toFloat32Array(), ...leaves.map((l) => l.grad!.float().toFloat32Array())];
  });
}

test("loraLinear through packed tiles gives the unpacked output and gradients, and refuses a weight changed since", { skip: noKernel }, () => {
  manualSeed(6);
  tidy(() => {
    // Fused like q/k/v: two adapters' B blocks over 64 + 32 output rows; 2 × 50 rows (a partial block).
    const x = randn([2, 50, 64], { dtype: 'bfloat16' });
    const w = randn([96, 64], { dtype: 'bfloat16' });
    const a = randn([8, 64], { dtype: 'bfloat16' }).mul(0.1);
    const bs = [randn([64, 4], { dtype: 'bfloat16' }), randn([32, 4], { dtype: 'bfloat16' })];
    const plain = loraValueAndGrads(x, w, a, bs);
    const packed = PackedWeight.of(w);
    const other = PackedWeight.of(randn([96, 64], { dtype: 'bfloat16' }));
    try {
      const viaTiles = loraValueAndGrads(x, w, a, bs, packed);
      for (const [i, what] of ['output', 'x', 'A', 'first B', 'second B'].entries()) assertNear(viaTiles[i], plain[i], `${what}`);
      // Both products really read the tiles: another matrix's change the output and x's gradient.
      const wrong = loraValueAndGrads(x, w, a, bs, other);
      assert.ok(maxAbsDiff(wrong[0], plain[0]) > 0.5 * maxAbs(plain[0]), 'the output comes from the tiles');
      assert.ok(maxAbsDiff(wrong[1], plain[1]) > 0.5 * maxAbs(plain[1]), "x's gradient comes from the tiles");
      assertNear(wrong[2], plain[2], 'A (its gradient does not read W)');

      // LoRA dropout's separate input z: its gradient takes the adapters' share of the backward.
      const z = randn([2, 50, 64], { dtype: 'bfloat16' });
      const withZ = (tiles?: PackedWeight) =>
        tidy(() => {
          const leaves = [x, a, bs[0], bs[1], z].map((t) => t.detach().requiresGrad_(true));
          const out = loraLinear(leaves[0], w, null, leaves[1], [leaves[2], leaves[3]], 2, leaves[4], tiles);
          manualSeed(99);
          out.float().mul(randn(out.shape)).sum().backward();
          return [out.float().toFloat32Array(), ...leaves.map((l) => l.grad!.float().toFloat32Array())];
        });
      const plainZ = withZ();
      const tilesZ = withZ(packed);
      for (const [i, what] of ['output', 'x', 'A', 'first B', 'second B', 'z'].entries()) assertNear(tilesZ[i], plainZ[i], `${what} with z`);

      noGrad(() => w.addScaled_(w, 1e-3)); // an in-place change, as merging an adapter makes
      assert.throws(() => loraValueAndGrads(x, w, a, bs, packed), /changed after its tiles were packed/);
      assert.throws(() => loraValueAndGrads(x, randn([64, 64], { dtype: 'bfloat16' }), a, bs, packed), /not this weight's/);
    } finally {
      packed.dispose();
      other.dispose();
    }
  });
});

test('tiles instead of the weight: the weight and its row views hold no values while they stand in, the ops give the same results, and the values come back exactly', { skip: noKernel }, () => {
  manualSeed(16);
  tidy(() => {
    const x = randn([2, 50, 64], { dtype: 'bfloat16' });
    const w = randn([96, 64], { dtype: 'bfloat16' });
    const original = w.clone();
    const parts = [w.slice(0, 0, 64), w.slice(0, 64, 96)]; // a fused weight's parts, as FusedLinear keeps them
    const a = randn([8, 64], { dtype: 'bfloat16' }).mul(0.1);
    const bs = [randn([64, 4], { dtype: 'bfloat16' }), randn([32, 4], { dtype: 'bfloat16' })];
    const plain = loraValueAndGrads(x, w, a, bs);
    const fewRows = randn([1, 3, 64], { dtype: 'bfloat16' });
    const plainFew = loraValueAndGrads(fewRows, w, a, bs);
    const packed = PackedWeight.instead(w, [{ view: parts[0], start: 0 }, { view: parts[1], start: 64 }]);
    try {
      assert.equal(packed.instead, true);
      assert.deepEqual([w.device, parts[0].device, parts[1].device], ['meta', 'meta', 'meta']);
      assert.deepEqual([w.shape, parts[0].shape, parts[1].shape], [[96, 64], [64, 64], [32, 64]]);
      const viaTiles = loraValueAndGrads(x, w, a, bs, packed);
      for (const [i, what] of ['output', 'x', 'A', 'first B', 'second B'].entries()) assertNear(viaTiles[i], plain[i], `${what} (tiles instead)`);
      const few = loraValueAndGrads(fewRows, w, a, bs, packed);
      for (const [i, what] of ['output', 'x'].entries()) assertNear(few[i], plainFew[i], `${what}, 3 rows (tiles instead)`);
      // Whatever still reaches for the weight's values gets none: its results hold none either, and reading them fails.
      assert.throws(() => x.matmul(w.transpose(0, 1)).float().toFloat32Array(), /meta tensor; no data/);
      assert.throws(() => loraValueAndGrads(x, w, a, bs), /meta|device|without values/i);
    } finally {
      packed.dispose();
    }
    assert.deepEqual([w.device, parts[0].device], ['cpu', 'cpu']);
    assert.equal(w.float().sub(original.float()).abs().amax([0, 1]).item(), 0, 'the weight came back value for value');
    noGrad(() => w.addScaled_(w, 1));
    assert.equal(parts[1].float().sub(original.slice(0, 64, 96).float().mul(2)).abs().amax([0, 1]).item(), 0, 'the parts are views of it again');
  });
});

test("linearCrossEntropy through a packed head gives the unpacked loss, accuracy and hidden states' gradient", { skip: noKernel }, () => {
  manualSeed(8);
  tidy(() => {
    // 100 rows of targets (two ignored) over a vocabulary of 320, in one chunk and in chunks of 70 and 30 rows.
    const hidden = randn([100, 64], { dtype: 'bfloat16' });
    const head = randn([320, 64], { dtype: 'bfloat16' }).mul(0.2);
    const targets = ids(Array.from({ length: 100 }, (_, i) => (i === 3 || i === 50 ? IGNORE_INDEX : (i * 37) % 320)));
    const packed = PackedWeight.of(head);
    try {
      for (const chunkRows of [128, 70]) {
        const run = (tiles?: PackedWeight) =>
          tidy(() => {
            const h = hidden.detach().requiresGrad_(true);
            const [loss, correct] = linearCrossEntropy(h, head, targets, { chunkRows, withGrad: true, packed: tiles });
            loss.backward();
            return { loss: loss.item(), correct: correct.item(), grad: h.grad!.float().toFloat32Array() };
          });
        const plain = run();
        const viaTiles = run(packed);
        assert.ok(Math.abs(viaTiles.loss - plain.loss) <= 1e-2 * Math.abs(plain.loss), `loss ${viaTiles.loss} against ${plain.loss}`);
        assert.ok(Math.abs(viaTiles.correct - plain.correct) <= 1, `correct ${viaTiles.correct} against ${plain.correct}`);
        assertNear(viaTiles.grad, plain.grad, `the hidden states' gradient, chunks of ${chunkRows} rows`);
      }
      noGrad(() => head.addScaled_(head, 1e-3));
      assert.throws(() => linearCrossEntropy(hidden, head, targets, { packed }), /changed after its tiles were packed/);
    } finally {
      packed.dispose();
    }
    // The head's tiles instead of the head: the same loss and gradient, in one chunk and in chunks of 70 rows.
    const run = (chunkRows: number, tiles?: PackedWeight) =>
      tidy(() => {
        const h = hidden.detach().requiresGrad_(true);
        const [loss] = linearCrossEntropy(h, head, targets, { chunkRows, withGrad: true, packed: tiles });
        loss.backward();
        return { loss: loss.item(), grad: h.grad!.float().toFloat32Array() };
      });
    const plain = [run(128), run(70)];
    const instead = PackedWeight.instead(head);
    try {
      for (const [i, chunkRows] of [128, 70].entries()) {
        const viaTiles = run(chunkRows, instead);
        assert.ok(Math.abs(viaTiles.loss - plain[i].loss) <= 1e-2 * Math.abs(plain[i].loss), `loss ${viaTiles.loss} against ${plain[i].loss} (tiles instead)`);
        assertNear(viaTiles.grad, plain[i].grad, `the hidden states' gradient, chunks of ${chunkRows} rows (tiles instead)`);
      }
    } finally {
      instead.dispose();
    }
  });
});

function randomExamples(vocab: number, count: number, length: number): FramedExample[] {
  let state = 11;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) % vocab;
  return Array.from({ length: count }, () => {
    const tokens = Array.from({ length: length + 1 }, next);
    return { ids: tokens.slice(0, -1), targets: tokens.slice(1).map((t, i) => (i < length / 4 ? IGNORE_INDEX : t)) };
  });
}

test('a bfloat16 training step with packed weights, beside or instead of them, gives the unpacked loss and gradients; a run packs per its plan and drops the tiles', { skip: noKernel }, async () => {
  // llama-tiny's projections are all multiples of 32; 2 × 48 tokens fill both threads' tiles.
  const model = loadTransformer(repoPath('test', 'fixtures', 'models', 'llama-tiny'), { dtype: 'bfloat16' });
  const adapter = liveAdapter(model);
  const examples = randomExamples(model.config.vocabSize, 2, 48);
  const gradients = () => {
    const outcome = tidy(() => accumulateGradients(model, examples, unboundedStepPlan));
    const grads = adapter.parameters().map((p) => {
      const values = p.grad!.toFloat32Array();
      p.clearGrad();
      return values;
    });
    return { loss: outcome.lossSum / outcome.predicted, grads };
  };
  const plain = gradients();
  const firstBlock = model.weights.blocks[0];
  const weightsBefore = [firstBlock.q.weight, firstBlock.down.weight, model.weights.head].map((w) => w.float().toFloat32Array());
  for (const packing of ['beside', 'instead'] as const) {
    const unpack = model.packProjections(packing);
    assert.ok(firstBlock.o.packed && firstBlock.down.packed, 'the adapted projections are packed');
    assert.equal(firstBlock.q.packed, null, 'q/k/v are packed once, as their fused weight');
    if (packing === 'instead') {
      assert.deepEqual([firstBlock.q.weight.device, firstBlock.down.weight.device], ['meta', 'meta'], 'the tiles stand in for the weights');
      assert.equal(model.weights.head.device, 'cpu', 'the head is not packed instead of itself');
    }
    const packed = gradients();
    unpack();
    assert.equal(firstBlock.o.packed, null);
    assert.ok(Math.abs(packed.loss - plain.loss) < 1e-2 * plain.loss, `${packing}: loss ${packed.loss} against ${plain.loss}`);
    const largest = Math.max(...plain.grads.map(maxAbs));
    const worst = Math.max(...plain.grads.map((g, i) => maxAbsDiff(g, packed.grads[i])));
    assert.ok(largest > 1e-3 && worst <= 2e-2 * largest, `${packing}: gradients differ by up to ${worst} (largest ${largest})`);
  }

  for (const packing of ['beside', 'instead'] as const) {
    const packedDuringRun: boolean[] = [];
    await train(model, adapter, examples, {
      epochs: 2, batchSize: 2, stepPlan: { ...unboundedStepPlan, packedWeights: packing },
      onStep: () => packedDuringRun.push(firstBlock.o.packed !== null),
    });
    assert.deepEqual(packedDuringRun, [true, true]);
    assert.equal(firstBlock.o.packed, null, `the run dropped its tiles (${packing})`);
  }
  const weightsAfter = [firstBlock.q.weight, firstBlock.down.weight, model.weights.head].map((w) => w.float().toFloat32Array());
  for (const [i, what] of ['q', 'down', 'head'].entries()) assert.equal(maxAbsDiff(weightsAfter[i], weightsBefore[i]), 0, `${what} came back value for value`);
});

test('the memory plan packs the weights beside themselves where the copies fit, counts them, and packs them instead of themselves where not', () => {
  const config = parseModelConfig({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_attention_heads: 32, num_key_value_heads: 8,
    num_hidden_layers: 16, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: true,
  });
  const shape = { config, dtype: 'bfloat16', device: 'cpu', rank: 8, lengths: [256, 256] };
  const roomy = planTraining({ ...shape, budgetBytes: 20 * 2 ** 30 });
  if (!packedKernel()) {
    assert.equal(roomy.step.packedWeights, undefined, 'no packed kernel, no packing');
    return;
  }
  assert.equal(roomy.step.packedWeights, 'beside');
  // q, k, v, o, gate, up and down over 16 layers, and the head, in bfloat16, once for each product.
  const projectionBytes = (16 * (2048 * 3072 + 2048 * 2048 + 3 * 2048 * 8192) + 128256 * 2048) * 2;
  assert.equal(roomy.estimate.packedBytes, 2 * projectionBytes);
  assert.match(roomy.summary, /weights packed beside them/);
  // Room for the run but not for the copies: the same run, its weights' tiles instead of them, at no cost.
  const tight = planTraining({ ...shape, budgetBytes: (roomy.estimate.totalBytes - projectionBytes) / 0.9 });
  assert.equal(tight.fits, true);
  assert.equal(tight.step.packedWeights, 'instead');
  assert.equal(tight.step.microBatchTokens, roomy.step.microBatchTokens);
  assert.equal(tight.estimate.packedBytes, 0);
  assert.match(tight.summary, /weights packed instead of them/);
  assert.equal(planTraining({ ...shape, dtype: 'float32', budgetBytes: 20 * 2 ** 30 }).step.packedWeights, undefined, 'float32 is not packed');
});
