// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data),
// read without copying: each tensor aliases the file's bytes.
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fromBytes, type Tensor, type DType } from '../tensor/index.js';

const fileDtypes: Record<string, DType> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const bytesPerElement: Record<DType, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};
const dtypeCodes = Object.fromEntries(Object.entries(fileDtypes).map(([code, dtype]) => [dtype, code])) as Record<DType, string>;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function readSafetensors(file: string): Map<string, Tensor> {
  return parseSafetensors(readFileSync(file), file);
}

/** readSafetensors with the file read off the event loop. */
export async function readSafetensorsAsync(file: string): Promise<Map<string, Tensor>> {
  return parseSafetensors(await readFile(file), file);
}

/** The tensors in a safetensors file's bytes (aliasing them); `file` names it in errors. */
function parseSafetensors(bytes: Buffer, file: string): Map<string, Tensor> {
  if (bytes.length < 8) throw new Error(`${file} is not a safetensors file (too short)`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (8 + headerLength > bytes.length) throw new Error(`${file} is not a safetensors file (bad header length)`);
  let header: Record<string, HeaderEntry>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    throw new Error(`${file} is not a safetensors file (unreadable header)`);
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = fileDtypes[entry.dtype];
    if (!dtype) throw new Error(`${file}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets ?? [];
    const expected = entry.shape.reduce((a, b) => a * b, 1) * bytesPerElement[dtype];
    if (!(begin >= 0 && end - begin === expected && dataStart + end <= bytes.length)) {
      throw new Error(`${file}: tensor ${name} lies outside the file or has the wrong size (truncated download?)`);
    }
    const data = bytes.subarray(dataStart + begin, dataStart + end);
    // Misaligned data would make libtorch read unaligned elements; copy in that rare case.
    const aligned = data.byteOffset % 8 === 0;
    tensors.set(name, fromBytes(data, dtype, entry.shape, { copy: !aligned }));
  }
  return tensors;
}

/** Reads `model.safetensors`, or every shard listed in `model.safetensors.index.json`. */
export function readModelWeights(modelDir: string): Map<string, Tensor> {
  const single = path.join(modelDir, 'model.safetensors');
  if (existsSync(single)) return readSafetensors(single);
  const indexFile = path.join(modelDir, 'model.safetensors.index.json');
  if (!existsSync(indexFile)) throw new Error(`${modelDir} has neither model.safetensors nor model.safetensors.index.json`);
  const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
  const tensors = new Map<string, Tensor>();
  for (const shard of new Set(Object.values(index.weight_map))) {
    for (const [name, t] of readSafetensors(path.join(modelDir, shard))) tensors.set(name, t);
  }
  return tensors;
}

export function writeSafetensors(file: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>): void {
  const entries = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: () => t.toBuffer() }));
  writeSafetensorsEntries(file, entries, metadata);
}

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** The tensor's bytes, asked for while writing, so a large model is never held twice. */
  data: () => Uint8Array;
}

/** Writes tensors one at a time, in name order. */
export function writeSafetensorsEntries(file: string, entries: SafetensorsEntry[], metadata?: Record<string, string>): void {
  const sorted = [...entries].sort((a, b) => a.name.localeCompare(b.name));
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const { name, dtype, shape } of sorted) {
    const size = shape.reduce((a, b) => a * b, 1) * bytesPerElement[dtype];
    header[name] = { dtype: dtypeCodes[dtype], shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // keeps the data 8-byte aligned
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, Buffer.concat([prefix, Buffer.from(json)]));
    for (const entry of sorted) {
      const data = entry.data();
      const [begin, end] = (header[entry.name] as HeaderEntry).data_offsets;
      if (data.length !== end - begin) throw new Error(`${entry.name}: ${data.length} bytes, expected ${end - begin}`);
      writeSync(fd, data);
    }
  } finally {
    closeSync(fd);
  }
}
