"""Every notebook in notebooks/ runs top to bottom in the small setting (python -m analysis.run_notebooks).

Fresh result cache and figure folder (temporary), so a stale cache cannot hide a failing cell and the
committed figures are never rewritten.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.notebooks
def test_notebooks_run_small(tmp_path):
    env = dict(os.environ, MGRADE_NB_SETTING="small", MGRADE_SWEEP_CACHE=str(tmp_path / "sweeps"),
               MGRADE_FIGURE_DIR=str(tmp_path / "figures"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "analysis.run_notebooks"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
    dt = time.time() - t0
    assert p.returncode == 0, f"notebooks failed ({dt:.0f} s):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    figs = sorted(f.name for f in (tmp_path / "figures").glob("*.png"))
    assert {"noise_gsc12.png", "noise_listops.png", "capacitor.png", "default_noise.png", "precision_gsc12.png",
            "precision_listops.png", "cosim_walkthrough.png", "codesign.png"} <= set(figs), figs
