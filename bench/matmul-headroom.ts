// How close the matrix products of a training step come to what this CPU can multiply: oneDNN's bfloat16
// rate at one block's projections (forward and backward, the step's rows), beside the AMX units' own rate
// (bench/probes/amx-peak.cc, built here with g++): on operands in cache, and with one operand streamed from
// L2 or from beyond it, as a matmul larger than the caches must. The gap to the L2-streamed rate is the room
// a better-blocked matmul would have; on a CPU without AMX the probe says so.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/engine/package-root.js';

export interface AmxPeak {
  amx: boolean;
  why?: string;
  threads?: number;
  in_l1_tflops?: number;
  in_l2_tflops?: number;
  streamed_from_l2_tflops?: number;
  streamed_from_memory_tflops?: number;
}

/** Builds and runs the probe with the given number of threads (the cores Attune's own runs use). */
export function amxPeak(threads: number): AmxPeak {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'attune-amx-peak-'));
  try {
    const binary = path.join(dir, 'amx-peak');
    const source = path.join(packageRoot, 'bench', 'probes', 'amx-peak.cc');
    try {
      execFileSync('g++', ['-O2', '-mamx-tile', '-mamx-bf16', '-fopenmp', source, '-o', binary], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      return { amx: false, why: `the probe did not build: ${String((error as { stderr?: Buffer }).stderr ?? error).trim().split('\n')[0]}` };
    }
    const out = execFileSync(binary, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    return JSON.parse(out.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
