// fabrik-node dashboard: fills the server-rendered page from /api/v1.
// No framework, no build step. Every figure element carries its raw value
// in data-value (what tests compare with the API); its text is for people.
'use strict';

const PAGE_SIZE = 25;
const TOKEN_KEY = 'fabrik-token';
const $ = (sel) => document.querySelector(sel);

// A token in the fragment (#token=...) is moved to sessionStorage and out
// of the address bar; the fragment never reaches the server.
(function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
})();

class AuthError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  // credentials: 'omit' keeps the browser from answering the API's Basic
  // challenge with a login dialog of its own.
  const resp = await fetch(path, { headers, credentials: 'omit', cache: 'no-store' });
  if (resp.status === 401 || resp.status === 403) {
    let msg = resp.statusText;
    try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
    throw new AuthError(resp.status, msg);
  }
  if (!resp.ok) {
    let msg = resp.status + ' ' + resp.statusText;
    try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
    throw new Error(path + ': ' + msg);
  }
  return resp.json();
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
}
const pct = (r) => (r * 100).toFixed(1) + '%';
const ms = (v) => v.toFixed(v < 10 ? 2 : 0) + ' ms';
const when = (s) => (s ? new Date(s).toLocaleString() : '–');

function setFigure(id, value, text) {
  const el = document.getElementById(id);
  el.dataset.value = String(value);
  el.textContent = text === undefined ? String(value) : text;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'dataset') Object.assign(e.dataset, v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function banner(msg) {
  const b = $('#banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

// ---- overview ----

function renderStats(st, detail) {
  const p = st.performance;
  setFigure('hit-ratio', p.hit_ratio, pct(p.hit_ratio));
  setFigure('hits', p.cache_hits);
  setFigure('misses', p.cache_misses);
  setFigure('total-size', st.cache.total_size_bytes, bytes(st.cache.total_size_bytes));
  setFigure('max-size', detail.max_size_bytes, detail.max_size_bytes ? bytes(detail.max_size_bytes) : 'no bound');
  setFigure('total-objects', st.cache.total_objects);
  setFigure('evictions', st.evictions.total);
  setFigure('eviction-rate', st.evictions.eviction_rate_per_hour);
  setFigure('p50', p.latency_p50_ms, ms(p.latency_p50_ms));
  setFigure('p95', p.latency_p95_ms, ms(p.latency_p95_ms));
  setFigure('p99', p.latency_p99_ms, ms(p.latency_p99_ms));
  setFigure('upload-bytes', st.bandwidth.upload_bytes_total, bytes(st.bandwidth.upload_bytes_total));
  setFigure('download-bytes', st.bandwidth.download_bytes_total, bytes(st.bandwidth.download_bytes_total));
  $('#size-bar').replaceChildren(sizeBar(st.cache.total_size_bytes, detail.max_size_bytes));

  const names = new Set([...Object.keys(detail.build_systems), ...Object.keys(st.cache.size_by_type || {})]);
  const rows = [...names].sort().map((name) => {
    const b = detail.build_systems[name] || { requests: 0, hits: 0, misses: 0, hit_ratio: 0, upload_bytes: 0, download_bytes: 0 };
    const stored = (st.cache.size_by_type || {})[name] || 0;
    return el('tr', { dataset: { buildSystem: name } },
      el('td', {}, name), el('td', {}, String(b.requests)), el('td', {}, String(b.hits)), el('td', {}, String(b.misses)),
      el('td', {}, b.hits + b.misses ? pct(b.hit_ratio) : '–'), el('td', {}, bytes(b.upload_bytes)),
      el('td', {}, bytes(b.download_bytes)), el('td', {}, bytes(stored)));
  });
  $('#build-systems tbody').replaceChildren(...rows);
  $('#build-system-names').replaceChildren(...[...names].sort().map((n) => el('option', { value: n })));

  const ups = detail.upstreams.map((u) => el('tr', { dataset: { upstream: u.name, state: u.state } },
    el('td', {}, u.name), el('td', { class: 'state ' + u.state }, u.state.replace('_', ' ')),
    el('td', {}, String(u.hits)), el('td', {}, String(u.misses)), el('td', {}, String(u.errors)),
    el('td', {}, u.hits + u.misses ? pct(u.hit_ratio) : '–'), el('td', {}, when(u.last_at))));
  $('#upstreams tbody').replaceChildren(...ups);
  $('#no-upstreams').hidden = ups.length > 0;

  // P2P: shown only when the node reports a P2P layer.
  $('#p2p').hidden = !detail.p2p;
  if (detail.p2p) $('#peers').replaceChildren(...(detail.p2p.peers || []).map((p) => el('li', {}, p)));
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function sizeBar(used, max) {
  const frac = max ? Math.min(used / max, 1) : 0;
  return svg('svg', { viewBox: '0 0 100 6', class: 'bar', role: 'img', 'aria-label': max ? pct(frac) + ' used' : 'no bound' },
    svg('rect', { x: 0, y: 0, width: 100, height: 6, class: 'bar-bg' }),
    svg('rect', { x: 0, y: 0, width: (frac * 100).toFixed(2), height: 6, class: frac > 0.9 ? 'bar-fill hot' : 'bar-fill' }));
}

// renderChart draws one bar per minute of the last hour: height is the hit
// ratio, a minute without reads is a gap.
function renderChart(ts) {
  const W = 600; const H = 120; const slot = W / 60;
  const now = Date.now();
  const bars = [];
  for (const p of ts.points) {
    const age = Math.floor((now - Date.parse(p.start)) / 60000);
    const x = W - (age + 1) * slot;
    if (x < 0) continue;
    const reads = p.hits + p.misses;
    const h = reads ? Math.max(p.hit_ratio * H, 1) : 0;
    bars.push(svg('rect', { x: x.toFixed(1), y: (H - h).toFixed(1), width: (slot - 1).toFixed(1), height: h.toFixed(1), class: p.partial ? 'pt partial' : 'pt', 'data-start': p.start, 'data-hit-ratio': p.hit_ratio, 'data-reads': reads },
      svg('title', {}, `${new Date(p.start).toLocaleTimeString()}: ${reads ? pct(p.hit_ratio) : 'no reads'} (${p.hits} hits, ${p.misses} misses, ${p.requests} requests)`)));
  }
  const grid = [0, 0.5, 1].map((f) => svg('g', {},
    svg('line', { x1: 0, x2: W, y1: H - f * H, y2: H - f * H, class: 'grid' }),
    svg('text', { x: 2, y: Math.max(H - f * H - 2, 10), class: 'axis' }, pct(f))));
  $('#chart').replaceChildren(svg('svg', { viewBox: `0 0 ${W} ${H + 14}`, role: 'img', 'aria-label': 'hit ratio per minute', 'data-points': ts.points.length },
    ...grid, ...bars,
    svg('text', { x: 0, y: H + 12, class: 'axis' }, '60 min ago'),
    svg('text', { x: W, y: H + 12, class: 'axis end' }, 'now')));
}

async function loadOverview() {
  const [st, detail, ts] = await Promise.all([api('/api/v1/stats'), api('/api/v1/stats/detail'), api('/api/v1/stats/timeseries')]);
  renderStats(st, detail);
  renderChart(ts);
}

// ---- explorer ----

function query() {
  const q = new URLSearchParams(location.search);
  return {
    sort: q.get('sort') || 'size_desc',
    build_system: q.get('build_system') || '',
    min_size: q.get('min_size') || '',
    hash_prefix: (q.get('hash_prefix') || '').toLowerCase(),
    page: Math.max(parseInt(q.get('page') || '1', 10) || 1, 1),
  };
}

function artifactRow(a, full) {
  const tr = el('tr', { dataset: { hash: a.hash, buildSystem: a.metadata.build_system, size: a.size_bytes } },
    el('td', { class: 'hash' }, el('a', { href: '#detail' }, a.hash.slice(0, 16) + '…')),
    el('td', {}, a.metadata.build_system), el('td', {}, bytes(a.size_bytes)));
  if (full) tr.append(el('td', {}, when(a.created_at)), el('td', {}, when(a.last_accessed)));
  tr.append(el('td', {}, String(a.access_count)));
  tr.querySelector('a').addEventListener('click', (ev) => { ev.preventDefault(); showDetail(a.hash); });
  return tr;
}

async function loadArtifacts() {
  const q = query();
  const form = $('#search');
  for (const k of ['sort', 'build_system', 'min_size', 'hash_prefix']) form.elements[k].value = q[k];
  const params = new URLSearchParams({ sort: q.sort, limit: PAGE_SIZE, offset: (q.page - 1) * PAGE_SIZE });
  const filtered = q.build_system || q.min_size || q.hash_prefix;
  for (const k of ['build_system', 'min_size', 'hash_prefix']) if (q[k]) params.set(k, q[k]);
  const res = await api((filtered ? '/api/v1/artifacts/search?' : '/api/v1/artifacts?') + params);
  const pages = Math.max(Math.ceil(res.total / PAGE_SIZE), 1);
  setFigure('result-total', res.total);
  $('#page-number').textContent = String(q.page);
  $('#page-count').textContent = String(pages);
  $('#prev').disabled = q.page <= 1;
  $('#next').disabled = q.page >= pages;
  $('#artifacts tbody').replaceChildren(...res.artifacts.map((a) => artifactRow(a, true)));
  $('#artifacts').dataset.rows = String(res.artifacts.length);
}

async function loadTop() {
  const res = await api('/api/v1/artifacts/top?limit=10');
  $('#top tbody').replaceChildren(...res.artifacts.map((a) => artifactRow(a, false)));
}

async function showDetail(hash) {
  try {
    const a = await api('/api/v1/artifacts/' + encodeURIComponent(hash));
    const fields = [['hash', a.hash], ['build system', a.metadata.build_system], ['size', `${bytes(a.size_bytes)} (${a.size_bytes} bytes)`],
      ['created', when(a.created_at)], ['last accessed', when(a.last_accessed)], ['accesses', String(a.access_count)]];
    $('#detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    $('#detail').hidden = false;
    $('#detail').dataset.hash = a.hash;
  } catch (e) { fail(e); }
}

function go(changes) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) { if (v === '' || v === null) q.delete(k); else q.set(k, v); }
  history.pushState(null, '', location.pathname + '?' + q + '#explorer');
  loadArtifacts().catch(fail);
}

$('#search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  go({ sort: f.sort.value, build_system: f.build_system.value.trim(), min_size: f.min_size.value.trim(), hash_prefix: f.hash_prefix.value.trim().toLowerCase(), page: '' });
});
$('#prev').addEventListener('click', () => go({ page: Math.max(query().page - 1, 1) }));
$('#next').addEventListener('click', () => go({ page: query().page + 1 }));
window.addEventListener('popstate', () => loadArtifacts().catch(fail));

// ---- auth and start ----

function fail(e) {
  if (e instanceof AuthError) {
    $('#content').hidden = true;
    $('#token-form').hidden = false;
    $('#logout').hidden = !sessionStorage.getItem(TOKEN_KEY);
    banner(e.status === 403 ? 'This token may not read the cache (it needs cache:read): ' + e.message
      : (sessionStorage.getItem(TOKEN_KEY) ? 'The token was refused: ' + e.message : ''));
    document.body.dataset.state = e.status === 403 ? 'forbidden' : 'needs-token';
    return;
  }
  banner(String(e.message || e));
  document.body.dataset.state = 'error';
}

$('#token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
  $('#token').value = '';
  start();
});
$('#logout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });

let timer = null;
async function start() {
  document.body.dataset.state = 'loading';
  try {
    await loadOverview();
    await Promise.all([loadArtifacts(), loadTop()]);
    $('#token-form').hidden = true;
    $('#content').hidden = false;
    $('#logout').hidden = !sessionStorage.getItem(TOKEN_KEY);
    banner('');
    document.body.dataset.state = 'ready';
    if (!timer) timer = setInterval(() => loadOverview().catch(fail), 15000);
  } catch (e) { fail(e); }
}
start();
