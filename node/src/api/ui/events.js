// The live event stream: `GET /v1/events` (Server-Sent Events) read with fetch(), since
// EventSource cannot send an Authorization header. Frames are parsed here (`id:`,
// `event:`, `data:`, comments, blank line ends a frame); on a disconnect the stream
// reconnects with `since=<last id seen>`, so nothing is missed and nothing seen twice.
//
//   fetch /v1/events?since=N ──▶ bytes ──▶ lines ──▶ frames ──▶ onEvent(event)
//        ▲                                                 │
//        └──── wait (0.5 s doubling to 10 s) ◀── end/error ┘

import { authorization, errorOf, lastEventId } from '/ui/api.js';

/** The first wait before reconnecting, doubled after each failed attempt. */
const RECONNECT_FIRST_MS = 500;

/** The longest wait between two attempts. */
const RECONNECT_MAX_MS = 10000;

/** The longest line kept while waiting for its end (an event is a few hundred bytes). */
const LINE_BYTES_MAX = 1 << 20;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows the event log from `since` (exclusive). Callbacks: `onEvent(event)` for each
 * event once, in order; `onState(state, detail)` with `connecting`, `live`,
 * `reconnecting`; `onGap()` when events were purged before they could be read (the
 * stream then goes on from the newest, and views should reload); `onUnauthorized(message)`
 * when the token is refused (the stream stops).
 */
export class EventStream {
  constructor(since, callbacks) {
    this.since = since;
    this.callbacks = callbacks;
    this.stopped = false;
    this.controller = null;
  }

  /** Starts following (once). */
  start() {
    this.run();
    return this;
  }

  /** Stops following and closes the connection. */
  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    let wait = RECONNECT_FIRST_MS;
    while (!this.stopped) {
      this.controller = new AbortController();
      this.state('connecting');
      let why = 'the stream ended';
      try {
        const opened = await this.open();
        if (opened) {
          wait = RECONNECT_FIRST_MS;
          this.state('live');
          await this.read(opened.body);
        }
      } catch (error) {
        why = error.message;
      }
      if (this.stopped) return;
      this.state('reconnecting', why);
      await sleep(wait);
      wait = Math.min(wait * 2, RECONNECT_MAX_MS);
    }
  }

  /** The stream's response, or null when it cannot start now (the caller waits). */
  async open() {
    const headers = { ...authorization(), Accept: 'text/event-stream' };
    const url = `/v1/events?since=${encodeURIComponent(this.since)}`;
    const response = await fetch(url, { headers, cache: 'no-store', signal: this.controller.signal });
    if (response.ok) return response;
    const error = errorOf(response, await response.text());
    if (response.status === 401) {
      this.stop();
      if (this.callbacks.onUnauthorized) this.callbacks.onUnauthorized(error.message);
      return null;
    }
    if (response.status === 410) {
      // Purged while this tab was away: go on from the newest, and let views reload.
      this.since = await lastEventId();
      if (this.callbacks.onGap) this.callbacks.onGap();
      return null;
    }
    throw error;
  }

  /** Reads frames until the body ends. */
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let frame = newFrame();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end = buffer.indexOf('\n');
        while (end >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, '');
          buffer = buffer.slice(end + 1);
          if (line === '') {
            this.dispatch(frame);
            frame = newFrame();
          } else {
            parseLine(line, frame);
          }
          end = buffer.indexOf('\n');
        }
        if (buffer.length > LINE_BYTES_MAX) throw new Error('an event stream line is too long');
      }
    } finally {
      reader.releaseLock();
    }
  }

  dispatch(frame) {
    if (frame.event === 'error') {
      // The node ends the stream after this frame; the reconnect learns the status.
      this.state('reconnecting', frame.data.join('\n'));
      return;
    }
    if (frame.data.length === 0) return;
    const event = JSON.parse(frame.data.join('\n'));
    const id = frame.id !== null ? Number(frame.id) : Number(event.id);
    // A repeat (never expected: `since` is exclusive) would be the same change twice.
    if (Number.isFinite(id) && id <= this.since) return;
    if (Number.isFinite(id)) this.since = id;
    this.callbacks.onEvent(event);
  }

  state(state, detail) {
    if (this.callbacks.onState) this.callbacks.onState(state, detail);
  }
}

function newFrame() {
  return { id: null, event: null, data: [] };
}

/** One `field: value` line of a frame (a line starting with `:` is a comment). */
function parseLine(line, frame) {
  if (line.startsWith(':')) return;
  const colon = line.indexOf(':');
  const field = colon < 0 ? line : line.slice(0, colon);
  const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
  if (field === 'id') frame.id = value;
  else if (field === 'event') frame.event = value;
  else if (field === 'data') frame.data.push(value);
}
