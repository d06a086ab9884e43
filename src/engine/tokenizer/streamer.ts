import type { Tokenizer } from './tokenizer.js';

const REPLACEMENT_CHAR = /\uFFFD+$/;
/** Past this many pending ids, re-base on a short context so each push stays cheap. */
const REBASE_AFTER = 64;
const CONTEXT_IDS = 4;

/**
 * Turns generated token ids into text deltas.
 *
 * Tokens do not map to text one by one: byte-fallback tokens (<0xE2>) carry
 * pieces of a UTF-8 character, and decoders drop or add spaces depending on
 * neighbours. So each push decodes the pending ids and returns the text beyond
 * what was already returned, holding back a trailing U+FFFD until the bytes
 * that complete it arrive (or `flush()` says the stream is over).
 *
 * `contextIds` (e.g. the last few prompt ids) are decoded ahead of the
 * generated ids but never returned; they keep a leading space that a decoder
 * would strip at the start of a sequence (SentencePiece's "▁word").
 */
export class TextStreamer {
  private ids: number[];
  /** Decoded text of `ids` already accounted for (context text included). */
  private seen: string;
  private emitted = '';

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly opts: { skipSpecialTokens?: boolean; contextIds?: number[] } = {},
  ) {
    this.ids = [...(opts.contextIds ?? [])];
    this.seen = this.decode(this.ids);
  }

  /** Adds one generated id; returns the new complete text, possibly ''. */
  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    const stable = text.replace(REPLACEMENT_CHAR, '');
    const delta = this.take(stable);
    if (stable === text && this.ids.length > REBASE_AFTER) this.rebase();
    return delta;
  }

  /** Ends the stream: returns whatever was held back (an incomplete character shows as U+FFFD). */
  flush(): string {
    return this.take(this.decode(this.ids));
  }

  /** All text returned so far. */
  get text(): string {
    return this.emitted;
  }

  private take(text: string): string {
    // Decoding is prefix-stable for the tokenizers we use; if it ever is not,
    // nothing already returned can be taken back, so continue by length.
    if (text.length <= this.seen.length) return '';
    const delta = text.slice(this.seen.length);
    this.seen = text;
    this.emitted += delta;
    return delta;
  }

  private rebase(): void {
    this.ids = this.ids.slice(-CONTEXT_IDS);
    this.seen = this.decode(this.ids);
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: this.opts.skipSpecialTokens ?? true });
  }
}
