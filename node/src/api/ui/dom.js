// Building the page: elements from plain data (text only, never parsed HTML, so a name
// in the cluster's state cannot inject markup), and the formats every view shares.

/** `<tag props>children</tag>`: props are attributes, except `class`, `text`, `dataset` and `on<event>`. */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = String(value);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Appends `children` (nodes, text, nested arrays; null and false are skipped). */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces what `element` holds with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** A status as a coloured badge (`data-status` carries the colour). */
export function badge(status) {
  return h('span', { class: 'badge', dataset: { status: status || 'Unknown' } }, status || '?');
}

/** A link inside the dashboard. */
export function link(hash, text, props) {
  return h('a', { href: hash, ...props }, text);
}

/** A table: `columns` are header texts, `rows` arrays of cells (or `tr` elements). */
export function table(columns, rows, props) {
  const head = h(
    'thead',
    null,
    h(
      'tr',
      null,
      columns.map((column) => h('th', { scope: 'col' }, column)),
    ),
  );
  const body = h(
    'tbody',
    null,
    rows.map((row) => (row instanceof Node ? row : h('tr', null, row.map(cell)))),
  );
  // Narrow screens hide the header and show each cell's column name before it.
  for (const tr of body.children) {
    [...tr.children].forEach((td, index) => td.dataset.label || (td.dataset.label = columns[index] || ''));
  }
  return h('div', { class: 'scroll' }, h('table', props, head, body));
}

/** A table cell: a `td` element, or one holding `content`. */
export function cell(content) {
  return content instanceof HTMLTableCellElement ? content : h('td', null, content);
}

/** A definition list of `[term, value]` pairs (pairs with no value are left out). */
export function facts(pairs) {
  const kept = pairs.filter(([, value]) => value !== undefined && value !== null && value !== '');
  return h(
    'dl',
    { class: 'facts' },
    kept.map(([term, value]) => [h('dt', null, term), h('dd', null, value)]),
  );
}

/** Epoch seconds as local time: the time alone today, the date and time before. */
export function when(seconds) {
  if (typeof seconds !== 'number') return '';
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

/** Seconds between two epoch times, in words (`3.2 s`, `4 min`). */
export function duration(start, end) {
  if (typeof start !== 'number') return '';
  const seconds = (typeof end === 'number' ? end : Date.now() / 1000) - start;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Bytes in binary units. */
export function bytes(count) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A revision id shortened for tables (the full id in its title). */
export function shortRevision(revisionId) {
  const text = String(revisionId || '');
  return h('code', { title: text }, text.length > 12 ? `${text.slice(0, 12)}…` : text);
}

/** `fn` called at most once per `delay_ms`, after the last of a burst of calls. */
export function debounce(fn, delay_ms) {
  let timer = null;
  const debounced = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, delay_ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** A message box for a view's own errors (hidden while empty). */
export function errorBox() {
  const box = h('p', { class: 'error', role: 'alert', hidden: true });
  box.show = (error) => {
    box.textContent = error ? String(error.message || error) : '';
    box.hidden = !error;
  };
  return box;
}
