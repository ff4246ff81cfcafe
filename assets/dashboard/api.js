// Calls to the router's API with its key. The key lives in this module's variable for the tab's
// life: never in localStorage, sessionStorage or a cookie. A 401 shows the key form once (every
// call waiting for a key shares it); a 403 (wrong key) shows it again.

import { byId } from './dom.js';

let key = null;
let asking = null; // the open form's promise, shared by every call that needs a key

/** fetch() with the key; on 401/403 asks for a key and tries again. */
export async function api(path, options = {}) {
  for (;;) {
    const used = key;
    const headers = new Headers(options.headers || {});
    if (used !== null) headers.set('Authorization', 'Bearer ' + used);
    const resp = await fetch(path, { ...options, headers, cache: 'no-store', credentials: 'omit' });
    if (resp.status !== 401 && resp.status !== 403) return resp;
    resp.body?.cancel().catch(() => {});
    if (key !== used) continue; // another call got a new key meanwhile
    await askForKey(resp.status === 403 ? 'That key was refused (403). Enter the router key.'
      : 'This router needs its key (401). It is kept in this tab only, never stored.');
  }
}

/** GET or POST JSON; throws an Error with the server's message on a non-2xx answer. */
export async function json(path, body, method) {
  const options = body === undefined ? { method: method || 'GET' }
    : { method: method || 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const resp = await api(path, options);
  const text = await resp.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = text; }
  if (!resp.ok) throw new ApiError(resp.status, errorMessage(value) || resp.statusText);
  return value;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

function errorMessage(v) {
  if (!v) return '';
  if (typeof v === 'string') return v.slice(0, 300);
  if (typeof v.error === 'string') return v.error;
  if (v.error && typeof v.error.message === 'string') return v.error.message;
  return '';
}

function askForKey(message) {
  if (asking) return asking;
  const form = byId('key-form');
  const input = byId('key-input');
  byId('key-message').textContent = message;
  form.hidden = false;
  input.value = '';
  input.focus();
  asking = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      key = given;
      input.value = '';
      form.hidden = true;
      form.removeEventListener('submit', submit);
      asking = null;
      resolve();
    };
    form.addEventListener('submit', submit);
  });
  return asking;
}
