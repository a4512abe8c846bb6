"""examples/olsson-from-python.ipynb executed headless (python3 -m nbconvert --execute, i.e. `jupyter nbconvert`): any cell
error fails the test."""
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT

NOTEBOOK = ROOT / "examples" / "olsson-from-python.ipynb"


def test_notebook_runs(tmp_path):
    pytest.importorskip("nbconvert")
    pytest.importorskip("ipykernel")
    env = dict(os.environ)
    # The kernel must import the same module as this test: pass on the path it was found on.
    import ihlab
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(ihlab.__file__)),
                                         env.get("PYTHONPATH", "")])
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
                        "--ExecutePreprocessor.timeout=120", "--output-dir", str(tmp_path), str(NOTEBOOK)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    took = time.monotonic() - start
    assert r.returncode == 0, r.stderr[-4000:]
    out = (tmp_path / NOTEBOOK.name).read_text()
    assert '"output_type": "error"' not in out
    assert "max |torch - ihlab|" in out and "image/png" in out
    print(f"notebook executed in {took:.1f} s")
