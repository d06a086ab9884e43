// Which epoch ends a chart marks: all of them while they are far enough apart to read, else every 2nd, 5th,
// 10th, … epoch, the first "nice" stride that leaves at least `minGapPx` between two marks (50 epochs on a
// 1,000-pixel chart are 20 pixels apart: a picket fence; every 5th is 100 pixels apart).

const niceStrides = [1, 2, 5];

/** The smallest nice stride (1, 2, 5, 10, 20, 50, …) whose marks are at least minGapPx apart. */
export function epochStride(pixelsPerEpoch: number, minGapPx: number): number {
  if (!(pixelsPerEpoch > 0)) return 1;
  for (let scale = 1; ; scale *= 10) {
    for (const base of niceStrides) {
      const stride = base * scale;
      if (stride * pixelsPerEpoch >= minGapPx) return stride;
    }
    if (scale > 1e9) return scale;
  }
}

export interface EpochMark {
  epoch: number;
  /** Pixel position along the x axis. */
  px: number;
}

/** The marks to draw: epochs that are multiples of the stride, from their average spacing on screen. */
export function thinEpochMarks<T extends EpochMark>(marks: T[], minGapPx: number): { stride: number; shown: T[] } {
  if (marks.length < 2) return { stride: 1, shown: marks };
  const first = marks[0]!;
  const last = marks.at(-1)!;
  const epochs = last.epoch - first.epoch;
  const pixelsPerEpoch = epochs > 0 ? Math.abs(last.px - first.px) / epochs : Infinity;
  const stride = epochStride(pixelsPerEpoch, minGapPx);
  return { stride, shown: marks.filter((m) => m.epoch % stride === 0) };
}
