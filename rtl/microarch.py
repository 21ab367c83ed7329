"""``Microarch``: how the RTL computes a network, as opposed to what it computes (:class:`spec.arch.Arch`).

Four kinds of choice, all timing and area, never arithmetic. ``Microarch.parse`` reads them from
``"proj=8,proj_passes=4,chan_passes=8,schedule=dataflow"`` (``str(micro)`` reads back).

**Input columns per cycle of each projection** (FINN's SIMD, the inverse of hls4ml's reuse
factor). Every projection runs on a :class:`rtl.mac.MacLanes` array of one lane per output row
(fewer with row passes, below) that takes a group of input columns per clock cycle: lane ``j``
multiplies the ``simd`` columns of the group by its ``simd`` weights and adds the products,
through an adder tree, to its exact accumulator. A product of ``N`` columns then takes
``N / simd`` column cycles instead of ``N``, for ``simd`` times the multipliers, and its weight
memory delivers ``simd`` columns of every lane per read (:class:`rtl.addrmap.AddressMap` stores
them in one word). One field per projection:

=========== ================================================= ==============================
field       projection (columns)                               valid values
=========== ================================================= ==============================
``enc``     encoder ``W_enc x`` (``d_in``)                      divisors of ``d_in``; 1 for an embedding
``taps``    delay-line convolution (``K`` taps)                 divisors of ``K``; 1 without taps
``proj``    gate and candidate ``Wz u``, ``Wh u`` (``H``)        divisors of ``H``
``mix``     mixer passes ``W1 r`` (``H``) and ``W2 m1`` (``E``)   divisors of ``H``; 1 for mix 'none'
``readout`` decoder ``W_out a`` (``H``)                        divisors of ``H``
=========== ================================================= ==============================

**Row passes of each projection**, ``enc_passes``, ``taps_passes``, ``proj_passes``,
``mix_passes``, ``readout_passes`` (divisors of the projection's rows: H, C for the readout; 1 where
the architecture has no such projection; 1 by default, a lane per row): the projection's array has
``rows / passes`` lanes (FINN's PE) and makes ``passes`` passes over the column groups, pass ``p``
computing rows ``p * lanes ..``: area goes down as well as up. A cycle after each pass but the last
stores the pass's results in registers and loads the next pass's biases (the last pass's results
come from the accumulators, :func:`rtl.mac.pass_sequencer`, :func:`rtl.mac.pass_results`), so a
product of ``N`` columns takes ``passes * (N / simd + 1) + 1`` cycles. The weight memories hold one
pass's lanes per word (:class:`rtl.addrmap.AddressMap`: the further rows are further words). The
mixer's expansion then makes ``P * mix_passes`` passes (``P`` = its ``E`` or ``2E`` rows over H)
and its projection ``W2`` ``mix_passes``; the convolution's lanes pick their channel's delay-line
samples by the pass and push the sample after the last pass.

**Channel passes of the element-wise stages**, ``chan_passes`` (divisors of ``H``; 1 by default):
the SC state update (:class:`rtl.mingru.ScUpdate`) and the affine normalisation
(:class:`rtl.norm.AffineNorm`) take ``H / chan_passes`` channels per cycle, in ``chan_passes``
cycles per step, with ``H / chan_passes`` datapaths each (a multiplier per channel) instead of
``H``. The first group updates in the projections' done cycle, so each adds ``chan_passes - 1``
cycles to a layer (the norm only where the architecture has it); the output stage and the skip
adds stay all-channel.

**Schedule**, ``schedule``: ``sequential`` (the default: a step runs the encoder, the layers and
the readout one after another, and the next sample is taken once the result is out) or
``dataflow`` (the encoder, every layer and the readout are the stages of a stream pipeline: layer
``l`` works on step ``t`` while layer ``l - 1`` takes step ``t + 1``; the recurrence, the minGRU
state and the delay lines, stays inside each layer, which finishes a step before it takes the
next). What belongs to a step travels with it: the ``first`` flag, its saturation flags, and with
the trace port its intermediates (:meth:`rtl.top.MgradeTop._elaborate_dataflow`). Same hardware
plus a few registers per stage (its flags; with the trace port the traces the step has collected).

Only the timing changes, never the arithmetic: every accumulator is exact (the sum of a group is
exact and so is the sum of the groups), a row pass or an element-wise group computes exactly what
the full-width array computed for those rows or channels, and the pipeline keeps each layer's
steps in order, so every microarchitecture gives the same bits as ``sim/``. The default
``Microarch()`` (every field 1, sequential) is the original design, and its Verilog is the
original text.

:func:`rtl.top.cycles_per_step` ``(arch, micro)`` is the cycle model: the cycles per step of a
stream fed without gaps in steady state (the initiation interval). Sequential, it is
:func:`rtl.top.latency` (the sum of the blocks' own ``cycles(arch, micro)``); dataflow, the slowest
stage's count (:func:`rtl.top.stage_cycles`: a layer's count + 1, the encoder's + 2, the
readout's + 2), while the first result still takes the latency, so a stream of ``n`` steps takes
:func:`rtl.top.stream_cycles` ``= latency + (n - 1) x cycles_per_step``. :func:`cycles_closed_form`
and :func:`latency_closed_form` write them out (:func:`cycles_formula`); the tests check all of
them against the simulated cycle counts.

Not modelled here: area beyond the MAC multipliers (:func:`mac_multipliers`; the row passes'
result registers, the element-wise datapaths and the pipeline's registers are not counted).
"""
from __future__ import annotations

import dataclasses

from spec.arch import Arch

__all__ = ["Microarch", "MicroarchError", "FIELDS", "PASS_FIELDS", "INT_FIELDS", "SCHEDULES", "rows", "columns",
           "valid_values", "cycles_closed_form",
           "latency_closed_form", "cycles_formula", "mac_multipliers"]

#: The folded projections, in the order of a step.
FIELDS = ("enc", "taps", "proj", "mix", "readout")
#: Row passes of each projection (``proj_passes``: the gate and candidate arrays' passes, ...).
PASS_FIELDS = tuple(f"{f}_passes" for f in FIELDS)
#: The integer fields: columns per cycle, row passes, channel passes.
INT_FIELDS = (*FIELDS, *PASS_FIELDS, "chan_passes")
#: How the stages of a step are scheduled: one after another, or the layers as a stream pipeline.
SCHEDULES = ("sequential", "dataflow")


class MicroarchError(ValueError):
    """A microarchitecture that the architecture cannot take (the message lists the valid values)."""


def columns(arch: Arch, field: str) -> int:
    """Input columns of the projection ``field`` whose divisors are its valid ``simd`` values
    (``0``: the architecture has no such projection, only 1 is valid)."""
    if field == "enc":
        return arch.d_in if arch.encoder == "linear" else 0
    if field == "taps":
        return arch.taps
    if field in ("proj", "readout"):
        return arch.hidden
    if field == "mix":
        return 0 if arch.mix == "none" else arch.hidden     # W1 has H columns; E = expand * H is a multiple
    raise KeyError(f"unknown microarchitecture field {field!r}; one of {', '.join(FIELDS)}")


def rows(arch: Arch, field: str) -> int:
    """Output rows of the projection ``field`` (``proj`` or ``proj_passes``) over which its MAC
    lanes make their passes, whose divisors are its valid ``*_passes`` values (``0``: the
    architecture has no such projection, only 1 is valid): H, C for the readout (the mixer's
    ``W1`` has ``E`` or ``2E`` rows, but its lanes are those of ``W2``'s H rows)."""
    field = field.removesuffix("_passes")
    if columns(arch, field) == 0:
        return 0
    return arch.n_classes if field == "readout" else arch.hidden


def valid_values(arch: Arch, field: str) -> list:
    """The values field ``field`` of :class:`Microarch` accepts for ``arch``: for a projection
    (:data:`FIELDS`) the divisors of its columns, for ``chan_passes`` the divisors of H, for
    ``schedule`` :data:`SCHEDULES`."""
    if field == "schedule":
        return list(SCHEDULES)
    if field in PASS_FIELDS:
        n = rows(arch, field)
    else:
        n = arch.hidden if field == "chan_passes" else columns(arch, field)
    return [1] if n == 0 else [d for d in range(1, n + 1) if n % d == 0]


@dataclasses.dataclass(frozen=True)
class Microarch:
    """Input columns per cycle (``simd``) of each projection, channel passes of the element-wise
    stages and the schedule (see the module docstring)."""

    enc: int = 1
    taps: int = 1
    proj: int = 1
    mix: int = 1
    readout: int = 1
    enc_passes: int = 1
    taps_passes: int = 1
    proj_passes: int = 1
    mix_passes: int = 1
    readout_passes: int = 1
    chan_passes: int = 1
    schedule: str = "sequential"

    def __post_init__(self) -> None:
        for f in INT_FIELDS:
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MicroarchError(f"Microarch.{f} must be an integer >= 1, not {v!r}")
        if self.schedule not in SCHEDULES:
            raise MicroarchError(f"Microarch.schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")

    @property
    def dataflow(self) -> bool:
        """The layers run as a stream pipeline (``schedule='dataflow'``)."""
        return self.schedule == "dataflow"

    @property
    def is_default(self) -> bool:
        return self == Microarch()

    def check(self, arch: Arch) -> Microarch:
        """``self`` if ``arch`` takes it; else :class:`MicroarchError` naming, for every bad field,
        the valid values."""
        bad = [f"{f}={getattr(self, f)} (valid: {', '.join(map(str, valid_values(arch, f)))})"
               for f in (*INT_FIELDS, "schedule") if getattr(self, f) not in valid_values(arch, f)]
        if bad:
            raise MicroarchError(f"microarchitecture not valid for H={arch.hidden} d_in={arch.d_in} K={arch.taps} "
                                 f"encoder={arch.encoder} mix={arch.mix}: " + "; ".join(bad))
        return self

    def lanes(self, arch: Arch, field: str) -> int:
        """MAC lanes of projection ``field``: its rows over its row passes."""
        return rows(arch, field) // getattr(self, field + "_passes")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        """``enc=..,taps=..,proj=..,mix=..,readout=..`` and the other fields where they are not the
        default (:meth:`parse` reads it back)."""
        extra = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                 if f.name not in FIELDS and getattr(self, f.name) != f.default]
        return ",".join([f"{f}={getattr(self, f)}" for f in FIELDS] + extra)

    @classmethod
    def parse(cls, text: str | None, arch: Arch | None = None) -> Microarch:
        """From ``"proj=8,mix=8,chan_passes=4,schedule=dataflow"`` (``NAME=VALUE`` items, one per
        field; unnamed fields at their defaults), with ``"simd=N"`` for every projection ``N`` (with
        ``arch``, each projection the largest of its valid values that is at most ``N``, so
        ``simd=64`` is "all columns at once" everywhere; named fields win), or
        ``""``/``None``/``"default"`` (:class:`Microarch` ``()``). ``str(micro)`` reads back to
        ``micro``. Checked against ``arch`` if given."""
        text = (text or "").strip()
        kw: dict[str, int | str] = {}
        names = [f.name for f in dataclasses.fields(cls)]
        if text and text != "default":
            for part in text.split(","):
                name, sep, val = part.partition("=")
                name, val = name.strip(), val.strip()
                if not sep or name not in (*names, "simd"):
                    raise MicroarchError(f"bad microarchitecture item {part!r}: NAME=VALUE with NAME one of "
                                         f"{', '.join(names)} or simd")
                if name == "schedule":
                    kw[name] = val
                    continue
                try:
                    n = int(val)
                except ValueError:
                    raise MicroarchError(f"bad microarchitecture item {part!r}: {val!r} is not an integer") from None
                if name == "simd":
                    for f in FIELDS:
                        kw.setdefault(f, max(v for v in valid_values(arch, f) if v <= n) if arch else n)
                else:
                    kw[name] = n
        m = cls(**kw)
        return m.check(arch) if arch is not None else m


def mac_multipliers(arch: Arch, micro: Microarch | None = None) -> int:
    """Multipliers of the projections' :class:`rtl.mac.MacLanes` at ``micro``: lanes x ``simd`` per
    projection, the lanes being the rows over the row passes (encoder H, per layer taps H, gate and
    candidate 2H, mixer H; readout C; :meth:`Microarch.lanes`). The element-wise stages (SC update,
    normalisation: H / ``chan_passes`` each per layer) are not counted."""
    mu = (micro or Microarch()).check(arch)
    n = {f: mu.lanes(arch, f) * getattr(mu, f) for f in FIELDS}
    per_layer = n["taps"] * (arch.taps > 0) + 2 * n["proj"] + n["mix"] * (arch.mix != "none")
    return n["enc"] * (arch.encoder == "linear") + arch.layers * per_layer + n["readout"]


def cycles_formula() -> str:
    """The closed form of :func:`rtl.top.cycles_per_step` and :func:`rtl.top.latency`, and why (for
    the README)."""
    return ("latency = ENC + RO + 3 + L * LAY, with ENC = R_enc (d_in/s_enc + 1) + 1 (linear encoder) or "
            "2 (embedding), RO = R_ro (H/s_ro + 1) + 1, LAY = 3 + K' + R_p (H/s_p + 1) + 1 + M + (Q - 1)(1 + N), "
            "K' = R_taps (K/s_taps + 1) + 1 (0 without taps), M = P R_mix (H/s_mix + 1) + R_mix (E/s_mix + 1) "
            "+ 1 with P = E/H (mlp) or 2E/H (glu), M = 0 (mix 'none'), N = 1 with the affine norm (else 0); "
            "s_x the columns per cycle and R_x the row passes of projection x, Q = chan_passes "
            "(rtl.microarch.Microarch; all 1 by default: latency = ENC + H/s_ro + 5 + L (K' + H/s_p + 5 + M)). "
            "cycles/step = latency (schedule 'sequential'), or max(ENC + 2, LAY + 1, RO + 2) (schedule "
            "'dataflow': the initiation interval of the slowest pipeline stage: the encoder, a layer or the "
            "readout). Why: the datapath is time-multiplexed, one multiply-accumulate array per projection "
            "with rows/R lanes that takes s input columns per cycle, R passes over its rows (a cycle "
            "between passes stores the pass's results), the element-wise stages take H/Q channels per "
            "cycle, and each stage needs the previous stage's whole vector, so a step is the sum of the "
            "stages' column-group counts plus their start/store/finish cycles and the stream handshakes; "
            "in the dataflow schedule each stage works on its own step, so only the slowest stage's count "
            "(plus the cycles handing its result on and taking the next) recurs.")


def _closed_form(arch: Arch, micro: Microarch | None) -> tuple[int, int, int, int]:
    """``(ENC, LAY, RO, latency)`` of :func:`cycles_formula`."""
    mu = (micro or Microarch()).check(arch)
    H, E, Q = arch.hidden, arch.mix_width, mu.chan_passes
    R = {f: getattr(mu, f + "_passes") for f in FIELDS}
    enc = R["enc"] * (arch.d_in // mu.enc + 1) + 1 if arch.encoder == "linear" else 2
    kp = R["taps"] * (arch.taps // mu.taps + 1) + 1 if arch.taps else 0
    P = (2 * E if arch.mix == "glu" else E) // H
    M = 0 if arch.mix == "none" else P * R["mix"] * (H // mu.mix + 1) + R["mix"] * (E // mu.mix + 1) + 1
    lay = 3 + kp + R["proj"] * (H // mu.proj + 1) + 1 + M + (Q - 1) * (1 + (arch.norm == "affine"))
    ro = R["readout"] * (H // mu.readout + 1) + 1
    return enc, lay, ro, enc + ro + 3 + arch.layers * lay


def cycles_closed_form(arch: Arch, micro: Microarch | None = None) -> int:
    """:func:`cycles_formula`'s cycles per step evaluated: written out independently of the
    components' ``cycles`` on purpose (tests check it equals :func:`rtl.top.cycles_per_step` and the
    simulation)."""
    enc, lay, ro, lat = _closed_form(arch, micro)
    return max(enc + 2, lay + 1, ro + 2) if (micro or Microarch()).dataflow else lat


def latency_closed_form(arch: Arch, micro: Microarch | None = None) -> int:
    """:func:`cycles_formula`'s latency evaluated (equals :func:`rtl.top.latency`)."""
    return _closed_form(arch, micro)[3]
