// Process-wide libtorch settings.
import { setNumThreads, setBlasThreads } from './tensor/index.js';

/**
 * ATen's intra-op threads. Measured (npm run bench, 2-core VM): one ATen thread with OpenBLAS left at
 * its default pool of one thread per core was fastest for LoRA steps. ATen's threading costs more than it
 * saves on the many small elementwise ops, while the large matrix products do gain from every core.
 * ATTUNE_THREADS overrides the ATen count, ATTUNE_BLAS_THREADS OpenBLAS's.
 */
export const defaultThreads = 1;

export function configureThreads(env: NodeJS.ProcessEnv = process.env): { threads: number; blasThreads?: number } {
  const threads = positiveInteger('ATTUNE_THREADS', env.ATTUNE_THREADS) ?? defaultThreads;
  setNumThreads(threads);
  const blasThreads = positiveInteger('ATTUNE_BLAS_THREADS', env.ATTUNE_BLAS_THREADS);
  if (blasThreads) setBlasThreads(blasThreads);
  return { threads, blasThreads };
}

function positiveInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not '${value}'`);
  return n;
}
