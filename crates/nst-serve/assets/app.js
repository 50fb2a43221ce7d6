// nst studio: the page's script. Plain modern JavaScript, no framework, no build step, no network
// access beyond the server that served it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
};

const studio = {
  runs: new Map(),     // id -> summary
  queue: [],
  content: null,       // image ref, e.g. "sample:louvre_pyramid.jpg"
  styles: [],
  live: null,          // id of the run shown live
  costs: [],           // cost points of the live run
  defaults: null,
};

async function api(method, path, body, raw) {
  const opts = { method, headers: {} };
  if (raw) { opts.body = raw; opts.headers["Content-Type"] = "application/octet-stream"; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

const imageUrl = (ref) => `api/images/${encodeURIComponent(ref)}`;
const label = (ref) => ref.replace(/^sample:/, "").replace(/^upload:/, "upload ").replace(/^run:/, "result of ");

// ---- images ----
function thumb(ref, onRemove) {
  const fig = el("figure", { className: "thumb", title: label(ref) },
    el("img", { src: imageUrl(ref), alt: label(ref), loading: "lazy" }));
  if (onRemove) fig.append(el("button", { className: "x", type: "button", textContent: "×", title: "remove", onclick: onRemove }));
  return fig;
}

function drawPicked() {
  const c = $("#content-picked");
  c.replaceChildren(...(studio.content ? [thumb(studio.content, () => { studio.content = null; drawPicked(); })] : []));
  $("#style-picked").replaceChildren(...studio.styles.map((s, i) =>
    thumb(s, () => { studio.styles.splice(i, 1); drawPicked(); })));
  $("#start").disabled = !studio.content || studio.styles.length === 0;
}

function drawSamples(samples) {
  $("#samples-box").hidden = samples.length === 0;
  $("#samples").replaceChildren(...samples.map((name) => {
    const ref = `sample:${name}`;
    const fig = thumb(ref);
    fig.classList.add("sample");
    fig.dataset.ref = ref;
    fig.onclick = (ev) => { if (ev.shiftKey) addStyle(ref); else setContent(ref); };
    fig.append(el("div", { className: "sample-actions" },
      el("button", { type: "button", className: "as-content", textContent: "content", onclick: (ev) => { ev.stopPropagation(); setContent(ref); } }),
      el("button", { type: "button", className: "as-style", textContent: "+ style", onclick: (ev) => { ev.stopPropagation(); addStyle(ref); } })));
    return fig;
  }));
}

function setContent(ref) { studio.content = ref; drawPicked(); }
function addStyle(ref) { if (!studio.styles.includes(ref)) studio.styles.push(ref); drawPicked(); }

async function uploadFiles(files, use) {
  for (const f of files) {
    try {
      message(`uploading ${f.name}…`);
      const r = await api("POST", "api/uploads", undefined, f);
      use(r.image);
      message("");
    } catch (e) { message(`${f.name}: ${e.message}`, true); }
  }
}

function dropZone(zone, input, use) {
  input.onchange = () => uploadFiles([...input.files], use);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    uploadFiles([...e.dataTransfer.files], use);
  });
}

// ---- settings ----
const form = $("#settings");
function fillForm(s) {
  for (const [k, v] of Object.entries(s)) {
    const input = form.elements[k];
    if (!input) continue;
    if (input.type === "checkbox") input.checked = !!v;
    else if (Array.isArray(v)) input.value = v.join(",");
    else input.value = v;
  }
}
function readForm() {
  const s = {};
  for (const input of form.elements) {
    if (!input.name) continue;
    if (input.type === "checkbox") s[input.name] = input.checked;
    else if (input.type === "number") s[input.name] = Number(input.value);
    else s[input.name] = input.value.trim();
  }
  s.style_blend = s.style_blend ? s.style_blend.split(",").map(Number) : [];
  s.content = studio.content;
  s.styles = studio.styles;
  return s;
}
function message(text, bad) { const m = $("#form-msg"); m.textContent = text; m.classList.toggle("bad", !!bad); }

form.elements.preset.onchange = async () => {
  try {
    const d = await api("GET", `api/defaults/${form.elements.preset.value}`);
    delete d.content; delete d.styles; fillForm(d);
  } catch (e) { message(e.message, true); }
};
$("#reset").onclick = () => fillForm(studio.defaults);
form.onsubmit = async (e) => {
  e.preventDefault();
  try {
    const r = await api("POST", "api/runs", readForm());
    message(`run ${r.id} queued`);
    studio.live = r.id;
  } catch (err) { message(err.message, true); }
};

// ---- live view ----
function fmt(x) { return x === null || x === undefined ? "–" : (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-2 && x !== 0)) ? x.toExponential(3) : x.toFixed(3); }
function fmtTime(s) { if (s === null || s === undefined) return "–"; s = Math.round(s); return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`; }

function showLive(id) {
  const r = studio.runs.get(id);
  if (!r) return;
  if (studio.live !== id || !studio.costsLoaded) {
    studio.live = id; studio.costs = []; studio.costsLoaded = true;
    api("GET", `api/runs/${id}`).then((full) => { if (studio.live === id) { studio.costs = full.costs; drawPlot(); } }).catch(() => {});
    const img = $("#preview");
    // No preview yet (a run just started): an empty frame rather than a broken image.
    img.onerror = () => img.removeAttribute("src");
    img.src = ["done", "stopped"].includes(r.state) ? `api/runs/${id}/result.png?t=${Date.now()}` : `api/runs/${id}/preview.jpg?t=${Date.now()}`;
  }
  $("#live-empty").hidden = true; $("#live-run").hidden = false;
  $("#live-title").textContent = `Run ${id}: ${label(r.settings.content)} in the style of ${r.settings.styles.map(label).join(" + ")}`;
  drawState(r);
}

function drawState(r) {
  const st = $("#live-state"); st.textContent = r.state; st.className = `badge ${r.state}`;
  $("#s-iter").textContent = `${r.iteration} / ${r.total}`;
  $("#s-stage").textContent = `${r.stage[0] + 1} of ${r.stage[1]}`;
  $("#bar").style.width = `${r.total ? (100 * r.iteration / r.total) : 0}%`;
  $("#pause").hidden = r.state !== "running";
  $("#resume").hidden = r.state !== "paused";
  $("#stop").hidden = !["running", "paused", "queued"].includes(r.state);
}

function onStep(ev) {
  const r = studio.runs.get(ev.run);
  if (r) { r.iteration = ev.iteration; r.total = ev.total; }
  if (studio.live !== ev.run) { if (r && r.state === "running") showLive(ev.run); else return; }
  studio.costs.push(ev.costs);
  if (r) drawState(r);
  $("#s-ips").textContent = ev.ips > 0 ? `${ev.ips.toFixed(2)} it/s` : "–";
  $("#s-eta").textContent = fmtTime(ev.eta);
  $("#s-total").textContent = fmt(ev.costs.total);
  $("#s-terms").textContent = `${fmt(ev.costs.content)} · ${fmt(ev.costs.style)} · ${fmt(ev.costs.tv)}`;
  schedulePlot();
}

let plotPending = false;
function schedulePlot() { if (!plotPending) { plotPending = true; requestAnimationFrame(() => { plotPending = false; drawPlot(); }); } }
function drawPlot(canvas = $("#plot"), costs = studio.costs) {
  const c = canvas, g = c.getContext("2d");
  const w = c.width, h = c.height, pad = 34;
  g.clearRect(0, 0, w, h);
  const pts = costs.filter((p) => p.total > 0);
  g.fillStyle = "#888"; g.font = "12px sans-serif";
  if (pts.length < 2) { g.fillText("the cost plot appears after two iterations", pad, h / 2); return; }
  const ys = pts.map((p) => Math.log10(p.total));
  const lo = Math.min(...ys), hi = Math.max(...ys), x0 = pts[0].iteration, x1 = pts[pts.length - 1].iteration;
  const X = (i) => pad + (w - pad - 8) * (i - x0) / Math.max(1, x1 - x0);
  const Y = (v) => h - 18 - (h - 28) * (v - lo) / Math.max(1e-9, hi - lo);
  g.strokeStyle = "#ccc"; g.beginPath(); g.moveTo(pad, 6); g.lineTo(pad, h - 18); g.lineTo(w - 4, h - 18); g.stroke();
  g.fillText(`1e${hi.toFixed(1)}`, 0, 14); g.fillText(`1e${lo.toFixed(1)}`, 0, h - 20);
  g.fillText(`iteration ${x1}`, w - 90, h - 4); g.fillText("total cost (log)", pad + 6, 14);
  g.strokeStyle = "#e8a33d"; g.lineWidth = 2; g.beginPath();
  pts.forEach((p, i) => { const x = X(p.iteration), y = Y(ys[i]); if (i) g.lineTo(x, y); else g.moveTo(x, y); });
  g.stroke(); g.lineWidth = 1;
}

// Fetch the newest preview, at most one request in flight (the server sends at most a few a second).
let previewBusy = false, previewWanted = null;
function onPreview(ev) {
  if (studio.live !== ev.run) return;
  previewWanted = ev;
  if (previewBusy) return;
  previewBusy = true;
  const img = $("#preview");
  const next = () => { previewBusy = false; if (previewWanted) { const w = previewWanted; previewWanted = null; onPreview(w); } };
  previewWanted = null;
  img.onload = next; img.onerror = next;
  img.src = `api/runs/${ev.run}/preview.jpg?i=${ev.iteration}`;
  img.dataset.iteration = ev.iteration;
}

for (const [id, action] of [["#pause", "pause"], ["#resume", "resume"], ["#stop", "stop"]]) {
  $(id).onclick = () => api("POST", `api/runs/${studio.live}/${action}`, {}).catch((e) => message(e.message, true));
}

// ---- queue and history ----
function drawQueue() {
  $("#queue-empty").hidden = studio.queue.length > 0;
  $("#queue").replaceChildren(...studio.queue.map((id, i) => {
    const r = studio.runs.get(id);
    const what = r ? `${label(r.settings.content)} × ${r.settings.styles.map(label).join(" + ")}, ${r.total} it.` : "";
    return el("li", {}, el("span", { textContent: `${id} ${what}` }),
      el("span", { className: "row-actions" },
        i ? el("button", { textContent: "↑", title: "move up", onclick: () => api("POST", `api/runs/${id}/up`, {}).catch((e) => message(e.message, true)) }) : "",
        el("button", { textContent: "remove", className: "danger", onclick: () => api("POST", `api/runs/${id}/stop`, {}).catch((e) => message(e.message, true)) })));
  }));
}

function drawHistory() {
  const done = [...studio.runs.values()].filter((r) => !["queued"].includes(r.state)).reverse();
  $("#history").replaceChildren(...done.map((r) => {
    const src = ["running", "paused"].includes(r.state) ? "icon.svg" : `api/runs/${r.id}/result.png?v=${r.iteration}`;
    const card = el("button", { className: `entry ${r.state}`, type: "button", onclick: () => openDetail(r.id) },
      el("img", { src, alt: `result of run ${r.id}`, loading: "lazy", onerror: function () { this.src = "icon.svg"; } }),
      el("span", { className: "entry-id", textContent: r.id }),
      el("span", { className: `badge ${r.state}`, textContent: r.state }),
      el("span", { className: "entry-meta", textContent: `${r.iteration} it. · ${fmtTime(r.seconds)}${r.last ? " · cost " + fmt(r.last.total) : ""}` }));
    card.dataset.id = r.id;
    return card;
  }));
}

async function openDetail(id) {
  const r = await api("GET", `api/runs/${id}`);
  $("#d-title").textContent = `Run ${id} (${r.state})`;
  $("#d-image").src = `api/runs/${id}/result.png?v=${r.iteration}`;
  $("#d-png").href = `api/runs/${id}/result.png`; $("#d-png").download = `nst-${id}.png`;
  $("#d-gif").href = `api/runs/${id}/run.gif`; $("#d-gif").download = `nst-${id}.gif`;
  const when = new Date(r.created * 1000).toLocaleString();
  $("#d-meta").textContent = `${when} · ${r.iteration} of ${r.total} iterations · ${fmtTime(r.seconds)}` +
    (r.costs.length ? ` · final cost ${fmt(r.costs[r.costs.length - 1].total)}` : "") + (r.error ? ` · error: ${r.error}` : "");
  const s = { ...r.settings }; delete s.content; delete s.styles;
  $("#d-json").textContent = JSON.stringify(s, null, 1);
  drawPlot($("#d-plot"), r.costs);
  $("#d-settings").onclick = () => { fillForm(r.settings); studio.content = r.settings.content; studio.styles = [...r.settings.styles]; drawPicked(); $("#detail").close(); scrollTo(0, 0); };
  $("#d-image-content").onclick = () => { setContent(`run:${id}`); $("#detail").close(); scrollTo(0, 0); };
  $("#d-continue").onclick = () => api("POST", `api/runs/${id}/continue`, { iterations: Number($("#d-more").value) })
    .then(() => { studio.live = id; studio.costsLoaded = false; $("#detail").close(); })
    .catch((e) => { $("#d-meta").textContent += ` · ${e.message}`; });
  $("#detail").showModal();
}

// ---- events ----
function apply(ev) {
  switch (ev.type) {
    case "run": {
      studio.runs.set(ev.run.id, ev.run);
      if (ev.run.state === "running" && (studio.live === ev.run.id || !isLiveActive())) { studio.costsLoaded = studio.live === ev.run.id && studio.costsLoaded; showLive(ev.run.id); }
      else if (studio.live === ev.run.id) { drawState(ev.run); if (["done", "stopped"].includes(ev.run.state)) $("#preview").src = `api/runs/${ev.run.id}/result.png?t=${Date.now()}`; }
      drawQueue(); drawHistory(); break;
    }
    case "queue": studio.queue = ev.queue; drawQueue(); break;
    case "step": onStep(ev); break;
    case "preview": onPreview(ev); break;
    case "stage": if (studio.live === ev.run) $("#s-stage").textContent = `${ev.index + 1} of ${ev.count} (${ev.size})`; break;
    case "resync": loadState(); break;
    default: break;
  }
}
function isLiveActive() { const r = studio.runs.get(studio.live); return r && ["running", "paused"].includes(r.state); }

async function loadState() {
  const s = await api("GET", "api/state");
  studio.runs = new Map(s.runs.map((r) => [r.id, r]));
  studio.queue = s.queue;
  if (!studio.defaults) { studio.defaults = s.defaults; fillForm(s.defaults); drawSamples(s.samples); }
  drawQueue(); drawHistory();
  const running = s.runs.find((r) => ["running", "paused"].includes(r.state));
  if (running) showLive(running.id);
}

// One event stream while the page is visible: a hidden page does not make the run render previews.
let source = null, retry = 500;
function connect() {
  if (source || document.hidden) return;
  source = new EventSource("api/events");
  source.onopen = () => { retry = 500; $("#conn").textContent = "live"; $("#conn").className = "conn ok"; loadState().catch(() => {}); };
  source.onmessage = (m) => apply(JSON.parse(m.data));
  source.onerror = () => {
    $("#conn").textContent = "reconnecting…"; $("#conn").className = "conn bad";
    source.close(); source = null;
    setTimeout(connect, retry); retry = Math.min(retry * 2, 10000);
  };
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden) { if (source) { source.close(); source = null; } $("#conn").textContent = "paused (tab hidden)"; }
  else connect();
});

dropZone($("#content-drop"), $("#content-file"), setContent);
dropZone($("#style-drop"), $("#style-file"), addStyle);
drawPicked();
loadState().then(connect).catch((e) => { message(e.message, true); connect(); });
