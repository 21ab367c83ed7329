"""The stream tests: real sequences of each task through the whole network.

=================== ========== ================================================ ==================
name                task       input                                            bundle
=================== ========== ================================================ ==================
``gsc_stream``      gsc12      int16 PCM = s16f15 codes, one sample per step    models/bundles/gsc12.npz
``asc_stream``      asc40      int16 PCM (Arabic Speech Commands), as gsc       models/bundles/asc40.npz
``listops_stream``  listops    token ids (embedding)                            models/bundles/listops.npz
``text_stream``     text       byte ids (embedding)                             models/bundles/text.npz
``image_stream``    image      gray pixel (p - 128)/128, one per step           models/bundles/image.npz
``pathfinder_stream`` pathfinder pixel, one per step                           models/bundles/pathfinder.npz
``retrieval_stream`` retrieval doc1 SEP doc2 byte ids                           models/bundles/retrieval.npz
=================== ========== ================================================ ==================

``make sim TEST=gsc_stream`` streams a spoken keyword by default: with no ``offset`` given, a stream
whose task has filler classes (:data:`FILLER_LABELS`, GSC's ``_silence_`` and ``_unknown_``) starts at
the first test clip, in file order, whose label is a keyword (:func:`default_offset`); it is chosen by
label, never by a model's output.

A trained bundle is used when the file exists and fits the task; otherwise a random valid bundle
(:func:`spec.bundle.random_bundle`) of the task's default architecture, and the summary says so.
Inputs come from :mod:`data` through :mod:`data.tasks` (the same codes the model and
``sim`` see): the shared archive where it is available, else the committed fixture.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from data.tasks import load_split, task_info, to_codes
from spec.arch import Arch, Formats
from spec.bundle import Bundle, load_bundle, random_bundle

from .build import REPO

__all__ = ["STREAMS", "StreamCase", "make_case", "small_arch", "bundle_misfit", "default_offset", "FILLER_LABELS"]

#: Classes of keyword-spotting tasks that are no spoken keyword (GSC-12: background noise, other words).
FILLER_LABELS = ("_silence_", "_unknown_")


@dataclasses.dataclass(frozen=True)
class StreamDef:
    task: str
    bundle: str
    doc: str
    hidden: int = 32
    d_max: int = 63
    keyword_first: bool = False     # default first sequence: the first keyword clip (see default_offset)


STREAMS: dict[str, StreamDef] = {
    "gsc_stream": StreamDef("gsc12", "gsc12.npz", "Speech Commands (12 classes), 16,000 PCM samples per clip",
                            hidden=32, d_max=127, keyword_first=True),
    "asc_stream": StreamDef("asc40", "asc40.npz",
                            "Arabic Speech Commands (40 keywords), 16,000 PCM samples per clip", hidden=32, d_max=127),
    "listops_stream": StreamDef("listops", "listops.npz", "LRA ListOps, token ids, up to 2,000 steps"),
    "text_stream": StreamDef("text", "text.npz", "LRA text (IMDb bytes), up to 4,096 steps"),
    "image_stream": StreamDef("image", "image.npz", "LRA image (CIFAR-10 gray), 1,024 pixels"),
    "pathfinder_stream": StreamDef("pathfinder", "pathfinder.npz", "LRA Pathfinder, 1,024 pixels"),
    "retrieval_stream": StreamDef("retrieval", "retrieval.npz", "LRA retrieval, doc1 SEP doc2 byte ids"),
}


@dataclasses.dataclass
class StreamCase:
    name: str
    bundle: Bundle
    bundle_source: str
    xs: list            # per sequence: (T, d_in) codes or (T,) token ids
    labels: np.ndarray
    classes: list
    data_source: str
    pool_size: int      # sequences in the pool actually available (<= the requested pool)
    offset: int = 0     # index of the first sequence in the pool


#: Variants of the small CI architectures: each stream exercises other options of the RTL.
SMALL_VARIANTS = {
    "gsc_stream": {},
    "asc_stream": {},               # the gsc architecture with a 40-class readout
    "listops_stream": {"mix": "glu"},
    "text_stream": {"mix": "none", "rnn_out": "heaviside"},
    "image_stream": {"skip": False, "readout": "last"},
    "pathfinder_stream": {"norm": "none", "taps": 0, "d_max": 0},
    "retrieval_stream": {"layers": 1, "taps": 1, "d_max": 0},
}


def small_arch(name: str, d_in: int, n_classes: int, encoder: str) -> Arch:
    """A small architecture for quick regressions (H = 8), with per-stream variants."""
    kw = dict(d_in=d_in, n_classes=n_classes, hidden=8, layers=2, taps=3, d_max=15, expand=2, encoder=encoder)
    kw.update(SMALL_VARIANTS.get(name, {}))
    return Arch(**kw)


def _load(task: str, limit: int | None, root):
    errors = []
    roots = [root] if root is not None else [None, "fixture"]
    for r in roots:
        for split, opts in (("test", {"resplit": "clip"}), ("test", {"resplit": None}), ("test", {})):
            if task != "gsc12" and opts:
                continue
            try:
                sp = load_split(task, root=r, split=split, limit=limit, options=opts or None)
            except Exception as e:  # noqa: BLE001 - try the next source, report all at the end
                errors.append(f"{r}: {type(e).__name__}: {e}")
                continue
            if len(sp) == 0:    # e.g. the small fixture has no clip-resplit test clips
                errors.append(f"{r} {opts}: empty {split} split")
                continue
            opt = f", resplit={opts['resplit']}" if opts.get("resplit") else ""
            return sp, f"{task}/{split}{opt} ({sp.meta.get('source') or r or 'default source'})"
    raise RuntimeError(f"no data for {task}: " + " | ".join(errors))


def default_offset(labels, classes) -> int:
    """Index of the first example whose label is a keyword, i.e. not in :data:`FILLER_LABELS`
    (0 when the task has no filler classes or every example is a filler)."""
    keyword = [c not in FILLER_LABELS for c in classes]
    hits = [i for i, y in enumerate(np.asarray(labels).tolist()) if keyword[int(y)]]
    return hits[0] if hits else 0


def make_case(name: str, *, n_seqs: int = 1, max_steps: int | None = None, small: bool = False,
              root=None, seed: int = 0, offset: int | None = 0, pool: int | None = None,
              bundle_path=None) -> StreamCase:
    """Sequences ``offset .. offset + n_seqs`` of a pool of ``pool`` test sequences, each cut to ``max_steps``.

    The pool is the loaders' ``limit`` subset (deterministic, drawn from every class; generated
    tasks generate just that many). Chunks of one regression must share ``pool`` (default
    ``offset + n_seqs``) so that their slices are disjoint: two different limits draw different
    subsets, which overlap.

    ``offset=None`` is the stream's default first sequence (``make sim``): for a keyword stream
    (``gsc_stream``) the pool is the whole test split (unless ``pool`` is given) in file order and
    the first sequence the first clip labelled with a keyword (:func:`default_offset`); for the
    others sequence 0 of a pool of ``n_seqs``, as ``offset=0``.

    The network: ``bundle_path`` (a user's exported bundle), else the stream's shipped bundle, else
    (no shipped bundle yet, or ``small``) a random one of the task's shape, labelled as such. A
    bundle that fails to load or does not fit the task is an error, never replaced.
    """
    if name not in STREAMS:
        raise KeyError(name)
    sd = STREAMS[name]
    if offset is None and sd.keyword_first:
        if n_seqs < 1:
            raise ValueError(f"make_case: need n_seqs >= 1 (n_seqs {n_seqs})")
        split, source = _load(sd.task, pool, root)     # pool None: the whole test split, in file order
        pool = len(split) if pool is None else pool
        offset = default_offset(split.y[:pool], split.classes)
    else:
        offset = offset or 0
        pool = offset + n_seqs if pool is None else pool
        if not 0 <= offset < pool or n_seqs < 1:
            raise ValueError(f"make_case: need 0 <= offset < pool and n_seqs >= 1 "
                             f"(offset {offset}, pool {pool}, n_seqs {n_seqs})")
        split, source = _load(sd.task, pool, root)
    info = task_info(split)
    bundle, bsrc = _bundle(name, sd, info, bundle_path, small, seed)
    frame = bundle.arch.d_in if info.kind == "audio" else 1
    available = min(pool, len(split))
    if offset >= available:
        raise ValueError(f"{name}: sequence {offset} requested, but {source} has only {available} "
                         f"(pool {pool}); ask for fewer sequences or give a data root with more")
    idx = np.arange(offset, min(offset + n_seqs, available))
    x, lengths = to_codes(split, idx, bundle.formats.x, frame=frame)
    xs = []
    for b, n in enumerate(lengths):
        n = int(n) if max_steps is None else min(int(n), max_steps)
        xs.append(np.ascontiguousarray(x[b, :n]))
    return StreamCase(name, bundle, bsrc, xs, split.y[idx], list(split.classes), source, available,
                      int(offset))


def bundle_misfit(bundle: Bundle, info, kind: str) -> list[str]:
    """What keeps ``bundle`` from running this task's stream (empty: it fits).

    Audio is framed by the bundle itself (``d_in`` samples per step, linear encoder); every other
    task needs the same input width and encoder. The class count must match."""
    a, out = bundle.arch, []
    if kind == "audio":
        if a.encoder != "linear":
            out.append(f"encoder {a.encoder} (audio needs 'linear')")
    else:
        if a.encoder != info.encoder:
            out.append(f"encoder {a.encoder} (task: {info.encoder})")
        if a.d_in != info.d_in:
            out.append(f"d_in {a.d_in} (task: {info.d_in})")
    if a.n_classes != info.n_classes:
        out.append(f"n_classes {a.n_classes} (task: {info.n_classes})")
    return out


def _describe(bundle: Bundle, where: str) -> str:
    acc = bundle.meta.get("accuracy") or {}
    rec = f", recorded sim/ accuracy {acc['sim']:.4f} on {acc.get('n_test', '?')} {acc.get('split', 'test')} " \
          f"examples" if isinstance(acc.get("sim"), (int, float)) else ", no recorded accuracy"
    return f"bundle {where}{rec}"


def _bundle(name: str, sd: StreamDef, info, bundle_path, small: bool, seed: int) -> tuple[Bundle, str]:
    """The network of a stream case and a line that names it (see :func:`make_case`)."""
    path = Path(bundle_path) if bundle_path is not None else REPO / "models" / "bundles" / sd.bundle
    if bundle_path is not None or (not small and path.exists()):
        b = load_bundle(path)                  # a BundleError names the file and the problem
        misfit = bundle_misfit(b, info, info.kind)
        if misfit:
            raise ValueError(f"{path}: this bundle does not fit {name} (task {sd.task}): " + "; ".join(misfit))
        full = path.resolve()                  # a relative BUNDLE= is relative to the working directory
        where = full.relative_to(REPO) if full.is_relative_to(REPO) else full
        return b, _describe(b, str(where))
    if small:
        arch = small_arch(name, info.d_in, info.n_classes, info.encoder)
    else:
        arch = Arch(d_in=info.d_in, n_classes=info.n_classes, hidden=sd.hidden, layers=2, taps=8,
                    d_max=sd.d_max, encoder=info.encoder)
    return random_bundle(arch, Formats(), seed=seed), f"random bundle (no trained {sd.bundle}; seed {seed})"
