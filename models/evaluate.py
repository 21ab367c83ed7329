"""Measure a weight bundle's accuracy in ``sim/`` on its task's test split, and record it.

    python -m models.evaluate models/bundles/text.npz            # print float / QAT / sim accuracy
    python -m models.evaluate models/bundles/text.npz --record   # also write it into the bundle's meta

Used for bundles whose training run measured the float and hardware-aware (integer path)
accuracies on the GPU but left the CPU-bound ``sim/`` pass to this machine. The data split and
loader options are the ones the bundle's meta records (``meta['data']['test']``), so the figure is
on the same test examples as the training run's. ``--record`` refuses to write a partial figure
(``--limit``) into the bundle.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from spec.bundle import BundleError, load_bundle, save_bundle

from .export import evaluate_sim

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="a weight bundle (.npz) written by models.train / models.export")
    ap.add_argument("--data-root", default=None, help="data root for data.load_task (default: shared)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many test examples")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--record", action="store_true", help="store the sim/ accuracy in the bundle's meta")
    args = ap.parse_args(argv)
    if args.record and args.limit is not None:
        ap.error("--record needs the whole test split: drop --limit")
    try:
        bundle = load_bundle(args.bundle)
    except (BundleError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta = bundle.meta or {}
    task = meta.get("task")
    if not task:
        print(f"error: {args.bundle} records no task in its meta; cannot pick the test split", file=sys.stderr)
        return 2
    frame = int(meta.get("input", {}).get("frame", 1))
    seed = int(meta.get("train_args", {}).get("seed", 0))
    t0 = time.time()
    res = evaluate_sim(bundle, task, data_root=args.data_root, limit=args.limit, batch=args.batch,
                       frame=frame, seed=seed)
    acc = meta.get("accuracy", {})
    print(json.dumps({"bundle": args.bundle, "task": task, "float": acc.get("float"), "qat": acc.get("qat"),
                      "sim": res["accuracy"], "n": res["n"], "wall_s": round(time.time() - t0, 1)}))
    if acc.get("n_test") not in (None, res["n"]):
        print(f"warning: the bundle's figures are on {acc['n_test']} examples, sim/ ran on {res['n']}",
              file=sys.stderr)
    if args.record:
        meta.setdefault("metrics", {})["sim"] = res
        meta.setdefault("accuracy", {})["sim"] = res["accuracy"]
        bundle.meta = meta
        save_bundle(bundle, args.bundle)
        print(f"recorded sim/ accuracy in {args.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
