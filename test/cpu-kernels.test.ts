// The CPU row kernels (native/src/cpu-kernels.cc) against the op-by-op ATen math they replace, forward and
// backward, in float32 (tight) and bfloat16: widths past a vector register and with ragged tails, strided
// inputs, masks, grouped queries, fully hidden rows and vocabularies wider than one block of columns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, crossEntropy, gatedActivation, ids, keep, linear, linearCrossEntropy, manualSeed, materializedAttention, noGrad, randn, rmsNorm, rotary, tensor,
  tidy, zeros,
  type Tensor,
} from '../src/engine/tensor/index.js';
import { IGNORE_INDEX } from '../src/engine/data/framing.js';
import { AdamW, clipGradNorm } from '../src/engine/train/optimizer.js';
import { maxAbs, maxAbsDiff } from './helpers/engine.js';

const dtypes = [
  ['float32', 1e-5],
  ['bfloat16', 2e-2],
] as const;

/** fn's output and the gradients of the differentiable inputs under one fixed random probe (inputs become fresh leaves). */
function valueAndGrads(inputs: Tensor[], differentiable: boolean[], fn: (...leaves: Tensor[]) => Tensor): Float32Array[] {
  return tidy(() => {
    const leaves = inputs.map((t, i) => (differentiable[i] ? t.detach().requiresGrad_(true) : t));
    const out = fn(...leaves);
    manualSeed(99);
    const probe = randn(out.shape, { dtype: out.dtype });
    out.float().mul(probe.float()).sum().backward();
    return [out.float().toFloat32Array(), ...leaves.filter((_, i) => differentiable[i]).map((l) => l.grad!.float().toFloat32Array())];
  });
}

function assertClose(actual: Float32Array[], expected: Float32Array[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (const [i, e] of expected.entries()) {
    const diff = maxAbsDiff(actual[i], e);
    assert.ok(diff <= tolerance * Math.max(1, maxAbs(e)), `${what}: output ${i} differs by ${diff}`);
  }
}

test('rmsNorm with a frozen weight (the row kernel) equals the float32 op-by-op norm, forward and backward', () => {
  for (const [dtype, tolerance] of dtypes) {
    for (const width of [16, 1037]) {
      manualSeed(1);
      const x = randn([3, 5, width], { dtype });
      const weight = randn([width], { dtype });
      for (const offset of [0, 1]) {
        const kernel = valueAndGrads([x, weight], [true, false], (a, w) => rmsNorm(a, w, 1e-6, offset));
        const plain = valueAndGrads([x, weight], [true, false], (a, w) => {
          const a32 = a.float();
          const normed = a32.mul(a32.mul(a32).mean(-1, true).add(1e-6).rsqrt());
          return offset ? normed.mul(w.float().add(1)).to({ dtype }) : w.mul(normed.to({ dtype }));
        });
        assertClose(kernel, plain, tolerance, `rmsNorm ${dtype} width ${width} offset ${offset}`);
      }
    }
  }
});

test('gatedActivation over wide rows equals act(gate) · up, forward and backward', () => {
  for (const [dtype, tolerance] of dtypes) {
    manualSeed(2);
    const gateUp = randn([2, 3, 2 * 1043], { dtype }).mul(3);
    for (const activation of ['silu', 'gelu_tanh'] as const) {
      const kernel = valueAndGrads([gateUp], [true], (g) => gatedActivation(g, activation));
      const plain = valueAndGrads([gateUp], [true], (g) => {
        const [gate, up] = g.split([1043, 1043], -1);
        return (activation === 'silu' ? gate.silu() : gate.gelu('tanh')).mul(up);
      });
      assertClose(kernel, plain, tolerance, `gatedActivation ${activation} ${dtype}`);
    }
  }
});

test('rotary equals x·cos + rotate_half(x)·sin on a transposed view, forward and backward, and its output is contiguous', () => {
  for (const [dtype, tolerance] of dtypes) {
    for (const headDim of [8, 128]) {
      manualSeed(3);
      const [B, T, H] = [2, 7, 3];
      const x = randn([B, T, H, headDim], { dtype }); // viewed as [B, H, T, D], as attention does
      const angles = randn([B, 1, T, headDim]);
      const [cos, sin] = [angles.cos().to({ dtype }), angles.sin().to({ dtype })];
      const half = headDim / 2;
      const kernel = valueAndGrads([x], [true], (a) => {
        const y = rotary(a.transpose(1, 2), cos, sin);
        assert.ok(y.isContiguous, 'rotary returns a contiguous [B, H, T, D]');
        return y;
      });
      const plain = valueAndGrads([x], [true], (a) => {
        const v = a.transpose(1, 2).float();
        const rotated = cat([v.slice(-1, half, headDim).neg(), v.slice(-1, 0, half)], -1);
        return v.mul(cos.float()).add(rotated.mul(sin.float())).to({ dtype });
      });
      assertClose(kernel, plain, tolerance, `rotary ${dtype} head ${headDim}`);
    }
  }
});

test('materializedAttention equals softmax(q kᵀ · scale) v with causal and packed masks, grouped queries and a fully hidden row', () => {
  for (const [dtype, tolerance] of dtypes) {
    manualSeed(4);
    const [B, H, K, T, D] = [2, 4, 2, 9, 16];
    const q = randn([B, H, T, D], { dtype });
    const k = randn([B, K, T, D], { dtype });
    const v = randn([B, K, T, D], { dtype });
    const scale = 1 / Math.sqrt(D);
    // Row 0 packs two examples (tokens 0–3 and 4–8), row 1 holds one; query 2 of row 1 is hidden from every key.
    const segments = [[0, 0, 0, 0, 1, 1, 1, 1, 1], Array(T).fill(0)];
    const sees = (b: number, i: number, j: number) => j <= i && segments[b][i] === segments[b][j] && !(b === 1 && i === 2);
    const flags = [...Array(B * T * T).keys()].map((n) => Number(sees(Math.floor(n / (T * T)), Math.floor(n / T) % T, n % T)));
    const allowed = tensor(flags, [B, 1, T, T]).gt(0.5);
    const causal = tensor([...Array(T * T).keys()].map((n) => Number(n % T <= Math.floor(n / T))), [1, 1, T, T]).gt(0.5);
    for (const [what, mask] of [['causal', null], ['packed', allowed]] as const) {
      const kernel = valueAndGrads([q, k, v], [true, true, true], (a, b, c) => materializedAttention(a, b, c, { allowed: mask, causal: true, scale }));
      const plain = valueAndGrads([q, k, v], [true, true, true], (a, b, c) => {
        const kk = b.float().repeatInterleave(H / K, 1);
        const vv = c.float().repeatInterleave(H / K, 1);
        const visible = mask ?? causal;
        const scores = a.float().matmul(kk.transpose(2, 3)).mul(scale).maskedFill(visible.logicalNot(), -Infinity);
        // A row that sees no key is all zeros (softmax over nothing would be NaN).
        const probs = scores.softmax(-1).maskedFill(visible.logicalNot(), 0);
        return probs.matmul(vv).to({ dtype });
      });
      assertClose(kernel, plain, tolerance, `materializedAttention ${dtype} ${what}`);
    }
  }
});

test('linearCrossEntropy over a vocabulary wider than one block of columns equals cross-entropy over the full logits', () => {
  manualSeed(5);
  const vocab = 16384 + 977;
  const hidden = randn([6, 32]);
  const weight = randn([vocab, 32]).mul(0.3);
  const targets = ids([3, IGNORE_INDEX, vocab - 1, 16384, 16383, 7]);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const [h, w] = [hidden.to({ dtype }), weight.to({ dtype })];
    const [loss, grad] = tidy(() => {
      const leaf = h.detach().requiresGrad_(true);
      const [sum] = linearCrossEntropy(leaf, w, targets, { chunkRows: 4, softcap: 0, withGrad: true });
      sum.backward();
      return [sum.item(), leaf.grad!.float().toFloat32Array()];
    });
    const [plainLoss, plainGrad] = tidy(() => {
      const leaf = h.detach().requiresGrad_(true);
      const sum = crossEntropy(linear(leaf.float(), w.float()), targets, { reduction: 'sum' });
      sum.backward();
      return [sum.item(), leaf.grad!.float().toFloat32Array()];
    });
    const tolerance = dtype === 'float32' ? 1e-4 : 5e-2;
    assert.ok(Math.abs(loss - plainLoss) <= tolerance * Math.abs(plainLoss), `${dtype}: loss ${loss} vs ${plainLoss}`);
    assert.ok(maxAbsDiff(grad, plainGrad) <= tolerance * Math.max(1, maxAbs(plainGrad)), `${dtype}: gradient`);
  }
});

test('AdamW and gradient clipping over a list of parameters equal torch.optim.AdamW\'s op-by-op arithmetic', () => {
  manualSeed(6);
  const shapes = [[8, 40], [40, 8], [3]];
  for (const weightDecay of [0, 0.1]) {
    const fused = shapes.map((s) => keep(randn(s)).requiresGrad_(true));
    const plain = fused.map((p) => keep(p.detach().clone()).requiresGrad_(true));
    const giveGradients = (params: Tensor[], grads: Tensor[]) =>
      tidy(() => {
        for (const [i, p] of params.entries()) {
          p.clearGrad();
          p.mul(grads[i]).sum().backward();
        }
      });
    const optimizer = new AdamW(fused, { weightDecay });
    const [m, v] = [plain.map((p) => keep(zeros(p.shape))), plain.map((p) => keep(zeros(p.shape)))];
    for (let step = 1; step <= 3; step++) {
      const grads = shapes.map((s) => keep(randn(s).mul(step)));
      giveGradients(fused, grads);
      giveGradients(plain, grads);
      const norm = clipGradNorm(fused, 1.5);
      // The op-by-op reference: clip_grad_norm_, then AdamW's single-tensor update.
      const expectedNorm = Math.sqrt(grads.reduce((sum, g) => sum + g.norm(2).item() ** 2, 0));
      assert.ok(Math.abs(norm - expectedNorm) <= 1e-4 * expectedNorm, `step ${step}: norm ${norm} vs ${expectedNorm}`);
      noGrad(() =>
        tidy(() => {
          for (const [i, p] of plain.entries()) {
            const g = p.grad!.mul(Math.min(1, 1.5 / (expectedNorm + 1e-6)));
            p.mul_(1 - 1e-2 * weightDecay);
            m[i].lerp_(g, 0.1);
            v[i].mul_(0.999).addcmul_(g, g, 0.001);
            const denominator = v[i].sqrt().div_(Math.sqrt(1 - 0.999 ** step)).add_(1e-8);
            p.addcdiv_(m[i], denominator, -1e-2 / (1 - 0.9 ** step));
          }
        }),
      );
      optimizer.step(1e-2);
      for (const [i, p] of fused.entries()) {
        const diff = maxAbsDiff(p.toFloat32Array(), plain[i].toFloat32Array());
        assert.ok(diff <= 1e-6, `weight decay ${weightDecay}, step ${step}, parameter ${i}: differs by ${diff}`);
      }
      for (const t of grads) t.dispose();
    }
    optimizer.dispose();
    for (const t of [...fused, ...plain, ...m, ...v]) t.dispose();
  }
});
