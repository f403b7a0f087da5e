// Bulwark dashboard: follows the server's stream of state documents and
// redraws the health line, the summary and the tables (hosts, workloads,
// services, events), without a reload.
//
// The server draws the first paint (templates/page.html, with the helpers in
// render.go); the functions here draw the same markup from the JSON, to the
// character. Text goes into the page only as text nodes, never as HTML.
(function () {
  'use strict';

  var UNITS = [['TiB', 1099511627776], ['GiB', 1073741824], ['MiB', 1048576], ['KiB', 1024]];
  var DASH = '\u2014';

  // bytes reads an api.ByteSize as its JSON has it: "256MiB", "123B" or a number.
  function bytes(v) {
    if (typeof v === 'number') return v;
    var m = /^(\d+)(B|KiB|MiB|GiB|TiB)$/.exec(String(v || ''));
    if (!m) return 0;
    var n = Number(m[1]);
    for (var i = 0; i < UNITS.length; i++) {
      if (UNITS[i][0] === m[2]) return n * UNITS[i][1];
    }
    return n;
  }

  // human is render.go's human: one decimal, rounded half up, in whole numbers
  // (the units are powers of two, so the division is exact).
  function human(b) {
    for (var i = 0; i < UNITS.length; i++) {
      var u = UNITS[i][1];
      if (b >= u) {
        var tenths = Math.floor((b * 10 + u / 2) / u);
        var s = String(Math.floor(tenths / 10));
        if (tenths % 10 !== 0) s += '.' + (tenths % 10);
        return s + UNITS[i][0];
      }
    }
    return String(b) + 'B';
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function clock(s) {
    if (!s || s.indexOf('0001-01-01T00:00:00') === 0) return '';
    var d = new Date(s);
    if (isNaN(d.getTime())) return '';
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }

  function fenceClass(f) {
    if (f === 'ok') return 'fence-ok';
    if (f === 'none') return 'fence-none';
    if (!f) return 'fence-unknown';
    return 'fence-bad';
  }

  function fenceText(f) {
    if (!f) return 'unknown';
    if (f === 'none') return 'no device';
    return f;
  }

  function ratio(used, total) {
    if (total <= 0 || used <= 0) return 0;
    if (used >= total) return 1;
    return used / total;
  }

  function orDash(s) { return (s || '').trim() === '' ? DASH : s; }

  function epoch(e) { return e ? String(e) : DASH; }

  // el builds an element: attrs are set as attributes, children are elements
  // or strings (made text nodes).
  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function meter(r) {
    return el('meter', { min: '0', max: '1', low: '0.75', high: '0.9', optimum: '0', value: String(r) });
  }

  function badge(state) {
    return el('span', { 'class': 'badge st-' + state }, state);
  }

  function renderHealth(h) {
    var status = h.status || '';
    var box = document.getElementById('health');
    box.replaceChildren(
      el('div', {}, el('dt', {}, 'Leader'), el('dd', { 'class': h.leader ? 'leader' : 'leader none' }, h.leader || 'none')),
      el('div', {}, el('dt', {}, 'Revision'), el('dd', {}, String(h.revision || 0))),
      el('div', {}, el('dt', {}, 'Replica'), el('dd', {}, orDash(h.server))),
      el('div', {}, el('dt', {}, 'Status'), el('dd', { 'class': status === 'ok' ? 'status-ok' : 'status-bad' }, orDash(status)))
    );
  }

  function card(cls, label, value, of, m) {
    return el('div', { 'class': cls ? 'card ' + cls : 'card' },
      el('div', { 'class': 'label' }, label),
      el('div', { 'class': 'value' }, value, of === null ? null : el('span', { 'class': 'of' }, ' / ' + of)),
      m);
  }

  function renderSummary(st) {
    var s = { hosts: 0, ready: 0, workloads: 0, running: 0, pending: 0, failed: 0, cpus: 0, cpusUsed: 0, mem: 0, memUsed: 0 };
    st.nodes.forEach(function (n) {
      s.hosts++;
      if (n.state === 'ready') s.ready++;
      s.cpus += n.cpus || 0;
      s.cpusUsed += n.cpus_used || 0;
      s.mem += bytes(n.memory);
      s.memUsed += bytes(n.memory_used);
    });
    st.workloads.forEach(function (w) {
      s.workloads++;
      if (w.state === 'running') s.running++;
      else if (w.state === 'pending') s.pending++;
      else if (w.state === 'failed') s.failed++;
    });
    document.getElementById('summary').replaceChildren(
      card(s.ready < s.hosts ? 'bad' : '', 'Hosts ready', String(s.ready), String(s.hosts)),
      card('', 'Workloads running', String(s.running), String(s.workloads)),
      card(s.pending ? 'warn' : '', 'Pending', String(s.pending), null),
      card(s.failed ? 'bad' : '', 'Failed', String(s.failed), null),
      card('', 'CPUs allocated', String(s.cpusUsed), String(s.cpus), meter(ratio(s.cpusUsed, s.cpus))),
      card('', 'Memory allocated', human(s.memUsed), human(s.mem), meter(ratio(s.memUsed, s.mem)))
    );
  }

  function emptyRow(cols, text) {
    return el('tr', { 'class': 'empty' }, el('td', { colspan: String(cols) }, text));
  }

  function hostRow(n) {
    var name = el('td', { 'class': 'name' }, n.name);
    var labels = n.labels || {};
    Object.keys(labels).sort().forEach(function (k) {
      name.appendChild(el('span', { 'class': 'label-chip' }, k + '=' + labels[k]));
    });
    var cpus = n.cpus || 0, used = n.cpus_used || 0;
    var mem = bytes(n.memory), memUsed = bytes(n.memory_used);
    return el('tr', { 'data-host': n.name, 'data-state': n.state },
      name,
      el('td', {}, badge(n.state)),
      el('td', { 'class': fenceClass(n.fencing) }, fenceText(n.fencing)),
      el('td', { 'class': 'res' }, el('span', { 'class': 'usage' }, used + ' / ' + cpus), meter(ratio(used, cpus))),
      el('td', { 'class': 'res' }, el('span', { 'class': 'usage' }, human(memUsed) + ' / ' + human(mem)), meter(ratio(memUsed, mem))),
      el('td', { 'class': 'num' }, String(n.workloads || 0)),
      el('td', { 'class': n.reason ? 'reason' : 'detail' }, n.reason ? n.reason : orDash(n.detail)));
  }

  function workloadRow(w) {
    return el('tr', { 'data-workload': w.name, 'data-state': w.state },
      el('td', { 'class': 'name' }, w.name),
      el('td', {}, el('span', { 'class': 'kind kind-' + w.kind }, w.kind)),
      el('td', {}, badge(w.state)),
      el('td', {}, orDash(w.host)),
      el('td', { 'class': 'num' }, epoch(w.epoch)),
      el('td', { 'class': 'res' }, (w.cpus || 0) + ' CPU \u00b7 ' + human(bytes(w.memory))),
      el('td', { 'class': w.reason ? 'reason' : 'detail' }, orDash(w.reason)));
  }

  // The service helpers are render.go's serviceHealth, serviceAddress and
  // serviceInPool.
  var HEALTHS = ['healthy', 'unhealthy', 'starting', 'unknown'];

  function serviceHealth(s) {
    var td = el('td', { 'class': 'checks' });
    var inst = s.instances || [];
    HEALTHS.forEach(function (h) {
      var n = inst.filter(function (m) { return !m.deleting && m.health === h; }).length;
      if (n === 0) return;
      if (td.childNodes.length > 0) td.appendChild(document.createTextNode(' \u00b7 '));
      td.appendChild(el('span', { 'class': 'chk chk-' + h }, n + ' ' + h));
    });
    if (td.childNodes.length === 0) td.appendChild(document.createTextNode(DASH));
    return td;
  }

  function serviceAddress(s) {
    if (!s.vip) return DASH;
    var vip = s.vip.indexOf(':') >= 0 ? '[' + s.vip + ']' : s.vip;
    var ports = (s.ports || []).map(function (p) { return String(p.port) + (p.proto === 'udp' ? '/udp' : ''); });
    return vip + ':' + ports.join(',');
  }

  function poolSize(s) { return s.pool && s.pool.backends ? s.pool.backends.length : 0; }

  function serviceRow(s) {
    var state = s.deleting ? 'deleting' : 'active';
    var running = s.running || 0, replicas = s.replicas || 0;
    var pooled = poolSize(s);
    return el('tr', { 'data-service': s.name, 'data-state': state },
      el('td', { 'class': 'name' }, s.name),
      el('td', { 'class': running < replicas ? 'num short' : 'num', title: 'running / wanted' }, running + ' / ' + replicas),
      serviceHealth(s),
      el('td', s.vip ? { 'class': 'addr' } : {}, serviceAddress(s)),
      el('td', { 'class': s.vip && !s.vip_holder ? 'short' : 'holder' }, orDash(s.vip_holder)),
      el('td', { 'class': s.vip && pooled < replicas ? 'num short' : 'num' }, s.vip ? pooled + ' of ' + replicas : DASH),
      el('td', {}, badge(state)));
  }

  function eventRow(e) {
    return el('tr', {},
      el('td', { 'class': 'time' }, clock(e.time)),
      el('td', {}, el('span', { 'class': 'etype' }, e.type || '')),
      el('td', {}, orDash(e.host)),
      el('td', {}, orDash(e.workload)),
      el('td', { 'class': 'message' }, e.message || ''));
  }

  function fill(id, items, row, cols, empty) {
    var rows = items.map(row);
    if (rows.length === 0) rows.push(emptyRow(cols, empty));
    document.getElementById(id).replaceChildren.apply(document.getElementById(id), rows);
  }

  function render(st) {
    st.nodes = st.nodes || [];
    st.workloads = st.workloads || [];
    st.services = st.services || [];
    st.events = st.events || [];
    renderHealth(st.health || {});
    renderSummary(st);
    fill('hosts-body', st.nodes, hostRow, 7, 'No hosts have registered.');
    fill('workloads-body', st.workloads, workloadRow, 7, 'No workloads.');
    fill('services-body', st.services, serviceRow, 7, 'No services.');
    fill('events-body', st.events.slice().reverse(), eventRow, 5, 'No events yet.');
    document.body.setAttribute('data-revision', String((st.health && st.health.revision) || 0));
  }

  function setLive(cls, text, title) {
    var live = document.getElementById('live');
    live.className = 'live ' + cls;
    live.textContent = text;
    live.title = title;
  }

  function start() {
    if (!window.EventSource) return; // the server-drawn snapshot stays
    var problem = document.getElementById('problem');
    var rev = document.body.getAttribute('data-revision') || '0';
    // The stream skips the state the page already shows.
    var es = new EventSource('stream?rev=' + encodeURIComponent(rev));
    es.addEventListener('open', function () {
      setLive('on', 'live', 'The page follows the cluster as it changes');
    });
    es.addEventListener('error', function () {
      setLive('retry', 'reconnecting\u2026', 'Lost the connection to the server; retrying');
    });
    es.addEventListener('state', function (ev) {
      render(JSON.parse(ev.data));
      problem.hidden = true;
      problem.textContent = '';
      setLive('on', 'live', 'The page follows the cluster as it changes');
    });
    es.addEventListener('unavailable', function (ev) {
      var e = JSON.parse(ev.data);
      problem.textContent = 'The cluster state cannot be read: ' + (e.error || 'unknown error') +
        ' (showing revision ' + document.body.getAttribute('data-revision') + ')';
      problem.hidden = false;
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
