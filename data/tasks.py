"""Tasks: from a :func:`data.load_task` data set to the integer inputs that the model and ``sim/`` take.

* audio (``gsc12``, ``gsc35``, ``asc40``): int16 PCM is taken as is: a code of ``s16f15`` (the default
  ``formats.x``), one sample per step, or ``frame`` consecutive samples per step (``d_in = frame``).
* pixels (``image``, ``pathfinder``): ``uint8`` ``p`` becomes the real value ``(p - 128) / 128``
  in ``[-1, 1)``, one pixel per step (``d_in`` = channels).
* tokens (``listops``, ``text``): token ids for the embedding encoder, padded batches with lengths.
* ``retrieval``: the two documents of a pair are joined into one sequence ``doc1 SEP doc2``
  (SEP = a token id one past the vocabulary), so a single causal stream classifies the pair.
* ``synth-audio``, ``synth-tokens``: tiny generated tasks for tests and smoke runs (no files).

Packed splits: :func:`save_packed` writes splits loaded here into one compressed ``.npz``
(integer arrays + a JSON header with classes and the loader's meta); ``load_split(task,
root='file.npz', ...)`` reads them back unchanged. This carries generated or decoded data to a
machine that cannot regenerate it cheaply (for example a GPU machine without the archives).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from spec.arch import Formats
from spec.fixedpoint import Format, requantize

from .load import load_task

__all__ = ["TaskInfo", "TASKS", "task_info", "load_split", "to_codes", "batches", "synthetic", "save_packed",
           "load_packed"]

TASKS = ("gsc12", "gsc35", "asc40", "listops", "text", "image", "pathfinder", "retrieval", "synth-audio",
         "synth-tokens")


@dataclasses.dataclass
class Split:
    """What the trainer needs of a data split (a subset of :class:`data.core.Dataset`)."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    classes: list
    meta: dict
    kind: str        # 'audio' | 'pixels' | 'tokens' | 'pair'
    vocab: int = 0   # token tasks: ids are 0..vocab-1

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass
class TaskInfo:
    encoder: str     # 'linear' | 'embedding'
    d_in: int        # features per step or vocabulary size
    n_classes: int
    kind: str


def _kind(name: str) -> str:
    if name in ("gsc12", "gsc35", "asc40", "synth-audio"):
        return "audio"
    if name in ("image", "pathfinder"):
        return "pixels"
    if name == "retrieval":
        return "pair"
    return "tokens"


#: vocabulary sizes of the token tasks (ListOps 16 ids, byte-level text 257 ids)
VOCAB_SIZES = {"listops": 16, "text": 257, "retrieval": 257}

#: default loader options per task (``data.load_task`` keyword arguments)
DEFAULT_OPTIONS = {"gsc12": {"resplit": "clip"}}


def _vocab(name: str, ds, x) -> int:
    if name in VOCAB_SIZES:
        return VOCAB_SIZES[name]
    m = getattr(ds, "meta", {}) or {}
    for key in ("vocab_size", "n_tokens", "vocab"):
        v = m.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, (list, tuple, dict)):
            return len(v)
    return int(np.asarray(x).max()) + 1


def synthetic(name: str, split: str = "train", n: int | None = None, seed: int = 0) -> Split:
    """Tiny generated tasks. ``synth-audio``: 4 classes, a sine of one of 4 frequencies plus noise
    (T=64, int16 PCM). ``synth-tokens``: 4 classes, variable-length token sequences (8 tokens)
    whose class is the token that occurs most often among ids 0..3 (ties: the smallest)."""
    rng = np.random.default_rng(seed + {"train": 0, "val": 1, "test": 2}.get(split, 3))
    n = n or {"train": 256, "val": 64, "test": 64}.get(split, 64)
    y = rng.integers(0, 4, size=n)
    if name == "synth-audio":
        T = 64
        t = np.arange(T)
        freq = np.array([1.0, 2.0, 4.0, 8.0]) / T
        phase = rng.uniform(0, 2 * np.pi, size=n)
        sig = 0.5 * np.sin(2 * np.pi * freq[y][:, None] * t[None, :] + phase[:, None])
        sig = sig + 0.1 * rng.standard_normal((n, T))
        x = np.clip(np.round(sig * 32768), -32768, 32767).astype(np.int16)
        return Split(x, y.astype(np.int64), np.full(n, T, dtype=np.int64), list("abcd"),
                     {"source": "synthetic", "split": split, "n": n}, "audio")
    if name == "synth-tokens":
        T = 24
        lengths = rng.integers(12, T + 1, size=n)
        x = rng.integers(4, 8, size=(n, T))
        for i in range(n):
            pos = rng.choice(lengths[i], size=lengths[i] // 2, replace=False)
            x[i, pos] = np.where(rng.random(len(pos)) < 0.6, y[i], rng.integers(0, 4, size=len(pos)))
            x[i, lengths[i]:] = 0
            cnt = np.bincount(x[i, :lengths[i]][x[i, :lengths[i]] < 4], minlength=4)
            y[i] = int(np.argmax(cnt))
        return Split(x.astype(np.int64), y.astype(np.int64), lengths.astype(np.int64), list("abcd"),
                     {"source": "synthetic", "split": split, "n": n}, "tokens", vocab=8)
    raise ValueError(f"unknown synthetic task {name!r}")


def save_packed(path, task: str, splits: dict[str, Split]) -> str:
    """Write ``splits`` (name -> Split) of ``task`` to one compressed ``.npz``."""
    import json
    arrays, header = {}, {"task": task, "splits": {}}
    for name, sp in splits.items():
        x = np.asarray(sp.x)
        if x.size and x.min() >= 0 and x.max() < 256:
            x = x.astype(np.uint8)
        arrays[f"{name}.x"] = x
        arrays[f"{name}.y"] = np.asarray(sp.y, dtype=np.int64)
        arrays[f"{name}.lengths"] = np.asarray(sp.lengths, dtype=np.int64)
        header["splits"][name] = {"classes": list(sp.classes), "kind": sp.kind, "vocab": sp.vocab,
                                  "x_dtype": str(np.asarray(sp.x).dtype), "meta": sp.meta}
    arrays["__header__"] = np.frombuffer(json.dumps(header, default=str).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    return str(path)


def load_packed(path, task: str, split: str, limit: int | None = None) -> Split:
    """A split written by :func:`save_packed` (the first ``limit`` examples)."""
    import json
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(z["__header__"].tobytes())
        if header.get("task") != task:
            raise ValueError(f"{path} holds task {header.get('task')!r}, not {task!r}")
        if split not in header["splits"]:
            raise ValueError(f"{path} has no split {split!r} (has {sorted(header['splits'])})")
        h = header["splits"][split]
        sl = slice(None) if limit is None else slice(0, limit)
        x = z[f"{split}.x"][sl].astype(h["x_dtype"])
        y, lengths = z[f"{split}.y"][sl], z[f"{split}.lengths"][sl]
    meta = dict(h["meta"], packed=str(path), n=len(y))
    if limit is not None:
        meta["limit"] = limit
    return Split(x, y, lengths, h["classes"], meta, h["kind"], h["vocab"])


def load_split(name: str, root: str | None = None, split: str = "train", limit: int | None = None,
               seed: int = 0, options: dict | None = None) -> Split:
    """A split of a task via :func:`data.load_task` (or the synthetic generators).

    ``options``: keyword arguments of ``load_task`` (default :data:`DEFAULT_OPTIONS`, e.g. gsc12's
    speaker-disjoint ``resplit='speaker'``)."""
    if name.startswith("synth-"):
        s = synthetic(name, split, seed=seed)
        if limit is not None and limit < len(s):
            s = Split(s.x[:limit], s.y[:limit], s.lengths[:limit], s.classes, dict(s.meta, n=limit), s.kind, s.vocab)
        return s
    if root is not None and str(root).endswith(".npz"):
        return load_packed(root, name, split, limit)

    opts = dict(DEFAULT_OPTIONS.get(name, {}))
    opts.update(options or {})
    ds = load_task(name, root=root, split=split, limit=limit, **opts)
    kind = _kind(name)
    x = np.asarray(ds.x)
    vocab = 0
    if kind in ("tokens", "pair"):
        vocab = _vocab(name, ds, x)
        if x.size and int(x.max()) >= vocab:
            raise ValueError(f"{name}: token id {int(x.max())} outside the vocabulary 0..{vocab - 1}")
    meta = dict(ds.meta)
    meta["load_options"] = opts
    return Split(x, np.asarray(ds.y, dtype=np.int64), np.asarray(ds.lengths, dtype=np.int64), list(ds.classes),
                 meta, kind, vocab)


def task_info(split: Split, frame: int = 1) -> TaskInfo:
    """Encoder type, input width (or vocabulary) and class count of a task."""
    C = len(split.classes)
    if split.kind == "audio":
        return TaskInfo("linear", frame, C, "audio")
    if split.kind == "pixels":
        return TaskInfo("linear", 1 if split.x.ndim == 2 else split.x.shape[-1], C, "pixels")
    if split.kind == "pair":
        return TaskInfo("embedding", split.vocab + 1, C, "pair")
    return TaskInfo("embedding", split.vocab, C, "tokens")


def to_codes(split: Split, idx: np.ndarray, x_fmt: Format, frame: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Integer model inputs and lengths for the examples ``idx`` (trimmed to the longest)."""
    lengths = split.lengths[idx].astype(np.int64)
    if split.kind == "audio":
        T = int(lengths.max())
        T = int(math.ceil(T / frame)) * frame
        raw = split.x[idx, :T].astype(np.int64)
        if raw.shape[1] < T:
            raw = np.pad(raw, ((0, 0), (0, T - raw.shape[1])))
        codes, _ = requantize(raw, 15, x_fmt)                 # int16 PCM = s16f15 codes
        return codes.reshape(len(idx), T // frame, frame), (lengths + frame - 1) // frame
    if split.kind == "pixels":
        T = int(lengths.max())
        raw = split.x[idx, :T].astype(np.int64) - 128          # (p - 128) / 128 = (p - 128) * 2**-7
        codes, _ = requantize(raw, 7, x_fmt)
        if codes.ndim == 2:
            codes = codes[..., None]
        return codes, lengths
    if split.kind == "pair":
        sep = split.vocab
        l2 = split.lengths[idx]
        if l2.ndim == 1:
            raise ValueError("retrieval lengths must be (N, 2)")
        lengths = l2.sum(-1) + 1
        T = int(lengths.max())
        out = np.zeros((len(idx), T), dtype=np.int64)
        for r, i in enumerate(idx):
            a, b = int(split.lengths[i, 0]), int(split.lengths[i, 1])
            out[r, :a] = split.x[i, 0, :a]
            out[r, a] = sep
            out[r, a + 1:a + 1 + b] = split.x[i, 1, :b]
        return out, lengths
    T = int(lengths.max())
    return split.x[idx, :T].astype(np.int64), lengths


def batch_order(lengths: np.ndarray, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                bucket: int = 0) -> list[np.ndarray]:
    """Index arrays of the batches. ``bucket > 0`` (with ``shuffle``): draw ``bucket`` batches' worth
    of examples at random, sort them by length and cut them into batches, so that a batch holds
    sequences of similar length (less padding); the batches are then visited in random order."""
    n = len(lengths)
    rng = rng or np.random.default_rng()
    order = rng.permutation(n) if shuffle else np.arange(n)
    if shuffle and bucket > 1:
        groups = []
        span = batch_size * bucket
        for s in range(0, n, span):
            g = order[s:s + span]
            g = g[np.argsort(lengths[g].reshape(len(g), -1).sum(-1), kind="stable")]
            groups += [g[i:i + batch_size] for i in range(0, len(g), batch_size)]
        return [groups[i] for i in rng.permutation(len(groups))]
    return [order[s:s + batch_size] for s in range(0, n, batch_size)]


def batches(split: Split, batch_size: int, x_fmt: Format | None = None, frame: int = 1, shuffle: bool = False,
            rng: np.random.Generator | None = None, bucket: int = 0, by_length: bool = False
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(x, y, lengths) int64 NumPy batches; x codes (B, T, d_in) or token ids (B, T), trimmed to the
    batch's longest sequence. ``by_length`` (evaluation): batches of similar lengths, in order.
    (The trainer makes tensors of them with ``torch.from_numpy``.)"""
    x_fmt = x_fmt or Formats().x
    if by_length and not shuffle:
        order = np.argsort(split.lengths.reshape(len(split), -1).sum(-1), kind="stable")
        groups = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    else:
        groups = batch_order(split.lengths, batch_size, shuffle, rng, bucket)
    for idx in groups:
        x, lengths = to_codes(split, idx, x_fmt, frame)
        yield x, split.y[idx].astype(np.int64), lengths.astype(np.int64)
