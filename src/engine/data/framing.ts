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
 * Trained spans. Each model turn is trained as the template frames it when
 * it is the last turn: its prompt is the conversation before it rendered as a
 * generation prompt (exactly what `framePrompt` gives at inference), and its
 * trained text is what the rendering of the conversation through that turn
 * adds to the prompt (the turn's text and its closing tokens). The trained
 * text must start with the turn's own text: template scaffolding (Qwen3's
 * empty think block) belongs to the prompt, never to the answer, or
 * generation would return it. Rendering passes `chatTemplateKwargs`
 * (enable_thinking=false) to every template; those that do not read it
 * ignore it.
 *
 * Many templates render a turn differently once later turns follow (Qwen3
 * drops the think block of answered turns). So an example becomes one or more
 * sequences: from the last model turn back, a turn is trained inside the
 * following turn's sequence when that sequence starts with the turn's whole
 * rendering, else it starts a sequence of its own. Prefix-preserving
 * templates (Llama, Gemma, the plain format) give one sequence, as TRL's
 * assistant-only loss would; Qwen3 gives one per model turn, as step-wise
 * multi-turn training does. Positions restart and attention stays inside
 * each sequence (`FramedExample.starts`).
 *
 * Tokenization is not compositional (SentencePiece's `Prepend ▁` normaliser
 * makes encode("a") + encode("b") differ from encode("ab"), and BPE merges
 * can cross a join), so we never concatenate token lists within a sequence.
 * We tokenize the sequence's text once, then tokenize each prompt and each
 * turn's rendering and require its ids to be a prefix of the sequence's; the
 * prefix lengths are the span boundaries. When a boundary does not fall on a
 * token boundary, or the template's renderings do not nest, we throw a
 * FramingError rather than train on a misaligned split.
 */
import type { ChatMessage, Tokenizer } from '../tokenizer/tokenizer.js';
import type { Example, Turn } from './examples.js';

export type Framing =
  | { kind: 'chat-template'; templateKwargs?: Record<string, unknown> }
  | { kind: 'plain'; terminator: string };

/**
 * Variables every chat template is rendered with, as transformers' apply_chat_template(**kwargs) passes
 * them. Attune tunes answers, not reasoning: Qwen3's template reads enable_thinking=false and then frames
 * the model's turn with an empty think block in the prompt.
 */
export const chatTemplateKwargs: Readonly<Record<string, unknown>> = { enable_thinking: false };

/** A target that contributes no loss (the PyTorch cross-entropy convention). */
export const IGNORE_INDEX = -100;

export interface FramedExample {
  ids: number[];
  /** targets[i] is the token to predict at position i (that is, ids[i + 1]) when trained, else IGNORE_INDEX. */
  targets: number[];
  /**
   * Where each sequence after the first begins, when the example frames as several (see the header):
   * positions restart there and attention does not cross. Absent for one sequence.
   */
  starts?: number[];
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
  if (tokenizer.chatTemplate !== undefined) return { kind: 'chat-template', templateKwargs: { ...chatTemplateKwargs } };
  const outputs = examples.flatMap((e) => [...e.turns.filter((t) => t.role === 'model').map((t) => t.text), ...(e.rejected === undefined ? [] : [e.rejected])]);
  const terminator = PLAIN_TERMINATORS.find((t) => !outputs.some((o) => o.includes(t))) ?? PLAIN_TERMINATORS.at(-1)!;
  return { kind: 'plain', terminator };
}

/** Text at which generation must stop; the text before it is the output. EOS ids stop it too. */
export function stopSequencesFor(framing: Framing): string[] {
  return framing.kind === 'plain' ? [framing.terminator] : [];
}

/** Validates a descriptor read back from JSON (adapters from before templateKwargs have none). */
export function parseFraming(value: unknown): Framing {
  const v = value as Record<string, unknown> | null;
  if (v?.['kind'] === 'chat-template') {
    const kwargs = v['templateKwargs'];
    if (kwargs === undefined) return { kind: 'chat-template' };
    if (typeof kwargs === 'object' && kwargs !== null && !Array.isArray(kwargs)) {
      return { kind: 'chat-template', templateKwargs: kwargs as Record<string, unknown> };
    }
  }
  if (v?.['kind'] === 'plain' && typeof v['terminator'] === 'string' && v['terminator'] !== '') {
    return { kind: 'plain', terminator: v['terminator'] };
  }
  throw new Error(`invalid framing descriptor: ${JSON.stringify(value)}`);
}

/** One model turn: its prompt and its rendering as the last turn (the prompt, then the trained text). */
interface ModelTurn {
  /** 1-based, among all turns. */
  number: number;
  prompt: string;
  through: string;
}

/** Token ids of a whole example, with targets on the model turns only. */
export function frameExample(tokenizer: Tokenizer, framing: Framing, example: Example): FramedExample {
  const render = renderer(tokenizer, framing, example.systemInstruction);
  const tokenize = tokenizerFor(tokenizer, framing);
  const modelTurns = example.turns.flatMap((turn, i) => (turn.role === 'model' ? [modelTurn(render, example.turns, i)] : []));

  const sequences: { text: string; turns: ModelTurn[] }[] = [];
  for (const turn of modelTurns.reverse()) {
    const following = sequences[0];
    if (following?.text.startsWith(turn.through)) following.turns.push(turn);
    else sequences.unshift({ text: turn.through, turns: [turn] });
  }

  const parts = sequences.map((sequence) => frameSequence(sequence.text, sequence.turns, tokenize));
  const framed: FramedExample = { ids: parts.flatMap((p) => p.ids), targets: parts.flatMap((p) => p.targets) };
  if (parts.length > 1) {
    let offset = 0;
    framed.starts = parts.slice(0, -1).map((p) => (offset += p.ids.length));
  }
  return framed;
}

/**
 * One completion of a conversation (its turns end with the user's), framed as one sequence with targets on the
 * completion only: the model turn as `frameExample` trains it when it is the last turn. Preference tuning
 * scores completions this way, so a completion's log-probability is the one generation would give it.
 */
export function frameCompletion(tokenizer: Tokenizer, framing: Framing, conversation: PromptConversation, completion: string): FramedExample {
  if (conversation.turns.at(-1)?.role !== 'user') throw new FramingError("a prompt must end with the user's turn");
  const render = renderer(tokenizer, framing, conversation.systemInstruction);
  const turns: Turn[] = [...conversation.turns, { role: 'model', text: completion }];
  const turn = modelTurn(render, turns, turns.length - 1);
  return frameSequence(turn.through, [turn], tokenizerFor(tokenizer, framing));
}

/** Model turn `index` (0-based in `turns`) as the template frames it when it is the last turn. */
function modelTurn(render: Render, turns: Turn[], index: number): ModelTurn {
  const prompt = render(turns.slice(0, index));
  const through = render(turns.slice(0, index + 1));
  const number = index + 1;
  if (!through.startsWith(prompt)) {
    throw new FramingError(`the chat template's generation prompt is not the start of its rendering of turn ${number}`);
  }
  const trained = through.slice(prompt.length);
  const text = turns[index]!.text;
  // Templates may strip the text's surrounding whitespace; anything else before it is scaffolding the prompt lacks.
  if (![text, text.trim(), text.trimStart(), text.trimEnd()].some((rendered) => trained.startsWith(rendered))) {
    const before = trained.slice(0, Math.max(0, trained.indexOf(text.trim())));
    throw new FramingError(
      `the chat template puts ${JSON.stringify(before || trained.slice(0, 40))} before the text of turn ${number}, ` +
        'and its generation prompt does not: the model would learn to write it',
    );
  }
  return { number, prompt, through };
}

function frameSequence(text: string, turns: ModelTurn[], tokenize: (text: string) => number[]): FramedExample {
  const ids = tokenize(text);
  const targets = new Array<number>(ids.length).fill(IGNORE_INDEX);
  const boundary = (prefix: string, where: string): number => {
    const prefixIds = prefix === text ? ids : tokenize(prefix);
    if (!prefixIds.every((id, i) => id === ids[i])) {
      throw new FramingError(`${where} is not on a token boundary (character ${prefix.length})`);
    }
    return prefixIds.length;
  };
  for (const turn of turns) {
    const start = Math.max(boundary(turn.prompt, `the start of turn ${turn.number}`), 1);
    const end = boundary(turn.through, `the end of turn ${turn.number}`);
    for (let p = start; p < end; p++) targets[p - 1] = ids[p]!;
  }
  return { ids, targets };
}

/**
 * Refuses token ids past the model's embedding table. A tokenizer may know more tokens than its model embeds
 * (Gemma 3 1B's <image_soft_token> is id 262144 of a 262,144-row table), and text can spell them.
 */
export function checkEmbeddable(ids: number[], vocabSize: number, tokenizer: Tokenizer): void {
  for (const id of ids) {
    if (id >= vocabSize) {
      throw new FramingError(
        `the text contains ${JSON.stringify(tokenizer.idToToken(id))} (token ${id}), which this model has no embedding for (its vocabulary has ${vocabSize} tokens)`,
      );
    }
  }
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
  const kwargs = framing.templateKwargs ?? {};
  const foldSystem = system !== undefined && system !== '' && !templateKeepsSystem(tokenizer, kwargs);
  return (turns) => {
    const messages: ChatMessage[] = turns.map((t, i) => ({
      role: t.role === 'model' ? 'assistant' : 'user',
      content: i === 0 && foldSystem ? `${system}\n\n${t.text}` : t.text,
    }));
    if (system && !foldSystem) messages.unshift({ role: 'system', content: system });
    return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: turns.at(-1)?.role === 'user', kwargs });
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
function templateKeepsSystem(tokenizer: Tokenizer, kwargs: Record<string, unknown>): boolean {
  let keeps = keepsSystem.get(tokenizer);
  if (keeps === undefined) {
    const marker = 'attune-system-probe';
    try {
      const text = tokenizer.applyChatTemplate(
        [
          { role: 'system', content: marker },
          { role: 'user', content: 'hi' },
        ],
        { addGenerationPrompt: true, kwargs },
      );
      keeps = text.includes(marker);
    } catch {
      keeps = false;
    }
    keepsSystem.set(tokenizer, keeps);
  }
  return keeps;
}
