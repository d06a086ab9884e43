// A loaded base model: weights and tokenizer from one Hugging Face directory.
import path from 'node:path';
import { packageRoot } from './package-root.js';
import { loadTransformer, type LoadOptions } from './model/load.js';
import type { Transformer } from './model/transformer.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import { configureThreads } from './runtime.js';

/** stories260K, shipped in the repository so Attune runs with no download. */
export const embeddedBaseModelDir = path.join(packageRoot, 'models', 'stories260K');

export interface BaseModel {
  dir: string;
  name: string;
  transformer: Transformer;
  tokenizer: Tokenizer;
}

/** `tokenizer`: the directory's tokenizer when the caller has it loaded already. */
export async function loadBaseModel(dir: string, options: LoadOptions = {}, tokenizer?: Promise<Tokenizer>): Promise<BaseModel> {
  const transformer = loadTransformer(dir, options);
  configureThreads(process.env, transformer.config.hiddenSize);
  return { dir, name: path.basename(path.resolve(dir)), transformer, tokenizer: await (tokenizer ?? Tokenizer.load(dir)) };
}
