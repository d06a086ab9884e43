// Issue 9, finding 12: `temperature: 1e-300` raised "index -1 is out of bounds". Tiny temperatures must sample
// like greedy (the limit of temperature → 0), with or without top-k and top-p, and never produce NaN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, tidy } from '../src/engine/tensor/index.js';
import { sampleNext } from '../src/engine/generate/sampling.js';

// Two rows with different winners, logits of the size a model produces (big enough to overflow when divided).
const rows = [
  [2.5, 31.25, -4, 31.0, 0],
  [-12, -3, -7.5, -1, -2.75],
];
const greedy = [1, 3];

for (const temperature of [1e-300, 1e-45, 1e-38, 1e-30, 1e-8]) {
  for (const filters of [{}, { topK: 3 }, { topP: 0.9 }, { topK: 2, topP: 0.5 }]) {
    test(`temperature ${temperature} ${JSON.stringify(filters)} samples the argmax`, () => {
      for (let draw = 0; draw < 20; draw++) {
        const picked = tidy(() => sampleNext(tensor(rows.flat(), [2, 5]), { temperature, ...filters }).toNumbers());
        assert.deepEqual(picked, greedy);
      }
    });
  }
}

test('an ordinary temperature still samples (more than one token comes up)', () => {
  const seen = new Set<number>();
  for (let draw = 0; draw < 200 && seen.size < 2; draw++) {
    seen.add(tidy(() => sampleNext(tensor([0, 0.1, 0.2, 0.3], [1, 4]), { temperature: 1 }).toNumbers()[0]!));
  }
  assert.ok(seen.size >= 2, [...seen].join(','));
});
