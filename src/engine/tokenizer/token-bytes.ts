// The bytes each vocabulary entry stands for, as tokenizer.json's decoder would produce them for that token alone
// (before any sequence-level stripping): what an API that lists tokens as bytes (Vertex's computeTokens) returns.
//   byte-level BPE (GPT-2, Llama 3, Qwen): each character of the token names one byte (GPT-2's bytes_to_unicode);
//   SentencePiece-style (Llama 2, Gemma): `<0xE2>` is that byte when the decoder has ByteFallback, and the
//   decoder's string Replace steps apply ("▁" → " ") before UTF-8.
// Added tokens go through the decoder too, as in Hugging Face's decode (Gemma's "▁▁" is two spaces).

interface DecoderSpec {
  type?: string;
  decoders?: DecoderSpec[];
  pattern?: { String?: string };
  content?: string;
}

export type TokenBytes = (token: string) => Uint8Array;

const utf8 = new TextEncoder();

/** GPT-2's bytes_to_unicode, inverted: the character that stands for each byte → the byte. */
function byteLevelTable(): Map<string, number> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) table.set(String.fromCodePoint(printable(b) ? b : 256 + shifted++), b);
  return table;
}

function stepsOf(decoder: DecoderSpec | null | undefined): DecoderSpec[] {
  if (!decoder) return [];
  return decoder.type === 'Sequence' ? (decoder.decoders ?? []).flatMap(stepsOf) : [decoder];
}

export function tokenBytesFor(decoder: DecoderSpec | null | undefined): TokenBytes {
  const steps = stepsOf(decoder);
  if (steps.some((s) => s.type === 'ByteLevel')) {
    const table = byteLevelTable();
    return (token) => {
      const chars = [...token];
      // A token with a character outside the table (an added token such as "<|im_start|>" may have one) is its UTF-8.
      if (!chars.every((c) => table.has(c))) return utf8.encode(token);
      return Uint8Array.from(chars, (c) => table.get(c)!);
    };
  }
  const byteFallback = steps.some((s) => s.type === 'ByteFallback');
  const replaces = steps.filter((s) => s.type === 'Replace' && typeof s.pattern?.String === 'string');
  return (token) => {
    const byte = byteFallback && /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (byte) return Uint8Array.of(parseInt(byte[1]!, 16));
    return utf8.encode(replaces.reduce((text, r) => text.split(r.pattern!.String!).join(r.content ?? ''), token));
  };
}
