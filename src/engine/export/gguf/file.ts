// The GGUF container (version 3, little-endian), as llama.cpp and Ollama read it: a header, typed
// key/value metadata, tensor descriptors, then each tensor's data aligned to 32 bytes. Tensors are
// encoded one at a time while writing, so a model never has to be held twice in memory.
import { closeSync, openSync, writeSync } from 'node:fs';

/** ggml tensor types Attune writes (ggml.h numbering). */
export const ggmlTypes = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof ggmlTypes;

/** Bytes per block and elements per block of each type. */
const blockLayout: Record<GgmlType, { bytes: number; elements: number }> = {
  F32: { bytes: 4, elements: 1 },
  F16: { bytes: 2, elements: 1 },
  BF16: { bytes: 2, elements: 1 },
  Q8_0: { bytes: 34, elements: 32 },
};

export const blockElements = (type: GgmlType): number => blockLayout[type].elements;

const valueTypes = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9,
  uint64: 10, int64: 11, float64: 12,
} as const;

type Scalar = 'uint32' | 'int32' | 'float32' | 'bool' | 'string';
export type GgufValue =
  | { type: Scalar; value: number | boolean | string }
  | { type: 'array'; of: Scalar; values: (number | boolean | string)[] };

/** Constructors for metadata values: GGUF readers check the type, so it is always explicit. */
export const gguf = {
  string: (value: string): GgufValue => ({ type: 'string', value }),
  uint32: (value: number): GgufValue => ({ type: 'uint32', value }),
  float32: (value: number): GgufValue => ({ type: 'float32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  strings: (values: string[]): GgufValue => ({ type: 'array', of: 'string', values }),
  float32s: (values: number[]): GgufValue => ({ type: 'array', of: 'float32', values }),
  int32s: (values: number[]): GgufValue => ({ type: 'array', of: 'int32', values }),
};

export interface GgufTensor {
  name: string;
  /** Row-major shape as PyTorch and safetensors give it ([out, in] for a weight); GGUF stores it reversed. */
  shape: number[];
  type: GgmlType;
  /** The encoded bytes, asked for while writing. */
  encode: () => Buffer;
}

export const ggufAlignment = 32;

export function tensorBytes(type: GgmlType, shape: number[]): number {
  const { bytes, elements } = blockLayout[type];
  const count = shape.reduce((a, b) => a * b, 1);
  if (count % elements !== 0) throw new Error(`${count} elements do not fill ${type} blocks of ${elements}`);
  return (count / elements) * bytes;
}

const align = (n: number): number => Math.ceil(n / ggufAlignment) * ggufAlignment;

/** Buffers a little-endian byte stream. */
class ByteWriter {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.push(b);
  }
  i32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.push(b);
  }
  u64(n: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.push(b);
  }
  f32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(n);
    this.push(b);
  }
  bool(v: boolean): void {
    this.push(Buffer.from([v ? 1 : 0]));
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  /** Many strings at once (a vocabulary of 150k tokens): one buffer instead of two per string. */
  strings(values: string[]): void {
    const encoded = values.map((v) => Buffer.from(v, 'utf8'));
    const out = Buffer.alloc(encoded.reduce((n, b) => n + 8 + b.length, 0));
    let at = 0;
    for (const b of encoded) {
      out.writeBigUInt64LE(BigInt(b.length), at);
      b.copy(out, at + 8);
      at += 8 + b.length;
    }
    this.push(out);
  }
  zeros(n: number): void {
    if (n > 0) this.push(Buffer.alloc(n));
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  scalar(type: Scalar, value: number | boolean | string): void {
    if (type === 'string') this.string(value as string);
    else if (type === 'uint32') this.u32(value as number);
    else if (type === 'int32') this.i32(value as number);
    else if (type === 'float32') this.f32(value as number);
    else this.bool(value as boolean);
  }
}

export function writeGguf(file: string, metadata: Map<string, GgufValue>, tensors: GgufTensor[]): void {
  const header = new ByteWriter();
  header.u32(0x46554747); // "GGUF"
  header.u32(3);
  header.u64(tensors.length);
  header.u64(metadata.size);
  for (const [key, value] of metadata) {
    header.string(key);
    header.u32(valueTypes[value.type]);
    if (value.type === 'array') {
      header.u32(valueTypes[value.of]);
      header.u64(value.values.length);
      if (value.of === 'string') header.strings(value.values as string[]);
      else for (const v of value.values) header.scalar(value.of, v);
    } else {
      header.scalar(value.type, value.value);
    }
  }
  let offset = 0;
  const sizes = tensors.map((t) => tensorBytes(t.type, t.shape));
  tensors.forEach((t, i) => {
    header.string(t.name);
    header.u32(t.shape.length);
    for (const dim of [...t.shape].reverse()) header.u64(dim);
    header.u32(ggmlTypes[t.type]);
    header.u64(offset);
    offset = align(offset + sizes[i]!);
  });
  header.zeros(align(header.length) - header.length);

  const fd = openSync(file, 'w');
  try {
    writeSync(fd, header.bytes());
    tensors.forEach((t, i) => {
      const data = t.encode();
      if (data.length !== sizes[i]) throw new Error(`GGUF tensor ${t.name}: encoded ${data.length} bytes, expected ${sizes[i]}`);
      writeSync(fd, data);
      const padding = align(data.length) - data.length;
      if (padding > 0) writeSync(fd, Buffer.alloc(padding));
    });
  } finally {
    closeSync(fd);
  }
}
