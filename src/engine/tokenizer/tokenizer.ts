import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import './jinja-strip.js'; // Python's strip(chars), which the library lacks
import { tokenBytesFor, type TokenBytes } from './token-bytes.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** The fields of tokenizer_config.json that we use. */
interface TokenizerConfig {
  bos_token?: SpecialTokenSpec;
  eos_token?: SpecialTokenSpec;
  pad_token?: SpecialTokenSpec;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  clean_up_tokenization_spaces?: boolean;
  clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output?: boolean;
  chat_template?: ChatTemplateSpec;
  [key: string]: unknown;
}

/** The fields of tokenizer.json that we read ourselves (the library reads it all). */
interface TokenizerJson {
  added_tokens?: unknown[];
  model?: { type?: string };
  decoder?: Parameters<typeof tokenBytesFor>[0];
}

/** Older configs store special tokens as serialised AddedToken objects. */
type SpecialTokenSpec = string | { content: string } | null;
type ChatTemplateSpec = string | { name: string; template: string }[] | Record<string, string>;

/**
 * A Hugging Face tokenizer loaded from a model directory, with the
 * transformers-compatible bits that @huggingface/tokenizers leaves out:
 * add_bos_token/add_eos_token, generation_config EOS ids, chat templates.
 */
export class Tokenizer {
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly bosTokenId?: number;
  /** Ids that end generation: tokenizer_config's eos_token plus generation_config's eos_token_id(s). */
  readonly eosTokenIds: number[];
  readonly padTokenId?: number;
  /** One more than the largest token id, added tokens included. */
  readonly vocabSize: number;
  /** Whether `encode(text, { addSpecialTokens: true })` starts with BOS. */
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly chatTemplate?: string;

  private readonly compiledTemplate?: Template;
  /** Whether add_bos_token/add_eos_token decide the special tokens instead of tokenizer.json's post-processor. */
  private readonly specialsFromConfig: boolean;
  private readonly cleanUpSpaces: boolean;
  private readonly bytesOf: TokenBytes;

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly config: TokenizerConfig,
    generationEosIds: number[],
    chatTemplate: { source: string; compiled: Template } | undefined,
    tokenizerJson: TokenizerJson,
  ) {
    const modelType = tokenizerJson.model?.type;
    this.bytesOf = tokenBytesFor(tokenizerJson.decoder);
    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    this.bosTokenId = this.idOf(this.bosToken);
    this.padTokenId = this.idOf(tokenContent(config.pad_token));
    const configEos = this.idOf(this.eosToken);
    this.eosTokenIds = [...new Set([...(configEos === undefined ? [] : [configEos]), ...generationEosIds])];
    this.vocabSize = largestId(hf.get_vocab(true).values()) + 1;

    // transformers' Llama/Gemma tokenizers rebuild the post-processor from
    // add_bos_token/add_eos_token, overriding tokenizer.json; the library
    // ignores them. Unset flags fall back to what the post-processor does.
    const bare = hf.encode('', { add_special_tokens: true }).ids;
    this.addBosToken = this.bosTokenId !== undefined && (config.add_bos_token ?? bare[0] === this.bosTokenId);
    this.addEosToken = configEos !== undefined && (config.add_eos_token ?? bare.at(-1) === configEos);
    this.specialsFromConfig = typeof config.add_bos_token === 'boolean' || typeof config.add_eos_token === 'boolean';

    this.chatTemplate = chatTemplate?.source;
    this.compiledTemplate = chatTemplate?.compiled;
    // transformers 5 skips this WordPiece-era cleanup for BPE models (Llama 3 sets it), where it would turn
    // "a , b" into "a, b": a trained answer would not come back as written.
    this.cleanUpSpaces =
      (config.clean_up_tokenization_spaces ?? false) &&
      (modelType !== 'BPE' || config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true);
  }

  /**
   * Loads tokenizer.json and tokenizer_config.json, plus generation_config.json and
   * chat_template.jinja / chat_template.json when present. A chat template file
   * takes precedence over tokenizer_config's chat_template, as in transformers.
   */
  static async load(modelDir: string): Promise<Tokenizer> {
    const tokenizerJson = (await readJson(modelDir, 'tokenizer.json', true)) as TokenizerJson;
    const config = ((await readJson(modelDir, 'tokenizer_config.json', false)) ?? {}) as TokenizerConfig;
    const generationConfig = (await readJson(modelDir, 'generation_config.json', false)) as
      | { eos_token_id?: number | number[] | null }
      | undefined;
    const templateJson = (await readJson(modelDir, 'chat_template.json', false)) as { chat_template?: ChatTemplateSpec } | undefined;
    const template =
      (await readText(modelDir, 'chat_template.jinja')) ?? pickTemplate(templateJson?.chat_template) ?? pickTemplate(config.chat_template);

    let hf: HfTokenizer;
    try {
      // The library iterates added_tokens unconditionally.
      hf = new HfTokenizer({ ...tokenizerJson, added_tokens: tokenizerJson.added_tokens ?? [] }, config);
    } catch (err) {
      throw new Error(`${join(modelDir, 'tokenizer.json')}: unsupported tokenizer: ${(err as Error).message}`);
    }
    let compiled: Template | undefined;
    try {
      compiled = template === undefined ? undefined : new Template(template);
    } catch (err) {
      throw new Error(`${modelDir}: invalid chat template: ${(err as Error).message}`);
    }
    const eos = generationConfig?.eos_token_id;
    const generationEosIds = eos == null ? [] : Array.isArray(eos) ? eos : [eos];
    return new Tokenizer(hf, config, generationEosIds, compiled && { source: template!, compiled }, tokenizerJson);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const addSpecialTokens = opts.addSpecialTokens ?? true;
    if (!addSpecialTokens || !this.specialsFromConfig) {
      return this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    }
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (this.addBosToken) ids.unshift(this.bosTokenId!);
    if (this.addEosToken) ids.push(this.idOf(this.eosToken)!);
    return ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library throws on an empty list
    return this.hf.decode(ids, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      // The library defaults to true; transformers has defaulted to false since 4.45.
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The bytes token `id` stands for on its own (token-bytes.ts); empty for an id outside the vocabulary. */
  tokenBytes(id: number): Uint8Array {
    const token = this.hf.id_to_token(id);
    return token === undefined ? new Uint8Array() : this.bytesOf(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /**
   * Renders messages with the chat template, as transformers' apply_chat_template does
   * (`kwargs` are extra template variables, e.g. enable_thinking); throws if the tokenizer
   * has none or the template calls raise_exception (@huggingface/jinja defines it, and
   * refuses a caller-supplied one).
   */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean; kwargs?: Record<string, unknown> }): string {
    if (!this.compiledTemplate) throw new Error('this tokenizer has no chat template');
    try {
      return this.compiledTemplate.render({
        ...opts.kwargs,
        messages,
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
        pad_token: tokenContent(this.config.pad_token) ?? '',
        add_generation_prompt: opts.addGenerationPrompt,
      });
    } catch (err) {
      throw new Error(`chat template: ${(err as Error).message}`);
    }
  }

  private idOf(token: string | undefined): number | undefined {
    return token === undefined ? undefined : this.hf.token_to_id(token);
  }
}

/** Not Math.max(...ids): spreading a real vocabulary (150k+ ids) overflows the call stack. */
function largestId(ids: Iterable<number>): number {
  let largest = -1;
  for (const id of ids) if (id > largest) largest = id;
  return largest;
}

function tokenContent(spec: SpecialTokenSpec | undefined): string | undefined {
  if (spec == null) return undefined;
  return typeof spec === 'string' ? spec : spec.content;
}

/** A list or map of named templates means several; use "default", else the first. */
function pickTemplate(spec: ChatTemplateSpec | undefined): string | undefined {
  if (spec == null) return undefined;
  if (typeof spec === 'string') return spec;
  if (Array.isArray(spec)) return (spec.find((t) => t.name === 'default') ?? spec[0])?.template;
  return spec['default'] ?? Object.values(spec)[0];
}

async function readText(dir: string, file: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, file), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${join(dir, file)}: cannot read: ${(err as Error).message}`);
  }
}

async function readJson(dir: string, file: string, required: boolean): Promise<unknown> {
  const path = join(dir, file);
  const text = await readText(dir, file);
  if (text === undefined) {
    if (required) throw new Error(`${dir}: no ${file} (is this a Hugging Face model directory?)`);
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: invalid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return value;
}
