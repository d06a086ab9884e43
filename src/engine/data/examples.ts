import { MAX_INPUT_CHARS, MAX_OUTPUT_CHARS, charCount } from './limits.js';

export type Role = 'user' | 'model';

export interface Turn {
  role: Role;
  text: string;
}

/**
 * A training example: turns alternate user/model, starting with the user's and ending with the model's.
 * A preference example (Vertex preferenceOptimizationSpec) is the same conversation ending with the preferred
 * completion, plus the dispreferred one in `rejected`.
 */
export interface Example {
  systemInstruction?: string;
  turns: Turn[];
  rejected?: string;
}

/** What a dataset's lines hold: supervised examples, or preference pairs (`{contents, completions}`). */
export type DatasetKind = 'supervised' | 'preference';

/**
 * Bad training data. `line` is the 1-based JSONL line, `index` the 0-based
 * position of the example in the dataset (blank lines not counted); both are
 * absent for whole-dataset problems.
 */
export class DatasetError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly index?: number,
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

export interface ParseOptions {
  maxInputChars?: number;
  maxOutputChars?: number;
  /**
   * What to do with an example over a length limit: 'throw' (the default)
   * fails the dataset; 'skip' leaves it out and lists it in `skipped`, as
   * Vertex does. Malformed examples always throw.
   */
  overLength?: 'throw' | 'skip';
  /** Most examples (non-blank lines or objects, over-long ones included) the dataset may hold. */
  maxExamples?: number;
  /** 'supervised' by default. */
  kind?: DatasetKind;
}

export interface SkippedExample {
  line?: number;
  index: number;
  reason: string;
}

export interface Dataset {
  examples: Example[];
  /** Where each kept example came from: its JSONL line (absent for parsed objects) and 0-based index. */
  positions: { line?: number; index: number }[];
  /** Over-length examples left out; empty unless `overLength: 'skip'`. */
  skipped: SkippedExample[];
}

/** More examples than ParseOptions.maxExamples allows. */
export class TooManyExamplesError extends DatasetError {
  constructor(readonly limit: number) {
    super(`the dataset has more than ${limit} examples`);
    this.name = 'TooManyExamplesError';
  }
}

/** Parses JSONL training data, one example per non-blank line. */
export function parseJsonl(text: string, opts: ParseOptions = {}): Dataset {
  return collect(jsonlLines(text), opts);
}

/**
 * What a JSONL dataset holds, judged by its first non-blank line: preference pairs when that line is an object with
 * "completions", else supervised examples (a line that is not JSON is left for the parser to report).
 */
export function jsonlKind(text: string): DatasetKind {
  let first: unknown;
  try {
    first = jsonlLines(text)[0]?.value();
  } catch {
    return 'supervised';
  }
  return typeof first === 'object' && first !== null && !Array.isArray(first) && 'completions' in first ? 'preference' : 'supervised';
}

/** Parses JSONL arriving line by line (for example from `readline`), so a large file is never one string. */
export async function parseJsonlLines(lines: AsyncIterable<string>, opts: ParseOptions = {}): Promise<Dataset> {
  const collector = new Collector(opts);
  let line = 0;
  for await (const raw of lines) {
    const item = jsonlItem(raw, ++line);
    if (item) collector.add(item);
  }
  return collector.finish();
}

/** The lines of UTF-8 text arriving in chunks (split on '\n'; a line's '\r' stays, and JSON ignores it). */
export async function* utf8Lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending: string[] = []; // pieces of a line that spans chunks, joined once (never quadratic)
  for await (const chunk of chunks) {
    const text = decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      pending.push(text.slice(start, end));
      yield pending.join('');
      pending = [];
      start = end + 1;
    }
    if (start < text.length) pending.push(text.slice(start));
  }
  pending.push(decoder.decode());
  yield pending.join('');
}

/**
 * The non-blank lines of a JSONL text with their 1-based numbers. Each line's JSON is parsed only when
 * asked for, so that errors come in line order; a parse error is a DatasetError naming the line.
 */
export function jsonlLines(text: string): { line: number; value: () => unknown }[] {
  const lines: { line: number; value: () => unknown }[] = [];
  text.split('\n').forEach((raw, i) => {
    const item = jsonlItem(raw, i + 1);
    if (item) lines.push(item);
  });
  return lines;
}

/** One JSONL line, undefined when blank (a BOM before line 1 is ignored). */
function jsonlItem(raw: string, line: number): { line: number; value: () => unknown } | undefined {
  if (line === 1) raw = raw.replace(/^\uFEFF/, '');
  if (raw.trim() === '') return undefined;
  const value = () => {
    try {
      return JSON.parse(raw) as unknown;
    } catch (err) {
      throw new DatasetError(`line ${line}: invalid JSON: ${jsonProblem(err as Error)}`, line);
    }
  };
  return { line, value };
}

/**
 * What is wrong with a line's JSON, without V8's quote of the line itself ("Unexpected token 'r',
 * "root:x:0:0"... is not valid JSON"): an error names the line and the problem, never the file's text.
 */
function jsonProblem(error: Error): string {
  return error.message.replace(/, ".*"(\.\.\.)? is not valid JSON$/su, '');
}

/** Parses examples given as objects (API callers); errors name "example N", 1-based. */
export function parseExamples(values: unknown[], opts: ParseOptions = {}): Dataset {
  return collect(values.map((value) => ({ value: () => value })), opts);
}

/** Parses one example in any accepted shape; errors start with `where`, e.g. "line 3". */
export function parseExample(obj: unknown, where: string): Example {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail(where, 'expected a JSON object');
  const o = obj as Record<string, unknown>;
  let example: Example;
  if ('completions' in o) fail(where, 'a preference example ({"contents", "completions"}) is for preference tuning (Vertex AI\'s preferenceOptimizationSpec), not supervised tuning');
  if ('contents' in o) example = fromContents(o, where);
  else if ('messages' in o) example = fromMessages(o, where);
  else if (INPUT_KEYS.some((k) => k in o) || OUTPUT_KEYS.some((k) => k in o)) example = fromInputOutput(o, where);
  else fail(where, 'unrecognised example; expected {"text_input", "output"}, {"contents": [...]} or {"messages": [...]}');
  checkTurns(example.turns, where);
  return example;
}

/** Returns why the example breaks a length limit, or undefined. */
export function lengthProblem(example: Example, limits: Pick<ParseOptions, 'maxInputChars' | 'maxOutputChars'> = {}): string | undefined {
  const maxInput = limits.maxInputChars ?? MAX_INPUT_CHARS;
  const maxOutput = limits.maxOutputChars ?? MAX_OUTPUT_CHARS;
  const input = example.turns
    .filter((t) => t.role === 'user')
    .reduce((n, t) => n + charCount(t.text), charCount(example.systemInstruction ?? ''));
  if (input > maxInput) return `an input is ${input} characters; the limit is ${maxInput}`;
  const outputs = [...example.turns.filter((t) => t.role === 'model').map((t) => t.text), ...(example.rejected === undefined ? [] : [example.rejected])];
  for (const output of outputs) {
    const n = charCount(output);
    if (n > maxOutput) return `an output is ${n} characters; the limit is ${maxOutput}`;
  }
  return undefined;
}

/** An example to parse: a JSONL line (its JSON parsed lazily) or an object from a request body. */
type Item = { value: () => unknown; line?: number };

function collect(items: Item[], opts: ParseOptions): Dataset {
  const collector = new Collector(opts);
  for (const item of items) collector.add(item);
  return collector.finish();
}

/** Parses examples one at a time, keeping those within the limits, until finish(). */
class Collector {
  private readonly examples: Example[] = [];
  private readonly positions: Dataset['positions'] = [];
  private readonly skipped: SkippedExample[] = [];
  private count = 0;

  constructor(private readonly opts: ParseOptions) {}

  add({ value, line }: Item): void {
    const index = this.count++;
    if (this.opts.maxExamples !== undefined && this.count > this.opts.maxExamples) throw new TooManyExamplesError(this.opts.maxExamples);
    const where = line === undefined ? `example ${index + 1}` : `line ${line}`;
    let example: Example;
    try {
      example = this.opts.kind === 'preference' ? parsePreferenceExample(value(), where) : parseExample(value(), where);
    } catch (err) {
      if (err instanceof DatasetError) throw new DatasetError(err.message, line, index);
      throw err;
    }
    const reason = lengthProblem(example, this.opts);
    if (reason === undefined) {
      this.examples.push(example);
      this.positions.push({ line, index });
    } else if (this.opts.overLength === 'skip') this.skipped.push({ line, index, reason });
    else throw new DatasetError(`${where}: ${reason}`, line, index);
  }

  finish(): Dataset {
    const { examples, positions, skipped } = this;
    if (this.count === 0) throw new DatasetError('the dataset has no examples');
    if (examples.length === 0) throw new DatasetError(`the dataset has no examples within the length limits (${skipped.length} skipped)`);
    return { examples, positions, skipped };
  }
}

const INPUT_KEYS = ['text_input', 'textInput', 'input_text', 'inputText'];
const OUTPUT_KEYS = ['output', 'output_text', 'outputText'];

function fromInputOutput(o: Record<string, unknown>, where: string): Example {
  const input = firstKey(o, INPUT_KEYS);
  const output = firstKey(o, OUTPUT_KEYS);
  if (input === undefined) fail(where, `missing the input ("${INPUT_KEYS.join('", "')}")`);
  if (output === undefined) fail(where, `missing the output ("${OUTPUT_KEYS.join('", "')}")`);
  return {
    turns: [
      { role: 'user', text: expectString(o[input], where, input) },
      { role: 'model', text: expectString(o[output], where, output) },
    ],
  };
}

/**
 * A preference line: `{systemInstruction?, contents: [... ending with the user's turn], completions: [{score,
 * completion: {role: "model", parts}}, {score, completion}]}`, exactly one preferred (the higher score) and one
 * dispreferred completion, as Vertex's preference tuning takes them.
 */
export function parsePreferenceExample(obj: unknown, where: string): Example {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail(where, 'expected a JSON object');
  const o = obj as Record<string, unknown>;
  if (!('contents' in o)) fail(where, 'a preference example needs "contents" (the prompt) and "completions"');
  const prompt = fromContents(o, where);
  const turns = prompt.turns;
  if (turns.length === 0) fail(where, 'the example has no turns');
  if (turns[0]!.role !== 'user') fail(where, "the first turn must be the user's");
  turns.forEach((turn, i) => {
    if (i > 0 && turn.role === turns[i - 1]!.role) fail(where, 'roles must alternate user/model');
  });
  if (turns.at(-1)!.role !== 'user') fail(where, "the contents must end with the user's turn: the completions answer it");
  const completions = o['completions'];
  if (!Array.isArray(completions) || completions.length !== 2) {
    fail(where, '"completions" must hold exactly two completions, one preferred and one dispreferred');
  }
  const scored = completions.map((c, i) => completionOf(c, where, `completions[${i}]`));
  if (scored[0]!.score === scored[1]!.score) fail(where, 'the two completions have the same score: the preferred one must score higher');
  const [chosen, rejected] = scored[0]!.score > scored[1]!.score ? scored : [scored[1]!, scored[0]!];
  return { ...prompt, turns: [...turns, { role: 'model', text: chosen!.text }], rejected: rejected!.text };
}

function completionOf(value: unknown, where: string, at: string): { score: number; text: string } {
  if (typeof value !== 'object' || value === null) fail(where, `${at} must be an object`);
  const c = value as Record<string, unknown>;
  const score = typeof c['score'] === 'string' && c['score'].trim() !== '' ? Number(c['score']) : c['score'];
  if (typeof score !== 'number' || !Number.isFinite(score)) fail(where, `${at}.score must be a number`);
  const completion = c['completion'];
  if (typeof completion !== 'object' || completion === null) fail(where, `${at}.completion must be a Content ({"role": "model", "parts": [...]})`);
  const content = completion as Record<string, unknown>;
  if (content['role'] !== undefined && String(content['role']).toLowerCase() !== 'model') fail(where, `${at}.completion.role must be "model"`);
  const text = partsText(content['parts'], where, `${at}.completion.parts`);
  if (text === '') fail(where, `${at}.completion is empty`);
  return { score, text };
}

function fromContents(o: Record<string, unknown>, where: string): Example {
  const contents = o['contents'];
  if (!Array.isArray(contents)) fail(where, '"contents" must be an array');
  const turns = contents.map((content, i): Turn => {
    const at = `contents[${i}]`;
    if (typeof content !== 'object' || content === null) fail(where, `${at} must be an object`);
    const c = content as Record<string, unknown>;
    const role = typeof c['role'] === 'string' ? c['role'].toLowerCase() : undefined;
    if (role !== 'user' && role !== 'model') fail(where, `${at}.role must be "user" or "model"`);
    return { role, text: partsText(c['parts'], where, `${at}.parts`) };
  });
  const system = o['systemInstruction'] ?? o['system_instruction'];
  const example: Example = { turns };
  if (system != null) example.systemInstruction = systemText(system, where);
  return example;
}

function fromMessages(o: Record<string, unknown>, where: string): Example {
  const messages = o['messages'];
  if (!Array.isArray(messages)) fail(where, '"messages" must be an array');
  const system: string[] = [];
  const turns: Turn[] = [];
  messages.forEach((message, i) => {
    const at = `messages[${i}]`;
    if (typeof message !== 'object' || message === null) fail(where, `${at} must be an object`);
    const m = message as Record<string, unknown>;
    const role = typeof m['role'] === 'string' ? m['role'].toLowerCase() : undefined;
    const text = messageText(m['content'], where, `${at}.content`);
    if (role === 'system') {
      if (turns.length > 0) fail(where, `${at}: system messages must come before the others`);
      system.push(text);
    } else if (role === 'user') turns.push({ role: 'user', text });
    else if (role === 'assistant' || role === 'model') turns.push({ role: 'model', text });
    else fail(where, `${at}.role must be "system", "user", "assistant" or "model"`);
  });
  const example: Example = { turns };
  if (system.length > 0) example.systemInstruction = system.join('\n');
  return example;
}

function checkTurns(turns: Turn[], where: string): void {
  if (turns.length === 0) fail(where, 'the example has no turns');
  if (turns[0]!.role !== 'user') fail(where, "the first turn must be the user's");
  turns.forEach((turn, i) => {
    if (i > 0 && turn.role === turns[i - 1]!.role) fail(where, 'roles must alternate user/model');
    if (turn.role === 'model' && turn.text === '') fail(where, 'a model turn is empty');
  });
  if (turns.at(-1)!.role !== 'model') fail(where, "the last turn must be the model's");
}

/** systemInstruction is a Content ({role?, parts}); a bare string is accepted too. */
function systemText(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) fail(where, 'systemInstruction must be an object with "parts"');
  return partsText((value as Record<string, unknown>)['parts'], where, 'systemInstruction.parts');
}

/** Gemini parts: an array of {text} or a single {text}; the texts concatenate. */
function partsText(parts: unknown, where: string, at: string): string {
  const list = Array.isArray(parts) ? parts : parts != null ? [parts] : [];
  if (list.length === 0) fail(where, `${at} is missing or empty`);
  return list
    .map((part, i) => {
      const text = typeof part === 'object' && part !== null ? (part as Record<string, unknown>)['text'] : undefined;
      if (typeof text !== 'string') fail(where, `${at}[${i}] must be a text part ({"text": "..."})`);
      return text;
    })
    .join('');
}

/** OpenAI-style content: a string, or an array of {type: "text", text} parts. */
function messageText(content: unknown, where: string, at: string): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return partsText(content, where, at);
  fail(where, `${at} must be a string`);
}

function firstKey(o: Record<string, unknown>, keys: string[]): string | undefined {
  return keys.find((k) => k in o);
}

function expectString(value: unknown, where: string, key: string): string {
  if (typeof value !== 'string') fail(where, `"${key}" must be a string`);
  return value;
}

function fail(where: string, message: string): never {
  throw new DatasetError(`${where}: ${message}`);
}
