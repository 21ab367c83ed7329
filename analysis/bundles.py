"""The bundles the studies run: the trained ones in ``models/bundles/`` or labelled placeholders.

``task_bundle('gsc12')`` loads ``models/bundles/gsc12.npz`` (or ``$MGRADE_BUNDLE_GSC12``, or an
explicit path). Until a trained bundle exists it returns a :func:`spec.bundle.random_bundle` with the
trainer's default architecture for that task, with ``meta['placeholder'] = True``: every study runs,
but its accuracies are those of random weights (the notebooks say so).
"""
from __future__ import annotations

import os
from pathlib import Path

from spec.arch import Arch
from spec.bundle import Bundle, load_bundle, random_bundle

from .settings import REPO

__all__ = ["BUNDLE_DIR", "PLACEHOLDER_ARCHS", "task_bundle", "bundle_task", "bundle_frame",
           "reference_accuracies", "is_placeholder", "describe"]

BUNDLE_DIR = REPO / "models" / "bundles"

#: The trainer's default architecture per task (models/train.py defaults), used for placeholders.
PLACEHOLDER_ARCHS = {
    "gsc12": Arch(d_in=1, n_classes=12, hidden=32, layers=2, taps=8, d_max=63),
    "listops": Arch(d_in=16, n_classes=10, hidden=32, layers=2, taps=8, d_max=63, encoder="embedding"),
}

#: Data options of the placeholders (gsc12: the shared archive's clips have no speaker ids).
PLACEHOLDER_TRAIN_ARGS = {"gsc12": {"data_opt": ["resplit=clip"]}}


def task_bundle(task: str, path: str | os.PathLike | None = None) -> Bundle:
    """The bundle of ``task``: ``path`` if given, else ``$MGRADE_BUNDLE_<TASK>``, else
    ``models/bundles/<task>.npz``; a random placeholder if none of these exists (not if ``path``
    was given explicitly: then a missing file is an error)."""
    if path is not None:
        return _with_task(load_bundle(path), task, str(path))
    env = os.environ.get(f"MGRADE_BUNDLE_{task.upper()}")
    p = Path(env) if env else BUNDLE_DIR / f"{task}.npz"
    if p.exists():
        return _with_task(load_bundle(p), task, str(p))
    if task not in PLACEHOLDER_ARCHS:
        raise FileNotFoundError(f"no bundle for task {task!r} at {p} and no placeholder architecture")
    b = random_bundle(PLACEHOLDER_ARCHS[task], seed=0, meta={
        "task": task, "placeholder": True, "path": None, "train_args": PLACEHOLDER_TRAIN_ARGS.get(task, {}),
        "source": f"random_bundle(seed=0): placeholder until {p.relative_to(REPO)} exists"})
    return b


def _with_task(b: Bundle, task: str, path: str) -> Bundle:
    b.meta.setdefault("task", task)
    b.meta["path"] = path
    return b


def bundle_task(bundle: Bundle) -> str | None:
    return bundle.meta.get("task")


def bundle_frame(bundle: Bundle) -> int:
    """Audio samples per step (``d_in`` of a linear encoder; the trainer's ``--frame``)."""
    inp = bundle.meta.get("input") or {}
    if "frame" in inp:
        return int(inp["frame"] or 1)
    return bundle.arch.d_in if bundle.arch.encoder == "linear" else 1


def is_placeholder(bundle: Bundle) -> bool:
    return bool(bundle.meta.get("placeholder"))


def reference_accuracies(bundle: Bundle) -> dict:
    """Accuracies recorded in the bundle's meta by the trainer: ``float``, ``qat`` (integer path of
    the PyTorch model) and ``sim`` (sim/ at export), with ``n`` and ``split``. Missing ones are None.
    These were measured on the trainer's test set, not necessarily on the subset a study uses."""
    out = {"float": None, "qat": None, "sim": None, "n": None, "split": None}
    acc = bundle.meta.get("accuracy") or {}
    metrics = bundle.meta.get("metrics") or {}
    for k in ("float", "qat", "sim"):
        v = acc.get(k)
        if v is None and isinstance(metrics.get(k), dict):
            v = metrics[k].get("accuracy")
        out[k] = float(v) if isinstance(v, (int, float)) else None
    out["n"] = acc.get("n_test") or (metrics.get("qat") or {}).get("n")
    out["split"] = acc.get("split")
    return out


def describe(bundle: Bundle) -> str:
    """One line: where the bundle came from, its architecture, its recorded accuracies."""
    a = bundle.arch
    src = "PLACEHOLDER (random weights)" if is_placeholder(bundle) else bundle.meta.get("path", "?")
    r = reference_accuracies(bundle)
    accs = ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k in ("float", "qat", "sim") and v is not None)
    return (f"{bundle.meta.get('task', '?')}: {src}; H={a.hidden} L={a.layers} K={a.taps} d_max={a.d_max} "
            f"b_z={a.gate_bits} {a.encoder}/{a.mix}/{a.rnn_out}/{a.readout}"
            + (f"; recorded accuracy: {accs}" if accs else ""))
