"""``python -m testbenches.regress`` (``make regress``): long RTL-vs-model regressions.

Every stream test with many whole sequences (default: 100 GSC clips, 100 ListOps sequences,
20 of each other task; ``--n stream=N`` to change, ``--streams a,b`` to select), the sequences of
a stream split over parallel processes (``--jobs``, default one per core), each process a cocotb
run on the shared Verilator build. Prints per-stream and overall totals (sequences, steps, clock
cycles, wall time, bit-exact, RTL accuracy) and exits non-zero on any mismatch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .build import REPO
from .streams import STREAMS

DEFAULT_N = {"gsc_stream": 100, "listops_stream": 100, "text_stream": 20, "image_stream": 20,
             "pathfinder_stream": 20, "retrieval_stream": 20}


def _chunk(args):
    name, offset, n, pool, small, root = args
    from .build import ensure_path
    from .cosim import run_cocotb
    from .streams import make_case
    ensure_path()
    t0 = time.time()
    case = make_case(name, n_seqs=n, small=small, root=root, offset=offset, pool=pool)
    r = run_cocotb(case.bundle, case.xs, log=lambda *a: None)
    preds = [int(np.argmax(l)) for l in r.logits]
    # content fingerprints: duplicates inside the data itself (the chunks' slices of the pool are disjoint)
    prints = [hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in case.xs]
    return {"name": name, "seqs": len(case.xs), "steps": r.steps, "cycles": r.cycles, "wall": r.wall,
            "bit_exact": r.bit_exact, "mismatch": r.mismatch, "offset": offset, "prints": prints,
            "correct": int(sum(p == int(y) for p, y in zip(preds, case.labels))),
            "bundle": case.bundle_source, "data": case.data_source, "t0": t0, "t1": time.time()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbenches.regress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--n", action="append", default=[], help="stream=N sequences (repeatable)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--small", action="store_true", help="small random architectures (H=8)")
    ap.add_argument("--root", default=None, help="data root (default: shared archive, else fixture)")
    ap.add_argument("--json", default=str(REPO / "results" / "regress.json"), help="per-chunk results file")
    args = ap.parse_args(argv)
    counts = {name: DEFAULT_N.get(name, 10) for name in STREAMS}
    for spec in args.n:
        k, _, v = spec.partition("=")
        if k not in STREAMS or not v.isdigit() or int(v) < 1:
            ap.error(f"--n {spec!r}: expected STREAM=N with N >= 1 and STREAM one of {', '.join(STREAMS)}")
        counts[k] = int(v)
    names = [s for s in args.streams.split(",") if s]
    bad = [s for s in names if s not in STREAMS]
    if bad:
        print(f"unknown stream(s) {bad}; valid: {list(STREAMS)}", file=sys.stderr)
        return 2
    # build every design first (once), then spread the sequences over the workers
    from .build import ensure_path
    from .cosim import build_stream
    from .streams import make_case
    ensure_path()
    for name in names:
        n = counts[name]
        case = make_case(name, n_seqs=1, small=args.small, root=args.root, pool=n)
        if case.pool_size < n:    # e.g. the committed fixture of a task whose archive is not here
            print(f"{name}: {case.data_source} holds {case.pool_size} sequences, not {n}: running {case.pool_size}",
                  flush=True)
            counts[name] = case.pool_size
        build_stream(case.bundle.arch, case.bundle.formats)
    jobs = []
    for name in names:
        n = counts[name]
        per = max(1, -(-n // args.jobs))        # one chunk per process: one build check, few start-ups
        for off in range(0, n, per):
            jobs.append((name, off, min(per, n - off), n, args.small, args.root))
    t0 = time.time()
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futures = [ex.submit(_chunk, j) for j in jobs]
        for j, fut in zip(jobs, futures):
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 - a failed chunk is a failed regression, the others still count
                r = {"name": j[0], "seqs": 0, "steps": 0, "cycles": 0, "wall": 0.0, "bit_exact": False,
                     "mismatch": None, "error": f"{type(e).__name__}: {e}", "offset": j[1], "prints": [],
                     "correct": 0, "bundle": "?", "data": "?", "t0": time.time(), "t1": time.time()}
                print(f"  {j[0]:<18} seqs {j[1]}..{j[1] + j[2] - 1}: FAILED {r['error']}", flush=True)
                results.append(r)
                continue
            results.append(r)
            status = "ok" if r["bit_exact"] else f"MISMATCH {r['mismatch']}"
            print(f"  {r['name']:<18} seqs {r['offset']}..{r['offset'] + r['seqs'] - 1}: {r['steps']} steps, "
                  f"{r['cycles']} cycles, {r['wall']:.1f} s, {status}", flush=True)
    print("---- regression totals ----")
    ok_all = True
    tot = {"seqs": 0, "steps": 0, "cycles": 0}
    for name in names:
        rs = [r for r in results if r["name"] == name]
        s = {k: sum(r[k] for r in rs) for k in ("seqs", "steps", "cycles", "correct")}
        ok = all(r["bit_exact"] for r in rs)
        distinct = len({i for r in rs for i in range(r["offset"], r["offset"] + r["seqs"])})   # pool indices
        ok &= distinct == s["seqs"]     # overlapping chunks would count a sequence twice
        same = s["seqs"] - len({h for r in rs for h in r["prints"]})
        dup = f", {same} identical in content (duplicates in the data)" if same else ""
        ok_all &= ok
        for k in tot:
            tot[k] += s[k]
        span = max(1e-9, max(r["t1"] for r in rs) - min(r["t0"] for r in rs))
        print(f"{name:<18} {s['seqs']:>4} seqs ({distinct} distinct{dup}) {s['steps']:>9} steps {s['cycles']:>11} cycles  "
              f"bit-exact {'yes' if ok else 'NO'} ({sum(not r['bit_exact'] for r in rs)} failing chunks)  "
              f"RTL accuracy vs labels {s['correct']}/{s['seqs']} = {100 * s['correct'] / max(1, s['seqs']):.1f} %  "
              f"{s['seqs'] / span * 3600:.0f} sequences/hour on {args.jobs} processes")
        print(f"{'':<18} bundle: {rs[0]['bundle']}; data: {rs[0]['data']}")
    wall = time.time() - t0
    print(f"{'total':<18} {tot['seqs']:>4} seqs {tot['steps']:>9} steps {tot['cycles']:>11} cycles  "
          f"{wall:.0f} s wall on {args.jobs} processes ({tot['cycles'] / wall:.0f} cycles/s, "
          f"{tot['steps'] / wall:.0f} steps/s)  bit-exact {'yes' if ok_all else 'NO'}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python -m testbenches.regress", *(argv or sys.argv[1:])]),
                               "jobs": args.jobs, "wall_s": wall, "bit_exact": ok_all,
                               "chunks": [{k: v for k, v in r.items() if k != "prints"}
                                          for r in results]}, indent=1, default=str))
    print(f"per-chunk results: {out}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
