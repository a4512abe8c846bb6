"""ihlab report figures: draws paper-style figures from a run directory.

Run as `/usr/bin/python3 - DIR < figures.py` (that is how `ihlab report DIR` calls it) or
`python3 figures.py DIR`. Needs only the standard library, numpy and matplotlib (Agg). Writes
DIR/figures/NAME.svg and NAME.png (150 dpi) plus DIR/figures/index.json:
{"run", "figures": [{"name", "caption", "files": [svg, png]}], "skipped": [{"name", "reason"}]}.
Every input except metrics.csv is optional; a figure whose data is missing is skipped with one
printed line, and an error in one figure never stops the others. SVGs are byte-identical across
runs (fixed svg.hashsalt, no date).

One file on purpose: the ihlab binary embeds it and pipes it to the interpreter, so it cannot
import siblings. That is why it is longer than the project's usual file size.
"""
import csv
import json
import math
import os
import re
import sys

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

# Okabe-Ito, reordered so that the first colours are the most distinct; yellow last (weak on white).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
DASHES = ["-", "--", ":", "-."]
GREY = "0.45"

plt.rcParams.update({
    "svg.hashsalt": "ihlab", "svg.fonttype": "path", "savefig.dpi": 150, "figure.dpi": 150,
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "axes.linewidth": 0.7, "lines.linewidth": 1.3, "legend.frameon": False, "image.cmap": "viridis",
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
})

_styles = {}


def style(namespace, key):
    """(colour, linestyle) for key, fixed within a namespace for the whole report (e.g. subsets)."""
    keys = _styles.setdefault(namespace, [])
    if key not in keys:
        keys.append(key)
    i = keys.index(key)
    return PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]


# ----------------------------------------------------------------------------------------- input
def to_float(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def load_csv(path):
    """Columns of a CSV as float arrays (nan where empty or unparsable; short rows padded)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return [], {}
    header, data = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(header):
        cols[name] = np.array([to_float(r[j]) if j < len(r) else math.nan for r in data], dtype=float)
    return header, cols


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stage_names(run):
    try:
        import tomllib
        with open(os.path.join(run, "config.toml"), "rb") as f:
            return [s.get("name", "") for s in tomllib.load(f).get("stages", [])]
    except Exception:
        return []


class Report:
    """Collects figure jobs; runs them (in forked workers when several CPUs are free) in a fixed order."""

    def __init__(self, run):
        self.run, self.out = run, os.path.join(run, "figures")
        os.makedirs(self.out, exist_ok=True)
        self.jobs, self.figures, self.skipped = [], [], []

    def save(self, fig, name, caption):
        fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03)
        fig.set_dpi(150)
        fig.canvas.draw()  # lays out once (constrained) and renders the PNG's pixels
        fig.set_layout_engine("none")
        matplotlib.image.imsave(os.path.join(self.out, name + ".png"), np.asarray(fig.canvas.buffer_rgba()),
                                format="png", dpi=150)
        fig.savefig(os.path.join(self.out, name + ".svg"), format="svg", metadata={"Date": None})
        plt.close(fig)
        self.figures.append({"name": name, "caption": caption, "files": [name + ".svg", name + ".png"]})

    def skip(self, name, reason):
        self.skipped.append({"name": name, "reason": reason})

    def attempt(self, name, fn, *args):
        self.jobs.append((name, fn, args))
        self.skipped.append(len(self.jobs) - 1)  # placeholder: keeps skip lines in registration order

    def _job(self, i):
        name, fn, args = self.jobs[i]
        self.figures, self.skipped = [], []
        try:
            fn(self, *args)
        except Exception as e:  # one broken figure must not stop the report
            plt.close("all")
            self.skip(name, "error: %s: %s" % (type(e).__name__, e))
        return self.figures, self.skipped

    def run_jobs(self):
        order, n = self.skipped, len(self.jobs)
        workers = min(4, n, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        results = None
        if workers > 1:
            try:
                import multiprocessing
                global _REPORT
                _REPORT = self
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    results = pool.map(_run_job, range(n), chunksize=1)
            except Exception as e:
                print("figures: parallel run failed (%s), drawing serially" % e)
        if results is None:
            results = [self._job(i) for i in range(n)]
        self.figures = [f for figs, _ in results for f in figs]
        self.skipped = []
        for entry in order:
            self.skipped += results[entry][1] if isinstance(entry, int) else [entry]
        for e in self.skipped:
            print("figures: skipped %s: %s" % (e["name"], e["reason"]))

    def write_index(self, run_name):
        old = load_json(os.path.join(self.out, "index.json")) or {}
        keep = {f for fig in self.figures for f in fig["files"]}
        for fig in old.get("figures", []):  # remove figures of a previous report that are gone now
            for f in fig.get("files", []):
                if f not in keep and os.path.basename(f) == f and os.path.exists(os.path.join(self.out, f)):
                    os.remove(os.path.join(self.out, f))
        with open(os.path.join(self.out, "index.json"), "w") as f:
            json.dump({"run": run_name, "figures": self.figures, "skipped": self.skipped}, f, indent=1)
            f.write("\n")


# ------------------------------------------------------------------------------------ axes help
class Steps:
    """The x axis of step plots: log-x (step 0 dropped) when the positive steps span >= 2 decades."""

    def __init__(self, M, names, linear=False):
        self.M, self.names = M, names
        s = M["step"]
        pos = s[np.isfinite(s) & (s > 0)]
        self.log = not linear and pos.size >= 2 and pos.max() / pos.min() >= 100
        self.mask = np.isfinite(s) & (s > 0) if self.log else np.isfinite(s)
        self.x = s[self.mask]
        self.label = "training step (log scale, step 0 omitted)" if self.log else "training step"

    def y(self, col):
        return self.M[col][self.mask]

    def setup(self, ax, label=True, minor=True):
        if self.log:
            ax.set_xscale("log")
            if not minor:  # small multiples: decades only (also much faster to draw)
                ax.xaxis.set_minor_locator(ticker.NullLocator())
        if label:
            ax.set_xlabel(self.label)

    def stages(self, ax, label=False):
        st, s = self.M.get("stage"), self.M["step"]
        if st is None:
            return
        tr = blended_transform_factory(ax.transData, ax.transAxes)
        label = label and np.unique(st[np.isfinite(st)]).size > 1
        if label:
            ax.text(0.0, 1.0, " " + self.stage_name(st[np.isfinite(st)][0]), transform=ax.transAxes, fontsize=6,
                    color=GREY, va="top", ha="left")
        for i in range(1, len(s)):
            if np.isfinite(st[i]) and np.isfinite(st[i - 1]) and st[i] != st[i - 1]:
                x = s[i - 1]  # the last step of the finished stage
                if self.log and x <= 0:
                    continue
                ax.axvline(x, color="0.8", lw=0.7, zorder=0)
                if label:
                    ax.text(x, 1.0, " " + self.stage_name(st[i]), transform=tr, fontsize=6, color=GREY, va="top",
                            ha="left")

    def stage_name(self, k):
        k = int(k)
        name = self.names[k] if k < len(self.names) and self.names[k] else ""
        return "stage %d%s" % (k, " (%s)" % name if name else "")


def label_lines_right(ax, items, fig_h_in):
    """Label horizontal lines [(text, y)] just right of the axes, pushed apart so none overlap."""
    y0, y1 = ax.get_ylim()
    log = ax.get_yscale() == "log"
    frac = lambda v: (math.log(v / y0) / math.log(y1 / y0)) if log else (v - y0) / (y1 - y0)
    items = sorted(((frac(v), t) for t, v in items if y0 <= v <= y1))
    gap = 8.0 / (fig_h_in * 72 * 0.7)
    pos = []
    for f, _ in items:
        pos.append(max(f, pos[-1] + gap) if pos else f)
    over = (pos[-1] - 1.0) if pos else 0
    if over > 0:  # shift down from the top, keeping the gaps
        pos[-1] -= over
        for i in range(len(pos) - 2, -1, -1):
            pos[i] = min(pos[i], pos[i + 1] - gap)
    tr = blended_transform_factory(ax.transAxes, ax.transAxes)
    for (f, t), p in zip(items, pos):
        ax.annotate(t, xy=(1.0, f), xycoords=tr, xytext=(1.03, p), textcoords=tr, fontsize=6.5, color=GREY,
                    va="center", ha="left", annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.7", shrinkA=0, shrinkB=1))


def grid(n, xlabel, ncols_max=4, w=1.9, h=1.45, **kw):
    """Small multiples: n panels, at most ncols_max per row; tick labels under every column's last panel."""
    ncols = min(n, ncols_max)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols + 0.6, h * nrows + 0.5), squeeze=False,
                             layout="constrained", **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for j in range(ncols):
        axes[(n - 1 - j) // ncols][j].xaxis.set_tick_params(labelbottom=True)  # last visible row
    fig.supxlabel(xlabel, fontsize=8)
    return fig, axes


def plain_log_ticks(axis, values):
    """On a log axis spanning under two decades, label 1-2-5 ticks with plain numbers instead of 4x10^0."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() < 100:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: "%g" % x))
        axis.set_minor_formatter(ticker.NullFormatter())


def has(M, col):
    return col in M and np.isfinite(M[col]).any()


# ---------------------------------------------------------------------------------------- loss
NOT_LOSS = re.compile(r"(_a|_acc\w*|_step\w*|_frac\w*|_t)$")


def loss_refs(M, header):
    refs = []
    for c in header:
        if c.startswith("ref.") and not NOT_LOSS.search(c) and has(M, c):
            v = M[c][np.isfinite(M[c])][-1]
            if v >= 0:
                refs.append((c[4:], v))
    return refs


def fig_loss(R, M, header, X, linear):
    name = "loss_linear" if linear else "loss"
    if not (has(M, "loss") or has(M, "val_loss")):
        return R.skip(name, "no loss or val_loss values in metrics.csv")
    if linear:
        X = Steps(X.M, X.names, linear=True)
    fig, ax = plt.subplots(figsize=(5.2, 3.0), layout="constrained")
    if has(M, "loss"):
        ax.plot(X.x, X.y("loss"), color=PALETTE[0], lw=1.0, alpha=0.85, label="train loss (last batch)")
    if has(M, "val_loss"):
        ax.plot(X.x, X.y("val_loss"), color=PALETTE[3], label="validation loss")
    extra = [c for c in header if c.startswith("val_loss_") and has(M, c)]
    for i, c in enumerate(extra):
        ax.plot(X.x, X.y(c), color=PALETTE[(4 + i) % 8], lw=0.9, ls=":", label="validation, " + c[9:].replace("_", " "))
    refs = loss_refs(M, header)
    for _, v in refs:
        ax.axhline(v, color=GREY, ls="--", lw=0.7, zorder=1)
    X.setup(ax)
    # Regression runs (item-label retrieval, the mixed target) log squared errors, not nats.
    regression = any(c in ("val_mse", "val_task_loss") or c.startswith(("pp.", "val_err_")) for c in header)
    ax.set_ylabel(r"squared-error loss ($\frac{1}{2}\|\hat y - y\|^2$)" if regression
                  else "cross-entropy loss (nats/token)")
    X.stages(ax, label=True)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=3, borderaxespad=0, handlelength=1.8)
    label_lines_right(ax, refs, 3.0)
    xs = "linear" if linear else "log"
    R.save(fig, name, "Training loss (last batch) and validation loss vs step (%s x); dashed: reference "
           "predictors' losses on the validation set; vertical lines: stage boundaries." % xs)


# ------------------------------------------------------------------------------------ families
def families(header):
    """{top: {panel: [(line label, column)]}} for dotted columns (ref.* excluded)."""
    fams = {}
    for c in header:
        parts = c.split(".")
        if len(parts) < 2 or parts[0] in ("ref", "target"):  # floors and targets are drawn as dashed lines
            continue
        panel, line = (c.rsplit(".", 1)[0], parts[-1]) if len(parts) >= 3 else (c, None)
        fams.setdefault(parts[0], {}).setdefault(panel, []).append((line, c))
    return fams


FAMILY_YLABEL = {"p": r"selector weight $p_S$", "logp": r"$\log p_S$", "rpe": "RPE weight", "ind": "induction score",
                 "pseudo": "pseudo-parameter value"}
MEMBER_WORD = {"o": "offset", "h": "head", "l": "layer"}


def member_label(m):
    g = re.fullmatch(r"([a-z])(\d+)", m or "")
    if g is None and m and "." in m:
        return " ".join(member_label(p) for p in m.split("."))
    return "%s %s" % (MEMBER_WORD[g.group(1)], g.group(2)) if g and g.group(1) in MEMBER_WORD else m


def fig_family(R, M, X, top, panels):
    name = "family_" + top
    panels = {k: [(l, c) for l, c in v if has(M, c)] for k, v in panels.items()}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return R.skip(name, "all values nan")
    keys = list(panels)[:36]
    fig, axes = grid(len(keys), X.label, sharex=True, sharey=True)
    nested = any(l is not None for v in panels.values() for l, _ in v)
    for ax, key in zip(axes.flat, keys):
        for line, col in panels[key]:
            member = col.split(".", 1)[1]
            color, ls = style("subset" if top in ("p", "logp") else top, line if nested else member)
            ax.plot(X.x, X.y(col), color=color, ls=ls, lw=1.1, label=member_label(line))
        X.setup(ax, label=False, minor=False)
        X.stages(ax)
        rest = key.split(".", 1)[1]
        ax.set_title(subset_label(rest, None) if top in ("p", "logp") else member_label(rest), fontsize=7, pad=2,
                     y=1.0)
    if nested:
        last = axes[0][min(len(keys), axes.shape[1]) - 1]
        last.legend(*axes[0][0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    handlelength=1.8)
    fig.supylabel(FAMILY_YLABEL.get(top, top + ".*"), fontsize=8)
    more = " (first 36 of %d panels)" % len(panels) if len(panels) > 36 else ""
    R.save(fig, name, "Family %s.*: one panel per %s vs step%s%s; shared y axis."
           % (top, "sub-family, one line per member" if nested else "column", " (log x)" if X.log else "", more))


def fig_scalars(R, M, header, X):
    cols = [c for c in header if "." not in c and c not in ("step", "stage", "loss") and not c.startswith("val_loss")
            and has(M, c) and np.nanmax(M[c]) > np.nanmin(M[c])]
    if not cols:
        return R.skip("scalars", "no non-constant scalar columns")
    fig, axes = grid(len(cols), X.label, sharex=True)
    for ax, c in zip(axes.flat, cols):
        y = X.y(c)
        ax.plot(X.x, y, color=PALETTE[0], lw=1.1)
        fin = y[np.isfinite(y)]
        if fin.size and fin.min() > 0 and fin.max() / fin.min() > 100:
            ax.set_yscale("log")
        X.setup(ax, label=False, minor=False)
        X.stages(ax)
        ax.set_title(c, fontsize=7, pad=2, y=1.0)
    R.save(fig, "scalars", "Scalar training diagnostics vs step (gradient norm, learning rate, validation accuracy, "
           "learned scalars; constant columns left out); log y where a column spans more than two decades.")


# -------------------------------------------------------------------------------- flow time
PHASE_LINES = [("initial_drop_end", "fast drop ends"), ("plateau_end", "plateau ends"),
               ("transition_steepest", "steepest descent"), ("convergence_start", "convergence")]


def fig_flow(R, M, header, summary):
    """Gradient-flow runs: the last stage's losses against the flow time t on log-log axes (the
    step axis of an adaptive integrator, or of CVODE's geometric segments, hides the phases), the
    validation error's parts (val_err_*) beside the loss, and the detected phase boundaries."""
    name = "flow_time"
    st, t = M.get("stage"), M.get("t")
    if t is None or not np.isfinite(t).any():
        return R.skip(name, "no flow time column t")
    last = np.nanmax(st) if st is not None and np.isfinite(st).any() else None
    rows = np.isfinite(t) & (t > 0) & ((st == last) if last is not None else True)
    cols = [c for c in ["val_loss", "val_task_loss"] + [c for c in header if c.startswith("val_err_")]
            if has(M, c) and c not in ("val_err_cross",)]
    if rows.sum() < 3 or not cols:
        return R.skip(name, "fewer than 3 flow rows in the last stage")
    fig, ax = plt.subplots(figsize=(5.2, 3.0), layout="constrained")
    for i, c in enumerate(cols):
        y = M[c][rows]
        ok = np.isfinite(y) & (y > 0)
        ax.plot(t[rows][ok], y[ok], color=PALETTE[(3 + i) % 8], lw=1.3 if i == 0 else 1.0,
                ls="-" if i == 0 else "--", label=c.replace("val_", "").replace("_", " "))
    ax.set_xscale("log")
    ax.set_yscale("log")
    phases = (summary or {}).get("phases") or {}
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    for key, text in PHASE_LINES:
        v = phases.get(key) if isinstance(phases, dict) else None
        if isinstance(v, (int, float)) and v > 0:
            ax.axvline(v, color="0.75", lw=0.8, zorder=0)
            ax.text(v, 0.02, " " + text, transform=tr, rotation=90, fontsize=6, color=GREY, va="bottom")
    ax.set_xlabel("flow time t (log scale, last stage)")
    ax.set_ylabel("validation loss and its parts (log scale)")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=3, borderaxespad=0, handlelength=1.8)
    R.save(fig, name, "Gradient flow: validation loss of the last stage and its parts (val_err_*: the error of "
           "each target component) against the flow time t, log-log; vertical lines: phase boundaries "
           "detected in summary.json (phases), where present.")


# ----------------------------------------------------------------------------------- chen2024
def subset_label(bits, summary):
    for e in (summary or {}).get("chi_square_mi", []) or []:
        if e.get("subset") == bits:
            offs = [str(o) for o in e.get("offsets", [])]
            break
    else:
        if not set(bits) <= {"0", "1"}:
            return bits
        offs = [str(-(h + 1)) for h, b in enumerate(bits) if b == "1"]
    return "%s {%s}" % (bits, ",".join(offs)) if offs else bits + " \u2205"


def log_p(M, s):
    if has(M, "logp." + s):
        return M["logp." + s]
    with np.errstate(divide="ignore"):
        v = np.log(M["p." + s])
    return np.where(np.isfinite(v), v, np.nan)


def s_star(M, subsets):
    last = [(log_p(M, s)[np.isfinite(log_p(M, s))][-1], s) for s in subsets if np.isfinite(log_p(M, s)).any()]
    return max(last)[1] if last else None


def fig_selector(R, M, X, subsets, summary):
    star = s_star(M, subsets)
    fig, ax = plt.subplots(figsize=(5.0, 2.9), layout="constrained")
    for s in subsets:
        c, ls = style("subset", s)
        ax.plot(X.x, X.y("p." + s), color=c, ls=ls, lw=2.0 if s == star else 1.1,
                label=subset_label(s, summary) + ("  (S*)" if s == star else ""))
    X.setup(ax)
    X.stages(ax, label=True)
    multi = "stage" in M and np.unique(M["stage"][np.isfinite(M["stage"])]).size > 1
    ax.set_ylim(-0.02, 1.1 if multi else 1.02)  # room for the stage labels
    ax.set_ylabel(r"selector weight $p_S$")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="subset S (parent offsets)", handlelength=1.8)
    R.save(fig, "selector", "Selector weights p_S per subset S of heads vs step (bits: head 0 first; braces: parent "
           "offsets); thick: S* = argmax of the final p_S.")


def fig_rpe(R, M, header):
    cells = {}
    for c in header:
        m = re.fullmatch(r"rpe\.h(\d+)\.o(\d+)", c)
        if m:
            cells[(int(m.group(1)), int(m.group(2)))] = c
    heads = sorted({h for h, _ in cells})
    offs = sorted({o for _, o in cells})
    ok = np.all([np.isfinite(M[c]) for c in cells.values()], axis=0)
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        return R.skip("rpe_heatmap", "no row with every rpe.* value finite")
    mats = []
    for r in (rows[0], rows[-1]):
        A = np.full((len(heads), len(offs)), np.nan)
        for (h, o), c in cells.items():
            A[heads.index(h), offs.index(o)] = M[c][r]
        mats.append((int(M["step"][r]), A))
    lo = min(np.nanmin(A) for _, A in mats)
    hi = max(np.nanmax(A) for _, A in mats)
    fig, axes = plt.subplots(1, 2, figsize=(1.0 + 1.0 * len(offs) * 2 + 1.0, 0.6 + 0.45 * len(heads) + 0.6),
                             layout="constrained", sharey=True)
    for ax, (step, A), tag in zip(axes, mats, ("before", "after")):
        im = ax.imshow(A, vmin=lo, vmax=hi, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(offs)), ["-%d" % o for o in offs])
        ax.set_yticks(range(len(heads)), ["head %d" % h for h in heads])
        ax.set_xlabel("relative position (offset)")
        ax.set_title("%s: step %d" % (tag, step), fontsize=7, pad=3, y=1.0)
        ax.tick_params(length=0)
        for s in ax.spines.values():
            s.set_visible(False)
        if A.size <= 100:
            for (i, j), v in np.ndenumerate(A):
                light = (v - lo) / ((hi - lo) or 1) < 0.6
                ax.text(j, i, "%.2f" % v, ha="center", va="center", fontsize=6, color="white" if light else "black")
    fig.colorbar(im, ax=list(axes), shrink=0.9, label="RPE weight", pad=0.02)
    R.save(fig, "rpe_heatmap", "Layer-1 RPE weights per head (rows) and offset back (columns), first vs last logged "
           "step, shared colour scale.")


def fig_a(R, M, X):
    if not has(M, "a"):
        return R.skip("a", "no values of a")
    fig, ax = plt.subplots(figsize=(4.2, 2.7), layout="constrained")
    ax.plot(X.x, X.y("a"), color=PALETTE[0], label="learned a")
    # target.a: the limiting model's best a (older runs logged it as ref.gih_limit_a).
    tcol = "target.a" if has(M, "target.a") else "ref.gih_limit_a"
    if has(M, tcol):
        v = M[tcol][np.isfinite(M[tcol])][-1]
        ax.axhline(v, color=GREY, ls="--", lw=0.8, label="GIH limit's best a = %.3g" % v)
    X.setup(ax)
    X.stages(ax, label=True)
    ax.set_ylabel("classifier scale a")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2, borderaxespad=0)
    R.save(fig, "a", "Classifier scale a vs step; dashed: the loss-minimizing a of the limiting GIH model on the "
           "validation set.")


def fig_ratio(R, M, X, subsets, summary):
    star = s_star(M, subsets)
    if star is None:
        return R.skip("ratio", "no finite p_S")
    rivals = [s for s in subsets if s != star]
    step = M["step"]
    # early window: twice the step where p_S* first reaches 0.99 (the dominance phase), else 1% of the run
    reached = np.flatnonzero(np.exp(log_p(M, star)) >= 0.99)
    end = 2 * step[reached[0]] if reached.size else np.nanmax(step) / 100
    early = np.isfinite(step) & (step <= max(end, step[np.isfinite(step)][:10].max()))
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 2.8), layout="constrained")
    for s in rivals:
        c, ls = style("subset", s)
        r = (log_p(M, star) - log_p(M, s)) / math.log(10)
        axes[0].plot(step[X.mask], r[X.mask], color=c, ls=ls, label=subset_label(s, summary))
        axes[1].plot(step[early], r[early], color=c, ls=ls, marker=".", ms=3)
    X.setup(axes[0])
    X.stages(axes[0])
    axes[1].set_xlabel("training step (first %d, linear)" % int(step[early].max()))
    fmt = ticker.FuncFormatter(lambda v, _: "$10^{%d}$" % round(v) if abs(v - round(v)) < 1e-6 else "")
    for ax in axes:
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=7, integer=True))
        ax.yaxis.set_major_formatter(fmt)
    axes[0].set_ylabel(r"$p_{S^*}/p_S$ (log scale)")
    for ax in axes:
        ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    axes[1].legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.02, 0.5),
                   title="rival S (S* = %s)" % subset_label(star, summary))
    R.save(fig, "ratio", "Ratio p_S*/p_S for each rival subset S (log y, from logp so underflow is not an issue): whole "
           "run on log x (left), early steps on linear x where exponential growth is a straight line (right).")


def fig_generalization(R, run, summary):
    path = os.path.join(run, "generalization.csv")
    if os.path.exists(path):
        _, G = load_csv(path)
    elif isinstance((summary or {}).get("generalization"), list):
        rows = summary["generalization"]
        G = {k: np.array([to_float(r.get(k)) for r in rows]) for k in ("length", "alpha", "loss", "ref.bayes")}
    else:
        return R.skip("generalization", "no generalization.csv")
    if not all(k in G for k in ("length", "alpha", "loss")):
        return R.skip("generalization", "generalization.csv lacks length, alpha or loss")
    fig, ax = plt.subplots(figsize=(5.4, 2.9), layout="constrained")
    for a in sorted({a for a in G["alpha"] if np.isfinite(a)}):
        m = G["alpha"] == a
        o = np.argsort(G["length"][m])
        c, _ = style("alpha", a)
        ax.plot(G["length"][m][o], G["loss"][m][o], color=c, marker="o", ms=3.5, label=r"$\alpha$ = %g" % a)
        if "ref.bayes" in G:
            ax.plot(G["length"][m][o], G["ref.bayes"][m][o], color=c, ls="--", lw=0.9)
    ax.plot([], [], color=GREY, ls="--", lw=0.9, label="Bayes-optimal (same colour)")
    ax.set_xscale("log")
    ax.set_xlabel("test sequence length L (tokens, log scale)")
    ax.set_ylabel("test loss (nats/token)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    R.save(fig, "generalization", "Length and alpha generalization: loss of the trained model vs test length L per "
           "Dirichlet alpha (markers); dashed: Bayes-optimal loss for the same L and alpha.")


# ------------------------------------------------------------------------------------- scaling
def fig_scaling(R, i, e):
    name = "scaling_%d" % i
    pts = np.array([p for p in e.get("points", []) if len(p) == 2], dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1) & (pts > 0).all(axis=1)]
    if pts.shape[0] == 0:
        return R.skip(name, "no positive points")
    fig, ax = plt.subplots(figsize=(4.0, 3.0), layout="constrained")
    ax.scatter(pts[:, 0], pts[:, 1], s=14, color=PALETTE[0], zorder=3, label="measured")
    fit, band = e.get("fit") or {}, np.array(e.get("band") or [], dtype=float).reshape(-1, 3)
    if band.size:
        band = band[np.argsort(band[:, 0])]
        ax.fill_between(band[:, 0], band[:, 1], band[:, 2], color=PALETTE[3], alpha=0.18, lw=0,
                        label="%g%% confidence band" % (100 * float(fit.get("level", 0.95))))
    if "slope" in fit and "intercept" in fit:
        xs = np.geomspace(pts[:, 0].min(), pts[:, 0].max(), 50)
        if band.size:
            xs = np.geomspace(min(xs[0], band[0, 0]), max(xs[-1], band[-1, 0]), 50)
        lab = "fit: slope %.3g" % fit["slope"]
        if "slope_lo" in fit and "slope_hi" in fit:
            lab += " [%.3g, %.3g]" % (fit["slope_lo"], fit["slope_hi"])
        if "r2" in fit:
            lab += r", $R^2$ = %.3f" % fit["r2"]
        if "n" in fit:
            lab += ", n = %d" % fit["n"]
        ax.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], color=PALETTE[3], lw=1.3, label=lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis, pts[:, 0])
    plain_log_ticks(ax.yaxis, np.concatenate([pts[:, 1], band[:, 1:].ravel()]) if band.size else pts[:, 1])
    ax.set_xlabel("%s (log scale)" % e.get("x", "x"))
    ax.set_ylabel("%s (log scale)" % e.get("y", "y"))
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), borderaxespad=0)
    R.save(fig, name, "%s: log-log scatter with the least-squares line log y = a + b log x and its confidence "
           "band; legend: slope with its interval." % e.get("name", name))


# ----------------------------------------------------------------------------------- attention
def load_attention(path):
    snaps = []
    with open(path) as f:
        for line in f:
            try:
                s = json.loads(line)
                if isinstance(s, dict) and s.get("maps"):
                    snaps.append(s)
            except ValueError:
                continue
    return snaps


def fig_attention(R, snap):
    step = int(snap.get("step", 0))
    name = "attention_%d" % step
    maps = sorted(snap["maps"], key=lambda m: (m.get("layer", 0), m.get("head", 0)))
    layers = sorted({m.get("layer", 0) for m in maps})
    heads = sorted({m.get("head", 0) for m in maps})
    tokens = snap.get("tokens") or []
    nq0 = max(int(m["queries"]) for m in maps)
    nk0 = max(int(m["keys"]) for m in maps)
    cw = 1.6 * min(1.0, max(nk0, 4) / 12) + 0.6
    ch = cw * nq0 / max(nk0, 1)
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(cw * len(heads) + 1.0, ch * len(layers) + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    im = None
    for m in maps:
        nq, nk = int(m["queries"]), int(m["keys"])
        A = np.array(m["weights"], dtype=float)[: nq * nk].reshape(nq, nk)
        ax = axes[layers.index(m.get("layer", 0))][heads.index(m.get("head", 0))]
        ax.set_visible(True)
        im = ax.imshow(A, vmin=0, vmax=1, cmap="viridis", interpolation="nearest", aspect="equal")
        ax.set_title("layer %s, head %s" % (m.get("layer", 0), m.get("head", 0)), fontsize=7, pad=2, y=1.0)
        small = nk <= 24 and len(tokens) == nk
        if small:
            ax.set_xticks(range(nk), [str(t) for t in tokens])
        if small and nq == nk:
            ax.set_yticks(range(nq), [str(t) for t in tokens])
        if not small:  # the log keeps the last positions: label them with their absolute index
            q0, k0 = int(m.get("query_offset", 0)), int(m.get("key_offset", 0))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _, k0=k0: "%d" % (v + k0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _, q0=q0: "%d" % (v + q0)))
        ax.tick_params(labelsize=5.5, length=1.5)
        ax.set_xlabel("key" + (" token" if small else " position"), fontsize=7)
        ax.set_ylabel("query" + (" token" if small and nq == nk else " position"), fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), shrink=0.8, label="attention weight")
    R.save(fig, name, "Attention weights (query rows x key columns) per layer and head at step %d (stage %s)."
           % (step, snap.get("stage", "?")))


# ------------------------------------------------------------------------------------- weights
def is_matrix(m):
    v = m.get("values") if isinstance(m, dict) else None
    return isinstance(v, list) and len(v) > 0 and all(isinstance(r, list) and r for r in v)


def weight_blocks(summary):
    """summary.json "weights" ({run: {block: matrix}}, or {block: matrix} for one run) as
    (runs, blocks, {(run, block): matrix}) in file order; a matrix is {"values": [[...], ...]} with
    optional row, col (axis labels), band (col - row of the expected diagonal), max_band (cells with
    col - row above it cannot be used), expected (words), share, chance and norm (band_share)."""
    w = (summary or {}).get("weights")
    if not isinstance(w, dict):
        return [], [], {}
    if any(is_matrix(m) for m in w.values()):
        w = {"": w}
    runs, blocks, cells = [], [], {}
    for run, group in w.items():
        if not isinstance(group, dict):
            continue
        for block, m in group.items():
            if not is_matrix(m):
                continue
            if run not in runs:
                runs.append(run)
            if block not in blocks:
                blocks.append(block)
            cells[(run, block)] = m
    return runs, blocks, cells


def band_share(A, band, max_band):
    """Squared Frobenius norm on the cells col - row == band over that of the cells col - row <= max_band,
    the fraction of those cells on the band (what a block with no structure gives) and their Frobenius norm."""
    d = np.arange(A.shape[1])[None, :] - np.arange(A.shape[0])[:, None]
    use = (d <= max_band) & np.isfinite(A)
    on = use & (d == band)
    total = float((A[use] ** 2).sum())
    return (float((A[on] ** 2).sum()) / total if total > 0 else math.nan,
            on.sum() / use.sum() if use.any() else math.nan, math.sqrt(total))


def band_words(band):
    return "diagonal" if band == 0 else "shift %+d (col - row)" % band


def fig_weights(R, runs, blocks, cells):
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle
    cmap = matplotlib.colormaps["RdBu_r"].copy()
    cmap.set_bad("0.88")
    fig = plt.figure(figsize=(0.2 + 2.9 * len(runs), 3.35 * len(blocks)), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(blocks), 1))
    for sub, block in zip(subs, blocks):
        ref = next(cells[(r, block)] for r in runs if (r, block) in cells)
        head = block + (": expected " + ref["expected"] if ref.get("expected") else
                        ": expected " + band_words(int(ref["band"])) if isinstance(ref.get("band"), int) else "")
        sub.suptitle(head, fontsize=8, x=0.02, ha="left")
        axes = np.atleast_1d(sub.subplots(1, len(runs), squeeze=False)[0])
        for ax, run in zip(axes, runs):
            m = cells.get((run, block))
            if m is None:
                ax.set_visible(False)
                continue
            A = np.array([[to_float(v) for v in row] for row in m["values"]], dtype=float)
            band, max_band = m.get("band"), m.get("max_band")
            d = np.arange(A.shape[1])[None, :] - np.arange(A.shape[0])[:, None]
            use = (d <= max_band) if isinstance(max_band, int) else np.ones(A.shape, dtype=bool)
            shown = np.where(use, A, np.nan)
            lim = float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 0.0
            lim = lim if lim > 0 else 1.0
            im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest",
                           aspect="equal")
            title = run or block
            if isinstance(band, int):
                rects = [Rectangle((c - 0.5, r - 0.5), 1, 1) for r in range(A.shape[0]) for c in [r + band]
                         if 0 <= c < A.shape[1] and use[r, c]]
                ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor="black", lw=0.35, alpha=0.6))
                share, chance, norm = m.get("share"), m.get("chance"), m.get("norm")
                if not all(isinstance(v, (int, float)) for v in (share, chance, norm)):
                    share, chance, norm = band_share(A, band, max_band if isinstance(max_band, int) else A.shape[1])
                title += "\nshare on the %s %.2f (chance %.2f), norm %.3g" % (
                    "diagonal" if band == 0 else "shift", share, chance, norm)
            ax.set_title(title, fontsize=7, pad=3, y=1.0)
            ax.set_xlabel(m.get("col", "column"), fontsize=7)
            ax.set_ylabel(m.get("row", "row"), fontsize=7)
            for axis, n in ((ax.xaxis, A.shape[1]), (ax.yaxis, A.shape[0])):
                axis.set_major_locator(ticker.MultipleLocator(1 if n <= 12 else 2 if n <= 20 else 4))
            ax.tick_params(labelsize=5.5, length=1.5)
            cb = sub.colorbar(im, ax=ax, shrink=0.85, pad=0.02, aspect=25)
            cb.ax.tick_params(labelsize=5.5, length=1.5)
            cb.outline.set_linewidth(0.4)
    R.save(fig, "weights", "Trained weights in the transformed form of summary.json \"weights\": one row per block, "
           "one column per run (e.g. the main run beside its squared-error twin). Diverging colour scale centred "
           "at 0, each panel on its own scale (+-max |w|) because the runs' magnitudes differ. Outlined: the cells "
           "where the mechanism predicts the structure (the diagonal, or the shift col - row = -1 of the "
           "previous-position block); grey: cells a causal query cannot use. share: the block's squared Frobenius "
           "norm on those cells over that of all usable cells; chance: the share of a block with no structure "
           "(the outlined cells' fraction); norm: the Frobenius norm of the usable cells (a share near chance at "
           "init scale is noise). In a query-key block only differences within one softmax matter: "
           "a constant added to a whole query row changes no attention weight.")


# ---------------------------------------------------------------------------------------- main
def main(run):
    if not os.path.isdir(run):
        print("figures: %s is not a directory" % run)
        return 2
    R = Report(run)
    summary = load_json(os.path.join(run, "summary.json"))
    run_name = (summary or {}).get("name") or os.path.basename(os.path.abspath(run))
    mpath = os.path.join(run, "metrics.csv")
    header, M = load_csv(mpath) if os.path.exists(mpath) else ([], {})
    if not header:
        R.skip("metrics", "metrics.csv missing or empty")
    elif "step" not in M or not np.isfinite(M["step"]).any():
        R.skip("metrics", "metrics.csv has no rows with a step")
    else:
        names = stage_names(run)
        X = Steps(M, names)
        subsets = [c[2:] for c in header if c.startswith("p.")]
        for s in subsets:
            style("subset", s)
        R.attempt("loss", fig_loss, M, header, X, False)
        R.attempt("loss_linear", fig_loss, M, header, X, True)
        R.attempt("scalars", fig_scalars, M, header, X)
        R.attempt("flow_time", fig_flow, M, header, summary)
        for top, panels in families(header).items():
            R.attempt("family_" + top, fig_family, M, X, top, panels)
        if subsets and any(c.startswith("rpe.") for c in header):
            R.attempt("selector", fig_selector, M, X, subsets, summary)
            R.attempt("rpe_heatmap", fig_rpe, M, header)
            R.attempt("a", fig_a, M, X)
            R.attempt("ratio", fig_ratio, M, X, subsets, summary)
        else:
            R.skip("chen2024", "no p.* and rpe.* columns")
    R.attempt("generalization", fig_generalization, run, summary)
    scaling = (summary or {}).get("scaling")
    if isinstance(scaling, list) and scaling:
        for i, e in enumerate(scaling):
            R.attempt("scaling_%d" % i, fig_scaling, i, e)
    else:
        R.skip("scaling", "no scaling entries in summary.json")
    runs, blocks, cells = weight_blocks(summary)
    if blocks:
        R.attempt("weights", fig_weights, runs[:6], blocks[:8], cells)  # at most 6 x 8 panels
    else:
        R.skip("weights", "no weights matrices in summary.json")
    apath = os.path.join(run, "attention.jsonl")
    snaps = load_attention(apath) if os.path.exists(apath) else []
    if snaps:
        for s in ([snaps[0], snaps[-1]] if len(snaps) > 1 and snaps[0].get("step") != snaps[-1].get("step")
                  else [snaps[-1]]):
            R.attempt("attention_%s" % s.get("step"), fig_attention, s)
    else:
        R.skip("attention", "no attention.jsonl snapshots")
    R.run_jobs()
    R.write_index(run_name)
    print("figures: wrote %d figures to %s" % (len(R.figures), R.out))
    # A sweep directory has summary.json (runs, scaling) but no metrics.csv of its own.
    return 0 if header or summary else 1


_REPORT = None


def _run_job(i):
    return _REPORT._job(i)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python3 - RUN_DIR < figures.py")
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
