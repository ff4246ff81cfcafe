// DOM helpers. Every value from the server goes in as text (textContent), never as markup.

/** An element with attributes (set as attributes, not markup) and children (nodes or text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('data-')) node.setAttribute(name, String(value));
    else if (name === 'title' || name === 'type' || name === 'colspan') node.setAttribute(name, String(value));
    else throw new Error('el: unsupported attribute ' + name);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table cell with a label for the stacked (narrow) layout. */
export function td(label, content, cls) {
  const cell = el('td', { 'data-label': label, class: cls });
  if (content instanceof Node) cell.append(content);
  else cell.textContent = content === undefined || content === null ? '' : String(content);
  return cell;
}

/** Replaces the rows of a table's body. */
export function setRows(table, rows, emptyText, columns) {
  const body = table.tBodies[0];
  if (rows.length === 0) {
    body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns, text: emptyText })));
  } else {
    body.replaceChildren(...rows);
  }
}

export function byId(id) {
  return document.getElementById(id);
}

export function bytes(n) {
  if (typeof n !== 'number' || !isFinite(n) || n < 0) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}

export function count(n) {
  return typeof n === 'number' && isFinite(n) ? n.toLocaleString('en-US') : '–';
}

/** "3m 05s" until `ms` from now; a time more than a year away is shown as no expiry. */
export function countdown(ms) {
  if (!isFinite(ms)) return '–';
  if (ms <= 0) return 'now';
  if (ms > 365 * 86400e3) return 'no expiry';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}m ${String(sec).padStart(2, '0')}s`;
}

export function ago(unixSeconds) {
  if (typeof unixSeconds !== 'number' || unixSeconds <= 0) return '–';
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
