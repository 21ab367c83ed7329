"""The microarchitecture a co-simulation runs at when none is named: the one that simulates fastest.

``make sim``, ``make regress`` and ``make bench`` (``--micro SPEC``, ``MICRO=SPEC``) take any
:class:`rtl.microarch.Microarch` text; without one they run :func:`fastest`. A microarchitecture
changes the timing of the RTL, never its arithmetic (every one is bit-exact with ``sim/``), so the
default is chosen for simulation speed alone. Verilator evaluates the whole design every clock
cycle, so the wall time of a step is about (cycles per step) x (the design's size): the dataflow
schedule cuts the cycles per step for a few registers (the layers work on successive steps at
once), and each doubling of the columns per cycle about halves the cycles for twice the
multipliers; what Verilator pays per step is about the multipliers times the cycles per step
(2.3 M for the original design on the shipped GSC network, 0.49 M at the default). Chosen by
measurement on the shipped GSC network (whole clips through cocotb + Verilator on the 2 shared
cores, :data:`MEASURED`; README, "Microarchitecture"): :data:`DEFAULT`, 53 cycles per step.

``original`` (or ``simd=1``) names the original design, one column per cycle, sequential
(``Microarch()``).
"""
from __future__ import annotations

from spec.arch import Arch

__all__ = ["DEFAULT", "MEASURED", "fastest", "resolve"]

#: The default, a :meth:`rtl.microarch.Microarch.parse` text (``simd=N``: every projection the
#: largest of its valid column counts up to N, so it fits any architecture).
DEFAULT = "simd=8,schedule=dataflow"
#: Seconds per whole GSC clip (1,000 steps, streaming) through cocotb + Verilator, shipped gsc12
#: bundle, both in one run of ``python -m benchmarks.run --only rtl --no-cpp`` on 2 cores (README,
#: "Microarchitecture"): 3.8 times the clips per hour of the original design.
MEASURED: dict[str, float] = {"original": 54.49, "simd=8,schedule=dataflow": 14.34}


def fastest(arch: Arch):
    """The microarchitecture of ``arch`` that simulates fastest (the default of the co-simulations)."""
    from rtl.microarch import Microarch
    return Microarch.parse(DEFAULT, arch)


def resolve(spec: str | None, arch: Arch):
    """The :class:`rtl.microarch.Microarch` a command runs: ``None``/``""``/``"fastest"``:
    :func:`fastest`; ``"original"``: ``Microarch()``; else :meth:`rtl.microarch.Microarch.parse`
    (raises :class:`rtl.microarch.MicroarchError` with the valid values)."""
    from rtl.microarch import Microarch
    spec = (spec or "").strip()
    if spec in ("", "fastest"):
        return fastest(arch)
    if spec == "original":
        return Microarch().check(arch)
    return Microarch.parse(spec, arch)
