"""Throughput of the RTL co-simulation: cocotb + Verilator against a plain Verilator C++ loop.

    python -m benchmarks.bench_rtl                 # one whole GSC clip (16,000 steps), shipped gsc12 bundle
    python -m benchmarks.bench_rtl --steps 2000    # quicker: the first 2,000 steps of the clip

Workload: the first test clip of the GSC-12 task (shared archive if present, else the committed
fixture), streamed through the shipped ``models/bundles/gsc12.npz`` network. Both paths run the
same generated Verilog of :class:`rtl.top.MgradeTop`, built once (cached under ``build/``):

* **cocotb**: the self-clocked feeder :mod:`testbenches.feeder` under cocotb 2.x
  (``testbenches.tb_network.stream_bulk``): stimulus bulk-loaded into memories, every output
  stored and compared with ``sim`` in bulk; no Python per clock cycle or per step.
* **C++ harness**: :file:`testbenches/harness.cpp` (no Python at all), one sample per step.

Both count streaming time only (configuration and process start excluded) and both must be
bit-exact against ``sim``. ``clips_per_hour`` is the throughput of whole clips with one
Verilator process per core (independent clips in parallel, which is how ``make regress`` runs):
``cores x 3600 / seconds per clip`` from the measured cocotb rate (one process; the cores share
memory bandwidth, so treat it as an upper bound).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

__all__ = ["bench_rtl"]


def bench_rtl(steps: int | None = None, cores: int | None = None, log=None) -> dict:
    """Measure the RTL co-simulation on one GSC clip; returns a flat dict.

    ``steps``: cut the clip to its first ``steps`` samples (default: all 16,000).
    ``cores``: processes for ``clips_per_hour`` (default: ``os.cpu_count()``).
    Keys: ``rtl_steps``, ``rtl_cycles_per_step``, ``rtl_cocotb_steps_per_s``,
    ``rtl_cocotb_cycles_per_s``, ``rtl_cpp_steps_per_s``, ``rtl_cpp_cycles_per_s``,
    ``rtl_cocotb_over_cpp`` (time ratio, >= 1 means cocotb is slower), ``rtl_bit_exact``,
    ``rtl_clip_steps``, ``rtl_seconds_per_clip`` (cocotb), ``rtl_clips_per_hour`` (cocotb, one process
    per core), ``rtl_cores``, ``rtl_build_s`` (0 when cached), ``rtl_bundle``, ``rtl_data``.
    """
    from testbenches.cosim import expected, run_cocotb, run_harness
    from testbenches.streams import make_case
    log = log or (lambda *a, **k: None)
    cores = cores or os.cpu_count() or 1
    case = make_case("gsc_stream", n_seqs=1, max_steps=steps)
    full = make_case("gsc_stream", n_seqs=1) if steps else case
    clip_steps = len(full.xs[0])
    exp, _ = expected(case.bundle, case.xs)
    t0 = time.time()
    rc = run_cocotb(case.bundle, case.xs, exp, log=log)
    t_cocotb = time.time() - t0
    t1 = time.time()
    h = run_harness(case.bundle, case.xs, log=log)
    t_harness = time.time() - t1
    cpp_exact = bool(np.array_equal(h["outputs"]["logits"], exp.logits[0]) and
                     (exp.acc is None or np.array_equal(h["outputs"]["acc"], exp.acc[0])))
    n = rc.steps
    spc = rc.wall / n * clip_steps
    return {
        "rtl_steps": n,
        "rtl_cycles_per_step": rc.cycles_per_step,
        "rtl_cocotb_steps_per_s": round(n / rc.wall, 1),
        "rtl_cocotb_cycles_per_s": round(rc.cycles / rc.wall),
        "rtl_cpp_steps_per_s": round(h["steps"] / h["wall"], 1),
        "rtl_cpp_cycles_per_s": round(h["cycles"] / h["wall"]),
        "rtl_cocotb_over_cpp": round(rc.wall / h["wall"], 3),
        "rtl_bit_exact": bool(rc.bit_exact and cpp_exact),
        "rtl_clip_steps": clip_steps,
        "rtl_seconds_per_clip": round(spc, 2),
        "rtl_clips_per_hour": round(cores * 3600 / spc, 1),
        "rtl_cores": cores,
        "rtl_cocotb_process_s": round(t_cocotb, 2),      # incl. build check, start-up, configuration
        "rtl_cpp_process_s": round(t_harness, 2),
        "rtl_build_s": round(rc.build_wall, 1),
        "rtl_bundle": case.bundle_source,
        "rtl_data": case.data_source,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_rtl", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="cut the clip to its first N steps")
    ap.add_argument("--cores", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = bench_rtl(a.steps, a.cores, log=print)
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"RTL co-simulation, one GSC clip ({r['rtl_steps']} of {r['rtl_clip_steps']} steps), "
          f"{r['rtl_cycles_per_step']} clock cycles per step; {r['rtl_bundle']}")
    print(f"  cocotb + Verilator (bulk feeder): {r['rtl_cocotb_steps_per_s']:>10} steps/s "
          f"{r['rtl_cocotb_cycles_per_s']:>10} cycles/s")
    print(f"  plain Verilator C++ loop:         {r['rtl_cpp_steps_per_s']:>10} steps/s "
          f"{r['rtl_cpp_cycles_per_s']:>10} cycles/s")
    print(f"  cocotb time / C++ time:           {r['rtl_cocotb_over_cpp']}")
    print(f"  bit-exact vs sim/:                {'yes' if r['rtl_bit_exact'] else 'NO'}")
    print(f"  clips per hour ({r['rtl_cores']} processes, {r['rtl_seconds_per_clip']} s per clip): "
          f"{r['rtl_clips_per_hour']}")
    return 0 if r["rtl_bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
