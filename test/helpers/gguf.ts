// Reads a GGUF file's metadata with each value's type (llama.cpp aborts on an integer where it wants a
// float, so the tests check types, not just values) and its tensor descriptors, independently of the writer.
import { readFileSync } from 'node:fs';

const typeNames = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64'];

export interface GgufEntry {
  type: string;
  /** For arrays, the element type. */
  of?: string;
  value: unknown;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order (innermost first). */
  dims: number[];
  type: number;
}

export function readGguf(file: string): { metadata: Map<string, GgufEntry>; tensors: GgufTensorInfo[] } {
  const b = readFileSync(file);
  let at = 0;
  const u32 = () => ((at += 4), b.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), Number(b.readBigUInt64LE(at - 8)));
  const string = () => {
    const n = u64();
    at += n;
    return b.toString('utf8', at - n, at);
  };
  const scalar = (type: string): unknown => {
    switch (type) {
      case 'uint8': return b[at++];
      case 'int8': return b.readInt8(at++);
      case 'uint16': return ((at += 2), b.readUInt16LE(at - 2));
      case 'int16': return ((at += 2), b.readInt16LE(at - 2));
      case 'uint32': return u32();
      case 'int32': return ((at += 4), b.readInt32LE(at - 4));
      case 'float32': return ((at += 4), b.readFloatLE(at - 4));
      case 'bool': return b[at++] !== 0;
      case 'string': return string();
      case 'uint64': return u64();
      case 'int64': return ((at += 8), Number(b.readBigInt64LE(at - 8)));
      case 'float64': return ((at += 8), b.readDoubleLE(at - 8));
      default: throw new Error(`unknown GGUF type ${type}`);
    }
  };
  if (b.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${file} is not GGUF`);
  at = 4;
  const version = u32();
  if (version !== 3) throw new Error(`GGUF version ${version}`);
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < kvCount; i++) {
    const key = string();
    const type = typeNames[u32()]!;
    if (type === 'array') {
      const of = typeNames[u32()]!;
      const n = u64();
      metadata.set(key, { type, of, value: Array.from({ length: n }, () => scalar(of)) });
    } else {
      metadata.set(key, { type, value: scalar(type) });
    }
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = string();
    const dims = Array.from({ length: u32() }, () => u64());
    tensors.push({ name, dims, type: u32() });
    u64(); // offset
  }
  return { metadata, tensors };
}
