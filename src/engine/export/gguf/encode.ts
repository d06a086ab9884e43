// Tensor data in the ggml types a GGUF export offers: f32, f16 and bf16 through libtorch's conversions,
// q8_0 as llama.cpp's gguf-py quantises it (blocks of 32 along a row: an f16 scale max|x|/127 and 32
// int8 values rounded half away from zero).
import { tensor as fromArray, type Tensor } from '../../tensor/index.js';
import { blockElements, type GgmlType } from './file.js';

export function encodeTensor(t: Tensor, type: GgmlType): Buffer {
  if (type === 'F32') return Buffer.from(t.to({ dtype: 'float32', device: 'cpu' }).toBuffer());
  if (type === 'F16') return Buffer.from(t.to({ dtype: 'float16', device: 'cpu' }).toBuffer());
  if (type === 'BF16') return Buffer.from(t.to({ dtype: 'bfloat16', device: 'cpu' }).toBuffer());
  return quantizeQ8_0(t.toFloat32Array());
}

/** The type a tensor is stored in when the model's type is `wanted`: vectors stay f32, and rows that do not fill q8_0 blocks fall back to f16, as llama.cpp's converter does. */
export function storageType(wanted: GgmlType, shape: number[]): GgmlType {
  if (shape.length < 2) return 'F32';
  if (wanted === 'Q8_0' && shape.at(-1)! % blockElements('Q8_0') !== 0) return 'F16';
  return wanted;
}

const roundHalfAway = (x: number): number => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);

export function quantizeQ8_0(values: Float32Array): Buffer {
  const block = blockElements('Q8_0');
  const blocks = values.length / block;
  const scales = new Float32Array(blocks);
  const quants = new Int8Array(values.length);
  for (let b = 0; b < blocks; b++) {
    let max = 0;
    for (let i = b * block; i < (b + 1) * block; i++) max = Math.max(max, Math.abs(values[i]!));
    const d = Math.fround(max / 127);
    const inverse = d === 0 ? 0 : Math.fround(1 / d);
    for (let i = b * block; i < (b + 1) * block; i++) quants[i] = roundHalfAway(Math.fround(values[i]! * inverse));
    scales[b] = d;
  }
  const halfScales = fromArray(scales, [blocks]).to({ dtype: 'float16' }).toBuffer();
  const out = Buffer.alloc(blocks * 34);
  for (let b = 0; b < blocks; b++) {
    halfScales.copy(out, b * 34, b * 2, b * 2 + 2);
    Buffer.from(quants.buffer, b * block, block).copy(out, b * 34 + 2);
  }
  return out;
}
