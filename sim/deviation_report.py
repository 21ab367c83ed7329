"""How far the bit-accurate model is from a float64 reference of the same network, per bundle.

    python -m sim.deviation_report                              # every bundle in models/bundles
    python -m sim.deviation_report models/bundles/gsc12.npz --n 4 --steps 4000 --root fixture

For each bundle: ``n`` real examples of the bundle's own task (``data``; ``--root fixture``
reads the committed fixtures, the default reads the shared archives) are run through
``sim.Network`` (the integer contract) and ``sim.Reference`` (the same integer weights as reals,
float64 arithmetic, no rounding or saturation), and :func:`sim.reference.deviation` is printed:
the largest and RMS difference of the per-step logits (real units and relative to the reference's
largest magnitude), the relative error of every layer's state ``h``, and how often the two pick
the same class. This is the quantisation error of the default formats on real streams.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from data.tasks import batches, load_split
from spec.bundle import load_bundle

from .network import Network
from .reference import deviation

BUNDLES = Path(__file__).resolve().parent.parent / "models" / "bundles"


def report(path: Path, n: int, steps: int | None, root: str | None) -> dict:
    b = load_bundle(path)
    task = b.meta["task"]
    opts = {"resplit": None} if task == "gsc12" else {}
    split = load_split(task, root, "test", limit=n, options=opts)
    x, _, lengths = next(batches(split, n, b.formats.x, b.meta.get("input", {}).get("frame", 1)))
    if steps:
        x, lengths = x[:, :steps], np.minimum(lengths, steps)
    d = deviation(b, x, lengths=lengths, net=Network(b))
    return {"bundle": path.name, "task": task, "n": int(x.shape[0]), "steps": int(x.shape[1]), **d}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.deviation_report", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="*", type=Path)
    ap.add_argument("--n", type=int, default=4, help="examples per bundle")
    ap.add_argument("--steps", type=int, default=None, help="cut every example to this many steps")
    ap.add_argument("--root", default="fixture", help="data root: 'fixture' (default), a path, or '' for shared")
    a = ap.parse_args(argv)
    paths = a.bundles or sorted(BUNDLES.glob("*.npz"))
    if not paths:
        print(f"no bundles given and none in {BUNDLES}", file=sys.stderr)
        return 2
    print(f"{'bundle':<14}{'n':>3}{'steps':>7}  {'logit rel':>10}{'step rms':>11}{'step rel':>10}  "
          f"{'h rel per layer':<24}{'argmax agree':>12}")
    for p in paths:
        r = report(p, a.n, a.steps, a.root or None)
        hrel = " ".join(f"{r[k]:.2e}" for k in sorted(r) if k.endswith(".h_rel"))
        print(f"{r['bundle']:<14}{r['n']:>3}{r['steps']:>7}  {r['logits_rel']:>10.2e}{r['step_logits_rms']:>11.2e}"
              f"{r['step_logits_rel']:>10.2e}  {hrel:<24}{r['argmax_agreement']:>12.2f}")
        print(json.dumps(r), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
