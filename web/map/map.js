/* harmmap web map: outlines from the service's vector tiles, coloured by /map/layers/{layer}.
 *
 * The server computes and classes every value (the same classes the print maps use); the page sets each
 * area's class as MapLibre feature state, keyed by the GSS code (or H3 cell) the tiles carry. Credentials
 * travel in a header on every request, tiles included, never in a URL.
 */
"use strict";

const NO_VALUE = "#d9d9d9";
const BACKGROUND = "#f4f4f1";
const state = { catalog: null, layer: null, byCode: new Map(), byName: new Map(), popup: null, selected: null };
const $ = (id) => document.getElementById(id);
// For the browser tests and for analysts poking at the page in the console.
window.harmmap = state;

function token() {
  return sessionStorage.getItem("harmmap-token") || "";
}

function authHeaders() {
  const t = token();
  return t ? { "X-API-Key": t } : {};
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail || detail;
    } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
}

function financialYears(months) {
  const years = new Set();
  for (const m of months) {
    const [y, mm] = m.split("-").map(Number);
    years.add(mm >= 4 ? y : y - 1);
  }
  return [...years].sort();
}

function fillPeriods() {
  const force = state.catalog.forces.find((f) => f.code === $("force").value);
  const select = $("period");
  const previous = select.value;
  select.innerHTML = "";
  const months = force ? force.months : [];
  if (months.length) {
    option(select, `${months[0]}..${months[months.length - 1]}`, `All months with data (${months[0]} to ${months[months.length - 1]})`);
  }
  for (const [name, p] of Object.entries(state.catalog.periods)) {
    option(select, name, `${name} (${p.start} to ${p.end})`);
  }
  for (const y of financialYears(months)) {
    option(select, `FY${y}/${String(y + 1).slice(2)}`, `Financial year ${y}/${String(y + 1).slice(2)}`);
  }
  for (const m of [...months].reverse()) option(select, m, m);
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

function fillLevels() {
  const spec = currentSpec();
  const select = $("level");
  const previous = select.value;
  select.innerHTML = "";
  const names = { ward: "Wards", lsoa21: "LSOAs (2021)", local_authority: "Local authorities",
    h3_7: "H3 hexagons (res 7)", h3_8: "H3 hexagons (res 8)", h3_9: "H3 hexagons (res 9)" };
  for (const level of spec.levels) option(select, level, names[level] || level);
  select.value = spec.levels.includes(previous) ? previous : spec.levels[0];
  $("group-row").hidden = !spec.grouped;
  $("classing").disabled = spec.fixed_classes;
  // Census and IMD layers are the same whatever the period.
  $("period").disabled = Boolean(spec.as_of);
  $("period").title = spec.as_of ? `${spec.as_of}: does not change with the period` : "";
  const group = $("group");
  const previousGroup = group.value || "Black";
  group.innerHTML = "";
  for (const g of state.catalog.groups) {
    if (spec.id === "stop_search" && g === "White") continue;
    option(group, g, g);
  }
  group.value = [...group.options].some((o) => o.value === previousGroup) ? previousGroup : group.options[0].value;
}

// Layers drawn from force-held data (calls, trauma) list the forces this key may see them for.
function markAvailable() {
  const force = $("force").value;
  for (const o of $("layer").options) {
    const spec = state.catalog.layers.find((l) => l.id === o.value);
    const open = spec.forces === null || spec.forces.includes(force);
    o.disabled = !open;
    o.textContent = open ? spec.title : `${spec.title} (needs an analyst key of this force or a lead key)`;
  }
  if ($("layer").selectedOptions[0]?.disabled) $("layer").value = "harm_rate";
}

function currentSpec() {
  return state.catalog.layers.find((l) => l.id === $("layer").value);
}

function params() {
  const p = new URLSearchParams({
    force: $("force").value, level: $("level").value, period: $("period").value,
    classes: $("classes").value, k: $("k").value,
  });
  if (currentSpec().grouped) p.set("group", $("group").value);
  return p;
}

function tileUrl(collection) {
  const base = `${location.origin}/tiles/${collection}/{z}/{x}/{y}.mvt`;
  // H3 tiles hold the cells with data in the period, so they follow it; outlines of census areas do not.
  return collection.startsWith("h3-") ? `${base}?period=${encodeURIComponent($("period").value)}` : base;
}

function buildMap() {
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": BACKGROUND } }];
  const basemap = state.catalog.basemap;
  if (basemap) {
    sources.basemap = { type: "raster", tiles: [basemap.url], tileSize: 256, attribution: basemap.attribution };
    layers.push({ id: "basemap", type: "raster", source: "basemap", paint: { "raster-opacity": 0.6 } });
  }
  for (const [id, collection] of [["forces", "forces"], ["lads", "local-authorities"]]) {
    sources[id] = { type: "vector", tiles: [tileUrl(collection)], minzoom: 0, maxzoom: 14, promoteId: "code" };
  }
  const map = new maplibregl.Map({
    container: "map",
    style: { version: 8, sources, layers },
    center: [-1.5, 52.0],
    zoom: 6.5,
    attributionControl: { compact: false, customAttribution: "Boundaries: ONS, OS (OGL v3.0)" },
    transformRequest: (url) => (url.startsWith(location.origin) ? { url, headers: authHeaders() } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  state.map = map;
  return new Promise((resolve) => map.on("load", () => {
    map.addLayer({ id: "lads-line", type: "line", source: "lads", "source-layer": "local-authorities",
      paint: { "line-color": "#555", "line-width": 0.8 } });
    map.addLayer({ id: "forces-line", type: "line", source: "forces", "source-layer": "forces",
      paint: { "line-color": "#000", "line-width": 1.6 } });
    resolve(map);
  }));
}

function setAreaSource(collection) {
  const map = state.map;
  for (const id of ["areas-fill", "areas-line", "areas-selected"]) if (map.getLayer(id)) map.removeLayer(id);
  if (map.getSource("areas")) map.removeSource("areas");
  map.addSource("areas", { type: "vector", tiles: [tileUrl(collection)], minzoom: 0, maxzoom: 14, promoteId: "code" });
  const before = "lads-line";
  map.addLayer({ id: "areas-fill", type: "fill", source: "areas", "source-layer": collection,
    paint: { "fill-color": NO_VALUE, "fill-opacity": 0.88 } }, before);
  map.addLayer({ id: "areas-line", type: "line", source: "areas", "source-layer": collection,
    paint: { "line-color": "#ffffff", "line-width": 0.4 } }, before);
  map.addLayer({ id: "areas-selected", type: "line", source: "areas", "source-layer": collection,
    paint: { "line-color": "#000", "line-width": ["case", ["boolean", ["feature-state", "selected"], false], 3, 0] } });
  state.collection = collection;
}

function fillExpression(classes) {
  const expression = ["match", ["coalesce", ["feature-state", "c"], -1]];
  classes.colours.forEach((colour, i) => expression.push(i, colour));
  expression.push(NO_VALUE);
  return expression;
}

function renderLegend(data) {
  const legend = $("legend");
  const c = data.classes;
  const noValue = data.areas.filter((a) => a.class === null).length;
  const rows = c.colours.map((colour, i) =>
    `<li><span class="swatch" style="background:${colour}"></span><span>${escapeHtml(c.labels[i])}</span>` +
    `<span class="count">(${c.counts[i] ?? 0})</span></li>`).join("");
  legend.innerHTML =
    `<div class="title" id="legend-title">${escapeHtml(data.title)}</div>` +
    `<div class="unit">${escapeHtml(data.unit)}; classes: ${escapeHtml(c.method.replace("_", " "))}</div>` +
    `<ol>${rows}<li><span class="swatch none"></span><span>No value or withheld</span>` +
    `<span class="count">(${noValue})</span></li></ol>`;
}

function renderNotes(data) {
  const items = [];
  if (data.synthetic) items.push(`<p class="synthetic">SYNTHETIC data: calls for service are generated, not real.</p>`);
  items.push("<h2>Notes</h2><ul>");
  for (const caveat of data.caveats) items.push(`<li>${escapeHtml(caveat)}</li>`);
  const meta = data.metadata;
  const version = [meta.scheme && `scheme ${meta.scheme} ${meta.scheme_version}`, meta.config_version && `config ${meta.config_version}`]
    .filter(Boolean).join("; ");
  if (version) items.push(`<li>${escapeHtml(version)}</li>`);
  if (meta.disclosure) items.push(`<li>Disclosure: ${escapeHtml(meta.disclosure)}</li>`);
  items.push("</ul>");
  $("notes").innerHTML = items.join("");
  $("marking").hidden = !data.restricted;
}

function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

function number(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return escapeHtml(value);
  const abs = Math.abs(value);
  return value.toLocaleString("en-GB", { maximumFractionDigits: abs >= 100 ? 0 : abs >= 10 ? 1 : 2 });
}

function detailRows(details, prefix = "") {
  return Object.entries(details).map(([key, value]) => {
    if (value && typeof value === "object" && !Array.isArray(value)) return detailRows(value, `${prefix}${key}: `);
    const shown = Array.isArray(value) ? value.map(number).join(" – ") : number(value);
    return `<tr><td>${escapeHtml((prefix + key).replaceAll("_", " "))}</td><td>${shown}</td></tr>`;
  }).join("");
}

function popupHtml(area) {
  const data = state.layer;
  const interval = area.low !== null && area.high !== null ? ` (95% interval ${number(area.low)} – ${number(area.high)})` : "";
  const value = area.category ? escapeHtml(area.category) : `${number(area.value)}${interval}`;
  const cls = area.class !== null ? data.classes.labels[area.class] : "no class";
  const withheld = Object.entries(area.withheld || {}).map(([k, v]) =>
    `<li class="withheld">${escapeHtml(k)} withheld: ${escapeHtml(v)}</li>`).join("");
  const census = ["ward", "lsoa21", "local_authority"].includes(data.level);
  const summary = census
    ? `<p><a href="/areas/${encodeURIComponent(area.code)}/summary?level=${data.level}" target="_blank" rel="noopener">Monthly summary against the baseline (JSON)</a></p>`
    : "";
  return `<div class="popup"><h3>${escapeHtml(area.name)}</h3><div>${escapeHtml(area.code)}</div>` +
    `<p><strong>${escapeHtml(data.title)}:</strong> ${value}<br><span class="count">${escapeHtml(data.unit)}; class ${escapeHtml(cls)}</span></p>` +
    (area.reason ? `<p class="withheld">${escapeHtml(area.reason)}</p>` : "") +
    (withheld ? `<ul>${withheld}</ul>` : "") +
    `<table>${detailRows(area.details || {})}</table>` +
    (data.synthetic ? `<p class="synthetic">Includes SYNTHETIC calls data.</p>` : "") +
    `<p class="caveat">${escapeHtml(data.caveats[0] || "")}</p>${summary}</div>`;
}

function openPopup(code, lngLat) {
  const area = state.byCode.get(code);
  if (!area) return;
  select(code);
  if (state.popup) state.popup.remove();
  state.popup = new maplibregl.Popup({ maxWidth: "340px" }).setLngLat(lngLat).setHTML(popupHtml(area)).addTo(state.map);
}

function select(code) {
  const map = state.map;
  if (state.selected) map.setFeatureState({ source: "areas", sourceLayer: state.collection, id: state.selected }, { selected: false });
  state.selected = code;
  if (code) map.setFeatureState({ source: "areas", sourceLayer: state.collection, id: code }, { selected: true });
}

async function refresh() {
  document.body.dataset.state = "loading";
  $("status").textContent = "Loading…";
  const spec = currentSpec();
  try {
    const data = await api(`/map/layers/${spec.id}?${params()}`);
    state.layer = data;
    const map = state.map;
    const previous = state.collection === data.collection ? state.byCode : new Map();
    if (state.collection !== data.collection) setAreaSource(data.collection);
    state.byCode = new Map(data.areas.map((a) => [a.code, a]));
    // Areas the new layer does not list lose their old class (removeFeatureState here races the new states).
    for (const code of previous.keys()) {
      if (!state.byCode.has(code)) map.setFeatureState({ source: "areas", sourceLayer: data.collection, id: code }, { c: -1 });
    }
    state.byName = new Map(data.areas.map((a) => [`${a.name} (${a.code})`, a]));
    for (const a of data.areas) {
      map.setFeatureState({ source: "areas", sourceLayer: data.collection, id: a.code }, { c: a.class ?? -1 });
    }
    map.setPaintProperty("areas-fill", "fill-color", fillExpression(data.classes));
    renderLegend(data);
    renderNotes(data);
    const names = $("area-names");
    names.innerHTML = "";
    for (const label of [...state.byName.keys()].sort()) option(names, label, "");
    fitTo(data.areas, data.force);
    $("status").textContent = "";
    map.once("idle", () => { document.body.dataset.state = "ready"; });
  } catch (error) {
    $("status").textContent = `Could not load the layer: ${error.message}`;
    document.body.dataset.state = "error";
  }
}

function fitTo(areas, force) {
  if (state.fittedForce === force) return;
  const points = areas.filter((a) => a.point).map((a) => a.point);
  if (!points.length) return;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  state.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 40, duration: 0 });
  state.fittedForce = force;
}

async function download(kind) {
  const status = $("export-status");
  status.textContent = `Preparing ${kind}…`;
  const spec = currentSpec();
  const p = params();
  p.set("layer", spec.id);
  try {
    const response = await fetch(`/exports/${kind}?${p}`, { headers: authHeaders() });
    if (!response.ok) throw new Error(`${response.status}: ${(await response.json()).detail}`);
    const blob = await response.blob();
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name ? name[1] : `harmmap-${kind}`;
    link.click();
    URL.revokeObjectURL(link.href);
    status.textContent = `Downloaded ${link.download}`;
  } catch (error) {
    status.textContent = `Export failed: ${error.message}`;
  }
}

async function main() {
  // The controls never submit (no inline handler: the page's CSP allows no inline script).
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("token").value = token();
  // What a key may see changes the catalogue (force-held layers), so a new key reloads the page.
  $("token").addEventListener("change", (e) => { sessionStorage.setItem("harmmap-token", e.target.value); location.reload(); });
  try {
    state.catalog = await api("/map/catalog");
  } catch (error) {
    $("status").textContent = `Could not load the map catalogue: ${error.message}`;
    document.body.dataset.state = "error";
    return;
  }
  const catalog = state.catalog;
  for (const f of catalog.forces) option($("force"), f.code, `${f.name} (${f.code})`);
  for (const l of catalog.layers) option($("layer"), l.id, l.title);
  markAvailable();
  for (let k = catalog.classes.min; k <= catalog.classes.max; k++) option($("k"), String(k), String(k));
  $("k").value = "5";
  fillLevels();
  fillPeriods();
  await buildMap();
  $("force").addEventListener("change", () => { markAvailable(); fillLevels(); fillPeriods(); refresh(); });
  $("layer").addEventListener("change", () => { fillLevels(); refresh(); });
  for (const id of ["level", "period", "group", "classes", "k"]) $(id).addEventListener("change", refresh);
  $("area-search").addEventListener("change", (e) => {
    const area = state.byName.get(e.target.value);
    if (!area || !area.point) return;
    state.map.jumpTo({ center: area.point, zoom: Math.max(state.map.getZoom(), 11) });
    openPopup(area.code, area.point);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.popup) { state.popup.remove(); select(null); } });
  state.map.on("click", "areas-fill", (e) => openPopup(e.features[0].properties.code, e.lngLat));
  state.map.on("mouseenter", "areas-fill", () => { state.map.getCanvas().style.cursor = "pointer"; });
  state.map.on("mouseleave", "areas-fill", () => { state.map.getCanvas().style.cursor = ""; });
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", () => download(button.dataset.export));
  }
  await refresh();
}

main();
