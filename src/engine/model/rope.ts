// Rotary position embedding tables, computed in float32 exactly as Hugging Face does, so logits match.
import { arange, cat, rotary, tensor, noGrad, keep, tidy, type Tensor } from '../tensor/index.js';
import type { RopeScaling } from './config.js';

export interface RopeTables {
  /** [maxPositions, headDim] */
  cos: Tensor;
  sin: Tensor;
}

export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling): number[] {
  const f32 = Math.fround;
  const base = Array.from({ length: headDim / 2 }, (_, i) => f32(1 / f32(Math.pow(theta, f32((2 * i) / headDim)))));
  if (scaling.type === 'linear') return base.map((f) => f32(f / scaling.factor));
  if (scaling.type !== 'llama3') return base;
  // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
  const { factor, lowFreqFactor = 1, highFreqFactor = 4, originalMaxPositions = 8192 } = scaling;
  const lowFreqWavelen = originalMaxPositions / lowFreqFactor;
  const highFreqWavelen = originalMaxPositions / highFreqFactor;
  return base.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) return freq;
    if (wavelen > lowFreqWavelen) return f32(freq / factor);
    const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return f32((1 - smooth) * (freq / factor) + smooth * freq);
  });
}

export function ropeTables(headDim: number, maxPositions: number, theta: number, scaling: RopeScaling, device?: string): RopeTables {
  return noGrad(() =>
    tidy(() => {
      const invFreq = tensor(inverseFrequencies(headDim, theta, scaling), [1, headDim / 2]);
      const positions = arange(0, maxPositions, { dtype: 'float32' }).unsqueeze(1);
      const angles = positions.mul(invFreq); // [P, D/2], float32 like HF's matmul of the same values
      const full = cat([angles, angles], 1);
      return keep({ cos: full.cos().to({ device }), sin: full.sin().to({ device }) });
    }),
  );
}

/** Rotates x [B, heads, T, D] by the tables gathered at its positions: cos, sin [B, 1, T, D]. */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return rotary(x, cos, sin);
}
