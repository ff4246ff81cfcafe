// A small line chart on a canvas: one line per series, time on x, values on y. No library.

export const COLORS = ['#2f7ed8', '#e4572e', '#29a36a', '#a05cd6', '#e0a100', '#17a2b8', '#d63384', '#6c757d'];

/**
 * series: [{ name, points: [[unixSeconds, value], ...] }] (points sorted by time).
 * Draws to fit the canvas's CSS width; text drawn on the canvas is never markup.
 */
export function lineChart(canvas, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(240, canvas.clientWidth || 600);
  const height = Math.max(160, canvas.clientHeight || 220);
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const ink = style.color || '#333';
  const grid = style.getPropertyValue('--grid').trim() || '#ddd';
  g.font = '11px system-ui, sans-serif';

  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    g.fillStyle = ink;
    g.textAlign = 'center';
    g.fillText('No token series yet.', width / 2, height / 2);
    return;
  }
  let t0 = Math.min(...all.map((p) => p[0]));
  let t1 = Math.max(...all.map((p) => p[0]));
  if (t1 - t0 < 240) { const mid = (t0 + t1) / 2; t0 = mid - 120; t1 = mid + 120; }
  const yStep = niceStep(Math.max(1, ...all.map((p) => p[1])) / 4);
  const top = Math.ceil(Math.max(1, ...all.map((p) => p[1])) / yStep) * yStep;
  const pad = { left: 52, right: 24, top: 10, bottom: 24 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => pad.top + h - (v / top) * h;

  g.strokeStyle = grid;
  g.fillStyle = ink;
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let v = 0; v <= top + yStep / 2; v += yStep) {
    const py = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(pad.left, py); g.lineTo(width - pad.right, py); g.stroke();
    g.fillText(short(v), pad.left - 6, py);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  // Ticks on whole minutes (or hours, days): at most one per 90 px.
  const most = Math.max(2, Math.floor(w / 90));
  const steps = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  const tStep = steps.find((s) => (t1 - t0) / s <= most) || 2592000;
  for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
    g.fillText(clock(t, t1 - t0), x(t), height - pad.bottom + 6);
  }
  g.save();
  g.translate(12, pad.top + h / 2);
  g.rotate(-Math.PI / 2);
  g.fillText(unit, 0, -6);
  g.restore();

  series.forEach((s, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.fillStyle = g.strokeStyle;
    g.lineWidth = 2;
    g.beginPath();
    s.points.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    for (const [t, v] of s.points) {
      g.beginPath(); g.arc(x(t), y(v), 2.5, 0, 2 * Math.PI); g.fill();
    }
  });
}

/** The smallest of 1, 2, 5 × 10^n (at least 1) not below v. */
function niceStep(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function short(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
  return String(Math.round(v));
}

function clock(t, span) {
  const d = new Date(t * 1000);
  const hm = d.toTimeString().slice(0, 5);
  return span > 2 * 86400 ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
}
