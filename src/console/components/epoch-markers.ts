// A uPlot plugin drawing a dashed vertical line where each epoch ended, labelled E1, E2, … while the
// labels have room; lines closer than a few pixels are thinned so long runs stay readable.
import uPlot from 'uplot';

export interface Marker {
  x: number;
  label: string;
}

export function markersPlugin(getMarkers: () => Marker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u) => {
          const markers = getMarkers();
          if (markers.length === 0) return;
          const ratio = uPlot.pxRatio;
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          ctx.strokeStyle = 'rgba(60, 60, 60, 0.45)';
          ctx.fillStyle = '#3c3c3c';
          ctx.lineWidth = ratio;
          ctx.setLineDash([4 * ratio, 4 * ratio]);
          ctx.font = `${11 * ratio}px system-ui, sans-serif`;
          ctx.textAlign = 'right';
          ctx.textBaseline = 'top';
          let lastLine = -Infinity;
          let lastLabel = -Infinity;
          for (const marker of markers) {
            const x = Math.round(u.valToPos(marker.x, 'x', true));
            if (x < left || x > left + width + 0.5 || x - lastLine < 6 * ratio) continue;
            lastLine = x;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const labelWidth = ctx.measureText(marker.label).width;
            if (x - lastLabel > labelWidth + 6 * ratio && x - labelWidth > left) {
              ctx.fillText(marker.label, x - 2 * ratio, top + 2 * ratio);
              lastLabel = x;
            }
          }
          ctx.restore();
        },
      ],
    },
  };
}
