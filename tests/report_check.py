"""Opens ihlab's HTML report in headless Chromium, as a person would, and checks what they would see.

Runs `ihlab reproduce smoke --controls` (a one-layer attention model: claims with their negative
control, loss floors, logged families, attention heat-maps) and `ihlab report` on a chen2024 --quick run is left to the reproductions;
also `reproduce smoke --quick --seeds 2` (the Seeds section) and examples/sweep-smoke.toml (the
sweep's runs and its aggregates over seeds), each opened and checked for console messages;
then loads DIR/report.html from disk with the network off and checks:
  - the page logs nothing to the console (no errors, no warnings),
  - the report's own marker says every chart drew (body[data-rendered="ok"], drawn == charts > 0),
  - every chart div holds a non-empty Plotly SVG in the dumped DOM,
  - the file references nothing outside itself except figures/ next to it,
  - the paper figures were written (SVG and PNG) and are listed in figures/index.json.
Also `reproduce musat2025-scaling --quick`, whose summary.json has `theory` entries: its report
draws the "Theory over measurement" charts (each entry's title, formula and residual strip).
A screenshot is saved under --artifacts for people to look at.
Exit 0 = pass, 1 = fail, 77 = skipped (no chromium).
"""
import argparse
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys


class ChartCounter(html.parser.HTMLParser):
    """Counts chart divs and the Plotly SVGs inside them in a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.charts = 0
        self.svgs_in_charts = 0
        self.depth_stack = []  # for each open div: is it a chart?
        self.inside_chart = 0
        self.body_attrs = {}
        self.external = []  # src/href of elements pointing outside the file and its figures/
        self.drawn_marks = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key)
            # Relative links (figures/, runs/...) stay next to the file; anything with a scheme
            # other than data: or an absolute path would need more than this directory.
            if v and (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", v) and not v.startswith("data:") or v.startswith("/")):
                self.external.append(v)
        if tag == "body":
            self.body_attrs = a
        if tag == "div":
            is_chart = "chart" in (a.get("class") or "").split()
            self.depth_stack.append(is_chart)
            if is_chart:
                self.charts += 1
                self.inside_chart += 1
                self.current_has_svg = False
        if tag == "svg" and self.inside_chart and "main-svg" in (a.get("class") or ""):
            if not getattr(self, "current_has_svg", True):
                self.svgs_in_charts += 1
                self.current_has_svg = True
        if self.inside_chart and tag in ("path", "image", "rect") and getattr(self, "current_has_svg", False):
            self.drawn_marks += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth_stack:
            if self.depth_stack.pop():
                self.inside_chart -= 1


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def theory_failures(common, out):
    """What is wrong with the theory charts of the report in `out` (an empty list when nothing is)."""
    failures = []
    theory = json.load(open(os.path.join(out, "summary.json"))).get("theory") or []
    if not theory:
        return ["theory: summary.json of musat2025-scaling has no theory entries"]
    for t in theory:
        for key in ("name", "form", "source", "measured", "curve", "residuals"):
            if not t.get(key):
                failures.append(f"theory: entry {t.get('name')!r} lacks {key!r}")
    page = run(common + ["--enable-logging=stderr", "--v=0", "--dump-dom",
                         "file://" + os.path.abspath(os.path.join(out, "report.html"))])
    msgs = [line for line in page.stderr.splitlines() if ":CONSOLE" in line]
    if msgs:
        failures.append("theory: console messages:\n  " + "\n  ".join(msgs[:10]))
    counter = ChartCounter()
    counter.feed(page.stdout)
    if counter.body_attrs.get("data-rendered") != "ok":
        failures.append(f"theory: report marker data-rendered={counter.body_attrs.get('data-rendered')!r}")
    # What was drawn, not the embedded data or script: the section, one chart with an SVG per entry,
    # and each entry's title, formula (Plotly's legend) and the residual axis inside it.
    dom = re.sub(r"<script\b.*?</script>", "", page.stdout, flags=re.S)
    m = re.search(r"<section\b[^>]*><h2>Theory over measurement</h2>.*?</section>", dom, flags=re.S)
    if not m:
        return failures + ["theory: no \"Theory over measurement\" section in the report"]
    part = ChartCounter()
    part.feed(m.group(0))
    if part.charts != len(theory) or part.svgs_in_charts != part.charts:
        failures.append(f"theory: {part.charts} charts ({part.svgs_in_charts} with an SVG) for {len(theory)} entries")
    wanted = ["residual (%)"] + [t["name"] for t in theory] + [t["form"] for t in theory]
    missing = [w for w in wanted if html.escape(w, quote=False) not in m.group(0)]
    if missing:
        failures.append(f"theory: the section lacks {missing}")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ihlab", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--artifacts", required=True)
    args = ap.parse_args()
    browser = chromium_binary()
    if browser is None:
        print("SKIP: no chromium (scripts/install-deps.sh --test installs Debian's chromium)")
        return 77
    failures = []
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.artifacts, exist_ok=True)
    run_dir = os.path.join(args.dir, "smoke")
    r = run([args.ihlab, "reproduce", "smoke", "--out", run_dir, "--controls"])
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        print("FAIL: ihlab reproduce smoke exited", r.returncode)
        return 1
    report = os.path.join(run_dir, "report.html")
    if not os.path.exists(report):
        print("FAIL: reproduce did not write", report, "\n", r.stdout, r.stderr)
        return 1

    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--hide-scrollbars", "--window-size=1400,3200", "--virtual-time-budget=15000",
              # No network: proxy everything to a closed port, so a fetch would fail loudly.
              "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    url = "file://" + os.path.abspath(report)
    dom = run(common + ["--enable-logging=stderr", "--v=0", "--dump-dom", url])
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    if console:
        failures.append("console messages:\n  " + "\n  ".join(console[:10]))
    counter = ChartCounter()
    counter.feed(dom.stdout)
    body = counter.body_attrs
    charts, drawn = int(body.get("data-charts", "0")), int(body.get("data-drawn", "-1"))
    if body.get("data-rendered") != "ok":
        failures.append(f"report marker data-rendered={body.get('data-rendered')!r} (charts {charts}, drawn {drawn})")
    if charts == 0 or counter.charts != charts:
        failures.append(f"chart divs in DOM {counter.charts}, report says {charts}")
    if counter.svgs_in_charts != counter.charts:
        failures.append(f"{counter.charts - counter.svgs_in_charts} of {counter.charts} charts have no Plotly SVG")
    if counter.drawn_marks < counter.charts:
        failures.append(f"only {counter.drawn_marks} drawn marks in {counter.charts} charts")
    if counter.external:
        failures.append(f"the page references outside files: {counter.external[:5]}")
    if "Attention patterns" not in dom.stdout:
        failures.append("no attention heat-maps in the report of a model with attention")
    if "claims held" not in dom.stdout:
        failures.append("no claims table")
    # The negative control beside the claims it must fail, linking its own report.
    if "negative controls" not in dom.stdout or "runs/control-untrained/report.html" not in dom.stdout:
        failures.append("no negative controls beside the claims")
    if not os.path.exists(os.path.join(run_dir, "runs", "control-untrained", "report.html")):
        failures.append("the control's own report.html is missing")

    shot = os.path.join(args.artifacts, "report-smoke.png")
    s = run(common + [f"--screenshot={shot}", url])
    if not os.path.exists(shot) or os.path.getsize(shot) < 10000:
        failures.append(f"no screenshot written ({s.returncode}): {s.stderr[-500:]}")

    index = os.path.join(run_dir, "figures", "index.json")
    if not os.path.exists(index):
        failures.append("figures/index.json missing (is python3-matplotlib installed?)")
    else:
        figs = json.load(open(index))
        figs = figs["figures"] if isinstance(figs, dict) else figs
        names = [f["name"] for f in figs]
        for n in names:
            for ext in ("svg", "png"):
                p = os.path.join(run_dir, "figures", f"{n}.{ext}")
                if not os.path.exists(p) or os.path.getsize(p) < 500:
                    failures.append(f"figure {n}.{ext} missing or empty")
        if "loss" not in names:
            failures.append(f"no loss figure among {names}")

    # A reproduction over seeds (the Seeds section linking each seed's report) and a sweep with two
    # seeds per grid point (the aggregates table): both render without a console message.
    seeds_dir, sweep_dir = os.path.join(args.dir, "smoke-seeds"), os.path.join(args.dir, "sweep-smoke")
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
    for label, cmd, out, wanted in [
            ("reproduce --seeds 2", [args.ihlab, "reproduce", "smoke", "--quick", "--seeds", "2", "--out", seeds_dir],
             seeds_dir, ["Seeds (2)", "runs/seed-2/report.html", "2 of 2 runs hold"]),
            ("sweep", [args.ihlab, "sweep", os.path.join(examples, "sweep-smoke.toml"), "--out", sweep_dir, "--quiet"],
             sweep_dir, ["Aggregates over seeds", "Runs of the sweep", "2/2"])]:
        r = run(cmd)
        if r.returncode != 0:
            failures.append(f"{label} exited {r.returncode}: {r.stderr[-300:]}")
            continue
        page = run(common + ["--enable-logging=stderr", "--v=0", "--dump-dom",
                             "file://" + os.path.abspath(os.path.join(out, "report.html"))])
        msgs = [line for line in page.stderr.splitlines() if ":CONSOLE" in line]
        if msgs:
            failures.append(f"{label}: console messages:\n  " + "\n  ".join(msgs[:10]))
        missing = [w for w in wanted if w not in page.stdout]
        if missing:
            failures.append(f"{label}: the report lacks {missing}")

    # Theory over measurement: a reproduction whose summary.json has `theory` entries (formula, points,
    # curve, residuals) draws one chart per entry, the law over the points and the residual strip.
    theory_dir = os.path.join(args.dir, "musat2025-scaling")
    r = run([args.ihlab, "reproduce", "musat2025-scaling", "--quick", "--out", theory_dir])
    if r.returncode != 0:
        failures.append(f"reproduce musat2025-scaling --quick exited {r.returncode}: {r.stderr[-300:]}")
    else:
        failures += theory_failures(common, theory_dir)

    print(f"report: {charts} charts, {counter.svgs_in_charts} with SVG, {counter.drawn_marks} marks; "
          f"screenshot {shot}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
