/**
 * Prompt framing: how an example becomes token ids for training, and how a
 * prompt becomes token ids for generation, identically.
 *
 * The `Framing` descriptor is plain JSON, saved with each adapter so that
 * generation frames prompts exactly as training did.
 *
 * - `chat-template`: the tokenizer's chat template renders the conversation
 *   (model turns as role "assistant"). If the template rejects or ignores a
 *   system message, the system instruction is put before the first user
 *   message, separated by a blank line.
 * - `plain` (no chat template), with terminator T:
 *
 *       BOS? [system "\n\n"] user₁ "\n" model₁ T  user₂ "\n" model₂ T ...
 *
 *   BOS is added when the tokenizer adds it to encoded text. The prompt for
 *   model turn i is everything before model text i, so it ends "\n". T is
 *   "\n" unless some model text contains a newline (see `chooseFraming`).
 *   Base models tuned with frozen (tied) embeddings do not learn to emit EOS,
 *   so each output ends with T, which they do learn, and generation stops at
 *   T (`stopSequencesFor`). Example: input "1", output "2" trains as
 *   `<s>1\n2\n` with loss on `2\n`.
 *
 * Trained spans. Tokenization is not compositional (SentencePiece's
 * `Prepend ▁` normaliser makes encode("a") + encode("b") differ from
 * encode("ab"), and BPE merges can cross a join), so we never concatenate
 * token lists. We tokenize the whole conversation once, then tokenize each
 * prefix text (the prompt before model turn i, and the text through the end
 * of model turn i) and require its ids to be a prefix of the whole; the
 * prefix lengths are the span boundaries. Since `framePrompt` tokenizes the
 * prompt text the same way, the trained tokens of a model turn are exactly
 * the tokens the model must generate after the framed prompt. When a
 * boundary does not fall on a token boundary, or a chat template renders
 * earlier turns differently once later ones follow, we throw a FramingError
 * rather than train on a misaligned split.
 */
import type { ChatMessage, Tokenizer } from '../tokenizer/tokenizer.js';
import type { Example, Turn } from './examples.js';

export type Framing = { kind: 'chat-template' } | { kind: 'plain'; terminator: string };

/** A target that contributes no loss (the PyTorch cross-entropy convention). */
export const IGNORE_INDEX = -100;

export interface FramedExample {
  ids: number[];
  /** targets[i] is the token to predict at position i (that is, ids[i + 1]) when trained, else IGNORE_INDEX. */
  targets: number[];
}

/** A conversation to continue: turns alternate and end with the user's. */
export interface PromptConversation {
  systemInstruction?: string;
  turns: Turn[];
}

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

/** Terminators for the plain format, in order of preference; the first that no output contains wins. */
const PLAIN_TERMINATORS = ['\n', '\n\n', '\n###\n'];

/**
 * The chat template when the tokenizer has one, else the plain format. Pass
 * the training examples so the plain terminator cannot occur inside an
 * output (which would cut generation short).
 */
export function chooseFraming(tokenizer: Tokenizer, examples: Example[] = []): Framing {
  if (tokenizer.chatTemplate !== undefined) return { kind: 'chat-template' };
  const outputs = examples.flatMap((e) => e.turns.filter((t) => t.role === 'model').map((t) => t.text));
  const terminator = PLAIN_TERMINATORS.find((t) => !outputs.some((o) => o.includes(t))) ?? PLAIN_TERMINATORS.at(-1)!;
  return { kind: 'plain', terminator };
}

/** Text at which generation must stop; the text before it is the output. EOS ids stop it too. */
export function stopSequencesFor(framing: Framing): string[] {
  return framing.kind === 'plain' ? [framing.terminator] : [];
}

/** Validates a descriptor read back from JSON. */
export function parseFraming(value: unknown): Framing {
  const v = value as Record<string, unknown> | null;
  if (v?.['kind'] === 'chat-template') return { kind: 'chat-template' };
  if (v?.['kind'] === 'plain' && typeof v['terminator'] === 'string' && v['terminator'] !== '') {
    return { kind: 'plain', terminator: v['terminator'] };
  }
  throw new Error(`invalid framing descriptor: ${JSON.stringify(value)}`);
}

/** Token ids of a whole example, with targets on the model turns only. */
export function frameExample(tokenizer: Tokenizer, framing: Framing, example: Example): FramedExample {
  const render = renderer(tokenizer, framing, example.systemInstruction);
  const tokenize = tokenizerFor(tokenizer, framing);
  const text = render(example.turns);
  const ids = tokenize(text);
  const targets = new Array<number>(ids.length).fill(IGNORE_INDEX);

  const boundary = (turnCount: number): number => {
    if (turnCount === example.turns.length) return ids.length;
    const prefix = render(example.turns.slice(0, turnCount));
    if (!text.startsWith(prefix)) {
      throw new FramingError(`the chat template renders the first ${turnCount} turns differently once later turns follow`);
    }
    const prefixIds = tokenize(prefix);
    if (!prefixIds.every((id, i) => id === ids[i])) {
      throw new FramingError(`turn ${turnCount + 1} does not start on a token boundary (character ${prefix.length})`);
    }
    return prefixIds.length;
  };

  example.turns.forEach((turn, i) => {
    if (turn.role !== 'model') return;
    const start = Math.max(boundary(i), 1);
    const end = boundary(i + 1);
    for (let p = start; p < end; p++) targets[p - 1] = ids[p]!;
  });
  return { ids, targets };
}

/** Token ids of a prompt, framed as training framed the prompt part of an example. */
export function framePrompt(tokenizer: Tokenizer, framing: Framing, conversation: PromptConversation): number[] {
  if (conversation.turns.at(-1)?.role !== 'user') throw new FramingError("a prompt must end with the user's turn");
  const render = renderer(tokenizer, framing, conversation.systemInstruction);
  return tokenizerFor(tokenizer, framing)(render(conversation.turns));
}

/** Renders turns[0..k] as text; a prefix ending with a user turn renders as a generation prompt. */
type Render = (turns: Turn[]) => string;

function renderer(tokenizer: Tokenizer, framing: Framing, system: string | undefined): Render {
  if (framing.kind === 'plain') {
    const head = system ? `${system}\n\n` : '';
    return (turns) => head + turns.map((t) => t.text + (t.role === 'user' ? '\n' : framing.terminator)).join('');
  }
  const foldSystem = system !== undefined && system !== '' && !templateKeepsSystem(tokenizer);
  return (turns) => {
    const messages: ChatMessage[] = turns.map((t, i) => ({
      role: t.role === 'model' ? 'assistant' : 'user',
      content: i === 0 && foldSystem ? `${system}\n\n${t.text}` : t.text,
    }));
    if (system && !foldSystem) messages.unshift({ role: 'system', content: system });
    return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: turns.at(-1)?.role === 'user' });
  };
}

function tokenizerFor(tokenizer: Tokenizer, framing: Framing): (text: string) => number[] {
  // Chat templates write BOS themselves (transformers encodes their output without
  // special tokens). The plain format takes BOS, never EOS, from the tokenizer.
  const bos = framing.kind === 'plain' && tokenizer.addBosToken ? [tokenizer.bosTokenId!] : [];
  return (text) => [...bos, ...tokenizer.encode(text, { addSpecialTokens: false })];
}

const keepsSystem = new WeakMap<Tokenizer, boolean>();

/** Whether the chat template accepts a system message and renders its text. */
function templateKeepsSystem(tokenizer: Tokenizer): boolean {
  let keeps = keepsSystem.get(tokenizer);
  if (keeps === undefined) {
    const marker = 'attune-system-probe';
    try {
      const text = tokenizer.applyChatTemplate(
        [
          { role: 'system', content: marker },
          { role: 'user', content: 'hi' },
        ],
        { addGenerationPrompt: true },
      );
      keeps = text.includes(marker);
    } catch {
      keeps = false;
    }
    keepsSystem.set(tokenizer, keeps);
  }
  return keeps;
}
