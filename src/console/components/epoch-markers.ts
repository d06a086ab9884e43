// A uPlot plugin drawing a dashed vertical line where epochs ended, labelled E1, E2, …. Long runs get every
// 2nd, 5th, 10th, … epoch (lib/epoch-ticks.ts), so marks stay apart and every drawn one has its label. The
// epochs drawn are written to the chart's root element (data-epoch-ticks) for tests and tools.
import uPlot from 'uplot';
import { thinEpochMarks } from '../lib/epoch-ticks';

export interface Marker {
  x: number;
  epoch: number;
}

/** CSS pixels between two drawn marks, at least: room for a label such as "E100" and some air. */
const minGapPx = 56;

export function markersPlugin(getMarkers: () => Marker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u) => {
          const ratio = uPlot.pxRatio;
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          const placed = getMarkers()
            .map((marker) => ({ ...marker, px: Math.round(u.valToPos(marker.x, 'x', true)) }))
            .filter((m) => m.px >= left && m.px <= left + width + 0.5);
          const { shown } = thinEpochMarks(placed, minGapPx * ratio);
          u.root.dataset.epochTicks = shown.map((m) => m.epoch).join(',');
          if (shown.length === 0) return;
          ctx.save();
          ctx.strokeStyle = 'rgba(60, 60, 60, 0.45)';
          ctx.fillStyle = '#3c3c3c';
          ctx.lineWidth = ratio;
          ctx.setLineDash([4 * ratio, 4 * ratio]);
          ctx.font = `${11 * ratio}px system-ui, sans-serif`;
          ctx.textAlign = 'right';
          ctx.textBaseline = 'top';
          for (const marker of shown) {
            ctx.beginPath();
            ctx.moveTo(marker.px, top);
            ctx.lineTo(marker.px, top + height);
            ctx.stroke();
            const label = `E${marker.epoch}`;
            if (marker.px - ctx.measureText(label).width > left) ctx.fillText(label, marker.px - 2 * ratio, top + 2 * ratio);
          }
          ctx.restore();
        },
      ],
    },
  };
}
