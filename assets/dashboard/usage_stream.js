// The live usage stream (/api/usage-stream). EventSource cannot send the key, so the stream is read
// with fetch() and a ReadableStream, and its server-sent events are parsed here. When it ends or
// fails it is opened again after a growing pause (the server's `retry:`
// or 1 s, doubling to 30 s, with jitter; back to the start once data flows). A stream silent for longer than two heartbeats is treated as dead.

import { api } from './api.js';

const HEARTBEAT_MS = 15000;
const MAX_DELAY_MS = 30000;

/**
 * Calls onEvent(data) for every event's JSON and onState(state, detail) as the connection moves
 * through 'connecting', 'live' and 'retrying'.
 */
export function watchUsage(onEvent, onState) {
  let base = 1000; // the server's `retry:`, else 1 s
  let delay = base;
  const run = async () => {
    for (;;) {
      onState('connecting', '');
      const abort = new AbortController();
      let watchdog = null;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), 2 * HEARTBEAT_MS + 5000);
      };
      let why = 'the stream ended';
      try {
        arm();
        const resp = await api('/api/usage-stream', { headers: { Accept: 'text/event-stream' }, signal: abort.signal });
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        onState('live', '');
        const parser = new EventParser((data, retry) => {
          if (retry) base = Math.min(Math.max(500, retry), MAX_DELAY_MS);
          if (data === null) return;
          try { onEvent(JSON.parse(data)); } catch (e) { console.warn('usage event', e); }
        });
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          delay = base;
          parser.push(value);
        }
      } catch (e) {
        why = abort.signal.aborted ? 'no data for too long' : (e && e.message) || String(e);
      } finally {
        clearTimeout(watchdog);
        abort.abort();
      }
      const wait = Math.min(delay, MAX_DELAY_MS) * (0.8 + 0.4 * Math.random());
      onState('retrying', `${why}; again in ${(wait / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  };
  run();
}

/** A text/event-stream parser (WHATWG HTML §9.2.6): fields per line, an event per blank line. */
export class EventParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buffer = '';
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    for (;;) {
      const nl = this.buffer.search(/[\r\n]/);
      if (nl < 0) return;
      // A CR at the end of the buffer may be the first half of CRLF: wait for the next chunk.
      if (this.buffer[nl] === '\r' && nl === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, nl);
      const skip = this.buffer[nl] === '\r' && this.buffer[nl + 1] === '\n' ? 2 : 1;
      this.buffer = this.buffer.slice(nl + skip);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.dispatch(this.data.join('\n'), null);
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return; // comment (heartbeat)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) this.dispatch(null, Number(value));
  }
}
