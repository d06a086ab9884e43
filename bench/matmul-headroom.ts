// How close the matrix products of a training step come to what this CPU can multiply: oneDNN's bfloat16
// rate at one block's projections (forward and backward, the step's rows), beside the AMX units' own rate
// (bench/probes/amx-peak.cc, built here with g++): on operands in cache, and with one operand streamed from
// L2 or from beyond it, as a matmul larger than the caches must. The gap to the L2-streamed rate is the room
// a better-blocked matmul would have; bench/probes/amx-matmul.cc times the addon's own AMX kernel
// (native/src/amx-kernel.h), on weights packed ahead of time as training packs them, at the same projections (in a tight loop on warm buffers; the README says what it
// gives inside a training step). On a CPU without AMX the probes say so, and where it has AVX-512 BF16
// instead, the peak probe gives that instruction's ceiling on registers alone.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/engine/package-root.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import type { BenchShape } from './shapes.js';

/** One block's projection weights as [out, in]: q/k/v fused, o, gate and up fused, down. */
export function blockProjections(shape: BenchShape): [number, number][] {
  const { hiddenSize: d, intermediateSize: ff, numHeads: heads, numKvHeads: kvHeads, headDim } = parseModelConfig(shape.config);
  return [[(heads + 2 * kvHeads) * headDim, d], [d, heads * headDim], [2 * ff, d], [d, ff]];
}

export interface AmxPeak {
  amx: boolean;
  why?: string;
  threads?: number;
  in_l1_tflops?: number;
  in_l2_tflops?: number;
  streamed_from_l2_tflops?: number;
  streamed_from_memory_tflops?: number;
  /** Without AMX, on a CPU with AVX-512 BF16: VDPBF16PS on registers alone, the ceiling there. */
  avx512_bf16_tflops?: number;
}

/** Builds and runs the probe with the given number of threads (the cores Attune's own runs use). */
export function amxPeak(threads: number): AmxPeak {
  return runProbe('amx-peak', ['-O2', '-mamx-tile', '-mamx-bf16', '-fopenmp'], [], threads) as AmxPeak;
}

export interface AmxMatmul {
  amx: boolean;
  why?: string;
  tflops?: number;
  /** The forwards alone: from tiles of Wᵀ (beside the weights), and from W's tiles (instead of them). */
  forward_ms?: number;
  one_copy_forward_ms?: number;
}

/** The addon's AMX kernel's rate at a shape's block projections, forward and backward, at its step's rows. */
export const amxMatmul = (threads: number, shape: BenchShape): AmxMatmul =>
  amxMatmulAt(threads, shape.batch * shape.seqLen, blockProjections(shape));

/** The same at any rows and [out, in] weights (multiples of 32). */
export function amxMatmulAt(threads: number, rows: number, weights: [number, number][]): AmxMatmul {
  const flags = ['-O2', '-std=c++17', '-mamx-tile', '-mamx-bf16', '-mavx512f', '-mavx512bw', '-mavx512bf16', '-fopenmp'];
  return runProbe('amx-matmul', flags, [String(rows), ...weights.flat().map(String)], threads) as AmxMatmul;
}

function runProbe(name: string, flags: string[], args: string[], threads: number): { amx: boolean; why?: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `attune-${name}-`));
  try {
    const binary = path.join(dir, name);
    const source = path.join(packageRoot, 'bench', 'probes', `${name}.cc`);
    try {
      execFileSync('g++', [...flags, source, '-o', binary], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      return { amx: false, why: `the probe did not build: ${String((error as { stderr?: Buffer }).stderr ?? error).trim().split('\n')[0]}` };
    }
    const out = execFileSync(binary, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    return JSON.parse(out.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
