"""Run (parts of) the studies from the command line, e.g. to fill the cache before the notebooks:

    python -m analysis.study --setting full --task gsc12 --sweep thermal      # the capacitor read-off
    python -m analysis.study --setting full --precision                       # every precision sweep
    python -m analysis.study --setting small                                  # everything, CI size
    python -m analysis.study --setting full --only-yield --chips 100          # chip yield at NoiseModel.default()

Prints the same tables and read-offs as the notebooks, from the same cache (``.cache/sweeps/``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--setting", choices=("small", "full"), default=None,
                    help="default: $MGRADE_NB_SETTING, else small")
    ap.add_argument("--task", action="append", choices=("gsc12", "listops", "asc40"),
                    help="default: gsc12 and listops")
    ap.add_argument("--sweep", action="append", help="noise sweeps to run (default: all; 'none' for none)")
    ap.add_argument("--precision", action="store_true", help="also run the precision sweeps")
    ap.add_argument("--only-precision", action="store_true", help="only the precision sweeps")
    ap.add_argument("--yield", dest="chip_yield", action="store_true",
                    help="also the chip yield: accuracy over --chips chip instances at NoiseModel.default()")
    ap.add_argument("--only-yield", action="store_true", help="only the chip yield")
    ap.add_argument("--chips", type=int, default=None, help="chips of the yield (default: the setting's)")
    ap.add_argument("--bundle", action="append", default=[], help="TASK=PATH: another bundle for a task")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    if args.setting:
        os.environ["MGRADE_NB_SETTING"] = args.setting

    from . import bundles, chips, data, precision, settings, sweeps
    from .cache import Cache

    S = settings.current()
    paths = dict(b.split("=", 1) for b in args.bundle)
    tasks = args.task or ["gsc12", "listops"]
    names = [] if args.only_precision or args.only_yield else (args.sweep or list(sweeps.SWEEPS))
    names = [n for n in names if n != "none"]
    bad = [n for n in names if n not in sweeps.SWEEPS]
    if bad:
        ap.error(f"unknown sweep(s) {bad}; choose from {list(sweeps.SWEEPS)}")
    cache = Cache()
    print(f"setting {S.name}; cache {cache.root}", flush=True)
    for t in tasks:
        t0 = time.time()
        b = bundles.task_bundle(t, paths.get(t))
        d = data.eval_data(b, S.examples(t), S.max_steps, roots=S.data_roots, split=S.split(t))
        print(bundles.describe(b), "\n   ", d.describe(), flush=True)
        if names:
            sw = [sweeps.SWEEPS[n].with_points(S.points) for n in names]
            res = sweeps.run_sweeps(b, d, sw, S.seeds, batch=S.batch, cache=cache, workers=args.workers)
            for r in res.values():
                print(r.table())
                print(f"  read-off (1 point below noise-free): {r.readoff(0.01)}\n", flush=True)
        if args.precision or args.only_precision:
            ranges = precision.calibrate(b, d, n=4)
            res = precision.run_precision(b, d, points=S.bits_points, ranges=ranges, batch=S.batch, cache=cache,
                                          workers=args.workers)
            for r in res.values():
                print(r.table(), "\n", flush=True)
        if args.chip_yield or args.only_yield:
            y = chips.chip_yield(b, d, args.chips or S.chips, batch=S.batch, cache=cache, workers=args.workers)
            print(f"chip yield at NoiseModel.default(): {y.summary()}\n  speed: {y.speed()}\n", flush=True)
        print(f"[{t}] {time.time() - t0:.1f} s; {cache}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
