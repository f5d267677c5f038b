// Operator map: sites, line of contact, live tracks (tails and 95 % ellipses) and cues.
// No tiles, no libraries: a local equirectangular projection about the theatre centre drawn
// in SVG, redrawn from the state on every change. Data comes from the fusion node's map
// server: sites.geojson once, then a Server-Sent Events stream (snapshot, tracks, cue).
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const R_EARTH_M = 6371008.8;
  const DEG = Math.PI / 180;
  const VEL_LEAD_S = 60; // the velocity stick shows one minute ahead

  const S = {
    sites: { type: "FeatureCollection", features: [] },
    tracks: new Map(),
    open: new Map(),
    closed: [],
    t_s: 0,
    version: 0,
    selected: null,
    connected: false,
    sitesLoaded: false,
    events: 0,
    fresh: new Map(), // cue id -> when it opened here, to flash it in the list
  };
  // view: projection origin, centre in local metres, metres per screen pixel
  const view = { lat0: null, lon0: null, cosLat0: 1, cx: 0, cy: 0, mpp: 50 };

  const svg = document.getElementById("map");
  const layers = {
    sites: document.getElementById("layer-sites"),
    tracks: document.getElementById("layer-tracks"),
    cues: document.getElementById("layer-cues"),
    labels: document.getElementById("layer-labels"),
  };

  // ------------------------------------------------------------------ projection

  function setOrigin(lat, lon) {
    view.lat0 = lat;
    view.lon0 = lon;
    view.cosLat0 = Math.cos(lat * DEG);
  }
  function project(lat, lon) {
    return [
      (lon - view.lon0) * DEG * R_EARTH_M * view.cosLat0,
      (lat - view.lat0) * DEG * R_EARTH_M,
    ];
  }
  function size() {
    const r = svg.getBoundingClientRect();
    return [Math.max(r.width, 1), Math.max(r.height, 1)];
  }
  function toScreen(p) {
    const [w, h] = size();
    return [w / 2 + (p[0] - view.cx) / view.mpp, h / 2 - (p[1] - view.cy) / view.mpp];
  }
  function screenToWorld(sx, sy) {
    const [w, h] = size();
    return [view.cx + (sx - w / 2) * view.mpp, view.cy - (sy - h / 2) * view.mpp];
  }
  function ll(lat, lon) {
    return toScreen(project(lat, lon));
  }

  // ------------------------------------------------------------------ geometry helpers

  function eachPosition(geom, fn) {
    if (!geom) return;
    const c = geom.coordinates;
    switch (geom.type) {
      case "Point": fn(c); break;
      case "MultiPoint": case "LineString": c.forEach(fn); break;
      case "Polygon": case "MultiLineString": c.forEach((r) => r.forEach(fn)); break;
      case "MultiPolygon": c.forEach((p) => p.forEach((r) => r.forEach(fn))); break;
      case "GeometryCollection": geom.geometries.forEach((g) => eachPosition(g, fn)); break;
    }
  }
  function ringPath(ring) {
    return ring.map((p, i) => {
      const [x, y] = ll(p[1], p[0]);
      return (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
    }).join("");
  }
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function clear(g) {
    while (g.firstChild) g.removeChild(g.firstChild);
  }
  function fmtTime(t_s) {
    if (!t_s) return "--";
    return new Date(t_s * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"]/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  // ------------------------------------------------------------------ view control

  function bounds() {
    let n = 0, minLat = 90, maxLat = -90, minLon = 180, maxLon = -180;
    const add = (lat, lon) => {
      if (lat == null || lon == null) return;
      n++;
      minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
      minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
    };
    S.sites.features.forEach((f) => eachPosition(f.geometry, (p) => add(p[1], p[0])));
    if (!n) {
      S.tracks.forEach((t) => add(t.lat, t.lon));
      S.open.forEach((c) => add(c.lat, c.lon));
    }
    return n ? { minLat, maxLat, minLon, maxLon } : null;
  }
  function fit() {
    const b = bounds();
    if (!b) return;
    if (view.lat0 === null) setOrigin((b.minLat + b.maxLat) / 2, (b.minLon + b.maxLon) / 2);
    const p0 = project(b.minLat, b.minLon), p1 = project(b.maxLat, b.maxLon);
    const [w, h] = size();
    view.cx = (p0[0] + p1[0]) / 2;
    view.cy = (p0[1] + p1[1]) / 2;
    const spanX = Math.max(p1[0] - p0[0], 500), spanY = Math.max(p1[1] - p0[1], 500);
    view.mpp = 1.15 * Math.max(spanX / w, spanY / h);
    schedule();
  }
  function centreOn(lat, lon, maxMpp) {
    if (view.lat0 === null) setOrigin(lat, lon);
    const p = project(lat, lon);
    view.cx = p[0];
    view.cy = p[1];
    if (maxMpp && view.mpp > maxMpp) view.mpp = maxMpp;
    schedule();
  }

  let drag = null;
  svg.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy };
    svg.classList.add("dragging");
  });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    view.cx = drag.cx - (e.clientX - drag.x) * view.mpp;
    view.cy = drag.cy + (e.clientY - drag.y) * view.mpp;
    schedule();
  });
  window.addEventListener("mouseup", () => {
    drag = null;
    svg.classList.remove("dragging");
  });
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    const sx = e.clientX - r.left, sy = e.clientY - r.top;
    const before = screenToWorld(sx, sy);
    view.mpp *= e.deltaY > 0 ? 1.2 : 1 / 1.2;
    const [w, h] = size();
    view.cx = before[0] - (sx - w / 2) * view.mpp;
    view.cy = before[1] + (sy - h / 2) * view.mpp;
    schedule();
  }, { passive: false });
  svg.addEventListener("dblclick", fit);
  // one listener on the list: its items are rebuilt on every render, so a click that spans
  // a rebuild still lands
  document.getElementById("cue-list").addEventListener("click", (e) => {
    const li = e.target.closest("li[data-cue-id]");
    if (li) selectCue(li.dataset.cueId);
  });
  window.addEventListener("resize", schedule);

  // ------------------------------------------------------------------ drawing

  function drawSites() {
    clear(layers.sites);
    for (const f of S.sites.features) {
      const g = f.geometry, p = f.properties || {};
      if (!g) continue;
      const id = String(p.id != null ? p.id : p.name || "");
      const kind = String(p.kind || "");
      if (p.layer === "buffer") {
        // a site's buffer (fusion.export): an outline only, under the site, no label
        const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates || [];
        const d = polys.map((poly) => poly.map((r) => ringPath(r) + "Z").join("")).join("");
        el("path", { d, class: "site-buffer", "data-buffer-of": id }, layers.sites);
        continue;
      }
      const attrs = { "data-site-id": id, "data-kind": kind };
      let labelAt = null;
      if (g.type === "Polygon" || g.type === "MultiPolygon") {
        const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
        const d = polys.map((poly) => poly.map((r) => ringPath(r) + "Z").join("")).join("");
        const zone = /zone|corridor|exclusion/.test(kind) ? " zone" : "";
        el("path", { ...attrs, d, class: "site site-area" + zone, "fill-rule": "evenodd" },
          layers.sites);
        // label at the mean of the outer ring's vertices (its first vertex may sit on a
        // neighbour, as a corridor's does on its port)
        const ring = polys[0][0].slice(0, -1);
        labelAt = [ring.reduce((a, p) => a + p[0], 0) / ring.length,
          ring.reduce((a, p) => a + p[1], 0) / ring.length];
      } else if (g.type === "LineString" || g.type === "MultiLineString") {
        const lines = g.type === "LineString" ? [g.coordinates] : g.coordinates;
        el("path", { ...attrs, d: lines.map(ringPath).join(""), class: "site site-line" },
          layers.sites);
        labelAt = lines[0][Math.floor(lines[0].length / 2)];
      } else if (g.type === "Point") {
        const [x, y] = ll(g.coordinates[1], g.coordinates[0]);
        const radius_m = Number(p.radius_m || p.radius || 0);
        if (radius_m > 0) {
          el("circle", { ...attrs, cx: x, cy: y, r: Math.max(radius_m / view.mpp, 3),
            class: "site site-area" }, layers.sites);
        }
        el("circle", { ...attrs, cx: x, cy: y, r: 3.5, class: "site site-point" }, layers.sites);
        labelAt = g.coordinates;
      }
      if (labelAt && (p.name || id)) {
        const [x, y] = ll(labelAt[1], labelAt[0]);
        const t = el("text", { x: x + 6, y: y - 6, class: "site-label" }, layers.labels);
        t.textContent = p.name || id;
      }
    }
  }

  function drawTracks() {
    clear(layers.tracks);
    const [w, h] = size();
    for (const t of S.tracks.values()) {
      const cls = "cls-" + (t.cls || "unknown");
      const [x, y] = ll(t.lat, t.lon);
      const g = el("g", { class: "track " + cls, "data-track-id": t.id }, layers.tracks);
      if (t.history && t.history.length > 1) {
        const pts = t.history.map((p) => ll(p[0], p[1]).map((v) => v.toFixed(1)).join(","));
        el("polyline", { points: pts.join(" "), class: "trk-tail " + cls }, g);
      }
      if (x < -50 || y < -50 || x > w + 50 || y > h + 50) continue;
      const e = t.ellipse || { a_m: 0, b_m: 0, bearing_deg: 0 };
      el("ellipse", {
        cx: x, cy: y, rx: Math.max(e.b_m / view.mpp, 2), ry: Math.max(e.a_m / view.mpp, 2),
        transform: `rotate(${e.bearing_deg.toFixed(2)} ${x.toFixed(1)} ${y.toFixed(1)})`,
        class: "trk-ellipse " + cls,
      }, g);
      const c = (t.course_deg || 0) * DEG, len = (t.speed_mps || 0) * VEL_LEAD_S / view.mpp;
      if (len > 1) {
        el("line", { x1: x, y1: y, x2: x + len * Math.sin(c), y2: y - len * Math.cos(c),
          class: "trk-vel " + cls }, g);
      }
      el("circle", { cx: x, cy: y, r: 4, class: "trk-dot " + cls }, g);
      const label = el("text", { x: x + 6, y: y + 12, class: "trk-label" }, g);
      label.textContent = "T" + t.id + (t.ident ? " " + t.ident : "");
      g.addEventListener("click", () => showTrack(t.id));
    }
  }

  function drawCues() {
    clear(layers.cues);
    for (const c of S.closed.slice(0, 10)) {
      if (c.lat == null) continue;
      const [x, y] = ll(c.lat, c.lon);
      el("circle", { cx: x, cy: y, r: 7, class: "cue-closed", "data-cue-id": c.id },
        layers.cues);
    }
    for (const c of S.open.values()) {
      if (c.lat == null) continue;
      const [x, y] = ll(c.lat, c.lon);
      const r = Math.max((c.sigma_m || 0) * 2.45 / view.mpp, 9);
      const sel = S.selected === c.id ? " selected" : "";
      const m = el("circle", { cx: x, cy: y, r, class: "cue-mark" + sel, "data-cue-id": c.id },
        layers.cues);
      el("circle", { cx: x, cy: y, r: 9, class: "cue-pulse" }, layers.cues);
      m.addEventListener("click", () => selectCue(c.id));
    }
  }

  function drawList() {
    const ul = document.getElementById("cue-list");
    clear(ul);
    const open = [...S.open.values()].sort((a, b) => (b.t_s || 0) - (a.t_s || 0));
    for (const c of open) {
      const li = document.createElement("li");
      li.dataset.cueId = c.id;
      li.className = "cue sev-" + String(c.severity || "high").toLowerCase() +
        (S.selected === c.id ? " selected" : "") +
        (Date.now() - (S.fresh.get(c.id) || 0) < 4000 ? " fresh" : "");
      li.innerHTML = `<div class="cue-title">${esc(String(c.rule || "cue").replace("_", " "))}` +
        ` &middot; ${esc(c.site_name || c.site)}</div>` +
        `<div class="cue-text">${esc(c.text)}</div>` +
        `<div class="cue-text">${fmtTime(c.t_s)} &middot; ${esc(c.severity)}` +
        (c.confidence != null ? ` &middot; conf ${Number(c.confidence).toFixed(2)}` : "") +
        "</div>";
      ul.appendChild(li);
    }
    document.getElementById("open-count").textContent = String(open.length);
    const cl = document.getElementById("closed-list");
    clear(cl);
    for (const c of S.closed.slice(0, 20)) {
      const li = document.createElement("li");
      li.dataset.cueId = c.id;
      li.textContent = `${c.rule} · ${c.site_name || c.site} · closed ${fmtTime(c.t_s)}`;
      cl.appendChild(li);
    }
  }

  function drawStatus() {
    const conn = document.getElementById("conn");
    conn.textContent = S.connected ? "live" : "offline";
    conn.className = "conn " + (S.connected ? "up" : "down");
    document.getElementById("clock").textContent = fmtTime(S.t_s);
    document.getElementById("counts").textContent =
      `${S.tracks.size} tracks · ${S.open.size} open cues`;
    // scale bar: a round length near 100 px
    const raw = 100 * view.mpp, pow = Math.pow(10, Math.floor(Math.log10(raw)));
    const nice = [1, 2, 5, 10].map((k) => k * pow).filter((v) => v <= raw).pop() || pow;
    document.getElementById("scale-bar").style.width = (nice / view.mpp).toFixed(0) + "px";
    document.getElementById("scale-text").textContent =
      nice >= 1000 ? nice / 1000 + " km" : nice + " m";
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(render);
  }
  function render() {
    pending = false;
    if (view.lat0 === null) {
      const b = bounds();
      if (b) fit();
    }
    if (view.lat0 !== null) {
      clear(layers.labels);
      drawSites();
      drawTracks();
      drawCues();
    }
    drawList();
    drawStatus();
    api.rendered++;
  }

  // ------------------------------------------------------------------ selection

  function selectCue(id) {
    const c = S.open.get(id);
    if (!c) return;
    S.selected = id;
    if (c.lat != null) centreOn(c.lat, c.lon, 200);
    document.getElementById("detail").textContent =
      `${c.rule} at ${c.site_name || c.site}\n${c.text || ""}\n` +
      `cue ${c.id}  state ${c.state}  severity ${c.severity}\n` +
      `track ${c.track == null ? "-" : "T" + c.track}  opened ${fmtTime(c.opened_t_s)}\n` +
      (c.lat != null ? `${c.lat.toFixed(6)}, ${c.lon.toFixed(6)}` : "");
    schedule();
  }
  function showTrack(id) {
    const t = S.tracks.get(id);
    if (!t) return;
    document.getElementById("detail").textContent =
      `track T${t.id} ${t.ident || "(no identity)"}\n${t.cls}, ${t.status}, ` +
      `${t.n_sensors} sensor(s)\n${t.lat.toFixed(6)}, ${t.lon.toFixed(6)}, ` +
      `${t.alt.toFixed(0)} m\n${t.speed_mps.toFixed(1)} m/s course ${t.course_deg.toFixed(0)}\n` +
      `95 % ellipse ${t.ellipse.a_m.toFixed(0)} x ${t.ellipse.b_m.toFixed(0)} m`;
  }

  // ------------------------------------------------------------------ data

  function loadSnapshot(snap) {
    S.tracks.clear();
    (snap.tracks || []).forEach((t) => S.tracks.set(t.id, t));
    S.open.clear();
    (snap.open_cues || []).forEach((c) => S.open.set(c.id, c));
    S.closed = snap.closed_cues || [];
    S.t_s = snap.t_s || S.t_s;
    S.version = snap.version || 0;
    if (S.selected && !S.open.has(S.selected)) S.selected = null;
    schedule();
  }
  function applyTracks(d) {
    (d.tracks || []).forEach((t) => S.tracks.set(t.id, t));
    (d.removed || []).forEach((id) => S.tracks.delete(id));
    S.t_s = Math.max(S.t_s, d.t_s || 0);
    schedule();
  }
  function applyCue(c) {
    if (c.state === "close") {
      S.open.delete(c.id);
      S.closed.unshift(c);
      S.closed.length = Math.min(S.closed.length, 50);
      if (S.selected === c.id) S.selected = null;
    } else {
      if (!S.open.has(c.id)) S.fresh.set(c.id, Date.now());
      S.open.set(c.id, c);
    }
    S.t_s = Math.max(S.t_s, c.t_s || 0);
    schedule();
  }
  function loadSites() {
    return fetch("sites.geojson", { cache: "no-store" })
      .then((r) => r.json())
      .then((fc) => {
        S.sites = fc && fc.features ? fc : { type: "FeatureCollection", features: [] };
        S.sitesLoaded = true;
        if (view.lat0 === null) fit();
        schedule();
      })
      .catch(() => { S.sitesLoaded = true; });
  }
  function connect() {
    const es = new EventSource("events");
    es.onopen = () => { S.connected = true; schedule(); };
    es.onerror = () => { S.connected = false; schedule(); };
    const on = (name, fn) => es.addEventListener(name, (e) => {
      S.events++;
      fn(JSON.parse(e.data));
    });
    on("snapshot", loadSnapshot);
    on("tracks", applyTracks);
    on("cue", applyCue);
    on("sites", loadSites);
    return es;
  }

  const api = {
    state: S,
    view,
    fit,
    centreOn,
    selectCue,
    rendered: 0,
    project,
    ll,
  };
  window.fusionMap = api;
  loadSites().then(connect);
})();
