// A prompt's token ids, as generation frames it: a tuned model (or a base model with a chat template) frames
// the conversation exactly as training did; a base model without one continues plain text (see inference.ts).
// Pure, so the CPU pool's worker threads run it for long prompts and the server's thread for short ones.
import { framePrompt, type Framing } from '../../engine/data/framing.js';
import type { Turn } from '../../engine/data/examples.js';
import type { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import { invalidArgument } from '../errors.js';

export type PromptFormat = { kind: 'framing'; framing: Framing } | { kind: 'continuation' };

export interface PromptText {
  systemInstruction?: string;
  turns: Turn[];
}

export function promptTokenIds(tokenizer: Tokenizer, format: PromptFormat, { systemInstruction, turns }: PromptText): number[] {
  if (format.kind === 'framing') {
    try {
      return framePrompt(tokenizer, format.framing, { systemInstruction, turns });
    } catch (error) {
      throw invalidArgument(
        /must end with the user/.test((error as Error).message)
          ? 'The last content must have the role "user": the model continues the conversation after it.'
          : `The conversation cannot be framed for this model: ${(error as Error).message}`,
        'contents',
      );
    }
  }
  const text = (systemInstruction ? `${systemInstruction}\n\n` : '') + turns.map((t) => t.text).join('\n');
  const bos = tokenizer.addBosToken ? [tokenizer.bosTokenId!] : [];
  return [...bos, ...tokenizer.encode(text, { addSpecialTokens: false })];
}

/** Each text's token ids on its own, as the vocabulary splits it: no template, no special tokens (computeTokens). */
export function textTokenIds(tokenizer: Tokenizer, texts: string[]): number[][] {
  return texts.map((text) => tokenizer.encode(text, { addSpecialTokens: false }));
}
