"""Throughput of the RTL co-simulation: cocotb + Verilator against a plain Verilator C++ loop.

    python -m benchmarks.bench_rtl                 # one whole GSC clip (16,000 steps), shipped gsc12 bundle
    python -m benchmarks.bench_rtl --steps 200     # quicker: the first 200 steps of the clip
    python -m benchmarks.bench_rtl --micro simd=8 --baseline none   # another fold, no baseline

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

Microarchitecture (:class:`rtl.microarch.Microarch`): ``--micro SPEC`` (default: the one that
simulates fastest, :func:`testbenches.micro.fastest`, the default of ``make sim`` and ``make
regress``), and in the same run the **baseline** ``--baseline SPEC`` (default ``original``: the
one-column-per-cycle design, today's before issue 14) through cocotb on the same clip, for the ratio
of GSC clips per hour new / baseline (``rtl_clips_per_hour_ratio``; ``--baseline none`` skips it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

__all__ = ["bench_rtl"]


def bench_rtl(steps: int | None = None, cores: int | None = None, log=None, *, micro: str | None = None,
              baseline: str | None = "original", cpp: bool = True) -> dict:
    """Measure the RTL co-simulation on one GSC clip; returns a flat dict.

    ``steps``: cut the clip to its first ``steps`` steps (default: all of them).
    ``micro``: the microarchitecture text (:func:`testbenches.micro.resolve`; default the fastest);
    ``baseline``: the one to compare with through cocotb in the same run (``None`` or ``"none"``: no
    comparison). Extra keys: ``rtl_micro``, and with a baseline ``rtl_baseline_micro``,
    ``rtl_baseline_cycles_per_step``, ``rtl_baseline_seconds_per_clip``, ``rtl_baseline_clips_per_hour``,
    ``rtl_baseline_bit_exact``, ``rtl_clips_per_hour_ratio`` (new / baseline); ``rtl_cocotb_cpu_s`` and
    ``rtl_baseline_cpu_s``: CPU seconds of the simulator processes (the figure to compare on shared
    cores). ``cpp=False``: no C++ harness (its build is a second one per microarchitecture).
    ``cores``: processes for ``clips_per_hour`` (default: ``os.cpu_count()``).
    Keys: ``rtl_steps``, ``rtl_cycles_per_step``, ``rtl_cocotb_steps_per_s``,
    ``rtl_cocotb_cycles_per_s``, ``rtl_cpp_steps_per_s``, ``rtl_cpp_cycles_per_s``,
    ``rtl_cocotb_over_cpp`` (time ratio, >= 1 means cocotb is slower), ``rtl_bit_exact``,
    ``rtl_clip_steps``, ``rtl_seconds_per_clip`` (cocotb), ``rtl_clips_per_hour`` (cocotb, one process
    per core), ``rtl_cores``, ``rtl_build_s`` (0 when cached), ``rtl_bundle``, ``rtl_data``.
    """
    from testbenches.cosim import expected, run_cocotb, run_harness
    from testbenches.micro import resolve
    from testbenches.streams import make_case
    log = log or (lambda *a, **k: None)
    cores = cores or os.cpu_count() or 1
    case = make_case("gsc_stream", n_seqs=1, max_steps=steps)
    full = make_case("gsc_stream", n_seqs=1) if steps else case
    clip_steps = len(full.xs[0])
    mu = resolve(micro, case.bundle.arch)
    base = None if baseline in (None, "none") else resolve(baseline, case.bundle.arch)
    exp, _ = expected(case.bundle, case.xs)

    def cocotb(m):
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = run_cocotb(case.bundle, case.xs, exp, micro=m, log=log)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime

    t0 = time.time()
    rc, cpu = cocotb(mu)
    t_cocotb = time.time() - t0
    t1 = time.time()
    h = run_harness(case.bundle, case.xs, micro=mu, log=log) if cpp else None
    t_harness = time.time() - t1
    rb, cpu_b = (None, None) if base is None else cocotb(base)
    cpp_exact = h is None or bool(np.array_equal(h["outputs"]["logits"], exp.logits[0]) and
                                  (exp.acc is None or np.array_equal(h["outputs"]["acc"], exp.acc[0])))
    n = rc.steps
    spc = rc.wall / n * clip_steps
    out = {
        "rtl_micro": str(mu),
        "rtl_steps": n,
        "rtl_cycles_per_step": rc.cycles_per_step,
        "rtl_cocotb_steps_per_s": round(n / rc.wall, 1),
        "rtl_cocotb_cycles_per_s": round(rc.cycles / rc.wall),
        "rtl_cocotb_cpu_s": round(cpu, 2),
        "rtl_cpp_steps_per_s": None if h is None else round(h["steps"] / h["wall"], 1),
        "rtl_cpp_cycles_per_s": None if h is None else round(h["cycles"] / h["wall"]),
        "rtl_cocotb_over_cpp": None if h is None else round(rc.wall / h["wall"], 3),
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
    if rb is not None:
        spc_b = rb.wall / rb.steps * clip_steps
        out.update({"rtl_baseline_micro": str(base), "rtl_baseline_cycles_per_step": rb.cycles_per_step,
                    "rtl_baseline_seconds_per_clip": round(spc_b, 2),
                    "rtl_baseline_clips_per_hour": round(cores * 3600 / spc_b, 1),
                    "rtl_baseline_bit_exact": bool(rb.bit_exact), "rtl_baseline_cpu_s": round(cpu_b, 2),
                    "rtl_baseline_build_s": round(rb.build_wall, 1),
                    "rtl_clips_per_hour_ratio": round(spc_b / spc, 2)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_rtl", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="cut the clip to its first N steps")
    ap.add_argument("--cores", type=int, default=None)
    ap.add_argument("--micro", default=None, help="microarchitecture (default: the fastest to simulate)")
    ap.add_argument("--baseline", default="original", help="microarchitecture to compare with ('none': no baseline)")
    ap.add_argument("--no-cpp", action="store_true", help="no C++ harness run (and build)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = bench_rtl(a.steps, a.cores, log=print, micro=a.micro, baseline=a.baseline, cpp=not a.no_cpp)
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"RTL co-simulation, one GSC clip ({r['rtl_steps']} of {r['rtl_clip_steps']} steps), microarchitecture "
          f"{r['rtl_micro']}, {r['rtl_cycles_per_step']} clock cycles per step; {r['rtl_bundle']}")
    print(f"  cocotb + Verilator (bulk feeder): {r['rtl_cocotb_steps_per_s']:>10} steps/s "
          f"{r['rtl_cocotb_cycles_per_s']:>10} cycles/s")
    if r["rtl_cpp_steps_per_s"] is not None:
        print(f"  plain Verilator C++ loop:         {r['rtl_cpp_steps_per_s']:>10} steps/s "
              f"{r['rtl_cpp_cycles_per_s']:>10} cycles/s")
        print(f"  cocotb time / C++ time:           {r['rtl_cocotb_over_cpp']}")
    print(f"  bit-exact vs sim/:                {'yes' if r['rtl_bit_exact'] else 'NO'}")
    print(f"  clips per hour ({r['rtl_cores']} processes, {r['rtl_seconds_per_clip']} s per clip): "
          f"{r['rtl_clips_per_hour']}")
    ok = r["rtl_bit_exact"]
    if "rtl_baseline_micro" in r:
        print(f"  baseline {r['rtl_baseline_micro']} ({r['rtl_baseline_cycles_per_step']} cycles per step): "
              f"{r['rtl_baseline_seconds_per_clip']} s per clip, {r['rtl_baseline_clips_per_hour']} clips per hour, "
              f"bit-exact {'yes' if r['rtl_baseline_bit_exact'] else 'NO'}")
        print(f"  clips per hour new / baseline:    {r['rtl_clips_per_hour_ratio']}x")
        ok &= r["rtl_baseline_bit_exact"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
