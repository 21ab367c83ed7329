"""Export a trained model to a weight bundle, and import a bundle back into a model.

    python -m models.export runs/NAME/last.pt -o models/bundles/NAME.npz [--eval-sim] [--data-root DIR]

:func:`bundle_from_model` quantises a model's parameters into the bundle's integer tensors (the
norm folded, the delays rounded, each tensor rounded to its role's format by
:func:`spec.fixedpoint.quantize_real`); :func:`model_from_bundle` builds the quantised model whose
parameters are exactly those codes, so bundle -> model -> bundle is the identity.

The bundle's ``meta`` records the task, the data split (names and counts), the accuracies (float,
hardware-aware, and the one measured at export by running ``sim/`` on the test split when
``--eval-sim`` is given), the formats, the training settings and the git commit.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spec.arch import Arch, Formats
from spec.bundle import Bundle, load_bundle, save_bundle

from .mgrade import MGRADE

__all__ = ["bundle_from_model", "model_from_bundle", "load_checkpoint", "git_commit", "main"]


def git_commit(repo: Path | None = None) -> str | None:
    """The repository's HEAD commit (with '+dirty' if the tree has changes), or None."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@torch.no_grad()
def bundle_from_model(model: MGRADE, formats: Formats | None = None, meta: dict | None = None) -> Bundle:
    """The integer weight bundle of ``model`` in ``formats`` (default: the model's own).

    A float model is quantised on a copy (norm folded, delays rounded); the model passed in is
    not changed. Saturated parameters are counted in ``meta['export_saturations']``.
    """
    fm = formats or model.formats
    q = model if (model.quantized and fm == model.formats) else model.quantized_copy(fm)
    sat: dict[str, int] = {}
    tensors = {k: v.cpu().numpy() for k, v in q.integer_tensors(sat).items()}
    m = dict(meta or {})
    m.setdefault("source", "models.export.bundle_from_model")
    m["export_saturations"] = sat
    return Bundle(model.arch, fm, tensors, m)


def model_from_bundle(bundle: Bundle, interp: str = "gauss", dtype=torch.float32) -> MGRADE:
    """The quantised :class:`MGRADE` whose parameters are the bundle's codes (``code * 2**-frac``)."""
    model = MGRADE(bundle.arch, bundle.formats, interp=interp).to(dtype)
    model.quantize(bundle.formats)
    model.load_integer_tensors(bundle.tensors)
    return model.eval()


def load_checkpoint(path: str | Path, map_location="cpu") -> tuple[MGRADE, dict]:
    """A model and the checkpoint's dictionary from a ``models.train`` checkpoint file."""
    ck = torch.load(path, map_location=map_location, weights_only=False)
    cfg = ck["model_config"]
    model = MGRADE(Arch.from_json(cfg["arch"]), Formats.from_json(cfg["formats"]), interp=cfg.get("interp", "gauss"))
    model.load_state_dict(ck["model"])
    if model.quantized:
        for c in model.convs():
            c.pos.requires_grad_(False)
    return model.eval(), ck


def _to_jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def evaluate_sim(bundle: Bundle, task, data_root: str | None = None, split: str = "test",
                 limit: int | None = None, batch: int = 64, frame: int = 1, seed: int = 0,
                 progress: bool = True) -> dict:
    """Accuracy of ``sim/`` running ``bundle`` on a task's split (``task``: a name, loaded with the
    loader options the training run recorded in ``bundle.meta['data'][split]['load_options']``, e.g.
    Pathfinder's set size; or a :class:`data.tasks.Split` already loaded)."""
    from tqdm import tqdm

    import sim  # only needed here
    from data.tasks import Split, batches, load_split

    if not isinstance(task, Split):
        options = (bundle.meta or {}).get("data", {}).get(split, {}).get("load_options")
        task = load_split(task, data_root, split, limit, seed=seed, options=options)
    ds = task
    net = sim.Network(bundle)
    correct = n = 0
    with tqdm(total=len(ds.y), desc="sim/ test pass", unit="ex", disable=not progress, leave=False) as bar:
        for x, y, lengths in batches(ds, batch, bundle.formats.x, frame=frame, by_length=True):
            res = net.run(x, lengths=lengths)
            pred = np.asarray(res.logits).argmax(-1)
            correct += int((pred == y).sum())
            n += len(y)
            bar.update(len(y))
    return {"accuracy": correct / max(n, 1), "n": n, "split": ds.meta.get("split", split)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a models.train checkpoint (runs/NAME/last.pt)")
    ap.add_argument("-o", "--out", required=True, help="bundle path (.npz)")
    ap.add_argument("--eval-sim", action="store_true", help="run sim/ on the test split and record the accuracy")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--limit", type=int, default=None, help="at most this many test examples for --eval-sim")
    args = ap.parse_args(argv)

    model, ck = load_checkpoint(args.checkpoint)
    meta = {"task": ck.get("task"), "data": ck.get("data", {}), "metrics": ck.get("metrics", {}),
            "train_args": ck.get("args", {}), "formats": model.formats.to_json(),
            "git_commit": git_commit(), "checkpoint": str(args.checkpoint),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), "source": "python -m models.export"}
    frame = int(ck.get("args", {}).get("frame", 1) or 1)
    meta["input"] = ck.get("input", {})
    bundle = bundle_from_model(model, meta=_to_jsonable(meta))
    if args.eval_sim:
        targs = ck.get("args", {})
        r = evaluate_sim(bundle, ck["task"], args.data_root or targs.get("data_root"),
                         limit=args.limit if args.limit is not None else targs.get("eval_limit"), frame=frame,
                         seed=int(targs.get("seed", 0)))
        bundle.meta["sim_accuracy"] = r
        print(f"sim/ accuracy on {r['split']} ({r['n']} examples): {r['accuracy']:.4f}")
    path = save_bundle(bundle, args.out)
    load_bundle(path)  # validate what was written
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
