// Reads a SentencePiece model file (tokenizer.model, a protobuf ModelProto) for what a GGUF vocabulary
// needs: each piece with its score and type, and whether the normaliser adds a dummy prefix ("▁").
// Only the few fields we use are decoded; the rest are skipped by wire type.
import { readFileSync } from 'node:fs';

/** SentencePiece's piece types; GGUF's tokenizer.ggml.token_type uses the same numbers. */
export const pieceTypes = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  /** normalizer_spec.add_dummy_prefix (default true): a space is put before the text, as llama.cpp's add_space_prefix. */
  addDummyPrefix: boolean;
}

class ProtoReader {
  offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
  ) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  varint(): number {
    let result = 0;
    let factor = 1;
    for (;;) {
      if (this.offset >= this.bytes.length) throw this.corrupt();
      const byte = this.bytes[this.offset++]!;
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) return result;
      factor *= 128;
    }
  }

  /** A length-delimited field's bytes. */
  bytesField(): Uint8Array {
    const length = this.varint();
    if (this.offset + length > this.bytes.length) throw this.corrupt();
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  float32(): number {
    if (this.offset + 4 > this.bytes.length) throw this.corrupt();
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset, 4).getFloat32(0, true);
    this.offset += 4;
    return value;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.offset += 8;
    else if (wireType === 2) this.bytesField();
    else if (wireType === 5) this.offset += 4;
    else throw this.corrupt();
  }

  /** Calls visit(field, wireType) for each field; visit returns false to have the field skipped. */
  fields(visit: (field: number, wireType: number) => boolean): void {
    while (!this.done) {
      const tag = this.varint();
      const field = Math.floor(tag / 8);
      const wireType = tag & 7;
      if (!visit(field, wireType)) this.skip(wireType);
    }
  }

  nested(): ProtoReader {
    return new ProtoReader(this.bytesField(), this.file);
  }

  corrupt(): Error {
    return new Error(`${this.file} is not a SentencePiece model (unreadable protobuf)`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function readSentencePieceModel(file: string): SentencePieceModel {
  const model: SentencePieceModel = { pieces: [], addDummyPrefix: true };
  const reader = new ProtoReader(readFileSync(file), file);
  reader.fields((field, wireType) => {
    if (field === 1 && wireType === 2) {
      const piece: SentencePiece = { piece: '', score: 0, type: pieceTypes.normal };
      const nested = reader.nested();
      nested.fields((f, w) => {
        if (f === 1 && w === 2) piece.piece = utf8.decode(nested.bytesField());
        else if (f === 2 && w === 5) piece.score = nested.float32();
        else if (f === 3 && w === 0) piece.type = nested.varint();
        else return false;
        return true;
      });
      model.pieces.push(piece);
      return true;
    }
    if (field === 3 && wireType === 2) {
      const nested = reader.nested();
      nested.fields((f, w) => {
        if (f === 3 && w === 0) model.addDummyPrefix = nested.varint() !== 0;
        else return false;
        return true;
      });
      return true;
    }
    return false;
  });
  if (model.pieces.length === 0) throw new Error(`${file} is not a SentencePiece model (no pieces)`);
  return model;
}
