"""Layering: ``spec/``, ``sim/``, ``data/`` and the sim-only parts of ``analysis/`` never import torch.

Torch belongs to ``models/`` (training, export, the PyTorch integer path). The sweeps run ``sim/`` in
many worker processes that must start without it, and ``data/`` is what ``models/`` and ``sim/``
share.
"""
import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: analysis modules that run sim/ (sweeps, precision, cosim) and their helpers; not run_notebooks
#: (it starts notebook kernels) and not plots (matplotlib only, but nothing sim-only needs it)
SIM_ONLY_ANALYSIS = ["analysis", "analysis.settings", "analysis.cache", "analysis.bundles", "analysis.data",
                     "analysis.evaluate", "analysis.sweeps", "analysis.precision", "analysis.cosim",
                     "analysis.study", "analysis.chips", "analysis.cluster"]


def _data_modules() -> list[str]:
    return ["data"] + [f"data.{m.name}" for m in pkgutil.iter_modules([str(REPO / "data")])]


def test_data_modules_found():
    mods = _data_modules()
    assert {"data.core", "data.load", "data.tasks", "data.speech", "data.make_fixtures"} <= set(mods), mods


def test_sim_data_spec_analysis_import_without_torch():
    mods = ["spec", "sim", "sim.deviation_report", *_data_modules(), *SIM_ONLY_ANALYSIS]
    code = ("import importlib, json, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')\n"
            "                        or m == 'models' or m.startswith('models.'))))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {mods} loaded {loaded}"


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def test_sim_and_data_sources_import_no_torch_or_models():
    files = sorted((REPO / "sim").rglob("*.py")) + sorted((REPO / "data").rglob("*.py"))
    assert len(files) > 10
    bad = [f"{f.relative_to(REPO)}: import {m}" for f in files for m in _imports(f)
           if m.split(".")[0] in ("torch", "models")]
    assert not bad, bad
