"""``python -m testbenches.folds``: cycles per step of a stream's network at several microarchitectures,
from the cycle model and simulated, bit-exact against ``sim/``.

For each fold (a :meth:`rtl.microarch.Microarch.parse` text; default ``simd=1 simd=2 simd=4 simd=8
simd=16 simd=64``) the stream's network (default ``gsc_stream``: the shipped GSC bundle, H=64 L=4)
is built with the bundle preloaded in its weight memories and runs the first ``--steps`` steps of
the stream's default sequence (``make sim``'s: for GSC the first keyword clip) in Amaranth's
simulator (no C++ build: the shipped network's Verilator build takes minutes per fold), fed as a
stream without gaps. Every per-step output and every layer's every intermediate is compared with
``sim``, the simulated cycles from the first sample to its result with :func:`rtl.top.latency` and
those between later results with :func:`rtl.top.cycles_per_step` (the same for the sequential
schedule; the initiation interval for the dataflow one). Prints a Markdown table (the README's):
microarchitecture (columns per cycle, row passes, ``chan_passes``, schedule), MAC multipliers
(:func:`rtl.microarch.mac_multipliers`), cycles per step and latency by the model and simulated,
bit-exact, and for audio streams the clock that real time needs (at the cycles per step).
Exits 1 if any fold is not bit-exact or its cycles differ from the model.

Options: ``FOLD ...``, ``--test NAME`` (a stream of :data:`testbenches.streams.STREAMS`),
``--steps N`` (default 3), ``--small`` (the stream's small CI architecture), ``--root``.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

__all__ = ["measure", "main"]

DEFAULT_FOLDS = ("simd=1", "simd=2", "simd=4", "simd=8", "simd=16", "simd=64")
#: Streams of 16 kHz audio: real time is 16,000 / d_in steps per second.
AUDIO = {"gsc_stream", "asc_stream"}


def _deep(fn, *args):
    """``fn(*args)`` in a thread with a 1 GiB stack and a high recursion limit: amaranth.sim compiles
    each memory's write port into one Python expression nested once per write lane, and the widest
    weight memories (4,096 slots at ``simd=64`` on the shipped network) exceed Python's default
    compiler depth."""
    out, old = {}, sys.getrecursionlimit()

    def run():
        try:
            out["r"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            out["e"] = e
    sys.setrecursionlimit(max(old, 200_000))
    size = threading.stack_size(1 << 30)
    try:
        th = threading.Thread(target=run)
        th.start()
        th.join()
    finally:
        threading.stack_size(size)
        sys.setrecursionlimit(old)
    if "e" in out:
        raise out["e"]
    return out["r"]


def measure(bundle, xs, micro) -> dict:
    """Run ``xs`` through the preloaded design at ``micro`` in amaranth.sim; compare with ``sim``."""
    from rtl.top import cycles_per_step, latency

    from .amsim import run_top
    from .cosim import expected
    exp, res = expected(bundle, xs, trace=True)
    t0 = time.time()
    outs, traces, cyc = _deep(lambda: run_top(bundle, xs, micro=micro, preload=True))
    wall = time.time() - t0
    lens = [len(x) for x in xs]
    ok = np.array_equal(outs["logits"], np.concatenate(exp.logits))
    if exp.acc is not None:
        ok &= np.array_equal(outs["acc"], np.concatenate(exp.acc))
    for key, arr in traces.items():
        want = np.concatenate([res.trace[key][b, :n] for b, n in enumerate(lens)])
        ok &= np.array_equal(arr.reshape(want.shape), want)
    for n, want in exp.sat_flags().items():
        ok &= np.array_equal(outs[f"sat.{n}"], want)
    return {"micro": micro, "model": cycles_per_step(bundle.arch, micro), "latency": latency(bundle.arch, micro),
            "cycles": cyc, "bit_exact": bool(ok), "wall": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbenches.folds", description=__doc__.split("\n\n")[0])
    ap.add_argument("folds", nargs="*", default=list(DEFAULT_FOLDS))
    ap.add_argument("--test", default="gsc_stream")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--root", default=None)
    args = ap.parse_args(argv)
    # amaranth.sim compiles the shipped network's trace port (tens of thousands of bits) into Python
    # source: its masks are integers beyond the default limit of int-to-text conversion
    sys.set_int_max_str_digits(0)
    from rtl.microarch import PASS_FIELDS, Microarch, MicroarchError, mac_multipliers

    from .streams import make_case
    case = make_case(args.test, n_seqs=1, max_steps=args.steps, small=args.small, root=args.root, offset=None)
    arch = case.bundle.arch
    try:
        micros = [Microarch.parse(f, arch) for f in args.folds]
    except MicroarchError as e:
        print(f"[folds] {e}", file=sys.stderr)
        return 2
    print(f"[folds] {case.bundle_source}; H={arch.hidden} L={arch.layers} K={arch.taps} E={arch.mix_width} "
          f"C={arch.n_classes} d_in={arch.d_in}; {args.steps} steps of example {case.offset} of {case.data_source}")
    audio = args.test in AUDIO
    head = "| columns per cycle (enc,taps,proj,mix,readout) | row passes (same) | chan_passes | schedule | " \
           "MAC multipliers | " \
           "cycles/step (model) | cycles/step (simulated) | latency (model) | latency (simulated) | bit-exact |" \
        + (" clock for real time |" if audio else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    bad = 0
    for mu in micros:
        r = measure(case.bundle, case.xs, mu)
        steady = sorted(set(r["cycles"][1:]))
        good = r["bit_exact"] and set(steady) <= {r["model"]} and r["cycles"][0] == r["latency"]
        bad += not good
        passes = ",".join(str(getattr(mu, f)) for f in PASS_FIELDS)
        row = (f"| {mu.enc},{mu.taps},{mu.proj},{mu.mix},{mu.readout} | {passes} | {mu.chan_passes} | {mu.schedule} | "
               f"{mac_multipliers(arch, mu):,} | {r['model']:,} | {', '.join(f'{c:,}' for c in steady) or '-'} | "
               f"{r['latency']:,} | {r['cycles'][0]:,} | {'yes' if r['bit_exact'] else 'NO'} |")
        if audio:
            row += f" {r['model'] * 16000 / arch.d_in / 1e6:.3f} MHz |"
        print(row, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
