"""``make bench``: every speed figure of the project, measured in one run, printed and saved.

    python -m benchmarks.run                     # GSC-sized workload (64 clips x 16,000 steps, H=64, L=2)
    python -m benchmarks.run --steps 2000        # quicker, same workload shape
    python -m benchmarks.run --only sim          # one part: sim | rtl
    python -m benchmarks.run --only rtl --micro simd=8   # the RTL at another microarchitecture

Parts:

* ``sim``: ``sim.Network.run`` (bit-accurate, integer contract) against a float32 PyTorch CPU
  forward of the same network on the same inputs, as time steps x batch per second and their ratio
  (:mod:`benchmarks.bench_sim`).
* ``rtl``: the Verilator model of ``rtl/`` on one GSC clip with the shipped bundle, through cocotb
  and through a plain C++ loop, time steps and clock cycles per second, their ratio, clips per
  hour with one process per core (:mod:`benchmarks.bench_rtl`), at the microarchitecture of
  ``make sim`` (``--micro``, default the fastest to simulate), and in the same run the baseline
  (``--baseline``, default the original one-column-per-cycle design) through cocotb: the ratio of
  GSC clips per hour new / baseline.

The figures go to stdout and to ``results/bench.json`` (with the machine's core count and load),
so a README figure can be traced to the run that produced it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _sim(args) -> dict:
    from .bench_sim import bench_sim
    r = bench_sim(args.batch, args.steps, args.hidden, args.layers, repeat=args.repeat)
    print(f"[sim] workload: batch {r['batch']} x {r['steps']} steps, H={r['hidden']}, L={r['layers']}, "
          f"taps {r['taps']}, d_max {r['d_max']}")
    print(f"[sim] sim.Network.run (bit-accurate) : {r['sim_steps_per_s'] / 1e6:8.3f} M steps*batch/s "
          f"({r['sim_s']:.2f} s wall, {r['sim_cpu_s']:.2f} s CPU)")
    print(f"[sim] torch float32 forward (CPU)    : {r['torch_steps_per_s'] / 1e6:8.3f} M steps*batch/s "
          f"({r['torch_s']:.2f} s wall, {r['torch_cpu_s']:.2f} s CPU, {r['torch_threads']} threads)")
    verdict = "meets" if r["ratio"] <= 2.0 else "misses"
    print(f"[sim] ratio sim/torch: {r['ratio']:.2f}x wall, {r['cpu_ratio']:.2f}x CPU "
          f"({verdict} the 2x aim); argmax agreement {r['argmax_agreement']:.2f}")
    return r


def _rtl(args) -> dict:
    from .bench_rtl import bench_rtl
    kw = {}
    if args.rtl_steps:
        kw["steps"] = args.rtl_steps
    r = bench_rtl(**kw, micro=args.micro, baseline=args.baseline, cpp=not args.no_cpp)
    for k, v in r.items():
        print(f"[rtl] {k}: {v}")
    if "rtl_clips_per_hour_ratio" in r:
        verdict = "meets" if r["rtl_clips_per_hour_ratio"] >= 3 else "misses"
        print(f"[rtl] GSC clips per hour: {r['rtl_micro']} {r['rtl_clips_per_hour']} against "
              f"{r['rtl_baseline_micro']} {r['rtl_baseline_clips_per_hour']}: {r['rtl_clips_per_hour_ratio']}x "
              f"({verdict} the 3x aim)")
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("sim", "rtl"), default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rtl-steps", type=int, default=None, help="steps of the GSC clip for the RTL part")
    ap.add_argument("--micro", default=None, help="RTL microarchitecture (default: the fastest to simulate)")
    ap.add_argument("--baseline", default="original",
                    help="RTL microarchitecture to compare with in the same run ('none': no comparison)")
    ap.add_argument("--no-cpp", action="store_true", help="RTL part: no plain C++ loop (a second build per design)")
    ap.add_argument("--out", default=str(RESULTS / "bench.json"))
    args = ap.parse_args(argv)

    report: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(),
                    "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "loadavg": os.getloadavg()[0]}
    failed = []
    for part, fn in (("sim", _sim), ("rtl", _rtl)):
        if args.only and part != args.only:
            continue
        try:
            report[part] = fn(args)
            r = report[part]
            if part == "rtl" and not (r["rtl_bit_exact"] and r.get("rtl_baseline_bit_exact", True)):
                failed.append(part)
                print("[rtl] FAILED: the RTL co-simulation is not bit-exact", file=sys.stderr)
        except Exception as e:  # one broken part must not hide the other's figures
            failed.append(part)
            report[part] = {"error": f"{type(e).__name__}: {e}"}
            print(f"[{part}] FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"figures saved to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
