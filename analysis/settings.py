"""Run settings of the studies: ``small`` (CI: a few clips, points and seeds, short sequences) and
``full`` (the figures committed under ``notebooks/figures/``).

The setting comes from the environment variable ``MGRADE_NB_SETTING`` (``small`` unless it says
``full``); :mod:`analysis.run_notebooks` sets it for the notebook kernels.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = ["Setting", "SMALL", "FULL", "current", "REPO", "figure_dir", "save_figure", "ENV"]

REPO = Path(__file__).resolve().parents[1]
ENV = "MGRADE_NB_SETTING"


@dataclasses.dataclass(frozen=True)
class Setting:
    """How much of each study to run.

    name:          'small' or 'full'.
    n_examples:    per task, the number of test examples evaluated (None: the whole test split).
    max_steps:     truncate every sequence to this many steps (None: full length).
    seeds:         noise seeds per sweep point (each seed = one chip instance + its dynamic noise).
    points:        points per noise sweep, taken evenly from the full grid (None: all of them).
    bits_points:   points per precision sweep (None: all).
    batch:         sequences per ``sim.Network.run`` call.
    rtl_steps:     steps of the clip streamed through the RTL in the walkthrough (None: the whole clip).
    data_roots:    data sources to try in order ('trainer' = the bundle's own training data root if
                   it exists here, 'fixture' = the committed fixtures, None = the task's default
                   source, e.g. the shared archive).
    splits:        per task, the held-out split(s) evaluated ('test', or 'test+val').
    chips:         chip instances of a yield distribution (:func:`analysis.chips.chip_yield`).
    """

    name: str
    n_examples: dict
    max_steps: int | None
    seeds: tuple[int, ...]
    points: int | None
    bits_points: int | None
    batch: int
    rtl_steps: int | None
    data_roots: tuple
    splits: dict = dataclasses.field(default_factory=lambda: {"*": "test"})
    chips: int = 100

    def examples(self, task: str) -> int | None:
        return self.n_examples.get(task, self.n_examples.get("*"))

    def split(self, task: str) -> str:
        return self.splits.get(task, self.splits.get("*", "test"))


SMALL = Setting("small", n_examples={"gsc12": 8, "listops": 8, "*": 8}, max_steps=600, seeds=(0, 1),
                points=3, bits_points=3, batch=8, rtl_steps=200, data_roots=("fixture", "trainer", None),
                chips=8)
# Sized for ~30 min on 2 cores (sim/ here: ~0.5 M step-samples/s per core exact, ~0.3 M with one
# non-ideality for GSC (H=32); ListOps (H=64) about 3x slower): the whole GSC test split (100 clips
# of 16000 steps; the val split is not held out: the shipped bundle was picked on it) and 500 ListOps
# test sequences (~1100 steps), 3 seeds, every grid point: ~170 evaluations per task.
FULL = Setting("full", n_examples={"gsc12": None, "listops": 500, "*": 200}, max_steps=None,
               seeds=(0, 1, 2), points=None, bits_points=None, batch=50, rtl_steps=None,
               data_roots=("trainer", None, "fixture"))


def current() -> Setting:
    """The setting named by ``$MGRADE_NB_SETTING`` (default ``small``), with optional overrides:

    ``MGRADE_NB_EXAMPLES``  ``200`` (every task) or ``gsc12=200,listops=500``; ``all`` = whole split
    ``MGRADE_NB_SEEDS``     number of seeds (0 .. n-1)
    ``MGRADE_NB_POINTS``    points per noise sweep (``all`` = the whole grid)
    ``MGRADE_NB_MAX_STEPS`` truncate sequences (``none`` = full length)
    ``MGRADE_NB_CHIPS``     chip instances per yield distribution
    """
    v = os.environ.get(ENV, "small").strip().lower()
    if v not in ("small", "full"):
        raise ValueError(f"{ENV} must be 'small' or 'full', not {v!r}")
    s = FULL if v == "full" else SMALL
    ch = {}

    def num(x: str):
        return None if x.strip().lower() in ("all", "none") else int(x)

    if os.environ.get("MGRADE_NB_EXAMPLES"):
        n = dict(s.n_examples)
        for part in os.environ["MGRADE_NB_EXAMPLES"].split(","):
            k, eq, val = part.partition("=")
            if eq:
                n[k.strip()] = num(val)
            else:
                n = {kk: num(k) for kk in n}
        ch["n_examples"] = n
    if os.environ.get("MGRADE_NB_SEEDS"):
        ch["seeds"] = tuple(range(int(os.environ["MGRADE_NB_SEEDS"])))
    if os.environ.get("MGRADE_NB_POINTS"):
        ch["points"] = num(os.environ["MGRADE_NB_POINTS"])
    if os.environ.get("MGRADE_NB_MAX_STEPS"):
        ch["max_steps"] = num(os.environ["MGRADE_NB_MAX_STEPS"])
    if os.environ.get("MGRADE_NB_CHIPS"):
        ch["chips"] = int(os.environ["MGRADE_NB_CHIPS"])
    return dataclasses.replace(s, **ch) if ch else s


def figure_dir(setting: Setting | None = None) -> Path:
    """Where figures go: ``notebooks/figures/`` in the full setting; a git-ignored folder
    (``.cache/figures-small/``) in the small one, so CI never rewrites the committed figures.
    ``$MGRADE_FIGURE_DIR`` overrides both."""
    setting = setting or current()
    env = os.environ.get("MGRADE_FIGURE_DIR")
    d = Path(env) if env else (REPO / "notebooks" / "figures" if setting.name == "full"
                               else REPO / ".cache" / "figures-small")
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_figure(fig, name: str, setting: Setting | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` as ``<figure_dir>/<name>.png`` (small PNG) and return the path."""
    p = figure_dir(setting) / f"{name}.png"
    fig.savefig(p, dpi=dpi, bbox_inches="tight")
    return p
