// Process-wide libtorch settings.
import { setNumThreads } from './tensor/index.js';

/**
 * Intra-op threads. The default of 1 was measured (see bench/): on this class of machine small LoRA
 * steps run faster on one thread than on two, as libtorch's per-op threading costs more than it saves.
 * ATTUNE_THREADS overrides it.
 */
export const defaultThreads = 1;

export function configureThreads(threads = Number(process.env.ATTUNE_THREADS ?? defaultThreads)): number {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`ATTUNE_THREADS must be a positive integer, not '${process.env.ATTUNE_THREADS}'`);
  setNumThreads(threads);
  return threads;
}
