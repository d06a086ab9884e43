// The tokenizer.ggml.* metadata llama.cpp tokenizes with, from a Hugging Face model directory:
// - a SentencePiece model (tokenizer.model): llama.cpp's "llama" vocabulary. Tokens, scores and types
//   come from the SentencePiece pieces themselves (unknown, control and byte pieces tokenize differently
//   from normal ones, and the scores order the merges), plus add_space_prefix from its normaliser;
// - a byte-level BPE tokenizer.json (Llama 3, Qwen): llama.cpp's "gpt2" vocabulary with its merges and
//   the pre-tokenizer llama.cpp knows by name;
// - neither: a model without a vocabulary ("none"), which llama.cpp runs on token ids.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../../model/config.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { gguf, type GgufValue } from './file.js';
import { UnsupportedExportError } from '../errors.js';
import { pieceTypes, readSentencePieceModel } from '../sentencepiece.js';

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** llama.cpp's named pre-tokenizers, by the split regex of tokenizer.json that identifies them. */
const bpePreTokenizers: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'llama-bpe',
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'qwen2',
};

function readJson(file: string): Record<string, any> | undefined {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}

/** Placeholder entries for ids the tokenizer does not use, as llama.cpp's converter pads them. */
function padded(vocabSize: number) {
  return {
    tokens: Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`),
    scores: new Array<number>(vocabSize).fill(-10000),
    types: new Array<number>(vocabSize).fill(pieceTypes.unused),
  };
}

function sentencePieceVocabulary(modelDir: string, config: ModelConfig): Map<string, GgufValue> {
  const model = readSentencePieceModel(path.join(modelDir, 'tokenizer.model'));
  const vocabSize = Math.max(config.vocabSize, model.pieces.length);
  const { tokens, scores, types } = padded(vocabSize);
  model.pieces.forEach((p, id) => {
    tokens[id] = p.piece;
    scores[id] = p.score;
    types[id] = p.type;
  });
  // Tokens added on top of the SentencePiece model (tokenizer_config's added_tokens_decoder); the model's own
  // pieces keep their SentencePiece type and score.
  const decoder = (readJson(path.join(modelDir, 'tokenizer_config.json'))?.added_tokens_decoder ?? {}) as Record<string, AddedToken>;
  for (const [key, added] of Object.entries(decoder)) {
    const id = Number(key);
    if (!(id >= 0 && id < vocabSize) || model.pieces[id]?.piece === added.content) continue;
    tokens[id] = added.special ? added.content : added.content.replaceAll('\u2581', ' ');
    types[id] = added.special ? pieceTypes.control : pieceTypes.userDefined;
    scores[id] = -1000;
  }
  const unknown = model.pieces.findIndex((p) => p.type === pieceTypes.unknown);
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', gguf.string('llama')],
    ['tokenizer.ggml.pre', gguf.string('default')],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.scores', gguf.float32s(scores)],
    ['tokenizer.ggml.token_type', gguf.int32s(types)],
    ['tokenizer.ggml.add_space_prefix', gguf.bool(model.addDummyPrefix)],
    ...(unknown >= 0 ? [['tokenizer.ggml.unknown_token_id', gguf.uint32(unknown)] as [string, GgufValue]] : []),
  ]);
}

function bpeVocabulary(modelDir: string, config: ModelConfig): Map<string, GgufValue> {
  const file = path.join(modelDir, 'tokenizer.json');
  const json = readJson(file)!;
  const model = json.model ?? {};
  if (model.type !== 'BPE' || model.byte_fallback) {
    throw new UnsupportedExportError(`${file}: GGUF export reads SentencePiece models (tokenizer.model) and byte-level BPE tokenizers; this one is ${model.type}${model.byte_fallback ? ' with byte fallback' : ''}`);
  }
  const splits = JSON.stringify(json.pre_tokenizer ?? {}).match(/"Regex":"((?:[^"\\]|\\.)*)"/);
  const regex = splits ? (JSON.parse(`"${splits[1]}"`) as string) : '';
  const pre = bpePreTokenizers[regex];
  if (!pre) throw new UnsupportedExportError(`${file}: its pre-tokenizer is not one llama.cpp knows by name (llama-bpe, qwen2)`);
  const added = (json.added_tokens ?? []) as AddedToken[];
  let vocabSize = config.vocabSize; // a loop, not Math.max(...ids): 150k arguments overflow the stack
  for (const id of [...Object.values(model.vocab as Record<string, number>), ...added.map((t) => t.id)]) vocabSize = Math.max(vocabSize, id + 1);
  const { tokens, types } = padded(vocabSize);
  for (const [piece, id] of Object.entries(model.vocab as Record<string, number>)) {
    tokens[id] = piece;
    types[id] = pieceTypes.normal;
  }
  for (const t of added) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? pieceTypes.control : pieceTypes.userDefined;
  }
  const merges = (model.merges ?? []) as (string | [string, string])[];
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', gguf.string('gpt2')],
    ['tokenizer.ggml.pre', gguf.string(pre)],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.token_type', gguf.int32s(types)],
    ['tokenizer.ggml.merges', gguf.strings(merges.map((m) => (typeof m === 'string' ? m : m.join(' '))))],
  ]);
}

/** The vocabulary and special-token metadata for a model directory; tokenizer is absent for a model without one. */
export function vocabularyMetadata(modelDir: string, config: ModelConfig, tokenizer: Tokenizer | undefined): Map<string, GgufValue> {
  if (!tokenizer) return new Map([['tokenizer.ggml.model', gguf.string('none')]]);
  const keys = existsSync(path.join(modelDir, 'tokenizer.model')) ? sentencePieceVocabulary(modelDir, config) : bpeVocabulary(modelDir, config);
  if (tokenizer.bosTokenId !== undefined) keys.set('tokenizer.ggml.bos_token_id', gguf.uint32(tokenizer.bosTokenId));
  const eos = tokenizer.eosTokenIds[0] ?? config.eosTokenIds[0];
  if (eos !== undefined) keys.set('tokenizer.ggml.eos_token_id', gguf.uint32(eos));
  if (tokenizer.padTokenId !== undefined) keys.set('tokenizer.ggml.padding_token_id', gguf.uint32(tokenizer.padTokenId));
  keys.set('tokenizer.ggml.add_bos_token', gguf.bool(tokenizer.addBosToken));
  keys.set('tokenizer.ggml.add_eos_token', gguf.bool(tokenizer.addEosToken));
  if (tokenizer.chatTemplate !== undefined) keys.set('tokenizer.chat_template', gguf.string(tokenizer.chatTemplate));
  return keys;
}
