"""``Microarch``: how the RTL computes a network, as opposed to what it computes (:class:`spec.arch.Arch`).

Every projection of the network runs on a :class:`rtl.mac.MacLanes` array of one lane per output
row that takes a group of input columns per clock cycle (FINN's SIMD, the inverse of hls4ml's
reuse factor): lane ``j`` multiplies the ``simd`` columns of the group by its ``simd`` weights and
adds the products, through an adder tree, to its exact accumulator. A product of ``N`` columns
then takes ``N / simd`` column cycles instead of ``N``, for ``simd`` times the multipliers, and its
weight memory delivers ``simd`` columns of every lane per read (:class:`rtl.addrmap.AddressMap`
stores them in one word). One field per projection:

=========== ================================================= ==============================
field       projection (columns)                               valid values
=========== ================================================= ==============================
``enc``     encoder ``W_enc x`` (``d_in``)                      divisors of ``d_in``; 1 for an embedding
``taps``    delay-line convolution (``K`` taps)                 divisors of ``K``; 1 without taps
``proj``    gate and candidate ``Wz u``, ``Wh u`` (``H``)        divisors of ``H``
``mix``     mixer passes ``W1 r`` (``H``) and ``W2 m1`` (``E``)   divisors of ``H``; 1 for mix 'none'
``readout`` decoder ``W_out a`` (``H``)                        divisors of ``H``
=========== ================================================= ==============================

Only the timing changes, never the arithmetic: every accumulator is exact (the sum of a group is
exact and so is the sum of the groups), so every microarchitecture gives the same bits as
``sim/``. The default ``Microarch()`` (every field 1, one column per cycle) is the original design,
and its Verilog is the original text. Rows in parallel (fewer lanes than rows, more passes),
a channel factor for the element-wise stages and a dataflow schedule of the layers are not
implemented: every projection has one lane per row, the element-wise stages work on all channels
at once and the layers run one after another.

:func:`rtl.top.cycles_per_step` ``(arch, micro)`` is the cycle model (the sum of the blocks' own
``cycles(arch, micro)``), :func:`cycles_closed_form` the same written out, both checked against
the simulated cycle counts in the tests.
"""
from __future__ import annotations

import dataclasses

from spec.arch import Arch

__all__ = ["Microarch", "MicroarchError", "FIELDS", "columns", "valid_values", "cycles_closed_form",
           "cycles_formula", "mac_multipliers"]

#: The folded projections, in the order of a step.
FIELDS = ("enc", "taps", "proj", "mix", "readout")


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


def valid_values(arch: Arch, field: str) -> list[int]:
    """The ``simd`` values projection ``field`` of ``arch`` accepts: the divisors of its columns."""
    n = columns(arch, field)
    return [1] if n == 0 else [d for d in range(1, n + 1) if n % d == 0]


@dataclasses.dataclass(frozen=True)
class Microarch:
    """Input columns per cycle (``simd``) of each projection (see the module docstring)."""

    enc: int = 1
    taps: int = 1
    proj: int = 1
    mix: int = 1
    readout: int = 1

    def __post_init__(self) -> None:
        for f in FIELDS:
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MicroarchError(f"Microarch.{f} must be an integer >= 1, not {v!r}")

    @property
    def is_default(self) -> bool:
        return self == Microarch()

    def check(self, arch: Arch) -> Microarch:
        """``self`` if ``arch`` takes it; else :class:`MicroarchError` naming, for every bad field,
        the valid values."""
        bad = [f"{f}={getattr(self, f)} (valid: {', '.join(map(str, valid_values(arch, f)))})"
               for f in FIELDS if getattr(self, f) not in valid_values(arch, f)]
        if bad:
            raise MicroarchError(f"microarchitecture not valid for H={arch.hidden} d_in={arch.d_in} K={arch.taps} "
                                 f"encoder={arch.encoder} mix={arch.mix}: " + "; ".join(bad))
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return ",".join(f"{f}={getattr(self, f)}" for f in FIELDS)

    @classmethod
    def parse(cls, text: str | None, arch: Arch | None = None) -> Microarch:
        """From ``"proj=8,mix=8"`` (unnamed fields 1), ``"simd=N"`` (every projection ``N``; with
        ``arch``, each projection the largest of its valid values that is at most ``N``, so
        ``simd=64`` is "all columns at once" everywhere), or ``""``/``None``/``"default"``
        (:class:`Microarch` ``()``). Checked against ``arch`` if given."""
        text = (text or "").strip()
        kw: dict[str, int] = {}
        if text and text != "default":
            for part in text.split(","):
                name, sep, val = part.partition("=")
                name = name.strip()
                if not sep or name not in (*FIELDS, "simd"):
                    raise MicroarchError(f"bad microarchitecture item {part!r}: NAME=INT with NAME one of "
                                         f"{', '.join(FIELDS)} or simd")
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
    projection (encoder H, per layer taps H, gate and candidate 2H, mixer H; readout C). The
    element-wise stages (SC update, normalisation: H each per layer) are not folded and not counted."""
    mu = (micro or Microarch()).check(arch)
    H, L = arch.hidden, arch.layers
    n = H * mu.enc if arch.encoder == "linear" else 0
    n += L * ((H * mu.taps if arch.taps else 0) + 2 * H * mu.proj + (H * mu.mix if arch.mix != "none" else 0))
    return n + arch.n_classes * mu.readout


def cycles_formula() -> str:
    """The closed form of :func:`rtl.top.cycles_per_step` and why (for the README)."""
    return ("cycles/step = ENC + H/s_ro + 5 + L * (K' + H/s_p + 5 + M), with ENC = d_in/s_enc + 2 (linear "
            "encoder) or 2 (embedding), K' = K/s_taps + 2 (0 without taps), M = P*(H/s_mix + 1) + E/s_mix + 2 "
            "with P = E/H (mlp) or 2E/H (glu) passes, M = 0 (mix 'none'); s_x the columns per cycle of "
            "projection x (rtl.microarch.Microarch; all 1 by default). Why: the datapath is time-multiplexed, "
            "one H-lane (C-lane for the readout) multiply-accumulate array per projection that takes s input "
            "columns per cycle, and each stage needs the previous stage's whole vector, so a step is the sum "
            "of the stages' column-group counts plus their start/finish cycles and the stream handshakes.")


def cycles_closed_form(arch: Arch, micro: Microarch | None = None) -> int:
    """:func:`cycles_formula` evaluated: written out independently of the components' ``cycles``
    on purpose (tests check it equals :func:`rtl.top.cycles_per_step` and the simulation)."""
    mu = (micro or Microarch()).check(arch)
    H, E = arch.hidden, arch.mix_width
    enc = arch.d_in // mu.enc + 2 if arch.encoder == "linear" else 2
    kp = arch.taps // mu.taps + 2 if arch.taps else 0
    P = (2 * E if arch.mix == "glu" else E) // H
    M = 0 if arch.mix == "none" else P * (H // mu.mix + 1) + E // mu.mix + 2
    return enc + H // mu.readout + 5 + arch.layers * (kp + H // mu.proj + 5 + M)
