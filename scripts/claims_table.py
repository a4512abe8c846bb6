#!/usr/bin/env python3
"""Markdown tables of the claims of finished reproductions, one section per run directory.

    python3 scripts/claims_table.py DIR [DIR ...]

DIR is a reproduction's output directory (its summary.json) or a folder holding several of them
(e.g. the OUT_ROOT of bench/reproductions.sh). Each claim gets its threshold, the measured value
(with per-seed values and the 95% interval when judged over seeds) and the verdict; each negative
control gets the claims it had to fail and what it did.
"""
import json
import os
import sys


def fmt(v):
    return "n/a" if v is None else f"{v:.4g}"


def summaries(paths):
    for p in paths:
        if os.path.isfile(os.path.join(p, "summary.json")):
            yield p
        elif os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                d = os.path.join(p, name)
                if os.path.isfile(os.path.join(d, "summary.json")):
                    yield d


def table(d):
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    r = s.get("reproduction") or {}
    out = [f"### {r.get('name', os.path.basename(d))}", "", f"`{r.get('command', '')}`", ""]
    out += ["| claim | threshold | measured | verdict |", "|---|---|---|---|"]
    for c in s.get("claims", []):
        if not c.get("evaluated", True):
            verdict = "not evaluated: " + c.get("reason", "")
        else:
            verdict = "holds" if c.get("pass") else "**FAILS**"
        m = fmt(c.get("measured"))
        sd = c.get("seeds")
        if sd and sd.get("values"):
            vals = ", ".join("nan" if v is None else f"{v:.3g}" for v in sd["values"])
            m += f" (seeds {vals}; 95% [{fmt(sd.get('lo'))}, {fmt(sd.get('hi'))}]; {sd.get('rule', '')})"
        out.append(f"| {c['name']} | {c['expected'].replace('|', '/')} | {m} | {verdict} |")
    for k in s.get("controls", []):
        ok = "OK" if k.get("ok") else "**NOT OK**"
        out.append("")
        out.append(f"Control `{k['name']}` ({k.get('description', '')}): {ok}; must fail "
                   f"{', '.join(repr(x) for x in k.get('must_fail', []))}; failed "
                   f"{', '.join(repr(x) for x in k.get('failed', [])) or 'none'}"
                   + (f"; not evaluated {k['not_evaluated']}" if k.get("not_evaluated") else ""))
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    dirs = list(summaries(sys.argv[1:]))
    if not dirs:
        print("claims_table.py: no summary.json under " + " ".join(sys.argv[1:]), file=sys.stderr)
        return 2
    print("\n".join(table(d) for d in dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
