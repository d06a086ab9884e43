// A loaded base model: weights and tokenizer from one Hugging Face directory, placed on a device in a
// compute dtype (see placement.ts for what `auto` picks).
import path from 'node:path';
import { packageRoot } from './package-root.js';
import { loadTransformer, readModelConfig } from './model/load.js';
import { parameterCount } from './model/config.js';
import type { Transformer } from './model/transformer.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import { configureThreads } from './runtime.js';
import { resolvePlacement, type Placement, type PlacementRequest } from './placement.js';

/** stories260K, shipped in the repository so Attune runs with no download. */
export const embeddedBaseModelDir = path.join(packageRoot, 'models', 'stories260K');

export interface BaseModel {
  dir: string;
  name: string;
  transformer: Transformer;
  tokenizer: Tokenizer;
  /** The device and dtype it was loaded in, and why. */
  placement: Placement;
}

/** `tokenizer`: the directory's tokenizer when the caller has it loaded already. */
export async function loadBaseModel(dir: string, request: PlacementRequest = {}, tokenizer?: Promise<Tokenizer>): Promise<BaseModel> {
  const config = readModelConfig(dir);
  const placement = resolvePlacement(request, parameterCount(config));
  const transformer = loadTransformer(dir, placement);
  configureThreads(process.env, transformer.config.hiddenSize);
  return { dir, name: path.basename(path.resolve(dir)), transformer, tokenizer: await (tokenizer ?? Tokenizer.load(dir)), placement };
}
