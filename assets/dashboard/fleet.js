// The fleet: endpoints and their health (/api/config, /health), loaded models per endpoint
// (/api/ps_details) and the live slots and queues (/api/usage-stream events).

import { json } from './api.js';
import { ago, byId, bytes, count, countdown, el, setRows, td } from './dom.js';

let health = {}; // endpoint url → /health's entry
let usage = null; // the last usage event
let loaded = []; // /api/ps_details models

export async function refreshEndpoints() {
  const [config, h] = await Promise.all([json('/api/config'), json('/health').catch(() => null)]);
  health = (h && h.endpoints) || {};
  const endpoints = [...(config.endpoints || []), ...(config.llama_server_endpoints || [])];
  const rows = endpoints.map((e) => {
    const live = health[e.url] || {};
    const status = live.status || e.status || 'unknown';
    const badge = el('span', { class: 'badge', 'data-state': status === 'ok' ? 'live' : 'down', text: status });
    return el('tr', { 'data-endpoint': e.url, 'data-status': status },
      td('Endpoint', e.url, 'mono'),
      td('Kind', e.kind),
      td('Status', badge),
      td('In flight', count(live.in_flight ?? 0), 'num inflight'),
      td('Slots per model', count(e.max_concurrent_connections), 'num'),
      td('State since', ago(live.since)),
      td('Detail', live.error || e.detail || '', 'detail'));
  });
  setRows(byId('endpoints'), rows, 'No endpoints configured.', 7);
  const healthy = endpoints.filter((e) => (health[e.url] || e).status === 'ok').length;
  byId('sum-healthy').textContent = `${healthy} / ${endpoints.length}`;
}

export async function refreshLoaded() {
  const v = await json('/api/ps_details');
  loaded = Array.isArray(v && v.models) ? v.models : [];
  renderLoaded();
}

/** Redraws the loaded models (also every second, for the countdowns). */
export function renderLoaded() {
  const now = Date.now();
  const rows = loaded.map((m) => {
    const name = m.name || m.model || '';
    const expires = Date.parse(m.expires_at);
    return el('tr', { 'data-endpoint': m.endpoint, 'data-model': name },
      td('Endpoint', m.endpoint, 'mono'),
      td('Model', name, 'mono'),
      td('Size', bytes(m.size), 'num'),
      td('VRAM', bytes(m.size_vram), 'num'),
      td('Context', count(m.context_length), 'num'),
      td('Unloads in', countdown(expires - now), 'num'));
  });
  setRows(byId('loaded'), rows, 'No model is loaded.', 6);
}

/** One event of /api/usage-stream. */
export function onUsage(v) {
  usage = v;
  renderSlots();
}

function renderSlots() {
  if (!usage) return;
  const inUse = usage.usage_counts || {};
  const limits = usage.slot_limits || {};
  const tokens = usage.token_usage_counts || {};
  const queues = usage.queue_depth || {};
  const rows = [];
  for (const endpoint of Object.keys(limits).sort()) {
    for (const model of Object.keys(limits[endpoint] || {}).sort()) {
      const n = Number((inUse[endpoint] || {})[model] || 0);
      const limit = Number(limits[endpoint][model] || 0);
      const queued = Number(queues[model] || 0);
      const bar = el('span', { class: 'meter', title: `${n} of ${limit} slots in use` });
      const fill = el('span', { class: 'meter-fill' });
      fill.style.width = `${limit > 0 ? Math.min(100, (100 * n) / limit) : 0}%`;
      bar.append(fill);
      const slots = el('span', { class: 'slots' }, bar, el('span', { class: 'num', 'data-slots': '', text: `${n} / ${limit}` }));
      rows.push(el('tr', { 'data-endpoint': endpoint, 'data-model': model, 'data-inflight': n, 'data-queued': queued, class: n > 0 ? 'busy' : undefined },
        td('Endpoint', endpoint, 'mono'),
        td('Model', model, 'mono'),
        td('In use / limit', slots),
        td('Queue (model)', count(queued), queued > 0 ? 'num warn' : 'num'),
        td('Tokens', count((tokens[endpoint] || {})[model] ?? 0), 'num')));
    }
  }
  setRows(byId('slots'), rows, 'No slots yet: no endpoint advertises a model.', 5);
  // The endpoints' in-flight column moves with the stream too, between their own refreshes.
  for (const tr of byId('endpoints').tBodies[0].rows) {
    const models = inUse[tr.getAttribute('data-endpoint')];
    const cell = tr.querySelector('td.inflight');
    if (models && cell) cell.textContent = count(Object.values(models).reduce((a, n) => a + (Number(n) || 0), 0));
  }
  byId('sum-inflight').textContent = count(usage.total_in_flight ?? 0);
  byId('sum-queued').textContent = count(usage.total_queued ?? 0);
}
