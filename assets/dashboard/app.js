// The dashboard's start: refreshes each part on its own timer and follows the usage stream.

import { ago, byId } from './dom.js';
import { onUsage, refreshEndpoints, refreshLoaded, renderLoaded } from './fleet.js';
import { watchUsage } from './usage_stream.js';
import { drawTokens, refreshCache, refreshTokens } from './tokens.js';
import { refreshModels, setUpActions } from './actions.js';

/** Runs `task` now and every `ms`; a failure is shown in the part's section and retried. */
function every(ms, section, task) {
  const run = async () => {
    try {
      await task();
      byId(section).removeAttribute('data-error');
    } catch (e) {
      byId(section).setAttribute('data-error', String((e && e.message) || e));
      console.warn(section, e);
    }
    setTimeout(run, ms);
  };
  run();
}

function setConnection(state, detail) {
  const badge = byId('conn-state');
  badge.setAttribute('data-state', state);
  badge.textContent = { connecting: 'connecting', live: 'live', retrying: 'reconnecting' }[state] || state;
  byId('conn-detail').textContent = detail || '';
}

let lastEvent = 0;
let lastTokens = null;
let tokensSoon = null;
watchUsage((v) => {
  lastEvent = Date.now() / 1000;
  onUsage(v);
  // New tokens counted: the chart follows within a few seconds, not at its next 15 s refresh.
  const tokens = sum(v.token_usage_counts);
  if (lastTokens !== null && tokens !== lastTokens && !tokensSoon) {
    tokensSoon = setTimeout(() => { tokensSoon = null; refreshTokens().catch(() => {}); }, 2500);
  }
  lastTokens = tokens;
}, setConnection);

function sum(perEndpoint) {
  let total = 0;
  for (const models of Object.values(perEndpoint || {})) {
    for (const n of Object.values(models || {})) total += Number(n) || 0;
  }
  return total;
}

every(5000, 'endpoints-section', refreshEndpoints);
every(3000, 'loaded-section', refreshLoaded);
every(15000, 'tokens-section', refreshTokens);
every(10000, 'summary-section', refreshCache);
every(30000, 'models-section', refreshModels);
setUpActions(() => { refreshModels().catch(() => {}); refreshLoaded().catch(() => {}); });

setInterval(() => {
  renderLoaded();
  byId('updated').textContent = lastEvent ? `Slots last changed ${ago(lastEvent)} (the stream sends changes only).` : '';
}, 1000);

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawTokens, 150);
});
