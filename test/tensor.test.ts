// The Tensor layer over libtorch: ops against hand-computed values, autograd, dtypes, zero-copy
// buffers, error propagation, disposal and tidy scopes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor,
  arange,
  cat,
  crossEntropy,
  fromBytes,
  ids,
  keep,
  linear,
  liveTensorCount,
  manualSeed,
  noGrad,
  randn,
  stack,
  tensor,
  tidy,
  zeros,
} from '../src/engine/tensor/index.js';
import { settleGarbage } from './helpers/engine.js';

/** Values of a tensor as plain numbers, with its shape checked. */
function values(t: Tensor, shape: number[]): number[] {
  assert.deepEqual(t.shape, shape);
  return t.toNumbers();
}

function assertClose(actual: number[], expected: number[], tolerance = 1e-6, label = ''): void {
  assert.equal(actual.length, expected.length, `${label} length`);
  actual.forEach((v, i) => {
    assert.ok(Math.abs(v - expected[i]) <= tolerance, `${label}[${i}]: ${v} vs ${expected[i]}`);
  });
}

test('matmul and linear against hand-computed products', () => {
  tidy(() => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const b = tensor([5, 6, 7, 8], [2, 2]);
    assert.deepEqual(values(a.matmul(b), [2, 2]), [19, 22, 43, 50]);
    // [2,3] @ [3,1]
    const m = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = tensor([1, 0, -1], [3, 1]);
    assert.deepEqual(values(m.matmul(v), [2, 1]), [-2, -2]);
    // linear is x Wᵀ + b with W in [out, in]
    const w = tensor([1, 1, 1, 0, 1, 0], [2, 3]);
    const bias = tensor([10, 20]);
    assert.deepEqual(values(linear(m, w, bias), [2, 2]), [16, 22, 25, 25]);
    assert.deepEqual(values(linear(m, w), [2, 2]), [6, 2, 15, 5]);
  });
});

test('elementwise ops and reductions', () => {
  tidy(() => {
    const x = tensor([1, -2, 3, -4], [2, 2]);
    assert.deepEqual(values(x.add(1), [2, 2]), [2, -1, 4, -3]);
    assert.deepEqual(values(x.mul(x), [2, 2]), [1, 4, 9, 16]);
    assert.deepEqual(values(x.abs(), [2, 2]), [1, 2, 3, 4]);
    assert.deepEqual(values(x.sum(), []), [-2]);
    assert.deepEqual(values(x.sum(1), [2]), [-1, -1]);
    assert.deepEqual(values(x.sum(0, true), [1, 2]), [4, -6]);
    assert.deepEqual(values(x.mean(0), [2]), [2, -3]);
    assert.deepEqual(values(x.amax(1), [2]), [1, 3]);
    assert.deepEqual(values(x.relu(), [2, 2]), [1, 0, 3, 0]);
    assert.equal(tensor([3, 4]).norm().item(), 5);
  });
});

test('softmax and logSoftmax match exp(x) / Σ exp(x)', () => {
  tidy(() => {
    const rows = [
      [1, 2, 3],
      [0, 0, Math.log(2)],
    ];
    const x = tensor(rows.flat(), [2, 3]);
    const expected = rows.flatMap((row) => {
      const sum = row.reduce((s, v) => s + Math.exp(v), 0);
      return row.map((v) => Math.exp(v) / sum);
    });
    assertClose(values(x.softmax(-1), [2, 3]), expected, 1e-6, 'softmax');
    assertClose(values(x.softmax(-1), [2, 3]).slice(3), [0.25, 0.25, 0.5], 1e-6, 'softmax row 2');
    assertClose(values(x.logSoftmax(-1), [2, 3]), expected.map(Math.log), 1e-6, 'logSoftmax');
    // Rows sum to one.
    assertClose(values(x.softmax(-1).sum(-1), [2]), [1, 1], 1e-6);
  });
});

test('cross-entropy: mean over targets that are not the ignore index; sum and none', () => {
  tidy(() => {
    const rows = [
      [1, 2, 3],
      [5, 5, 5],
      [0, 0, 4],
      [2, 0, 1],
    ];
    const targets = [2, -100, 0, -100];
    const nll = (row: number[], target: number) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[target];
    const counted = [nll(rows[0], 2), nll(rows[2], 0)];
    const logits = tensor(rows.flat(), [4, 3]);
    const t = ids(targets);
    assertClose([crossEntropy(logits, t).item()], [(counted[0] + counted[1]) / 2], 1e-5, 'mean');
    assertClose([crossEntropy(logits, t, { reduction: 'sum' }).item()], [counted[0] + counted[1]], 1e-5, 'sum');
    assertClose(values(crossEntropy(logits, t, { reduction: 'none' }), [4]), [counted[0], 0, counted[1], 0], 1e-5, 'none');
    // Another ignore index: -100 is then an ordinary (invalid) class, so use 1 as the ignored one.
    const t2 = ids([2, 1, 0, 1]);
    assertClose([crossEntropy(logits, t2, { ignoreIndex: 1 }).item()], [(counted[0] + counted[1]) / 2], 1e-5, 'ignoreIndex 1');
  });
});

test('cat, stack, slice, view, transpose, permute and select', () => {
  tidy(() => {
    const x = arange(0, 6, { dtype: 'float32' }).view(2, 3); // [[0,1,2],[3,4,5]]
    assert.deepEqual(values(x, [2, 3]), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(x.transpose(0, 1), [3, 2]), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(values(x.permute(1, 0), [3, 2]), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(values(x.slice(1, 1, 3), [2, 2]), [1, 2, 4, 5]);
    assert.deepEqual(values(x.slice(1, 0, 3, 2), [2, 2]), [0, 2, 3, 5]);
    assert.deepEqual(values(x.slice(-1, 2, 3), [2, 1]), [2, 5]);
    assert.deepEqual(values(x.select(0, 1), [3]), [3, 4, 5]);
    assert.deepEqual(values(cat([x, x.mul(10)], 0), [4, 3]), [0, 1, 2, 3, 4, 5, 0, 10, 20, 30, 40, 50]);
    assert.deepEqual(values(cat([x, x.mul(10)], 1), [2, 6]), [0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50]);
    assert.deepEqual(values(stack([x, x], 0), [2, 2, 3]), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(x.reshape(3, 2), [3, 2]), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(x.unsqueeze(0), [1, 2, 3]), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(values(x.flatten(), [6]), [0, 1, 2, 3, 4, 5]);
    // A transposed view is not contiguous: view() refuses it and contiguous() fixes that.
    assert.throws(() => x.transpose(0, 1).view(6), /view/);
    assert.deepEqual(values(x.transpose(0, 1).contiguous().view(6), [6]), [0, 3, 1, 4, 2, 5]);
    // Slices and views alias their source.
    const source = zeros([2, 3]);
    source.slice(1, 1, 2).fill_(7);
    assert.deepEqual(source.toNumbers(), [0, 7, 0, 0, 7, 0]);
  });
});

test('argmax, topk and sort', () => {
  tidy(() => {
    const x = tensor([3, 1, 4, 1, 5, 9, 2, 6]);
    assert.equal(x.argmax(0).item(), 5);
    const [top, where] = x.topk(3);
    assert.deepEqual(values(top, [3]), [9, 6, 5]);
    assert.deepEqual(values(where, [3]), [5, 7, 4]);
    assert.equal(where.dtype, 'int64');
    const [low, lowAt] = x.topk(2, -1, false);
    assert.deepEqual(low.toNumbers(), [1, 1]);
    assert.deepEqual(new Set(lowAt.toNumbers()), new Set([1, 3]));
    const m = tensor([0, 7, 2, 8, 1, 1], [2, 3]);
    assert.deepEqual(values(m.argmax(1), [2]), [1, 0]);
    assert.deepEqual(values(m.argmax(0), [3]), [1, 0, 0]);
    assert.deepEqual(values(m.argmax(1, true), [2, 1]), [1, 0]);
    const [sorted, order] = tensor([2, 0, 1]).sort(-1, true);
    assert.deepEqual(sorted.toNumbers(), [2, 1, 0]);
    assert.deepEqual(order.toNumbers(), [0, 2, 1]);
  });
});

test('autograd: gradients of simple functions', () => {
  tidy(() => {
    const x = tensor([1, 2, 3]).requiresGrad_();
    assert.equal(x.requiresGrad, true);
    assert.equal(x.grad, null, 'no gradient before backward');
    // d/dx Σ x³ = 3x²
    x.mul(x).mul(x).sum().backward();
    assert.deepEqual(x.grad!.toNumbers(), [3, 12, 27]);
    // Gradients accumulate until cleared.
    x.mul(2).sum().backward();
    assert.deepEqual(x.grad!.toNumbers(), [5, 14, 29]);
    x.clearGrad();
    assert.equal(x.grad, null, 'clearGrad drops the gradient');
    // Through matmul: L = Σ (W x), dL/dW[i][j] = x[j]
    const w = tensor([1, 2, 3, 4, 5, 6], [2, 3]).requiresGrad_();
    const v = tensor([1, -1, 2], [3, 1]);
    w.matmul(v).sum().backward();
    assert.deepEqual(w.grad!.toNumbers(), [1, -1, 2, 1, -1, 2]);
    // A custom upstream gradient.
    const z = tensor([2, 3]).requiresGrad_();
    z.mul(z).backward(tensor([1, 10]));
    assert.deepEqual(z.grad!.toNumbers(), [4, 60]);
    // Cross-entropy's gradient is softmax - onehot, divided by the counted rows.
    const logits = tensor([0, 0, 0, 1, 2, 3], [2, 3]).requiresGrad_();
    crossEntropy(logits, ids([1, -100])).backward();
    assertClose(logits.grad!.toNumbers(), [1 / 3, -2 / 3, 1 / 3, 0, 0, 0], 1e-6);
  });
});

test('noGrad disables recording and restores it afterwards', () => {
  tidy(() => {
    const x = tensor([1, 2]).requiresGrad_();
    const inside = noGrad(() => x.mul(3));
    assert.equal(inside.requiresGrad, false);
    assert.throws(() => inside.sum().backward(), /grad/i);
    const outside = x.mul(3);
    assert.equal(outside.requiresGrad, true, 'recording is back on after noGrad');
    // Also restored when the function throws.
    assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(x.mul(1).requiresGrad, true);
    // Nested noGrad keeps it off until the outer one ends.
    noGrad(() => {
      noGrad(() => undefined);
      assert.equal(x.mul(1).requiresGrad, false);
    });
    // In-place updates of a leaf under noGrad (what the optimizer does) are allowed.
    noGrad(() => x.add_(1));
    assert.deepEqual(x.toNumbers(), [2, 3]);
  });
});

test('dtypes: float32 ↔ bfloat16 / float16 round trips', () => {
  tidy(() => {
    // Exactly representable in every format: the round trip is exact.
    const exact = [1.5, -2.25, 0, 1024, -0.125, 3];
    const x = tensor(exact);
    assert.equal(x.dtype, 'float32');
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const narrow = x.to({ dtype });
      assert.equal(narrow.dtype, dtype);
      assert.equal(narrow.toBuffer().byteLength, exact.length * 2, `${dtype} is two bytes per element`);
      const back = narrow.to({ dtype: 'float32' });
      assert.equal(back.dtype, 'float32');
      assert.deepEqual(back.toNumbers(), exact);
    }
    // Not representable: rounding within each format's precision (8 and 11 significant bits).
    const third = tensor([1 / 3]);
    const bf = third.to({ dtype: 'bfloat16' }).float().item();
    const half = third.to({ dtype: 'float16' }).float().item();
    assert.notEqual(bf, Math.fround(1 / 3));
    assert.ok(Math.abs(bf - 1 / 3) <= (1 / 3) * 2 ** -8, `bfloat16 1/3 = ${bf}`);
    assert.ok(Math.abs(half - 1 / 3) <= (1 / 3) * 2 ** -11, `float16 1/3 = ${half}`);
    assert.ok(Math.abs(half - 1 / 3) < Math.abs(bf - 1 / 3), 'float16 has more mantissa than bfloat16');
    // bfloat16 keeps float32's range; float16 overflows to infinity.
    const big = tensor([1e10]);
    assert.ok(Math.abs(big.to({ dtype: 'bfloat16' }).float().item() / 1e10 - 1) < 1e-2);
    assert.equal(big.to({ dtype: 'float16' }).float().item(), Infinity);
    // Integer dtypes
    assert.equal(ids([1, 2]).dtype, 'int64');
    assert.deepEqual(tensor([2.7, -2.7]).to({ dtype: 'int32' }).toNumbers(), [2, -2]);
    assert.deepEqual(tensor(new Int32Array([5, -6])).toNumbers(), [5, -6]);
  });
});

test('fromBytes aliases the buffer without copy, and copies with copy: true', () => {
  tidy(() => {
    const source = new Float32Array([1, 2, 3, 4]);
    const bytes = new Uint8Array(source.buffer);
    const aliased = fromBytes(bytes, 'float32', [2, 2]);
    const copied = fromBytes(bytes, 'float32', [2, 2], { copy: true });
    assert.deepEqual(aliased.toNumbers(), [1, 2, 3, 4]);
    source[0] = 42;
    source[3] = -1;
    assert.deepEqual(aliased.toNumbers(), [42, 2, 3, -1], 'a change to the buffer shows in the tensor');
    assert.deepEqual(copied.toNumbers(), [1, 2, 3, 4], 'the copy does not see it');
    // And the other way: in-place ops on the tensor write into the JS buffer.
    aliased.mul_(2);
    assert.deepEqual(Array.from(source), [84, 4, 6, -2]);
    // A byte count that does not fit the shape is refused.
    assert.throws(() => fromBytes(bytes, 'float32', [3]), /buffer holds 16 bytes; shape and dtype need 12/);
    // toBuffer gives the raw little-endian bytes.
    const out = tensor([1, -2]).toBuffer();
    assert.equal(out.readFloatLE(0), 1);
    assert.equal(out.readFloatLE(4), -2);
  });
});

test('libtorch errors arrive as JS Errors with its message, and the process carries on', () => {
  tidy(() => {
    const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const expectError = (fn: () => unknown, message: RegExp) =>
      assert.throws(fn, (err: unknown) => {
        assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /Exception raised from|frame #\d/, 'no C++ backtrace in the message');
        return true;
      });
    expectError(() => a.matmul(a), /mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/);
    expectError(() => a.add(tensor([1, 2])), /size of tensor a \(3\) must match the size of tensor b \(2\)/);
    expectError(() => a.view(4), /shape '\[4\]' is invalid for input of size 6/);
    expectError(() => cat([a, tensor([1, 2], [1, 2])], 0), /Sizes of tensors must match/);
    expectError(() => a.select(5, 0), /out of range/);
    expectError(() => a.to({ dtype: 'float8' as never }), /unknown dtype 'float8'/);
    expectError(() => crossEntropy(a, ids([0, 7])), /out of bounds|Target 7/);
    // Still working afterwards.
    assert.deepEqual(a.matmul(a.transpose(0, 1)).toNumbers(), [14, 32, 32, 77]);
  });
});

test('a disposed tensor throws on use, and dispose is idempotent', () => {
  const t = tensor([1, 2, 3]);
  const view = t.view(3, 1);
  t.dispose();
  assert.equal(t.disposed, true);
  assert.throws(() => t.add(1), /tensor used after it was disposed/);
  assert.throws(() => t.shape, /tensor used after it was disposed/);
  assert.throws(() => t.toNumbers(), /tensor used after it was disposed/);
  assert.throws(() => view.matmul(t.view(1, 3)), /tensor used after it was disposed/);
  t.dispose(); // a second dispose does nothing
  assert.deepEqual(view.toNumbers(), [1, 2, 3], 'views of a disposed tensor stay valid');
  view.dispose();
  // Symbol.dispose works too.
  const u = tensor([1]);
  u[Symbol.dispose]();
  assert.equal(u.disposed, true);
});

test('tidy frees every tensor it made except the returned ones', async () => {
  await settleGarbage();
  const before = liveTensorCount();
  manualSeed(1);
  const made: Tensor[] = [];
  const result = tidy(() => {
    let x = randn([16, 16]);
    for (let i = 0; i < 200; i++) {
      x = x.matmul(x.transpose(0, 1)).softmax(-1).add(i);
      made.push(x);
    }
    assert.ok(liveTensorCount() >= before + 600, 'the loop made many tensors');
    return { sum: x.sum(), nested: [x.mean()] };
  });
  assert.equal(liveTensorCount(), before + 2, 'only the two returned tensors remain');
  assert.ok(made.slice(0, -1).every((t) => t.disposed));
  assert.ok(Number.isFinite(result.sum.item()));
  assert.ok(Number.isFinite(result.nested[0].item()));
  result.sum.dispose();
  result.nested[0].dispose();
  assert.equal(liveTensorCount(), before);
});

test('tidy: nested scopes, keep(), and freeing on a throw', async () => {
  await settleGarbage();
  const before = liveTensorCount();
  let kept!: Tensor;
  const outer = tidy(() => {
    const inner = tidy(() => {
      kept = keep(zeros([4]));
      zeros([4]);
      return zeros([2]); // moves to the outer scope, which frees it
    });
    assert.equal(inner.disposed, false);
    return zeros([1]);
  });
  assert.equal(kept.disposed, false, 'keep() outlives every scope');
  assert.equal(liveTensorCount(), before + 2);
  kept.dispose();
  outer.dispose();
  assert.equal(liveTensorCount(), before);

  assert.throws(() =>
    tidy(() => {
      zeros([8]);
      zeros([8]).add(1);
      throw new Error('inside tidy');
    }),
  /inside tidy/);
  assert.equal(liveTensorCount(), before, 'tensors are freed when the function throws');
  assert.throws(() => tidy(() => Promise.resolve(1) as unknown as number), /synchronous/);
});

// tensor(number[]) stages the values in a float64 tensor and converts it with .to(); the staging
// tensor is never disposed, so outside a tidy() it lives until the garbage collector finds it.
test('tensor([...]) outside a scope leaves only the tensor it returns', async () => {
  await settleGarbage();
  const before = liveTensorCount();
  const t = tensor([1, 2, 3]);
  const i = ids([4, 5], [2], 'cpu');
  assert.equal(liveTensorCount(), before + 2, 'one native tensor per call, no staging copy left behind');
  t.dispose();
  i.dispose();
  assert.equal(liveTensorCount(), before);
});

// toFloat32Array()/toNumbers() convert through a native tensor (torch.to) that no scope tracks and
// nothing disposes: it lives until the garbage collector runs (on a GPU, unreported device memory).
test('toFloat32Array() and toNumbers() leave no native handle behind', async () => {
  const t = tidy(() => keep(zeros([3]).add(1)));
  await settleGarbage();
  const before = liveTensorCount();
  assert.deepEqual(Array.from(t.toFloat32Array()), [1, 1, 1]);
  assert.deepEqual(t.toNumbers(), [1, 1, 1]);
  assert.equal(liveTensorCount(), before, 'reading values back leaves the live count unchanged');
  t.dispose();
});

test('tidy returns bytes as they are, without walking them (a 256 MiB Buffer made from a tensor)', () => {
  const before = liveTensorCount();
  const bytes = tidy(() => Buffer.from(zeros([64, 2 ** 20], { dtype: 'float32' }).toBuffer()));
  assert.equal(bytes.length, 2 ** 28);
  assert.equal(liveTensorCount(), before, 'the tensor the bytes were copied from is freed');
});
