// Where a step's time goes, from libtorch's op profiler: self time per op (time inside an op minus the
// ops it called), the largest first. A developer's tool: `measure.js train SHAPE --profile`.
import { profilerStart, profilerStop } from '../src/engine/tensor/index.js';

export function profileOps<T>(run: () => T, { top = 25, byShape = false } = {}): { result: T; table: string } {
  profilerStart(byShape);
  const result = run();
  const events = profilerStop();
  const self = new Map<string, { ms: number; calls: number }>();
  const byThread = new Map<number, typeof events>();
  for (const e of events) byThread.set(e[3], [...(byThread.get(e[3]) ?? []), e]);
  let total = 0;
  for (const list of byThread.values()) {
    list.sort((a, b) => a[1] - b[1] || b[2] - a[2]);
    const stack: { end: number; key: string; child: number; dur: number }[] = [];
    const close = (until: number) => {
      while (stack.length && stack.at(-1)!.end <= until) {
        const done = stack.pop()!;
        const entry = self.get(done.key) ?? { ms: 0, calls: 0 };
        entry.ms += (done.dur - done.child) / 1e6;
        entry.calls++;
        self.set(done.key, entry);
        if (stack.length) stack.at(-1)!.child += done.dur;
        else total += done.dur / 1e6;
      }
    };
    for (const [name, start, dur, , shapes] of list) {
      close(start);
      stack.push({ end: start + dur, key: byShape ? `${name} ${shapes}` : name, child: 0, dur });
    }
    close(Infinity);
  }
  const rows = [...self].sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  const table = [`total ${total.toFixed(0)} ms in top-level ops`, ...rows.map(([k, v]) => `${v.ms.toFixed(1).padStart(9)} ms ${String(v.calls).padStart(6)}x  ${k}`)].join('\n');
  return { result, table };
}
