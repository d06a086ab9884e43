// A one-line progress bar on stderr: step/total, epoch, loss and ETA. Off a terminal it prints a
// line every 10% instead, so logs stay readable.
import type { StepMetrics } from '../engine/train/trainer.js';

export function progressReporter(totalSteps: number, totalEpochs: number, stream: NodeJS.WriteStream = process.stderr) {
  let lastDecile = -1;
  return {
    step(m: StepMetrics): void {
      const fraction = m.step / totalSteps;
      const eta = (m.elapsedSeconds / m.step) * (totalSteps - m.step);
      const width = 24;
      const filled = Math.round(fraction * width);
      const line =
        `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${m.step}/${totalSteps}` +
        `  epoch ${m.epoch}/${totalEpochs}  loss ${m.loss.toFixed(4)}  ETA ${formatSeconds(eta)}`;
      if (stream.isTTY) stream.write(`\r${line}\x1b[K${m.step === totalSteps ? '\n' : ''}`);
      else if (Math.floor(fraction * 10) > lastDecile) {
        lastDecile = Math.floor(fraction * 10);
        stream.write(line + '\n');
      }
    },
    note(text: string): void {
      stream.write((stream.isTTY ? '\r\x1b[K' : '') + text + '\n');
    },
  };
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
