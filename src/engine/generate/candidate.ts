// One candidate's text as its tokens arrive: streaming detokenization, stop tokens, and stop sequences held
// back until they can be ruled out. Shared by single-prompt generation and the batch decoder.
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TextStreamer } from '../tokenizer/streamer.js';

export type FinishReason = 'STOP' | 'MAX_TOKENS';

export interface Candidate {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
}

export class CandidateText {
  readonly tokenIds: number[] = [];
  text = '';
  private emitted = 0;
  finishReason: FinishReason | null = null;
  private readonly streamer: TextStreamer;

  constructor(
    tokenizer: Tokenizer,
    promptIds: number[],
    private readonly stopTokens: ReadonlySet<number>,
    private readonly stopSequences: readonly string[],
  ) {
    this.streamer = new TextStreamer(tokenizer, { contextIds: promptIds.slice(-4) });
  }

  /** Adds one token; returns the text that is now safe to show. */
  push(token: number): string {
    if (this.stopTokens.has(token)) {
      this.finishReason = 'STOP';
      return this.release(this.text.length);
    }
    this.tokenIds.push(token);
    this.text += this.streamer.push(token);
    for (const stop of this.stopSequences) {
      const at = this.text.indexOf(stop);
      if (at >= 0) {
        this.text = this.text.slice(0, at);
        this.finishReason = 'STOP';
        return this.release(at);
      }
    }
    return this.release(this.text.length - heldBack(this.text, this.stopSequences));
  }

  /** Ends the candidate at its token limit; returns the rest of its text. */
  finishAtLimit(): string {
    this.finishReason = 'MAX_TOKENS';
    this.text += this.streamer.flush();
    return this.release(this.text.length);
  }

  result(): Candidate {
    return { text: this.text, tokenIds: this.tokenIds, finishReason: this.finishReason ?? 'MAX_TOKENS' };
  }

  private release(upTo: number): string {
    const delta = this.text.slice(this.emitted, upTo);
    this.emitted = Math.max(this.emitted, upTo);
    return delta;
  }
}

/** Stop sequences that can match: the empty string cannot. */
export const effectiveStops = (stopSequences: readonly string[] = []): string[] => stopSequences.filter((s) => s.length > 0);

/** Length of the longest end of text that could still grow into a stop sequence. */
function heldBack(text: string, stopSequences: readonly string[]): number {
  let hold = 0;
  for (const stop of stopSequences) {
    for (let k = Math.min(stop.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}
