// Process-wide libtorch settings.
import { availableParallelism } from 'node:os';
import { setNumThreads, setBlasThreads } from './tensor/index.js';

/**
 * ATen's intra-op threads for a model, measured with `npm run bench` on a 2-core VM: stories260K (hidden 64)
 * trains 25% faster on one thread than on two, as its ops are too small to split; stories15M (hidden 288)
 * trains 2.2x faster on both cores than on one (with OpenMP's passive waiting, see tensor/native.ts).
 */
export const threadsFor = (hiddenSize: number): number => (hiddenSize >= 256 ? availableParallelism() : 1);

/**
 * Applies ATTUNE_THREADS (ATen) and ATTUNE_BLAS_THREADS (OpenBLAS, by default one per core) when set;
 * otherwise ATen gets threadsFor(hiddenSize) once a model is known, and 1 before.
 */
export function configureThreads(env: NodeJS.ProcessEnv = process.env, hiddenSize?: number): { threads: number; blasThreads?: number } {
  const threads = positiveInteger('ATTUNE_THREADS', env.ATTUNE_THREADS) ?? (hiddenSize ? threadsFor(hiddenSize) : 1);
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
