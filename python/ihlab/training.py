"""ihlab.train and ihlab.reproduce: the command line's runtime, called in-process."""
import os
import shutil
import tempfile

from . import _ihlab
from .results import Run


def train(config=None, out=None, overrides=(), *, resume=False, callback=None, every=1, quiet=True, report=False):
    """Trains like `ihlab train CONFIG key=value ... --out OUT` and returns the Run of OUT.

    config: a TOML path or a dict of the same tables (task, model, data, log, stages, ...);
    overrides: "key=value" strings as on the command line. The run directory (config.toml,
    metrics.csv, summary.json, attention.jsonl, checkpoints/) is the command line's, bit for bit
    for the same configuration (summary.json's wall time and command aside); report=True also
    writes report.html (without figures). resume=True continues OUT from its latest checkpoint
    (give no config), as `ihlab train --resume OUT`.

    callback(step, metrics) is called after every `every`-th update step with a dict: the whole
    metrics row when the step was logged (metrics["logged"] is True), else stage, lr, loss and
    grad_norm. Returning False stops the run as Ctrl-C does (checkpoint written, status
    "interrupted", resumable); an exception in the callback stops it the same way and is re-raised.

    The GIL is released while training. Ctrl-C (SIGINT) stops at the next step boundary, writes a
    checkpoint and raises KeyboardInterrupt; `train(out=OUT, resume=True)` continues it
    bit-identically (a second Ctrl-C ends the process, as on the command line). A run that
    diverges returns normally with run.status == "diverged". Bad configurations raise
    ihlab.ConfigError with the command line's message.
    """
    if out is None:
        raise TypeError("train: out= (the run directory) is required")
    out = os.fspath(out)
    if config is not None and not isinstance(config, dict):
        config = os.fspath(config)
    _ihlab.train(config, out, list(overrides), resume, callback, int(every), quiet, report)
    return Run(out)


def reproduce(name, out=None, *, quick=False, compat="paper", overrides=(), evaluate_only=False, quiet=True,
              seeds=0):
    """Runs `ihlab reproduce NAME --out OUT [--quick] [--compat ...] [--seeds K]` in-process; returns
    the Run, whose .claims hold the paper's claims checked (out=None: a new temporary directory, see
    run.dir). seeds=0 is the reproduction's default (5 for the fresh-batch ones in a full run, 1
    with quick); the seeds run one after another here (the CLI's --workers N runs them at once).
    Ctrl-C raises KeyboardInterrupt after the checkpoint is written, as for train()."""
    scratch = None
    if out is None:
        scratch = tempfile.mkdtemp(prefix=f"ihlab-{name}-")
        out = os.path.join(scratch, "run")
    out = os.fspath(out)
    try:
        _ihlab.reproduce(name, out, quick, compat, list(overrides), evaluate_only, quiet, int(seeds))
    except BaseException:
        if scratch is not None and not os.path.exists(out):  # nothing was written: leave no empty directory
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Run(out)
