// ihlab run report: turns the DATA object that `ihlab report` embeds (see src/report/report_data.cpp)
// into charts with the inlined Plotly. Everything is drawn offline from this one file.
//
// Column conventions of metrics.csv that this file relies on:
//   loss, val_loss            the curves of the loss charts
//   ref.<name>                reference losses (floors), drawn as dashed lines on the loss charts
//   target.<scalar>           a reference value of a logged scalar, drawn dashed on its panel
//   <family>.<member>         one small-multiple panel per family (p.110 -> family "p")
//   step, stage, t            axes and stage boundaries, not plotted as curves
"use strict";

const DATA = JSON.parse(document.getElementById("ihlab-data").textContent);
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
                 "#999999", "#882255", "#44AA99", "#117733"];
const PLOT_CONFIG = {displaylogo: false, responsive: true,
                     toImageButtonOptions: {format: "svg", filename: "ihlab-figure"}};
const charts = [];   // every chart div, checked by the "rendered" marker at the end
const queued = [];   // plots are drawn after the whole page is laid out, so each gets its final width
const pending = [];  // Plotly's promises: the marker is set once all have drawn
const problems = [];

window.addEventListener("error", (e) => showProblem(String(e.message)));

function showProblem(msg) {
  problems.push(msg);
  const box = document.getElementById("problems");
  box.hidden = false;
  box.textContent = "Report problems: " + problems.join("; ");
}

// ---- small DOM helpers ----
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function section(title, note) {
  const s = el("section", {}, el("h2", {text: title}));
  if (note) s.append(el("p", {class: "note", text: note}));
  document.getElementById("content").append(s);
  return s;
}

function fmtNum(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(3);
  return Number(v.toPrecision(5)).toString();
}

function newChart(parent, cls = "chart") {
  const d = el("div", {class: cls});
  parent.append(d);
  charts.push(d);
  return d;
}

function plot(div, traces, layout) {
  const base = {margin: {l: 60, r: 20, t: 36, b: 48}, font: {family: "system-ui, sans-serif", size: 12},
                legend: {font: {size: 10}}, hovermode: "closest", paper_bgcolor: "white", plot_bgcolor: "white"};
  const l = Object.assign(base, layout);
  for (const ax of ["xaxis", "yaxis"]) l[ax] = Object.assign({gridcolor: "#e5e5e5", zeroline: false}, l[ax] || {});
  // Titles sit on the left: the mode bar (zoom, SVG download) takes the top right corner.
  if (l.title) l.title = Object.assign({x: 0.01, xanchor: "left", xref: "paper"}, l.title);
  queued.push(() => pending.push(Plotly.newPlot(div, traces, l, PLOT_CONFIG)));
}

// ---- metrics ----
const M = DATA.metrics || {columns: [], data: {}};
const has = (c) => M.columns.includes(c);
const col = (c) => M.data[c] || [];
const steps = col("step");

// Stage boundaries: the first step logged in each stage after the first.
function stageShapes() {
  const st = col("stage"), shapes = [];
  for (let i = 1; i < st.length; i++)
    if (st[i] !== st[i - 1] && st[i] !== null)
      shapes.push({type: "line", xref: "x", yref: "paper", x0: steps[i - 1], x1: steps[i - 1], y0: 0, y1: 1,
                   line: {color: "#bbbbbb", width: 1, dash: "dot"}});
  return shapes;
}

function spansDecades() {
  const pos = steps.filter((s) => s > 0);
  return pos.length > 2 && pos[pos.length - 1] / pos[0] >= 100;
}

// x/y of one column, dropping nulls and (on a log axis) step 0.
function series(name, logx) {
  const x = [], y = [], v = col(name);
  for (let i = 0; i < steps.length; i++) {
    if (v[i] === null || v[i] === undefined) continue;
    if (logx && !(steps[i] > 0)) continue;
    x.push(steps[i]);
    y.push(v[i]);
  }
  return {x, y};
}

function isConstant(v) {
  const f = v.filter((x) => x !== null);
  return f.length > 0 && f.every((x) => x === f[0]);
}

// A dashed horizontal line across the logged steps, as a trace so that it gets a legend entry.
function floorTrace(name, value, logx, color) {
  const xs = steps.filter((s) => !logx || s > 0);
  return {x: [xs[0], xs[xs.length - 1]], y: [value, value], name, mode: "lines",
          line: {dash: "dash", width: 1.5, color}, hovertemplate: name + " = %{y:.5g}<extra></extra>"};
}

function lossCharts() {
  const curves = ["loss", "val_loss"].filter(has);
  if (curves.length === 0) return;
  const refs = M.columns.filter((c) => c.startsWith("ref."));
  const s = section("Loss", "Training and validation loss against the reference predictors' losses (dashed). " +
                    "Dotted vertical lines mark stage boundaries.");
  const row = el("div", {class: "row2"});
  s.append(row);
  for (const logx of [false, true]) {
    const traces = curves.map((c, i) => Object.assign(series(c, logx), {
      name: c, mode: "lines", line: {color: PALETTE[i], width: 2}}));
    refs.forEach((r, i) => {
      const v = col(r), color = PALETTE[(i + 2) % PALETTE.length];
      if (isConstant(v)) traces.push(floorTrace(r, v.find((x) => x !== null), logx, color));
      else traces.push(Object.assign(series(r, logx), {name: r, mode: "lines", line: {dash: "dash", width: 1.5, color}}));
    });
    plot(newChart(row), traces, {
      title: {text: logx ? "loss (log step)" : "loss", font: {size: 13}},
      xaxis: {title: {text: logx ? "step (log scale; step 0 omitted)" : "step"}, type: logx ? "log" : "linear"},
      yaxis: {title: {text: "loss (nats)"}}, shapes: logx ? [] : stageShapes()});
  }
}

// Families: every column "<family>.<member>"; single scalars (no dot) form the family "scalars".
function families() {
  const skip = new Set(["step", "stage", "t", "loss", "val_loss"]);
  const fam = new Map();
  for (const c of M.columns) {
    if (skip.has(c) || c.startsWith("ref.") || c.startsWith("target.")) continue;
    if (col(c).every((v) => v === null)) continue;
    const dot = c.lastIndexOf(".");
    const f = dot < 0 ? "" : c.slice(0, dot);
    if (!fam.has(f)) fam.set(f, []);
    fam.get(f).push(c);
  }
  return fam;
}

function familyCharts() {
  const fam = families();
  if (fam.size === 0) return;
  const logx = spansDecades();
  const s = section("Logged scalars", "One panel per family of logged columns (selector weights p_S per subset, RPE " +
                    "weights per head and offset, pseudo-parameters, induction scores per head, ...)" +
                    (logx ? "; steps on a log axis, step 0 omitted." : "."));
  const grid = el("div", {class: "grid"});
  s.append(grid);
  const panel = (title, cols) => {
    const traces = cols.map((c, i) => Object.assign(series(c, logx), {
      name: c.slice(c.lastIndexOf(".") + 1) || c, mode: "lines", line: {color: PALETTE[i % PALETTE.length], width: 1.6}}));
    for (const c of cols) if (has("target." + c)) {
      const v = col("target." + c).find((x) => x !== null);
      if (v !== undefined) traces.push(floorTrace("target." + c, v, logx, "#555555"));
    }
    plot(newChart(grid, "chart small"), traces, {
      title: {text: title, font: {size: 12}}, showlegend: traces.length > 1,
      xaxis: {title: {text: "step"}, type: logx ? "log" : "linear"}});
  };
  for (const [f, cols] of fam) {
    if (f === "") cols.forEach((c) => panel(c, [c]));
    else panel(f + ".*", cols);
  }
}

// ---- attention heat-maps with a slider over snapshots ----
function attentionCharts() {
  const snaps = DATA.attention || [];
  if (snaps.length === 0) return;
  const s = section("Attention patterns", "Query position (rows) against key position (columns) for one validation " +
                    "sequence, per layer and head. The slider moves over the logged snapshots.");
  const label = el("span", {class: "slider-label"});
  const slider = el("input", {type: "range", min: "0", max: String(snaps.length - 1), value: String(snaps.length - 1),
                              step: "1", class: "slider", "aria-label": "snapshot"});
  s.append(el("div", {class: "slider-row"}, el("span", {text: "snapshot "}), slider, label));
  const grid = el("div", {class: "grid"});
  s.append(grid);
  const divs = snaps[0].maps.map(() => newChart(grid, "chart heat"));
  const zOf = (m) => {
    const z = [];
    for (let q = 0; q < m.queries; q++) z.push(m.weights.slice(q * m.keys, (q + 1) * m.keys));
    return z;
  };
  const draw = (k, first) => {
    const snap = snaps[k];
    label.textContent = `step ${snap.step} (stage ${snap.stage}), ${k + 1} of ${snaps.length}`;
    snap.maps.forEach((m, i) => {
      // Positions are absolute: the log keeps the last positions, from query_offset / key_offset on.
      const trace = {z: zOf(m), type: "heatmap", colorscale: "Viridis", zmin: 0, zmax: 1,
                     x: Array.from({length: m.keys}, (_, i) => (m.key_offset || 0) + i),
                     y: Array.from({length: m.queries}, (_, i) => (m.query_offset || 0) + i),
                     hovertemplate: "query %{y}, key %{x}: %{z:.3f}<extra></extra>"};
      const layout = {title: {text: `layer ${m.layer} head ${m.head}`, font: {size: 12}},
                      xaxis: {title: {text: "key position"}}, yaxis: {title: {text: "query position"}, autorange: "reversed"},
                      margin: {l: 50, r: 10, t: 30, b: 40}};
      if (first) plot(divs[i], [trace], layout);
      else if (!divs[i].layout) return;  // not drawn yet
      else Plotly.react(divs[i], [trace], Object.assign({margin: layout.margin}, divs[i].layout));
    });
  };
  draw(snaps.length - 1, true);
  slider.addEventListener("input", () => draw(Number(slider.value), false));
}

// ---- trained weights (summary.weights): one heat-map per block and run, diverging around 0 ----
// {run: {block: {values [[...]], row, col, band, max_band, expected, share, chance}}}, or
// {block: {...}} for one run (see figures.py, weight_blocks).
const DIVERGING = [[0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1, "#b2182b"]];

function weightCells() {
  let w = DATA.summary && DATA.summary.weights;
  if (!w || typeof w !== "object") return [];
  const isMatrix = (m) => m && Array.isArray(m.values) && m.values.length > 0 && m.values.every(Array.isArray);
  if (Object.values(w).some(isMatrix)) w = {"": w};
  const cells = [];
  for (const [run, group] of Object.entries(w))
    if (group && typeof group === "object")
      for (const [block, m] of Object.entries(group)) if (isMatrix(m)) cells.push({run, block, m});
  return cells;
}

function weightCharts() {
  const cells = weightCells();
  if (cells.length === 0) return;
  const s = section("Trained weights", "The blocks of summary.json \"weights\", one row per block and one panel " +
                    "per run. Red positive, blue negative, each panel on its own scale (± its largest |w|); " +
                    "outlined: the cells where the mechanism predicts the structure; blank: cells a causal query " +
                    "cannot use. share: the block's squared Frobenius norm on the outlined cells over that of all " +
                    "usable cells; chance: that share for a block with no structure; norm: the Frobenius norm of the usable " +
                    "cells.");
  for (const block of [...new Set(cells.map((c) => c.block))]) {
    const mine = cells.filter((c) => c.block === block);
    const expected = (mine.find((c) => c.m.expected) || {m: {}}).m.expected;
    s.append(el("h3", {text: block + (expected ? ": expected " + expected : "")}));
    const grid = el("div", {class: "grid"});
    s.append(grid);
    for (const {run, m} of mine) {
      const usable = (i, j) => typeof m.max_band !== "number" || j - i <= m.max_band;
      const z = m.values.map((r, i) => r.map((v, j) => (usable(i, j) ? v : null)));
      let lim = 0;
      for (const r of z) for (const v of r) if (typeof v === "number") lim = Math.max(lim, Math.abs(v));
      lim = lim || 1;
      let title = run || block;
      const shapes = [];
      if (typeof m.band === "number") {
        for (let i = 0; i < z.length; i++) {
          const j = i + m.band;
          if (j >= 0 && j < z[i].length && usable(i, j))
            shapes.push({type: "rect", x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5,
                         line: {color: "rgba(0,0,0,0.55)", width: 0.8}});
        }
        if (typeof m.share === "number")
          title += `<br>share on the ${m.band === 0 ? "diagonal" : "shift"} ${m.share.toFixed(2)} ` +
                   `(chance ${typeof m.chance === "number" ? m.chance.toFixed(2) : "?"})` +
                   (typeof m.norm === "number" ? `, norm ${Number(m.norm.toPrecision(3))}` : "");
      }
      plot(newChart(grid, "chart heat"), [{z, type: "heatmap", colorscale: DIVERGING, zmin: -lim, zmax: lim,
                                           hoverongaps: false,
                                           hovertemplate: "row %{y}, column %{x}: %{z:.4g}<extra></extra>"}], {
        title: {text: title, font: {size: 12}}, shapes, margin: {l: 56, r: 10, t: 48, b: 44},
        xaxis: {title: {text: m.col || "column"}, constrain: "domain"},
        yaxis: {title: {text: m.row || "row"}, autorange: "reversed", scaleanchor: "x", constrain: "domain"}});
    }
  }
}

// ---- scaling fits (sweeps): log-log points, fitted line and its band ----
function scalingCharts() {
  const sc = (DATA.summary && DATA.summary.scaling) || [];
  if (sc.length === 0) return;
  const s = section("Scaling", "Log-log axes. The line is the least-squares fit of log y on log x; the shaded band " +
                    "is its confidence band.");
  const grid = el("div", {class: "row2"});
  s.append(grid);
  for (const f of sc) {
    const px = f.points.map((p) => p[0]), py = f.points.map((p) => p[1]);
    const traces = [{x: px, y: py, mode: "markers", name: "measured", marker: {size: 8, color: PALETTE[0]}}];
    let title = f.name || `${f.y} vs ${f.x}`;
    if (f.fit) {
      const band = f.band || [];
      if (band.length) {
        traces.push({x: band.map((b) => b[0]), y: band.map((b) => b[2]), mode: "lines", line: {width: 0},
                     showlegend: false, hoverinfo: "skip"});
        traces.push({x: band.map((b) => b[0]), y: band.map((b) => b[1]), mode: "lines", line: {width: 0},
                     fill: "tonexty", fillcolor: "rgba(213,94,0,0.18)", name: `${Math.round(100 * (f.fit.level || 0.95))}% band`,
                     hoverinfo: "skip"});
      }
      const xs = band.length ? band.map((b) => b[0]) : [Math.min(...px), Math.max(...px)];
      traces.push({x: xs, y: xs.map((x) => Math.exp(f.fit.intercept + f.fit.slope * Math.log(x))), mode: "lines",
                   name: `fit: slope ${fmtNum(f.fit.slope)} [${fmtNum(f.fit.slope_lo)}, ${fmtNum(f.fit.slope_hi)}]`,
                   line: {color: PALETTE[3], width: 2}});
      title += ` (slope ${fmtNum(f.fit.slope)}, R² ${fmtNum(f.fit.r2)})`;
    }
    plot(newChart(grid), traces, {title: {text: title, font: {size: 13}},
                                  xaxis: {title: {text: f.x}, type: "log"}, yaxis: {title: {text: f.y}, type: "log"}});
  }
}

// ---- theory over measurement: a formula drawn over the points it describes, with residuals ----
// summary.theory entries (src/train/theory_curve.h): measured [[x, y]], curve [[x, y_theory]],
// residuals [[x, (y - y_theory) / y_theory]], form and source as text, axis labels and log flags.
function theoryCharts() {
  const th = ((DATA.summary && DATA.summary.theory) || []).filter((t) => t &&
    ((t.measured || []).length > 0 || (t.curve || []).length > 0));
  if (th.length === 0) return;
  const s = section("Theory over measurement", "Each law drawn (line) over the measured points (markers); " +
                    "beneath it the relative residual (measured − theory) / theory at each measured point, with " +
                    "a zero line. The formula's constants and where it comes from are given under each chart.");
  const grid = el("div", {class: "row2"});
  s.append(grid);
  for (const t of th) {
    const xs = (pts) => pts.map((p) => p[0]), ys = (pts) => pts.map((p) => p[1]);
    const byX = (pts) => pts.filter((p) => Array.isArray(p)).sort((a, b) => a[0] - b[0]);  // the residual line
    const measured = t.measured || [], curve = t.curve || [], res = byX(t.residuals || []);
    const form = t.form || "theory";
    const traces = [];
    if (curve.length) traces.push({x: xs(curve), y: ys(curve), mode: "lines", name: form,
                                   line: {color: PALETTE[3], width: 2}, hovertemplate: "%{x:.4g}: %{y:.5g}<extra>theory</extra>"});
    if (measured.length) traces.push({x: xs(measured), y: ys(measured), mode: "markers", name: "measured",
                                      marker: {size: 8, color: PALETTE[0]}});
    // The legend (measured, the formula, the residual) sits in a row between the title and the law.
    const layout = {title: {text: t.name || `${t.y} vs ${t.x}`, font: {size: 13}, y: 0.985, yanchor: "top"},
                    margin: {l: 64, r: 20, t: 64, b: 48},
                    legend: {font: {size: 10}, orientation: "h", x: 0, y: 1, yanchor: "bottom"},
                    xaxis: {title: {text: t.x || ""}, type: t.xlog ? "log" : "linear"},
                    yaxis: {title: {text: t.y || ""}, type: t.ylog ? "log" : "linear"}};
    if (res.length) {
      // Residuals on their own strip below the law, sharing its x axis.
      // In percent, so that Plotly's own ticks suit residuals of any size (1e-5 or 0.3).
      traces.push({x: xs(res), y: ys(res).map((v) => typeof v === "number" ? 100 * v : null), mode: "lines+markers",
                   name: "relative residual", yaxis: "y2", marker: {size: 6, color: PALETTE[2]},
                   line: {color: PALETTE[2], width: 1, dash: "dot"},
                   hovertemplate: "%{x:.4g}: %{y:.3g}%<extra>residual</extra>"});
      layout.yaxis.domain = [0.36, 1];
      layout.yaxis2 = {domain: [0, 0.26], title: {text: "residual (%)"}, gridcolor: "#e5e5e5", zeroline: false,
                       anchor: "x"};
      layout.xaxis.anchor = "y2";
      layout.shapes = [{type: "line", xref: "paper", x0: 0, x1: 1, yref: "y2", y0: 0, y1: 0,
                        line: {color: "#555555", width: 1}}];
    }
    const box = el("div", {});
    grid.append(box);
    const d = newChart(box);
    d.style.height = res.length ? "460px" : "380px";
    const r = ys(res).filter((v) => typeof v === "number");
    const pct = (v) => fmtNum(Number((100 * v).toPrecision(3))) + "%";
    const range = r.length ? `; residuals from ${pct(Math.min(...r))} to ${pct(Math.max(...r))}` : "";
    box.append(el("p", {class: "note", text: `${form} — ${t.source || "source not given"}${range}`}));
    plot(d, traces, layout);
  }
}

// ---- extra tables written by reproductions (e.g. generalization.csv) ----
function tableCharts() {
  const tables = DATA.tables || {};
  for (const [name, t] of Object.entries(tables)) {
    if (name === "sweep" && DATA.summary && DATA.summary.kind === "sweep") continue;  // shown as "Runs"
    const s = section(name + ".csv");
    const idx = (c) => t.columns.indexOf(c);
    if (name === "generalization" && idx("length") >= 0 && idx("alpha") >= 0 && idx("loss") >= 0) {
      const alphas = [...new Set(t.rows.map((r) => r[idx("alpha")]))];
      const traces = [];
      alphas.forEach((a, i) => {
        const rows = t.rows.filter((r) => r[idx("alpha")] === a);
        traces.push({x: rows.map((r) => r[idx("length")]), y: rows.map((r) => r[idx("loss")]), mode: "lines+markers",
                     name: `α=${a} model`, line: {color: PALETTE[i % PALETTE.length]}});
        if (idx("ref.bayes") >= 0)
          traces.push({x: rows.map((r) => r[idx("length")]), y: rows.map((r) => r[idx("ref.bayes")]), mode: "lines",
                       name: `α=${a} Bayes`, line: {color: PALETTE[i % PALETTE.length], dash: "dash"}});
      });
      plot(newChart(s), traces, {title: {text: "loss vs sequence length L per α", font: {size: 13}},
                                 xaxis: {title: {text: "L (log scale)"}, type: "log"}, yaxis: {title: {text: "loss (nats)"}}});
    }
    s.append(htmlTable(t.columns, t.rows));
  }
}

function htmlTable(columns, rows) {
  const thead = el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {text: c}))));
  const tbody = el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {text: fmtNum(v)})))));
  return el("div", {class: "table-wrap"}, el("table", {}, thead, tbody));
}

// ---- header, claims, sweep runs, figures, config ----
function header() {
  const sm = DATA.summary || {};
  document.title = `ihlab report: ${DATA.name}`;
  const status = sm.status || "unknown";
  const facts = [["status", status], ["steps", sm.steps], ["wall time", sm.wall_seconds !== undefined ?
                 fmtNum(sm.wall_seconds) + " s" : undefined], ["dtype", sm.dtype], ["seed", sm.seed],
                 ["threads", sm.threads]].filter((f) => f[1] !== undefined);
  const h = document.getElementById("header");
  h.append(el("h1", {text: DATA.name}));
  if (sm.reproduction && sm.reproduction.paper) h.append(el("p", {class: "paper", text: sm.reproduction.paper}));
  h.append(el("div", {class: "facts"}, ...facts.map(([k, v]) =>
    el("span", {class: "fact" + (k === "status" ? " status-" + v : "")}, el("b", {text: k + " "}), String(v)))));
  if (sm.message) h.append(el("p", {class: status === "finished" ? "note" : "message", text: sm.message}));
}

// Claims: the verdict (held, failed, or not evaluated with the reason), the threshold and its
// basis, the negative controls that must fail the claim beside it, and over several seeds the
// per-seed values, the fraction holding and the 95% interval.
function claims() {
  const sm = DATA.summary || {};
  const cl = sm.claims || [];
  if (cl.length === 0) return;
  const controls = sm.controls || [];
  const judged = cl.filter((c) => c.evaluated !== false);
  const passed = judged.filter((c) => c.pass).length;
  const okControls = controls.filter((c) => c.ok).length;
  let note = `${passed} of ${judged.length} evaluated claims held` +
    (judged.length < cl.length ? `; ${cl.length - judged.length} not evaluated` : "") + ".";
  if (controls.length) note += ` Negative controls: ${okControls} of ${controls.length} failed what they must fail.`;
  const s = section("Claims", note);
  s.classList.add(passed === judged.length && okControls === controls.length ? "all-pass" : "some-fail");
  const verdict = (c) => c.evaluated === false ? ["skip", "– not evaluated"] : c.pass ? ["pass", "✔ held"] :
    ["fail", "✘ failed"];
  // The controls that must fail a claim, each with what it did.
  const controlCell = (c) => {
    const mine = controls.filter((k) => (k.must_fail || []).includes(c.name));
    if (mine.length === 0) return el("td", {class: "muted", text: controls.length ? "none" : ""});
    return el("td", {}, ...mine.map((k) => {
      const failed = (k.failed || []).includes(c.name);
      const unjudged = (k.not_evaluated || []).includes(c.name);
      const what = failed ? "failed it ✔" : unjudged ? "could not judge it ✘" : "held it ✘";
      return el("div", {class: failed ? "ctl-ok" : "ctl-bad", title: k.description || ""},
        el("a", {href: (k.dir || "") + "/report.html", text: k.name}), " " + what);
    }));
  };
  const seedsText = (c) => {
    if (!c.seeds) return null;
    const v = (c.seeds.values || []).map(fmtNum).join(", ");
    return el("div", {class: "seeds", text: `seeds: ${v}; holds in ${fmtNum(100 * c.seeds.holding)}%; 95% interval ` +
      `[${fmtNum(c.seeds.lo)}, ${fmtNum(c.seeds.hi)}]; verdict: ${c.seeds.rule}`});
  };
  const rows = cl.map((c) => {
    const [cls, text] = verdict(c);
    return el("tr", {class: cls},
      el("td", {class: "verdict", text}), el("td", {text: c.name}),
      el("td", {}, c.expected, c.basis ? el("div", {class: "basis", text: "threshold: " + c.basis}) : null),
      el("td", {class: "num", text: fmtNum(c.measured)}),
      el("td", {}, c.evaluated === false ? el("div", {class: "reason", text: c.reason || ""}) : null,
        c.detail || "", seedsText(c)),
      controlCell(c));
  });
  s.append(el("div", {class: "table-wrap"}, el("table", {class: "claims"},
    el("thead", {}, el("tr", {}, ...["", "claim", "expected", "measured", "detail", "negative controls"].map((t) =>
      el("th", {text: t})))),
    el("tbody", {}, ...rows))));
  for (const k of controls.filter((k) => k.message))
    s.append(el("p", {class: "message", text: `control ${k.name}: ${k.message}`}));
}

function sweepRuns() {
  const runs = (DATA.summary && DATA.summary.runs) || [];
  if (runs.length === 0) return;
  const s = section("Runs of the sweep", "Each run links to its own report; sweep.csv holds every final metric.");
  const keys = Object.keys(runs[0].overrides || {});
  // The fitted metrics and the losses first, then the rest (the full table is sweep.csv).
  const fitted = ((DATA.summary && DATA.summary.scaling) || []).map((f) => f.y);
  const all = Object.keys(runs[0].final || {}).filter((k) => !k.startsWith("ref."));
  const first = [...fitted, "val_loss", "loss", "val_acc"].filter((k, i, a) => all.includes(k) && a.indexOf(k) === i);
  const metrics = [...first, ...all.filter((k) => !first.includes(k))].slice(0, 10);
  const head = ["run", "status", ...keys, ...metrics];
  const body = runs.map((r) => el("tr", {},
    el("td", {}, el("a", {href: r.dir + "/report.html", text: r.dir})), el("td", {text: r.status}),
    ...keys.map((k) => el("td", {text: String(r.overrides[k])})),
    ...metrics.map((k) => el("td", {class: "num", text: fmtNum((r.final || {})[k])}))));
  s.append(el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, ...head.map((t) => el("th", {text: t})))), el("tbody", {}, ...body))));
}

// Aggregates over seeds: one row per point of the grid, mean and 95% t-interval of each metric
// (shown only when some grid point ran more than one seed).
function sweepAggregates() {
  const ag = (DATA.summary && DATA.summary.aggregates) || [];
  if (!ag.some((g) => g.done > 1)) return;
  const s = section("Aggregates over seeds", "Mean and 95% interval (Student's t, n - 1 degrees of freedom) of " +
    "each final metric over the done seeds of a grid point; the per-seed values are in sweep.csv.");
  const keys = Object.keys(ag[0].overrides || {});
  const fitted = ((DATA.summary && DATA.summary.scaling) || []).map((f) => f.y);
  const all = Object.keys(ag[0].metrics || {}).filter((k) => !k.startsWith("ref."));
  const first = [...fitted, "val_loss", "loss", "val_acc"].filter((k, i, a) => all.includes(k) && a.indexOf(k) === i);
  const metrics = [...first, ...all.filter((k) => !first.includes(k))].slice(0, 6);
  const cell = (e) => !e ? "" : e.lo === undefined ? fmtNum(e.mean) :
    `${fmtNum(e.mean)} [${fmtNum(e.lo)}, ${fmtNum(e.hi)}]`;
  const head = [...keys, "seeds done", ...metrics];
  const body = ag.map((g) => el("tr", {},
    ...keys.map((k) => el("td", {text: String(g.overrides[k])})), el("td", {class: "num", text: `${g.done}/${g.points}`}),
    ...metrics.map((k) => el("td", {class: "num", text: cell((g.metrics || {})[k])}))));
  s.append(el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, ...head.map((t) => el("th", {text: t})))), el("tbody", {}, ...body))));
}

// The seeds of `reproduce --seeds K`: each a reproduction of its own, linked to its report.
function seedRuns() {
  const sd = DATA.summary && DATA.summary.seeds;
  if (!sd || !(sd.runs || []).length) return;
  const s = section(`Seeds (${sd.count})`, `The claims above are judged over seed ${sd.main_seed} (this run) and the ` +
    "seeds below, each a whole reproduction with its own claims and report.");
  const body = sd.runs.map((r) => el("tr", {},
    el("td", {class: "num", text: String(r.seed)}), el("td", {}, el("a", {href: r.dir + "/report.html", text: r.dir})),
    el("td", {text: r.status}), el("td", {text: r.all_pass === undefined ? "" : r.all_pass ? "all hold" : "some fail"})));
  s.append(el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, ...["seed", "run", "status", "its own claims"].map((t) => el("th", {text: t})))),
    el("tbody", {}, ...body))));
}

function figures() {
  const figs = DATA.figures || [];
  if (figs.length === 0) return;
  const s = section("Figures for papers", "Static SVG and PNG files in figures/ next to this report.");
  s.append(el("ul", {class: "figures"}, ...figs.map((f) => el("li", {},
    el("a", {href: "figures/" + f.name + ".svg", text: f.name + ".svg"}), " · ",
    el("a", {href: "figures/" + f.name + ".png", text: "png"}), " — " + (f.caption || "")))));
}

function reproduce() {
  const s = section("Reproduce this run");
  const cmd = DATA.command || "";
  if (cmd) s.append(el("p", {}, "Command: "), el("pre", {class: "command", text: cmd}));
  if (DATA.config_toml) s.append(el("p", {text: "Resolved configuration (config.toml):"}),
                                 el("pre", {class: "config", text: DATA.config_toml}));
  s.append(el("p", {class: "note", text: `Report written ${DATA.generated} by ihlab ${DATA.version}.`}));
}

function main() {
  header();
  claims();
  lossCharts();
  familyCharts();
  attentionCharts();
  weightCharts();
  scalingCharts();
  theoryCharts();
  tableCharts();
  sweepRuns();
  sweepAggregates();
  seedRuns();
  figures();
  reproduce();
}

// Marker for automated checks (tests/report_check.py): how many charts exist and drew an SVG.
function markRendered() {
  // A chart counts as drawn when its SVG holds a trace (scatter lines/markers or a heat-map image).
  const drawn = charts.filter((d) => d.querySelector("svg.main-svg .scatterlayer .trace path") !== null ||
                                     d.querySelector("svg.main-svg .heatmaplayer image") !== null).length;
  document.body.dataset.charts = String(charts.length);
  document.body.dataset.drawn = String(drawn);
  document.body.dataset.rendered = problems.length === 0 && drawn === charts.length ? "ok" : "incomplete";
}

try {
  main();
  for (const draw of queued) draw();
} catch (e) {
  showProblem(String(e && e.stack ? e.stack : e));
  console.error(e);
}
Promise.all(pending).then(markRendered, (e) => { showProblem(String(e)); console.error(e); markRendered(); });
