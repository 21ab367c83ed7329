"""Evaluation data of a bundle's task, as the integer inputs ``sim.Network.run`` takes.

:func:`eval_data` loads the test split through :mod:`data.tasks` (the trainer's own conversion:
int16 PCM audio is taken as ``s16f15`` codes, ``frame`` samples per step; ListOps as token ids),
takes a deterministic subset and optionally truncates every sequence. Sources are tried in order
(``'fixture'``: the committed fixtures; ``None``: the task's default source, e.g. the shared
archive); the first that loads wins and is recorded in :attr:`EvalData.source`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from data.core import limit_index, parse_options
from data.tasks import load_split, to_codes
from spec.bundle import Bundle
from spec.fixedpoint import storage_dtype

from .bundles import bundle_frame, bundle_task
from .cache import array_digest

__all__ = ["EvalData", "eval_data", "load_options", "trainer_root"]


@dataclasses.dataclass
class EvalData:
    """x: (N, T, d_in) input codes or (N, T) token ids; y: (N,) labels; lengths: (N,) valid steps."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    task: str
    classes: list
    source: str
    split: str = "test"
    note: str = ""

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if not (len(self.x) == len(self.y) == len(self.lengths)):
            raise ValueError("x, y and lengths disagree in length")
        self._digest = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def digest(self) -> str:
        """Hash of inputs, labels and lengths: the data part of a cache key."""
        if self._digest is None:
            self._digest = _digest3(self.x, self.y, self.lengths)
        return self._digest

    def subset(self, index) -> "EvalData":
        index = np.asarray(index)
        return dataclasses.replace(self, x=self.x[index], y=self.y[index], lengths=self.lengths[index])

    def truncate(self, max_steps: int | None) -> "EvalData":
        """Every sequence cut to its first ``max_steps`` steps (labels unchanged)."""
        if max_steps is None or max_steps >= self.steps:
            return self
        return dataclasses.replace(self, x=self.x[:, :max_steps], lengths=np.minimum(self.lengths, max_steps),
                                   note=(self.note + f" truncated to {max_steps} steps").strip())

    def describe(self) -> str:
        return (f"{self.task} {self.split}: {len(self)} sequences of up to {self.steps} steps "
                f"(from {self.source}){'; ' + self.note if self.note else ''}")


def _digest3(x, y, lengths) -> str:
    import hashlib
    h = hashlib.sha256()
    for a in (x, y, lengths):
        h.update(array_digest(a).encode())
    return h.hexdigest()


def load_options(bundle: Bundle) -> dict:
    """The ``data.load_task`` options the bundle was trained with (``--data-opt k=v``, in
    ``meta['train_args']['data_opt']``), so the study evaluates on the trainer's test split."""
    return parse_options((bundle.meta.get("train_args") or {}).get("data_opt") or [])


def trainer_root(bundle: Bundle) -> str | None:
    """The data root the bundle was trained from (``meta['train_args']['data_root']``, e.g. a packed
    ``.npz`` of the trainer's splits), if it exists here (relative paths: from the repository)."""
    from .settings import REPO
    r = (bundle.meta.get("train_args") or {}).get("data_root")
    if not r:
        return None
    p = Path(r) if Path(r).is_absolute() else REPO / r
    return str(p) if p.exists() else None


def eval_data(bundle: Bundle, n: int | None = None, max_steps: int | None = None, *,
              roots=("trainer", None, "fixture"), task: str | None = None, split: str = "test") -> EvalData:
    """The evaluation data of ``bundle``'s task as model inputs: ``n`` examples (None: all), truncated
    to ``max_steps`` steps (None: full length).

    roots: data sources to try in order: ``'trainer'`` (the bundle's own training data root, if it
    exists here), ``None`` (the task's default source), ``'fixture'``, or a path.
    split: ``'test'``, or several joined by ``+`` (``'test+val'``: both, only for a bundle that was
    not selected on ``val``)."""
    if "+" in split:
        parts = [eval_data(bundle, None, None, roots=roots, task=task, split=p) for p in split.split("+")]
        T = max(p.x.shape[1] for p in parts)
        xs = [np.pad(p.x, [(0, 0), (0, T - p.x.shape[1])] + [(0, 0)] * (p.x.ndim - 2)) for p in parts]
        d = EvalData(np.concatenate(xs), np.concatenate([p.y for p in parts]),
                     np.concatenate([p.lengths for p in parts]), parts[0].task, parts[0].classes,
                     " + ".join(dict.fromkeys(p.source for p in parts)), split)
        idx = limit_index(len(d), n)
        d = d.subset(idx)
        d.note = f"{len(idx)} of {sum(len(p) for p in parts)}" if len(idx) < sum(len(p) for p in parts) else ""
        return d.truncate(max_steps)
    task = task or bundle_task(bundle)
    if task is None:
        raise ValueError("the bundle's meta names no task; pass task=...")
    errors = []
    sp = None
    opts = load_options(bundle)
    roots = [trainer_root(bundle) if r == "trainer" else r for r in roots]
    roots = list(dict.fromkeys(roots))
    # each source with the trainer's options, then (e.g. the 24-clip fixture, too small to resplit)
    # without its resplit: the source's own test selection
    if "resplit" in opts or task == "gsc12":
        tries = [t for r in roots for t in ((r, opts), (r, dict(opts, resplit=None)))]
    else:
        tries = [(r, opts) for r in roots]
    for root, o in tries:
        try:
            sp = load_split(task, root, split, options=o)
            if len(sp) == 0:
                raise ValueError("no examples")
            src = sp.meta.get("source") or ("fixture" if root == "fixture" else str(root or "default"))
            if o != opts:
                src += f" (options {o} instead of the trainer's {opts})"
            break
        except Exception as e:  # noqa: BLE001 - try the next source, report all at the end
            sp = None
            errors.append(f"root={root!r} options={o}: {type(e).__name__}: {e}")
    if sp is None:
        raise RuntimeError(f"no data for task {task!r} ({split}):\n  " + "\n  ".join(errors))
    idx = limit_index(len(sp), n)
    frame = bundle_frame(bundle)
    x, lengths = to_codes(sp, idx, bundle.formats.x, frame=frame)
    if bundle.arch.encoder == "linear":
        x = x.astype(storage_dtype(bundle.formats.x))
        if x.shape[-1] != bundle.arch.d_in:
            raise ValueError(f"data has {x.shape[-1]} features per step, the bundle takes {bundle.arch.d_in}")
    else:
        x = x.astype(np.int16 if bundle.arch.d_in <= 32767 else np.int64)
        if x.size and int(x.max()) >= bundle.arch.d_in:
            raise ValueError(f"token id {int(x.max())} outside the bundle's vocabulary of {bundle.arch.d_in}")
    d = EvalData(x, sp.y[idx], lengths, task, list(sp.classes), str(src), split,
                 note=f"{len(idx)} of {len(sp)}" if len(idx) < len(sp) else "")
    return d.truncate(max_steps)
