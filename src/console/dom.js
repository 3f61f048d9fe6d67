// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML.

/** An element: h('a', {href: '#/'}, 'text', child). Attributes starting with `on` are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace everything in `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table with a caption, header cells and rows of cells (`rowAttrs(row)` for each tr). */
export function table(caption, headers, rows, cells, rowAttrs = () => ({})) {
  return h(
    'table',
    {},
    h('caption', { class: 'visually-hidden' }, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((r) =>
        h(
          'tr',
          rowAttrs(r),
          cells(r).map((c) => h('td', {}, c)),
        ),
      ),
    ),
  );
}

export function stateBadge(state) {
  const text = state === 'held' ? 'held — needs a decision' : state;
  return h('span', { class: `badge s-${state}` }, text);
}

/** 1536 → "1.5m" etc.: cpu in millicores, memory in bytes, the rest as numbers. */
export function quantity(dimension, value) {
  if (value === null || value === undefined) return '—';
  if (dimension === 'cpu') return value % 1000 === 0 ? `${value / 1000}` : `${value}m`;
  if (dimension === 'memory' || dimension.includes('storage')) {
    for (const [unit, size] of [
      ['Ti', 2 ** 40],
      ['Gi', 2 ** 30],
      ['Mi', 2 ** 20],
      ['Ki', 2 ** 10],
    ]) {
      if (value >= size) return `${Number((value / size).toFixed(2))}${unit}`;
    }
    return `${value}`;
  }
  return String(value);
}

export function resources(obj) {
  if (!obj) return '—';
  return Object.entries(obj)
    .map(([d, v]) => `${d} ${quantity(d, v)}`)
    .join(', ');
}

export function age(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function time(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso, title: iso }, new Date(iso).toLocaleString());
}

export function progressBar(progress, label) {
  if (!progress) return '—';
  const { done, total } = progress;
  return h('span', {}, h('progress', { max: total, value: Math.min(done, total), 'aria-label': label }), ` ${done}/${total}`);
}

export const migrationLink = (id) => h('a', { href: `#/m/${encodeURIComponent(id)}` }, id);
export const issueLink = (ref) => h('a', { href: `#/issue/${encodeURIComponent(ref)}` }, ref);

/** Say something to screen readers (the polite live region). */
export function announce(text) {
  const el = document.getElementById('announce');
  if (el) el.textContent = text;
}
