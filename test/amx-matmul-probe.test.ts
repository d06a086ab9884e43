// The addon's AMX kernel as `npm run bench -- --only matmul-headroom` times it (bench/probes/amx-matmul.cc)
// checks sampled products against float32 sums, and the forward from the weight's own tiles against the
// forward from tiles of its transpose bit for bit, and reports a disagreement instead of a rate. Here it
// runs at small shapes that take its uneven paths: 17 blocks of rows over 2 threads, and a contraction of
// 4,224 that a thread's 8–9 blocks split into three slabs with float32 partial sums between them (and that
// the one-copy forward, over 4,224 inputs, walks in nine slabs, the last one short).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { amxMatmulAt } from '../bench/matmul-headroom.js';

test('the AMX matmul probe multiplies right where the CPU has AMX, and says why not elsewhere', () => {
  const result = amxMatmulAt(2, 17 * 32, [[64, 64], [32, 4224]]);
  if (!result.amx) {
    assert.match(result.why ?? '', /no AMX|tile state|did not build/, `the probe failed: ${result.why}`);
    return;
  }
  assert.ok(result.tflops! > 0, JSON.stringify(result));
  assert.ok(result.one_copy_forward_ms! > 0, JSON.stringify(result));
});
