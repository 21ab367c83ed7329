"""One accuracy measurement: ``bundle`` on ``data``, exact or with a noise model, for one seed.

This file's source is part of every cache key (:func:`analysis.cache.code_digest`): a change here
invalidates cached results. Keep it small.

Seeding: ``seed`` is the chip instance (the noise model's static errors: mismatch, offsets,
reference levels, injection spread) *and* the dynamic noise (kT/C, comparator noise). Sequences are
run in batches of similar length (sorted by length, stable); batch ``i`` draws its dynamic noise
from ``SeedSequence([seed, i])``, so every sequence gets its own noise and one chip sees the whole
test set. The result depends on ``seed`` and ``batch`` only (tests check it).
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["evaluate", "batch_seed"]


def batch_seed(seed: int, i: int) -> int:
    """Dynamic-noise seed of batch ``i`` of a run with seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, np.uint32)[0])


def evaluate(bundle, x: np.ndarray, y: np.ndarray, lengths: np.ndarray, noise=None, seed: int = 0,
             batch: int = 64) -> dict:
    """Run ``bundle`` on every sequence; returns ``{"correct", "n", "accuracy", "predictions",
    "saturations", "wall_s"}`` (``saturations``: total events per tensor name, valid steps only)."""
    from sim import Network

    t0 = time.time()
    nm = None if noise is None else noise.replace(seed=int(seed))
    net = Network(bundle, noise=nm)
    n = len(y)
    order = np.argsort(np.asarray(lengths), kind="stable")
    preds = np.empty(n, np.int64)
    sats: dict[str, int] = {}
    for i, s in enumerate(range(0, n, batch)):
        idx = order[s:s + batch]
        lb = np.asarray(lengths)[idx].astype(np.int64)
        T = int(lb.max())
        xb = np.asarray(x[idx, :T]).astype(np.int64)
        res = net.run(xb, lengths=lb if (lb < T).any() else None, seed=batch_seed(seed, i))
        preds[idx] = res.predictions
        for k, v in res.saturations.items():
            sats[k] = sats.get(k, 0) + int(v)
    correct = int((preds == np.asarray(y)).sum())
    return {"correct": correct, "n": int(n), "accuracy": correct / max(n, 1), "predictions": preds.tolist(),
            "saturations": {k: v for k, v in sats.items() if v}, "wall_s": round(time.time() - t0, 3)}
