// duckgate's admin dashboard. No framework, no request to any other host.
// The admin key is posted once to /admin/login and never kept; the session
// lives in an HttpOnly cookie, and every /admin/api/ call carries the
// session's CSRF token in X-CSRF-Token (kept in this script's memory only).
'use strict';

const state = { csrf: null, plans: [], tenant: null };

const $ = (id) => document.getElementById(id);

// el builds an element; children are nodes or text (never parsed as HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function flash(msg, bad) {
  const f = $('flash');
  f.textContent = msg;
  f.className = 'flash' + (bad ? ' bad' : '');
  f.hidden = !msg;
}

class SignedOut extends Error {}

async function api(method, path, body) {
  const opt = { method, headers: { 'X-CSRF-Token': state.csrf || '' }, credentials: 'same-origin' };
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  const r = await fetch('/admin/api/' + path, opt);
  const j = await r.json().catch(() => ({}));
  if (r.status === 401) {
    showSignIn();
    throw new SignedOut(j.error || 'signed out');
  }
  if (!r.ok) throw new Error(j.error || r.status + ' ' + r.statusText);
  return j;
}

function fmtInt(n) { return Number(n || 0).toLocaleString(); }

function plural(n, unit) { return fmtInt(n) + ' ' + unit + (n === 1 ? '' : 's'); }

function fmtBytes(n) {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  n = Number(n || 0);
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
function fmtAgo(iso) {
  if (!iso) return '—';
  const s = (new Date(iso) - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 60) return rtf.format(Math.round(s), 'second');
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

function timeEl(iso) {
  if (!iso) return document.createTextNode('never');
  return el('time', { datetime: iso, title: new Date(iso).toLocaleString() }, fmtAgo(iso));
}

function show(id) {
  for (const s of ['signin', 'tenants', 'tenant']) $(s).hidden = s !== id;
  $('nav').hidden = id === 'signin';
}

function showSignIn() {
  state.csrf = null;
  show('signin');
  $('key').focus();
}

function fillPlans(select, current) {
  select.replaceChildren(...state.plans.map((p) => el('option', { value: p, selected: p === current }, p)));
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const r = document.createRange();
    r.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges();
    getSelection().addRange(r);
    document.execCommand('copy');
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// ---- sign-in ----

async function startSession() {
  const r = await fetch('/admin/session', { credentials: 'same-origin' });
  if (!r.ok) { showSignIn(); return false; }
  const j = await r.json();
  state.csrf = j.csrf_token;
  state.plans = j.plans || [];
  return true;
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('key');
  $('signin-error').textContent = '';
  const r = await fetch('/admin/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: input.value }),
  });
  input.value = '';
  if (!r.ok) {
    const j = await r.json().catch(() => ({}));
    $('signin-error').textContent = j.error || 'Sign-in refused.';
    return;
  }
  if (await startSession()) route();
});

$('signout').addEventListener('click', async () => {
  await fetch('/admin/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': state.csrf || '' } });
  flash('');
  location.hash = '#/';
  showSignIn();
});

// ---- tenants ----

async function loadTenants() {
  show('tenants');
  fillPlans($('new-plan'), 'default');
  const gen = (state.tenantsLoad = (state.tenantsLoad || 0) + 1);
  const { tenants } = await api('GET', 'tenants');
  if (gen !== state.tenantsLoad) return; // a later load draws
  const body = $('tenant-table').tBodies[0];
  body.replaceChildren(...tenants.map((t) => el('tr', { 'data-tenant': t.tenant_id },
    el('td', {}, el('a', { href: '#/t/' + encodeURIComponent(t.tenant_id) }, t.name), el('div', { class: 'muted small' }, t.tenant_id)),
    el('td', {}, t.plan),
    el('td', {}, el('span', { class: 'badge ' + t.status }, t.status)),
    el('td', { class: 'num' }, fmtInt(t.tables)),
    el('td', { class: 'num' }, fmtInt(t.rows)),
    el('td', { class: 'num' + (t.quarantined_rows ? ' error' : '') }, fmtInt(t.quarantined_rows)),
    el('td', { class: 'num' }, fmtBytes(t.bytes_on_disk)),
    el('td', {}, sparkline(t.rows_per_s || [])),
    el('td', {}, timeEl(t.last_ingest), t.stats_error ? el('div', { class: 'error small' }, t.stats_error) : ''),
  )));
  if (!tenants.length) body.append(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'No tenant yet: create one above.')));
  await loadNode();
}

$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const t = await api('POST', 'tenants', { name: $('new-name').value, plan: $('new-plan').value });
    $('new-name').value = '';
    $('created-what').textContent = 'Tenant ' + t.name + ' (' + t.tenant_id + ') created with a full-scope key.';
    $('created-key').textContent = t.api_key;
    $('created').hidden = false;
    flash('');
    await loadTenants();
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
});
$('copy-key').addEventListener('click', (ev) => copyText($('created-key').textContent, ev.target));

// ---- the node's charts ----
// Plain SVG polylines: six small line charts need a few dozen lines of
// script, stay sharp at any size, and need no library or inline style.

const SVGNS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fmtNum(v) {
  if (v >= 100) return Math.round(v).toLocaleString();
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2).replace(/\.?0+$/, '') || '0';
}

// chart draws series ({name, values}) over the samples' times, y from 0;
// x spans the samples (at least ten intervals of iv seconds).
// sparkline draws a tenant's rows/s of the last hour (one point a minute)
// as a small line, with the latest rate beside it; a dash if it sent
// nothing since the server started.
function sparkline(points) {
  if (!points.length) return el('span', { class: 'muted' }, '—');
  if (points.length === 1) points = [points[0], points[0]]; // one minute so far: a level line
  const W = 120, H = 24, max = Math.max(...points, 1e-9);
  const step = points.length > 1 ? W / (points.length - 1) : 0;
  const pts = points.map((v, i) => (i * step).toFixed(1) + ',' + (H - 1 - (v / max) * (H - 2)).toFixed(1));
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'spark', role: 'img', 'aria-label': 'rows per second, last hour' });
  svg.append(svgEl('polyline', { points: pts.join(' '), class: 'line s0', fill: 'none' }));
  const last = points[points.length - 1];
  return el('span', { class: 'sparkbox', title: 'max ' + fmtNum(max) + ' rows/s' }, svg, el('span', { class: 'small' }, fmtNum(last)));
}

function chart(title, samples, iv, series, fmt) {
  const W = 320, H = 90, P = 3;
  const ts = samples.map((s) => Date.parse(s.t));
  const t1 = ts.length ? ts[ts.length - 1] : Date.now();
  const t0 = Math.min(ts.length ? ts[0] : t1, t1 - 10 * iv * 1000);
  let top = 0;
  for (const sr of series) for (const v of sr.values) if (v > top) top = v;
  const max = top > 0 ? top * 1.1 : 1;
  const x = (t) => (P + (W - 2 * P) * (t - t0) / (t1 - t0)).toFixed(1);
  const y = (v) => (H - P - (H - 2 * P) * v / max).toFixed(1);
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'none' });
  svg.append(svgEl('line', { x1: 0, x2: W, y1: H - P, y2: H - P, class: 'axis' }));
  for (let i = series.length - 1; i >= 0; i--) { // the first series drawn last, on top
    const pts = [];
    series[i].values.forEach((v, j) => { if (v >= 0) pts.push(x(ts[j]) + ',' + y(v)); });
    if (pts.length) svg.append(svgEl('polyline', { points: pts.join(' '), class: 'line s' + i, fill: 'none' }));
  }
  const latest = series.map((sr, i) => {
    const v = sr.values.findLast((x) => x >= 0) ?? -1; // a latency may be unmeasured in the last interval
    return el('span', { class: 'key s' + i }, (series.length > 1 ? sr.name + ' ' : '') + (v >= 0 ? fmt(v) : '—'));
  });
  return el('figure', { class: 'chartbox', 'data-chart': title }, el('figcaption', {}, el('span', {}, title), el('span', { class: 'latest' }, ...latest)), svg,
    el('div', { class: 'small muted' }, 'max ' + fmt(top)));
}

async function loadNode() {
  const { samples, interval_seconds: iv } = await api('GET', 'node');
  const col = (f) => samples.map(f);
  const span = samples.length ? (Date.parse(samples[samples.length - 1].t) - Date.parse(samples[0].t)) / 60e3 : 0;
  $('node-span').textContent = samples.length < 2 ? 'collecting (a sample every ' + iv + ' s)…'
    : span < 1 ? 'last ' + Math.round(span * 60) + ' s' : 'last ' + Math.round(span) + ' min';
  const ins = (k) => col((s) => s.inserts_per_s[k] || 0);
  $('node').replaceChildren(
    chart('Rows/s', samples, iv, [{ name: 'stored', values: col((s) => s.rows_per_s) }, { name: 'quarantined', values: col((s) => s.quarantined_per_s) }], fmtNum),
    chart('Insert requests/s', samples, iv, [{ name: '2xx', values: ins('2xx') }, { name: '429', values: ins('429') }, { name: '4xx', values: ins('4xx') }, { name: '5xx', values: ins('5xx') }], fmtNum),
    chart('Write-ahead log', samples, iv, [{ name: 'size', values: col((s) => s.wal_bytes) }], fmtBytes),
    chart('Buffered rows', samples, iv, [{ name: 'rows', values: col((s) => s.buffered_rows) }], fmtNum),
    chart('Open databases', samples, iv, [{ name: 'open', values: col((s) => s.open_databases) }], fmtNum),
    chart('Latency (ms)', samples, iv, [{ name: 'flush', values: col((s) => s.flush_ms) }, { name: 'query first byte', values: col((s) => s.query_first_byte_ms) }], fmtNum),
  );
}

setInterval(() => {
  if (state.csrf && !$('tenants').hidden && !document.hidden) loadNode().catch(() => {});
}, 5000);

// ---- one tenant ----

async function loadTenant(id) {
  show('tenant');
  $('key-created').hidden = true;
  $('delete-box').hidden = true;
  // Loads can overlap (an action reloads while the previous reload is in
  // flight): only the latest one may draw, or an older answer would
  // overwrite a newer state.
  const gen = (state.tenantLoad = (state.tenantLoad || 0) + 1);
  const [t, keys, tables, shares, hooks] = await Promise.all([
    api('GET', 'tenants/' + id), api('GET', 'tenants/' + id + '/keys'), api('GET', 'tenants/' + id + '/tables'),
    api('GET', 'tenants/' + id + '/shares'), api('GET', 'tenants/' + id + '/webhooks'),
  ]);
  if (gen !== state.tenantLoad) return;
  state.tenant = t;
  $('t-name').textContent = t.name;
  $('t-status').textContent = t.status;
  $('t-status').className = 'badge ' + t.status;
  $('t-suspend').textContent = t.status === 'active' ? 'Suspend' : 'Resume';
  fillPlans($('t-plan'), t.plan);
  const lim = t.limits || {};
  const facts = [
    ['Id', t.tenant_id], ['Created', new Date(t.created).toLocaleString()],
    ['Rows', fmtInt(t.rows)], ['On disk', fmtBytes(t.bytes_on_disk)],
    ['Rate limit', lim.rows_per_second ? fmtInt(lim.rows_per_second) + ' rows/s' : 'none'],
    ['Storage quota', lim.storage_bytes ? fmtBytes(lim.storage_bytes) : 'none'],
    ['Memory, threads', (lim.memory_limit || 'DuckDB default') + ', ' + (lim.threads || 'default')],
  ];
  $('t-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  $('t-facts').append(el('dt', {}, 'Last ingest'), el('dd', {}, timeEl(t.last_ingest)));

  const box = $('t-tables');
  if (!tables.tables.length) box.replaceChildren(el('p', { class: 'muted' }, 'No table yet: the first insert creates one.'));
  else {
    box.replaceChildren(...tables.tables.map((tb) => el('details', { class: 'table', 'data-table': tb.name },
      el('summary', {}, el('strong', {}, tb.name), ' · ', plural(tb.rows, 'row') + ' · ' + plural(tb.columns.length, 'column')),
      el('div', { class: 'scroll' }, el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'Column'), el('th', {}, 'Type'))),
        el('tbody', {}, ...tb.columns.map((c) => el('tr', {}, el('td', {}, c.name), el('td', {}, el('code', {}, c.type))))))),
    )));
  }

  const kb = $('key-table').tBodies[0];
  kb.replaceChildren(...keys.keys.map((k) => el('tr', { 'data-key': k.key_id },
    el('td', {}, el('code', {}, k.key_id)), el('td', {}, k.scope), el('td', {}, timeEl(k.created)), el('td', {}, timeEl(k.last_used)),
    el('td', {}, el('button', { type: 'button', class: 'danger small revoke', onclick: (ev) => revokeKey(ev.target, id, k.key_id) }, 'Revoke')),
  )));
  if (!keys.keys.length) kb.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No key: create one below to let it send or read data.')));

  fillRows($('share-table'), shares.links, 6, 'No share link.', (l) => el('tr', { 'data-link': l.link_id },
    el('td', {}, l.name || el('span', { class: 'muted' }, '(unnamed)'), el('div', { class: 'muted small' }, l.snapshot ? 'snapshot' : 'live')),
    el('td', {}, timeEl(l.created)), el('td', {}, timeEl(l.expires_at)), el('td', { class: 'num' }, fmtInt(l.downloads)),
    el('td', {}, el('span', { class: 'badge ' + (l.revoked || l.expired ? 'suspended' : 'active') }, l.revoked ? 'revoked' : l.expired ? 'expired' : 'live')),
    el('td', {}, l.revoked || l.expired ? '' : el('button', { type: 'button', class: 'danger small revoke', onclick: (ev) => revokeShare(ev.target, id, l.link_id) }, 'Revoke')),
  ));
  fillRows($('webhook-table'), hooks.webhooks, 4, 'No webhook endpoint.', (w) => el('tr', {},
    el('td', {}, el('code', {}, w.id)), el('td', {}, w.provider), el('td', {}, w.table), el('td', {}, timeEl(w.created))));
  fillRows($('quarantine-table'), tables.quarantine, 4, 'Nothing quarantined.', (q) => el('tr', {},
    el('td', {}, q.table), el('td', { class: 'wrap' }, q.error), el('td', { class: 'num' }, fmtInt(q.rows)), el('td', {}, timeEl(q.last))));
  fillRows($('schema-table'), tables.schema_changes || [], 3, 'No schema change since the server started.', (c) => el('tr', {},
    el('td', {}, timeEl(c.at)), el('td', {}, c.table), el('td', { class: 'wrap' }, el('code', {}, c.sql))));
}

// fillRows fills a table's body with a row per item, or one row saying
// there is none.
function fillRows(table, items, cols, none, row) {
  const body = table.tBodies[0];
  body.replaceChildren(...items.map(row));
  if (!items.length) body.append(el('tr', {}, el('td', { colspan: cols, class: 'muted' }, none)));
}

// armed reports whether the button was clicked once already; if not it
// arms it (the second click confirms).
function armed(button, label, title) {
  if (button.classList.contains('armed')) return true;
  button.classList.add('armed');
  button.textContent = label;
  button.title = title;
  return false;
}

async function revokeShare(button, id, linkID) {
  if (!armed(button, 'Revoke for good?', 'Whoever has the link gets a "revoked" page from now on')) return;
  try {
    await api('DELETE', 'tenants/' + id + '/shares/' + encodeURIComponent(linkID));
    flash('Share link revoked.');
    await loadTenant(id);
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
}

// revokeKey asks once more on the button itself: the first click arms it.
async function revokeKey(button, id, keyID) {
  if (!armed(button, 'Revoke for good?', 'Programs using this key stop working at once')) return;
  try {
    await api('DELETE', 'tenants/' + id + '/keys/' + encodeURIComponent(keyID));
    flash('Key ' + keyID + ' revoked.');
    await loadTenant(id);
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
}

async function act(f, okMsg) {
  try {
    await f();
    flash(okMsg);
    await loadTenant(state.tenant.tenant_id);
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
}

$('plan-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = state.tenant.tenant_id;
  const plan = $('t-plan').value;
  act(() => api('PATCH', 'tenants/' + id, { plan }), 'Plan changed to ' + plan + '.');
});

$('t-suspend').addEventListener('click', () => {
  const t = state.tenant;
  const to = t.status === 'active' ? 'suspend' : 'resume';
  act(() => api('POST', 'tenants/' + t.tenant_id + '/' + to), to === 'suspend' ? 'Tenant suspended: its keys are refused, its data is kept.' : 'Tenant resumed.');
});

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.tenant.tenant_id;
  try {
    const k = await api('POST', 'tenants/' + id + '/keys', { scope: $('key-scope').value });
    await loadTenant(id);
    $('key-created-scope').textContent = k.scope;
    $('key-created-key').textContent = k.api_key;
    $('key-created').hidden = false;
    flash('');
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
});
$('copy-new-key').addEventListener('click', (ev) => copyText($('key-created-key').textContent, ev.target));

$('t-delete').addEventListener('click', () => {
  $('delete-id').textContent = state.tenant.tenant_id;
  $('delete-confirm').value = '';
  $('delete-go').disabled = true;
  $('delete-box').hidden = false;
  $('delete-confirm').focus();
});
$('delete-confirm').addEventListener('input', () => {
  $('delete-go').disabled = $('delete-confirm').value !== state.tenant.tenant_id;
});
$('delete-cancel').addEventListener('click', () => { $('delete-box').hidden = true; });
$('delete-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.tenant.tenant_id;
  if ($('delete-confirm').value !== id) return;
  try {
    await api('DELETE', 'tenants/' + id + '?confirm=true');
    flash('Tenant ' + id + ' deleted.');
    location.hash = '#/';
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
});

// ---- routing ----

async function route() {
  if (!state.csrf) return;
  const m = location.hash.match(/^#\/t\/([^/]+)$/);
  try {
    if (m) await loadTenant(decodeURIComponent(m[1]));
    else await loadTenants();
  } catch (e) { if (!(e instanceof SignedOut)) flash(e.message, true); }
}

window.addEventListener('hashchange', () => { flash(''); route(); });
startSession().then((ok) => { if (ok) route(); });
