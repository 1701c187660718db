// reconad inspection page: plain JavaScript, no external code; talks to the server's own API.
"use strict";

const state = { models: [], key: sessionStorage.getItem("reconad-key") || "" };
const $ = (id) => document.getElementById(id);
const BATCH = 8; // images per request when many are dropped at once

function setStatus(text) { $("status").textContent = text || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", "Bearer " + state.key);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Error("the server needs an API key: enter it above");
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return response.json();
}

function fmt(x, digits = 4) {
  return x === null || x === undefined ? "–" : Number(x).toPrecision(digits);
}

function currentModel() { return state.models.find((m) => m.name === $("model").value); }

async function loadModels() {
  const body = await api("/v1/models");
  state.models = body.models;
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => new Option(m.name, m.name)));
  showModelInfo();
}

function showModelInfo() {
  const m = currentModel();
  $("model-info").textContent = m
    ? `${m.model}, ${m.image_size} px, threshold ${fmt(m.threshold)} (${m.threshold_basis || "none"}), ${m.engine}`
    : "no model";
}

function card(result) {
  const el = document.createElement("article");
  el.className = "card " + (result.verdict || "");
  el.dataset.id = result.id;
  el.dataset.score = String(result.score);
  if (result.overlay_png) {
    const img = document.createElement("img");
    img.className = "overlay";
    img.alt = "heat-map overlay of " + result.image_name;
    img.src = "data:image/png;base64," + result.overlay_png;
    el.append(img);
  }
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = result.image_name;
  const dl = document.createElement("dl");
  const rows = [["score", fmt(result.score, 6), "score"], ["p-value", fmt(result.p_value, 3), "p-value"],
    ["verdict", result.verdict || "no threshold", "verdict " + (result.verdict || "")],
    ["latency", fmt(result.latency_ms, 3) + " ms", "latency"]];
  if (result.audit) { rows.push(["audit", "drawn: set the part aside for review", "audit"]); el.classList.add("audited"); }
  for (const [label, value, cls] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.className = cls;
    dd.textContent = value;
    dl.append(dt, dd);
  }
  el.append(name, dl);
  return el;
}

async function upload(files) {
  const model = currentModel();
  if (!model) { setStatus("no model to score with"); return; }
  const images = [...files];
  setStatus(`scoring ${images.length} image(s)…`);
  try {
    for (let i = 0; i < images.length; i += BATCH) {
      const form = new FormData();
      for (const f of images.slice(i, i + BATCH)) form.append("images", f, f.name);
      const body = await api(`/v1/models/${encodeURIComponent(model.name)}/score?map=png`, { method: "POST", body: form });
      const target = $("scored");
      for (const r of body.results) target.prepend(card(r));
    }
    setStatus("");
  } catch (err) {
    setStatus(err.message);
  }
  refresh();
}

function drawHistogram(scores, threshold) {
  const canvas = $("histogram");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  ctx.clearRect(0, 0, w, h);
  if (!scores.length) { $("histogram-caption").textContent = "no scores yet"; return; }
  const values = threshold === null ? scores : scores.concat([threshold]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
  const bins = 30, counts = new Array(bins).fill(0);
  for (const s of scores) counts[Math.min(bins - 1, Math.floor(((s - lo) / (hi - lo)) * bins))] += 1;
  const top = Math.max(...counts), bw = (w - 2 * pad) / bins;
  counts.forEach((c, i) => {
    const x0 = lo + ((i + 0.5) / bins) * (hi - lo);
    ctx.fillStyle = threshold !== null && x0 > threshold ? "#c0262d" : "#5b7db1";
    const bh = top ? (c / top) * (h - 2 * pad) : 0;
    ctx.fillRect(pad + i * bw + 1, h - pad - bh, bw - 2, bh);
  });
  ctx.fillStyle = "#667085";
  ctx.font = "11px sans-serif";
  ctx.fillText(fmt(lo, 3), pad, h - 6);
  ctx.fillText(fmt(hi, 3), w - pad - 30, h - 6);
  if (threshold !== null) {
    const x = pad + ((threshold - lo) / (hi - lo)) * (w - 2 * pad);
    ctx.strokeStyle = "#c0262d";
    ctx.setLineDash([5, 3]);
    ctx.beginPath(); ctx.moveTo(x, pad / 2); ctx.lineTo(x, h - pad); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#c0262d";
    ctx.fillText("threshold " + fmt(threshold, 4), Math.min(x + 4, w - 110), pad);
  }
  const flagged = threshold === null ? 0 : scores.filter((s) => s > threshold).length;
  $("histogram-caption").textContent = `${scores.length} recent scores, ${flagged} above the threshold`;
}

function resultRow(r) {
  const tr = document.createElement("tr");
  tr.dataset.id = r.id;
  const cells = [r.created_at.replace("T", " ").slice(0, 19), r.image_name, r.model_name,
    fmt(r.score, 6), fmt(r.p_value, 3), r.verdict || "–"];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  tr.lastChild.className = "verdict " + (r.verdict || "");
  tr.addEventListener("click", () => showDetail(r.id));
  return tr;
}

// ---- the audit sample: review, the measured false-alarm rate, recalibration

async function review(id, label) {
  const body = await api(`/v1/results/${encodeURIComponent(id)}/review`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label }) });
  setStatus(`${body.result_id}: ${body.label}` + (body.saved_as ? `, saved as ${body.saved_as}` : "")
    + (body.audit ? "" : " (not in the audit sample: it does not recalibrate)"));
  return body;
}

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toPrecision(2) + "%"; }

async function auditCard(item) {
  const el = document.createElement("article");
  el.className = "card audited " + (item.verdict || "");
  if (item.has_image) {
    try {
      const kept = await api(`/v1/results/${encodeURIComponent(item.id)}/image`);
      const img = document.createElement("img");
      img.alt = "uploaded image " + item.image_name;
      img.src = "data:image/png;base64," + kept.image; // browsers sniff the kept format
      el.append(img);
    } catch (_) { /* shown without its image */ }
  }
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = `${item.image_name}: ${fmt(item.score, 4)}, ${item.verdict || "no threshold"}`;
  el.append(name);
  for (const label of ["normal", "defect"]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", async () => {
      try { await review(item.id, label); el.remove(); refreshAudit(); } catch (err) { setStatus(err.message); }
    });
    el.append(b);
  }
  return el;
}

let auditBusy = false; // one refresh at a time: two would each rebuild the cards

async function refreshAudit() {
  const model = currentModel();
  if (!model || auditBusy) return;
  auditBusy = true;
  try {
    const q = await api(`/v1/models/${encodeURIComponent(model.name)}/audit?limit=12`);
    const f = q.false_alarm_rate, c = q.counts;
    $("false-alarms").textContent = `estimated false-alarm rate ${pct(f.rate)} (90% band ${pct(f.band[0])}–${pct(f.band[1])}), `
      + `on ${f.reviewed_normals} reviewed audit normal(s) under calibration version ${f.calibration_version}; `
      + `target ${pct(f.target_fpr)}. Audit share ${q.audit_share}: ${c.audited} drawn, ${c.reviewed_normal} normal, `
      + `${c.reviewed_defect} defect, ${c.pending} awaiting review.`;
    $("calibration").textContent = `threshold ${fmt(f.threshold)} (calibration version ${f.calibration_version})`;
    if (model.threshold !== f.threshold) { model.threshold = f.threshold; showModelInfo(); } // recalibrated elsewhere
    const known = new Set([...$("audit").children].map((el) => el.dataset.id));
    const fresh = q.pending.map((item) => item.id).join(",");
    if ([...known].join(",") !== fresh) {
      const cards = await Promise.all(q.pending.map(async (item) => {
        const el = await auditCard(item);
        el.dataset.id = item.id;
        return el;
      }));
      $("audit").replaceChildren(...cards);
    }
  } catch (err) { setStatus(err.message); } finally { auditBusy = false; }
}

async function recalibrate() {
  const model = currentModel();
  if (!model) return;
  try {
    const v = await api(`/v1/models/${encodeURIComponent(model.name)}/recalibrate`, { method: "POST" });
    setStatus(`calibration version ${v.version}: threshold ${fmt(v.threshold)} from ${v.n_normal} reviewed audit normals`);
    await loadModels();
    refresh();
  } catch (err) { setStatus(err.message); }
}

async function showDetail(id) {
  state.detail = id;
  $("detail-review").textContent = "";
  try {
    const r = await api(`/v1/results/${encodeURIComponent(id)}`);
    const img = $("detail-img");
    img.hidden = !r.overlay_png;
    if (r.overlay_png) img.src = "data:image/png;base64," + r.overlay_png;
    $("detail-text").textContent = `${r.image_name}: score ${fmt(r.score, 6)}, p-value ${fmt(r.p_value, 3)}, `
      + `${r.verdict || "no threshold"}; image SHA-256 ${r.image_sha256}` + (r.overlay_png ? "" : " (no overlay kept)");
    $("detail").showModal();
  } catch (err) { setStatus(err.message); }
}

async function refresh() {
  const model = currentModel();
  try {
    const flagged = $("flagged-only").checked ? "&verdict=anomalous" : "";
    const table = await api(`/v1/results?limit=50${flagged}`);
    $("results").tBodies[0].replaceChildren(...table.results.map(resultRow));
    if (model) {
      const recent = await api(`/v1/results?limit=500&model=${encodeURIComponent(model.name)}`);
      drawHistogram(recent.results.map((r) => r.score), model.threshold);
    }
  } catch (err) { setStatus(err.message); }
  refreshAudit();
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files);
  });
  $("file-input").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files); e.target.value = ""; });
  $("model").addEventListener("change", () => { showModelInfo(); refresh(); });
  $("flagged-only").addEventListener("change", refresh);
  $("recalibrate").addEventListener("click", recalibrate);
  for (const label of ["normal", "defect"]) {
    $("detail-" + label).addEventListener("click", async () => {
      try {
        const body = await review(state.detail, label);
        $("detail-review").textContent = "reviewed " + body.label;
        refreshAudit();
      } catch (err) { setStatus(err.message); }
    });
  }
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("reconad-key", state.key);
    start();
  });
}

async function start() {
  try {
    await loadModels();
    setStatus("");
    await refresh();
  } catch (err) { setStatus(err.message); }
}

wire();
start();
setInterval(refresh, 5000);
