// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data).
// Small files (adapters, checkpoints) are read whole, each tensor aliasing the file's bytes; a model's
// weights are read tensor by tensor straight into their final memory (ModelWeightFiles), or whole for
// an export that rewrites every tensor (readModelWeights).
import { closeSync, fstatSync, openSync, readFileSync, readSync, writeSync, existsSync } from 'node:fs';
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

/** Where a tensor's bytes lie in its file, checked against the file's size. */
export interface StoredTensor {
  file: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

/** Parses and checks a safetensors header; fileSize bounds every tensor. */
function parseHeader(file: string, prefix: Buffer, fileSize: number, readHeader: (length: number) => Buffer): Map<string, StoredTensor> {
  if (fileSize < 8) throw new Error(`${file} is not a safetensors file (too short)`);
  const headerLength = Number(prefix.readBigUInt64LE(0));
  if (8 + headerLength > fileSize) throw new Error(`${file} is not a safetensors file (bad header length)`);
  let header: Record<string, HeaderEntry>;
  try {
    header = JSON.parse(readHeader(headerLength).toString('utf8'));
  } catch {
    throw new Error(`${file} is not a safetensors file (unreadable header)`);
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, StoredTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = fileDtypes[entry.dtype];
    if (!dtype) throw new Error(`${file}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets ?? [];
    const expected = entry.shape.reduce((a, b) => a * b, 1) * bytesPerElement[dtype];
    if (!(begin >= 0 && end - begin === expected && dataStart + end <= fileSize)) {
      throw new Error(`${file}: tensor ${name} lies outside the file or has the wrong size (truncated download?)`);
    }
    tensors.set(name, { file, dtype, shape: entry.shape, begin: dataStart + begin, end: dataStart + end });
  }
  return tensors;
}

export function readSafetensors(file: string): Map<string, Tensor> {
  return tensorsIn(readFileSync(file), file);
}

/** readSafetensors with the file read off the event loop. */
export async function readSafetensorsAsync(file: string): Promise<Map<string, Tensor>> {
  return tensorsIn(await readFile(file), file);
}

/** The tensors in a safetensors file's bytes (aliasing them); `file` names it in errors. */
function tensorsIn(bytes: Buffer, file: string): Map<string, Tensor> {
  const stored = parseHeader(file, bytes, bytes.length, (length) => bytes.subarray(8, 8 + length));
  const tensors = new Map<string, Tensor>();
  for (const [name, { dtype, shape, begin, end }] of stored) {
    const data = bytes.subarray(begin, end);
    // Misaligned data would make libtorch read unaligned elements; copy in that rare case.
    const aligned = data.byteOffset % 8 === 0;
    tensors.set(name, fromBytes(data, dtype, shape, { copy: !aligned }));
  }
  return tensors;
}

/** Bytes staged at once when a tensor's bytes need converting (dtype or device) on their way in. */
const STAGING_BYTES = 64 * 2 ** 20;
/** The most one read() may ask for (Node's limit is just under 2 GiB). */
const READ_BYTES = 2 ** 30;

/**
 * A model's safetensors files (`model.safetensors`, or the shards `model.safetensors.index.json` lists),
 * read tensor by tensor into memory the caller allocated in its own dtype and device: the bytes go from
 * the file straight into the tensor, or through a small staging buffer when they need converting, so
 * loading never holds a second copy of the weights.
 */
export class ModelWeightFiles {
  private readonly descriptors = new Map<string, number>();
  private staging: Buffer | undefined;

  private constructor(readonly tensors: Map<string, StoredTensor>) {}

  static open(modelDir: string): ModelWeightFiles {
    const files = modelWeightFiles(modelDir);
    const tensors = new Map<string, StoredTensor>();
    for (const file of files) {
      if (!existsSync(file)) throw new Error(`${file} is missing (listed in model.safetensors.index.json)`);
      const fd = openSync(file, 'r');
      try {
        const size = fstatSync(fd).size;
        const prefix = Buffer.alloc(8);
        readSync(fd, prefix, 0, Math.min(8, size), 0);
        const header = parseHeader(file, prefix, size, (length) => {
          const bytes = Buffer.alloc(length);
          readFully(fd, bytes, 8, file);
          return bytes;
        });
        for (const [name, entry] of header) tensors.set(name, entry);
      } finally {
        closeSync(fd);
      }
    }
    return new ModelWeightFiles(tensors);
  }

  /** Fills target (any dtype and device, contiguous) with the stored tensor's values. */
  readInto(name: string, target: Tensor): void {
    const stored = this.tensors.get(name);
    if (!stored) throw new Error(`tensor ${name} is not in the model's files`);
    const count = stored.shape.reduce((a, b) => a * b, 1);
    if (count !== target.numel) throw new Error(`${stored.file}: ${name} has shape [${stored.shape}], not the model's [${target.shape}]`);
    if (!target.isContiguous) throw new Error(`readInto(${name}): the target must be contiguous`);
    const fd = this.descriptor(stored.file);
    if (target.device === 'cpu' && target.dtype === stored.dtype) {
      // Straight into the tensor's own memory (a Buffer over it would pin it until garbage collection).
      if (target.readFrom(fd, stored.begin) < stored.end - stored.begin) throw new Error(`${stored.file} ended early (truncated download?)`);
      return;
    }
    const rows = stored.shape[0] ?? 1;
    const rowBytes = (stored.end - stored.begin) / rows;
    const rowsPerChunk = Math.max(1, Math.floor(STAGING_BYTES / rowBytes));
    const flat = target.view(rows, -1);
    for (let row = 0; row < rows; row += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - row);
      const staging = this.stagingBuffer(n * rowBytes);
      readFully(fd, staging, stored.begin + row * rowBytes, stored.file);
      const staged = fromBytes(staging, stored.dtype, [n, (rowBytes / bytesPerElement[stored.dtype])]);
      flat.slice(0, row, row + n).copy_(staged);
      staged.dispose();
    }
    flat.dispose();
  }

  close(): void {
    for (const fd of this.descriptors.values()) closeSync(fd);
    this.descriptors.clear();
    this.staging = undefined;
  }

  private descriptor(file: string): number {
    let fd = this.descriptors.get(file);
    if (fd === undefined) this.descriptors.set(file, (fd = openSync(file, 'r')));
    return fd;
  }

  private stagingBuffer(bytes: number): Buffer {
    if (!this.staging || this.staging.length < bytes) this.staging = Buffer.allocUnsafeSlow(Math.max(bytes, STAGING_BYTES));
    return this.staging.subarray(0, bytes);
  }
}

/** The safetensors files of a model directory: `model.safetensors`, or the shards its index lists. */
function modelWeightFiles(modelDir: string): string[] {
  const single = path.join(modelDir, 'model.safetensors');
  const indexFile = path.join(modelDir, 'model.safetensors.index.json');
  if (existsSync(single)) return [single];
  if (!existsSync(indexFile)) throw new Error(`${modelDir} has neither model.safetensors nor model.safetensors.index.json`);
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (error) {
    throw new Error(`${indexFile} is not valid JSON: ${(error as Error).message}`);
  }
  // Shard names come from the file: only plain names inside the model directory are followed.
  const shards = [...new Set(Object.values(index.weight_map ?? {}))];
  const bad = shards.find((s) => typeof s !== 'string' || path.basename(s) !== s || !s.endsWith('.safetensors'));
  if (bad !== undefined || shards.length === 0) throw new Error(`${indexFile}: weight_map must name .safetensors files in ${modelDir}`);
  return shards.map((s) => path.join(modelDir, s));
}

/** Reads `model.safetensors`, or every shard listed in `model.safetensors.index.json`, whole. */
export function readModelWeights(modelDir: string): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  for (const file of modelWeightFiles(modelDir)) {
    for (const [name, t] of readSafetensors(file)) tensors.set(name, t);
  }
  return tensors;
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  for (let done = 0; done < into.byteLength; ) {
    const n = readSync(fd, into, done, Math.min(READ_BYTES, into.byteLength - done), position + done);
    if (n === 0) throw new Error(`${file} ended early (truncated download?)`);
    done += n;
  }
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
    writeFully(fd, Buffer.concat([prefix, Buffer.from(json)]));
    for (const entry of sorted) {
      const data = entry.data();
      const [begin, end] = (header[entry.name] as HeaderEntry).data_offsets;
      if (data.length !== end - begin) throw new Error(`${entry.name}: ${data.length} bytes, expected ${end - begin}`);
      writeFully(fd, data);
    }
  } finally {
    closeSync(fd);
  }
}

function writeFully(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, Math.min(READ_BYTES, bytes.byteLength - done));
}
