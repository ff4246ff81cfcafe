// Tokens per model: totals from /api/token_counts, the per-minute series of each model from
// /api/stats (its latest rows), drawn as one line per model; and the cache's hit rate from
// /api/cache/stats when the cache is on.

import { ApiError, json } from './api.js';
import { COLORS, lineChart } from './chart.js';
import { byId, count, el, setRows, td } from './dom.js';

const MAX_MODELS = COLORS.length;
let series = [];

export async function refreshTokens() {
  let counts;
  try {
    counts = await json('/api/token_counts');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      byId('tokens-note').textContent = 'Token accounting is off on this router (token_accounting: false).';
      series = [];
      drawTokens();
      return;
    }
    throw e;
  }
  const perModel = new Map();
  for (const b of (counts && counts.breakdown) || []) {
    const m = perModel.get(b.model) || { input: 0, output: 0, total: 0 };
    m.input += b.input_tokens || 0;
    m.output += b.output_tokens || 0;
    m.total += b.total_tokens || 0;
    perModel.set(b.model, m);
  }
  const models = [...perModel.keys()].sort((a, b) => perModel.get(b).total - perModel.get(a).total);
  setRows(byId('tokens'), models.map((name) => {
    const m = perModel.get(name);
    return el('tr', { 'data-model': name },
      td('Model', name, 'mono'), td('Prompt', count(m.input), 'num'),
      td('Completion', count(m.output), 'num'), td('Total', count(m.total), 'num'));
  }), 'No tokens counted yet.', 4);
  const saved = counts && counts.cache_saved;
  byId('tokens-note').textContent = saved && saved.hits
    ? `The cache saved ${count(saved.total_tokens)} tokens in ${count(saved.hits)} hits.` : '';

  const shown = models.slice(0, MAX_MODELS);
  const stats = await Promise.all(shown.map((m) =>
    json('/api/stats?model=' + encodeURIComponent(m)).catch(() => null)));
  series = shown.map((name, i) => ({ name, points: perMinute((stats[i] && stats[i].time_series) || []) }));
  drawTokens();
}

/** Sums a model's rows (one per endpoint and minute) per minute, oldest first. */
function perMinute(rows) {
  const sums = new Map();
  for (const r of rows) {
    const t = Math.floor(Number(r.timestamp) / 60) * 60;
    if (!isFinite(t)) continue;
    sums.set(t, (sums.get(t) || 0) + (Number(r.total_tokens) || 0));
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]);
}

export function drawTokens() {
  lineChart(byId('tokens-chart'), series, 'tokens / min');
  const legend = byId('tokens-legend');
  legend.replaceChildren(...series.map((s, i) =>
    el('li', { 'data-model': s.name }, el('span', { class: `swatch c${i}` }), s.name)));
}

export async function refreshCache() {
  const v = await json('/api/cache/stats');
  const line = byId('cache-line');
  if (!v || !v.enabled) {
    byId('sum-cache').textContent = 'off';
    line.textContent = 'The response cache is off.';
    return;
  }
  const rate = typeof v.hit_rate === 'number' ? (100 * v.hit_rate).toFixed(1) + ' %' : '–';
  byId('sum-cache').textContent = rate;
  line.textContent = `Cache (${v.backend}): ${count(v.hits)} hits, ${count(v.misses)} misses, `
    + `${count(v.entries)} entries, hit rate ${rate}.`;
}
