// Model actions: the merged model list (/api/tags) with show, copy and delete per model; pull by
// name (progress lines as they come); and the aggregation of old token series. Delete and
// aggregation ask for confirmation first.

import { api, json } from './api.js';
import { byId, bytes, el, setRows, td } from './dom.js';

export async function refreshModels() {
  const v = await json('/api/tags');
  const models = Array.isArray(v && v.models) ? v.models : [];
  const rows = models.map((m) => {
    const name = m.name || m.model || '';
    const d = m.details || {};
    const buttons = el('span', { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'show', 'data-model': name, text: 'Show' }),
      el('button', { type: 'button', 'data-action': 'copy', 'data-model': name, text: 'Copy' }),
      el('button', { type: 'button', 'data-action': 'delete', 'data-model': name, class: 'danger', text: 'Delete' }));
    return el('tr', { 'data-model': name },
      td('Model', name, 'mono'), td('Size', bytes(m.size), 'num'),
      td('Parameters', d.parameter_size || ''), td('Quantization', d.quantization_level || ''),
      td('Actions', buttons));
  });
  setRows(byId('models'), rows, 'No endpoint advertises a model.', 5);
}

export function setUpActions(afterChange) {
  byId('models').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const model = button.getAttribute('data-model');
    const action = button.getAttribute('data-action');
    const run = { show, copy, delete: remove }[action];
    if (run) run(model, afterChange).catch((e) => output('error', action, model, String(e.message || e)));
  });
  byId('pull-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = byId('pull-name').value.trim();
    if (name) pull(name, afterChange).catch((e) => output('error', 'pull', name, String(e.message || e)));
  });
  byId('aggregate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    aggregate().catch((e) => { byId('aggregate-result').textContent = String(e.message || e); });
  });
  byId('action-close').addEventListener('click', () => { byId('action-panel').hidden = true; });
}

/** Shows an action's result in the panel, as text. */
function output(state, action, model, text) {
  const panel = byId('action-panel');
  panel.hidden = false;
  panel.setAttribute('data-action', action);
  panel.setAttribute('data-model', model);
  panel.setAttribute('data-state', state);
  byId('action-title').textContent = `${action} ${model}` + (state === 'error' ? ' failed' : state === 'running' ? ' …' : '');
  byId('action-output').textContent = text;
}

async function show(model) {
  output('running', 'show', model, '');
  const v = await json('/api/show', { model });
  output('done', 'show', model, JSON.stringify(v, null, 2));
}

async function copy(model, afterChange) {
  const destination = window.prompt(`Copy ${model} to (new name):`, model + '-copy');
  if (!destination) return;
  output('running', 'copy', model, '');
  await json('/api/copy', { source: model, destination: destination.trim() });
  output('done', 'copy', model, `Copied to ${destination.trim()} on every Ollama endpoint that has it.`);
  afterChange();
}

async function remove(model, afterChange) {
  if (!window.confirm(`Delete ${model} from every Ollama endpoint?`)) return;
  output('running', 'delete', model, '');
  await json('/api/delete', { model }, 'DELETE');
  output('done', 'delete', model, 'Deleted.');
  afterChange();
}

/** Pull with progress: the NDJSON lines are shown as they arrive. */
async function pull(model, afterChange) {
  output('running', 'pull', model, '');
  const resp = await api('/api/pull', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, stream: true }),
  });
  const pre = byId('action-output');
  const lines = [];
  const show = (line) => {
    lines.push(describe(line));
    pre.textContent = lines.slice(-200).join('\n');
    pre.scrollTop = pre.scrollHeight;
  };
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) show(line);
    }
  }
  if (buffer.trim()) show(buffer.trim());
  const failed = !resp.ok || lines.some((l) => l.startsWith('error'));
  output(failed ? 'error' : 'done', 'pull', model, lines.join('\n'));
  afterChange();
}

function describe(line) {
  let v;
  try { v = JSON.parse(line); } catch { return line; }
  if (v && typeof v.error === 'string') return 'error: ' + v.error;
  if (v && v.error && typeof v.error.message === 'string') return 'error: ' + v.error.message;
  if (v && typeof v.status === 'string') {
    const done = Number(v.completed), total = Number(v.total);
    const pct = total > 0 && isFinite(done) ? ` ${((100 * done) / total).toFixed(1)} %` : '';
    return v.status + pct;
  }
  return line;
}

async function aggregate() {
  const days = Number(byId('aggregate-days').value);
  const trim = byId('aggregate-trim').checked;
  if (!Number.isInteger(days) || days < 0) return;
  const what = trim ? 'aggregate and DELETE' : 'aggregate';
  if (!window.confirm(`${what} token series rows older than ${days} days?`)) return;
  const v = await json('/api/aggregate_time_series_days', { days, trim_old: trim });
  byId('aggregate-result').textContent =
    `Aggregated ${v.aggregated_groups} (endpoint, model, day) groups older than ${v.days} days` + (v.trim_old ? '; the rows were deleted.' : '.');
}
