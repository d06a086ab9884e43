// Where a model runs and in which dtype. `auto` takes a CUDA GPU when one is visible; the dtype is
// bfloat16 where this device multiplies bfloat16 much faster than float32, decided by a short matmul
// probe (never by a list of CPU or GPU models), except for tiny models, which run faster in float32.
import { cudaDeviceCount, getNumThreads, libtorchVersion, noGrad, ones, randn, setNumThreads, tidy, type DType } from './tensor/index.js';

export const deviceChoices = ['auto', 'cpu', 'cuda'] as const;
export const dtypeChoices = ['auto', 'float32', 'bfloat16', 'float16'] as const;
export type DtypeChoice = (typeof dtypeChoices)[number];
export type ComputeDtype = Exclude<DtypeChoice, 'auto'>;

export interface PlacementRequest {
  /** 'auto', 'cpu', 'cuda' or 'cuda:N'. */
  device?: string;
  dtype?: DtypeChoice;
}

export interface Placement {
  device: string;
  dtype: ComputeDtype;
  /** Why, in words: what was asked for or what the probe measured. */
  reason: string;
}

/**
 * Below this many parameters float32 wins even where bfloat16 matmuls are fast: the products are too
 * small for their speed to matter, and casts and norms dominate (stories260K and stories15M train
 * faster in float32 on an AMX CPU, see the README's figures).
 */
export const float32BelowParameters = 50e6;

/** bfloat16 is chosen when its matmuls run at least this many times as fast as float32's. */
const bf16Speedup = 2;

export class PlacementError extends Error {}

/** Checks a device name: 'auto', 'cpu', 'cuda' or 'cuda:N'. */
export function parseDevice(device: string): string {
  if (device === 'auto' || device === 'cpu' || /^cuda(:\d+)?$/.test(device)) return device;
  throw new PlacementError(`unknown device '${device}'; use auto, cpu, cuda or cuda:N`);
}

export function parseDtype(dtype: string): DtypeChoice {
  if ((dtypeChoices as readonly string[]).includes(dtype)) return dtype as DtypeChoice;
  throw new PlacementError(`unknown dtype '${dtype}'; use ${dtypeChoices.join(', ')}`);
}

/** Resolves `auto` for a model of the given size (parameters; undefined when unknown). */
export function resolvePlacement(request: PlacementRequest = {}, parameters?: number): Placement {
  const asked = parseDevice(request.device ?? 'auto');
  const gpus = cudaDeviceCount();
  let device: string;
  let why: string;
  if (asked === 'auto') {
    device = gpus > 0 ? 'cuda:0' : 'cpu';
    why = gpus > 0 ? `a CUDA GPU is visible (${gpus})` : 'no CUDA GPU is visible';
  } else {
    device = asked === 'cuda' ? 'cuda:0' : asked;
    const index = device.startsWith('cuda') ? Number(device.slice(5)) : -1;
    if (index >= 0 && index >= gpus) {
      throw new PlacementError(
        gpus === 0
          ? `device '${asked}' is not available: no CUDA GPU, or a libtorch built without CUDA (see README, GPU)`
          : `device '${asked}' is not available: ${gpus} CUDA GPU${gpus === 1 ? '' : 's'} visible`,
      );
    }
    why = 'as asked';
  }
  const dtypeAsked = parseDtype(request.dtype ?? 'auto');
  if (dtypeAsked !== 'auto') {
    if (!multipliesIn(device, dtypeAsked)) {
      const others = (['bfloat16', 'float32', 'float16'] as const).filter((d) => d !== dtypeAsked && multipliesIn(device, d));
      throw new PlacementError(
        `${dtypeAsked} is not available on ${device}: this libtorch (${libtorchVersion()}) has no ${dtypeAsked} matrix product there; use ${others.join(' or ')}`,
      );
    }
    return { device, dtype: dtypeAsked, reason: `${device} (${why}), ${dtypeAsked} as asked` };
  }
  const probe = matmulProbe(device);
  const fast = probe.bfloat16 >= bf16Speedup * probe.float32;
  const measured = `bfloat16 matmuls run ${(probe.bfloat16 / probe.float32).toFixed(1)}x as fast as float32 here${device === 'cpu' ? ', on one core' : ''}`;
  let dtype: ComputeDtype = fast ? 'bfloat16' : 'float32';
  let because = fast ? measured : `${measured} (under ${bf16Speedup}x)`;
  if (fast && parameters !== undefined && parameters < float32BelowParameters) {
    dtype = 'float32';
    because = `${measured}, but the model is small (${formatCount(parameters)} parameters) and runs faster in float32`;
  }
  return { device, dtype, reason: `${device} (${why}), ${dtype}: ${because}` };
}

/**
 * What a server that places many models announces: the device, and the dtype `auto` gives models of
 * real size, with why (and the tiny-model exception when it applies).
 */
export function defaultPlacement(request: PlacementRequest = {}): Placement {
  const placement = resolvePlacement(request);
  if ((request.dtype ?? 'auto') !== 'auto' || placement.dtype === 'float32') return placement;
  return { ...placement, reason: `${placement.reason}; models under ${formatCount(float32BelowParameters)} parameters run in float32` };
}

const products = new Map<string, boolean>();

/**
 * Whether the device can multiply matrices in the dtype at all: Debian's libtorch 1.13 has no float16
 * matmul on the CPU (PyTorch 2.x does), and a run would otherwise fail at its first projection.
 */
export function multipliesIn(device: string, dtype: ComputeDtype): boolean {
  const key = `${device} ${dtype}`;
  let supported = products.get(key);
  if (supported === undefined) {
    try {
      noGrad(() => tidy(() => ones([2, 2], { dtype, device }).matmul(ones([2, 2], { dtype, device })).sum().item()));
      supported = true;
    } catch {
      supported = false;
    }
    products.set(key, supported);
  }
  return supported;
}

export interface ProbeResult {
  /** Measured GFLOP/s of each dtype's matmul. */
  float32: number;
  bfloat16: number;
}

const probes = new Map<string, ProbeResult>();

/**
 * GFLOP/s of a mid-sized matmul in float32 and bfloat16 on the device, measured once per process (~0.1 s).
 * The pair of measurements runs twice and each dtype keeps its best: a burst of other work on a shared
 * host must then hit both of a dtype's measurements to skew the choice. On the CPU it runs on one thread:
 * the choice rests on what a core does in each dtype, and a product that takes a millisecond on every
 * core waits on whichever core the host gave to other work (on a busy 2-core host the two-thread probe
 * measured bfloat16 at 33 GFLOP/s against 630 quiet, and picked float32, four times slower there).
 */
export function matmulProbe(device: string): ProbeResult {
  let result = probes.get(device);
  if (!result) {
    const measured: ProbeResult = { float32: 0, bfloat16: 0 };
    onOneCpuThread(device, () => {
      for (let round = 0; round < 2; round++) {
        for (const dtype of ['float32', 'bfloat16'] as const) measured[dtype] = Math.max(measured[dtype], matmulRate(device, dtype));
      }
    });
    result = measured;
    probes.set(device, result);
  }
  return result;
}

function onOneCpuThread(device: string, run: () => void): void {
  if (device !== 'cpu') return run();
  const threads = getNumThreads();
  setNumThreads(1);
  try {
    run();
  } finally {
    setNumThreads(threads);
  }
}

function matmulRate(device: string, dtype: DType): number {
  const n = device.startsWith('cuda') ? 4096 : 512;
  return noGrad(() =>
    tidy(() => {
      const a = randn([n, n], { dtype, device });
      const b = randn([n, n], { dtype, device });
      a.matmul(b).sum().item(); // warm-up: kernels are picked (and JIT-compiled) on first use
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        a.matmul(b).sum().item(); // item() waits for an asynchronous device
        best = Math.min(best, performance.now() - started);
      }
      return (2 * n ** 3) / (best / 1000) / 1e9;
    }),
  );
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(0)}M` : `${(n / 1e3).toFixed(0)}K`;
}
