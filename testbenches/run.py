"""``python -m testbenches.run TEST`` (``make sim TEST=<name>``): one stream test in Verilator
(or, with ``--simulator icarus-2005`` / ``icarus-2012``, in Icarus Verilog).

Builds the Verilator model once (cached under ``build/``), loads the bundle through the
configuration port, streams real sequences of the task through the RTL under cocotb, compares
every output of every time step with ``sim`` bit for bit and prints a summary. On a mismatch it
localises the first differing (sequence, step, layer, channel) with an FST waveform around it
and exits with status 1. ``python -m testbenches.run list`` lists the tests.

Options: ``--seqs N`` sequences (default: 1 clip for gsc_stream and asc_stream, 3 otherwise), ``--steps N``
cut every sequence to N steps, ``--offset K`` start at example K (default 0; for gsc_stream the first
test clip labelled with a spoken keyword, not ``_silence_``/``_unknown_``), ``--small`` a small random
architecture (H = 8) instead of the task's own, ``--root fixture`` the committed fixture data,
``--bundle FILE.npz`` a user's own exported bundle (``make sim TEST=... BUNDLE=FILE.npz``; refused,
with what differs, if it does not fit the stream's task), ``--simulator`` ``verilator`` (default),
``icarus-2005`` (``iverilog -g2005``) or ``icarus-2012`` (``iverilog -g2012``, SystemVerilog
scheduling): the same feeder and comparison in the 4-state event-driven simulator, which also
fails the run if any output port of the design is X or Z at any clock edge (slow: hundreds of
cycles per second on the shipped GSC network, so use ``--steps``), ``--preload`` the design with the
bundle baked into its weight memories' initial contents (a Verilog and a build of this bundle)
instead of loading it through the configuration port, one element per clock (106,060 clocks for
the shipped GSC bundle: hours in Icarus, so use ``--preload`` there), ``--micro SPEC`` the RTL's
microarchitecture (:class:`rtl.microarch.Microarch`: input columns per cycle of each projection,
e.g. ``proj=8,mix=8`` or ``simd=8`` for every projection; ``original`` or ``simd=1`` the original
design, one column per cycle; default: the one that simulates fastest,
:func:`testbenches.micro.fastest`; the summary prints it and its cycles per step).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from spec.bundle import BundleError

from .build import ICARUS_HINT, SIMULATORS, icarus_available
from .streams import STREAMS


def _list(out=sys.stdout) -> None:
    print("valid tests (make sim TEST=<name>):", file=out)
    for name, sd in STREAMS.items():
        print(f"  {name:<18} {sd.doc}", file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbenches.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("test", nargs="?", default="list")
    ap.add_argument("--seqs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--offset", type=int, default=None,
                    help="first test example (default 0; gsc_stream: the first clip labelled with a keyword)")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--root", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", default=None, help="run this weight bundle (.npz) instead of the stream's shipped one")
    ap.add_argument("--simulator", default="verilator", choices=SIMULATORS,
                    help="verilator (default), or Icarus Verilog in Verilog-2005 or SystemVerilog scheduling")
    ap.add_argument("--preload", action="store_true",
                    help="bake the bundle into the weight memories (no configuration writes; for Icarus)")
    ap.add_argument("--micro", default=None,
                    help="microarchitecture: input columns per cycle per projection, e.g. 'proj=8,mix=8' or "
                         "'simd=8' (fields enc, taps, proj, mix, readout); 'original' (= simd=1) the original "
                         "design; default: the fastest to simulate (testbenches.micro.fastest)")
    args = ap.parse_args(argv)
    if args.test not in STREAMS:
        if args.test != "list":
            print(f"unknown test {args.test!r}", file=sys.stderr)
            _list(sys.stderr)
            return 2
        _list()
        return 0

    if args.simulator != "verilator" and not icarus_available():
        print(f"[{args.test}] {args.simulator}: iverilog not found; {ICARUS_HINT}", file=sys.stderr)
        return 2
    from rtl.microarch import MicroarchError
    from rtl.top import cycles_per_step, latency, stream_cycles

    from .cosim import expected, localise, run_cocotb, sat_summary
    from .micro import fastest, resolve
    from .streams import make_case
    t0 = time.time()
    n = args.seqs or (1 if args.test in ("gsc_stream", "asc_stream") else 3)
    try:
        case = make_case(args.test, n_seqs=n, max_steps=args.steps, small=args.small, root=args.root,
                         seed=args.seed, offset=args.offset, bundle_path=args.bundle)
    except (BundleError, ValueError) as e:
        print(f"[{args.test}] {e}", file=sys.stderr)
        return 2
    arch = case.bundle.arch
    try:
        micro = resolve(args.micro, arch)
    except MicroarchError as e:
        print(f"[{args.test}] {e}", file=sys.stderr)
        return 2
    print(f"[{args.test}] {len(case.xs)} sequence(s) from example {case.offset} of {case.data_source}, "
          f"{sum(len(x) for x in case.xs)} steps; {case.bundle_source}")
    print(f"[{args.test}] arch: H={arch.hidden} L={arch.layers} K={arch.taps} d_max={arch.d_max} "
          f"E={arch.mix_width} C={arch.n_classes} d_in={arch.d_in} encoder={arch.encoder} mix={arch.mix}")
    t1 = time.time()
    exp, res = expected(case.bundle, case.xs)
    t_sim = time.time() - t1
    r = run_cocotb(case.bundle, case.xs, exp, simulator=args.simulator, preload=args.preload, micro=micro)
    loc = None
    if r.mismatch:
        m = r.mismatch
        print(f"[{args.test}] MISMATCH in sequence {m['seq']} step {m['step']}: {m['output']}[{m['class']}] "
              f"RTL {m['got']} != sim {m['expected']}; localising ...")
        loc = localise(case.bundle, case.xs[m["seq"]], m["step"], micro=micro)
        if loc.get("tensor"):
            lay = f"layer {loc['layer']}, " if loc["layer"] is not None else ""
            print(f"[{args.test}] first difference: stream {args.test}, sequence {m['seq']}, time step "
                  f"{loc['step']}, {lay}tensor {loc['tensor']}, channel {loc['channel']}: "
                  f"RTL {loc['rtl']} != sim {loc['sim']}")
        elif m["output"] == "sat":
            print(f"[{args.test}] every traced value agrees through step {m['step']}: only the saturation flag "
                  f"of {m['class']} differs")
        else:
            print(f"[{args.test}] the trace build does not reproduce the difference")
        print(f"[{args.test}] waveform (steps {loc['fst_steps'][0]}..{loc['fst_steps'][1] - 1}): {loc['fst']}")
    pred_rtl = [int(np.argmax(logits)) for logits in r.logits]
    pred_sim = exp.final.argmax(-1).tolist()
    s = r.summary()
    print(f"---- {args.test} summary ----")
    print(f"steps              {s['steps']}  ({len(case.xs)} sequence(s))")
    kind = ("the default: fastest to simulate" if micro == fastest(arch) else
            "the original design" if micro.is_default else "folded")
    print(f"microarchitecture  {micro}  ({kind})")
    first = "" if not micro.dataflow else (f", the first result after {latency(arch, micro)} (rtl.top.latency), "
                                           f"{stream_cycles(arch, micro, s['steps'])} for the stream "
                                           f"(rtl.top.stream_cycles)")
    print(f"clock cycles       {s['cycles']}  ({cycles_per_step(arch, micro)} per step by rtl.top.cycles_per_step"
          f"{first}; measured {s['cycles'] / s['steps']:.2f})")
    print(f"cycles per second  {s['cycles_per_s']}  ({s['steps_per_s']} steps/s under cocotb, bulk-fed "
          f"self-clocked feeder; sim/ took {t_sim:.1f} s)")
    print(f"simulator          {args.simulator}; outputs X/Z at {r.x_cycles} clock edges")
    cfg_how = ("preloaded in the weight memories" if r.preload else "through the configuration port")
    print(f"build              {r.build_wall:.1f} s ({'cached' if r.build_wall < 5 else 'fresh'}); "
          f"config load {r.cfg_wall:.2f} s, {r.cfg_cycles} cycles ({cfg_how})")
    print(f"bit-exact          {'yes' if r.bit_exact else 'NO'}")
    print(f"saturation flags   {sat_summary(r, exp)}")
    print(f"bundle             {case.bundle_source}")
    print(f"labels (true)      {[case.classes[int(y)] for y in case.labels[:len(pred_rtl)]]}")
    print(f"predicted (RTL)    {[case.classes[p] for p in pred_rtl]}")
    print(f"predicted (sim)    {[case.classes[p] for p in pred_sim]}")
    print(f"wall               {time.time() - t0:.1f} s")
    return 0 if r.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
