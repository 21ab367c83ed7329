"""Rounding, saturation and gate quantisation in gates, generated from :class:`spec.fixedpoint.Format`.

Amaranth 0.5 has no fixed-point type, so every conversion between formats goes through these
helpers. They build combinational expressions with exactly the structure of the integer
operations in :mod:`spec.fixedpoint` (``round_shift``, ``saturate``, ``requantize``) and
:func:`spec.arch.gate_code`, so the RTL and the NumPy model agree by construction:

============ =====================================================================
rule         gates for ``round(x / 2**s)``
============ =====================================================================
floor        ``x >> s`` (arithmetic shift of a signed value)
half_up      ``(x + 2**(s-1)) >> s``
half_even    ``q = x >> s``; ``r = x[:s]``; ``q + (r > half | (r == half & q[0]))``
============ =====================================================================

Saturation clips to the format's range and raises a flag (the NumPy model counts the same
events). Amaranth arithmetic never overflows (widths grow), but assignment truncates, so every
value is clipped before it is stored in a register of the target format.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Shape, Value, signed, unsigned

from spec.arch import acc_bound, acc_frac
from spec.fixedpoint import Format, Rounding

__all__ = ["shape_of", "round_shift", "saturate", "requantize", "gate_code", "acc_shape",
           "signed_bits_for", "any_of", "align_bias"]


def shape_of(fmt: Format) -> Shape:
    """Amaranth shape that stores a code of ``fmt``."""
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def signed_bits_for(bound: int) -> int:
    """Bits of a signed value that holds every integer in ``[-bound, bound]``."""
    return max(2, int(bound).bit_length() + 1)


def acc_shape(n_terms: int, in_fmt: Format, w_fmt: Format, bias: Format | None = None,
              frac: int | None = None) -> Shape:
    """Signed shape of an exact accumulator, sized by :func:`spec.arch.acc_bound`."""
    return signed(signed_bits_for(acc_bound(n_terms, in_fmt, w_fmt, bias, frac)))


def round_shift(x: Value, s: int, rounding: Rounding | str) -> Value:
    """``round(x / 2**s)`` by ``rounding`` (``s <= 0`` multiplies by ``2**-s`` exactly)."""
    rounding = Rounding(rounding)
    x = Value.cast(x)
    if s < 0:
        return x << (-s)
    if s == 0:
        return x
    if rounding is Rounding.FLOOR:
        return x >> s
    if rounding is Rounding.HALF_UP:
        return (x + (1 << (s - 1))) >> s
    # half_even
    q = x >> s
    r = x[:s]
    half = 1 << (s - 1)
    up = (r > half) | ((r == half) & q[0])
    return q + up


def saturate(x: Value, fmt: Format) -> tuple[Value, Value]:
    """Clip ``x`` to ``fmt``'s range. Returns ``(value of shape_of(fmt), saturation flag)``."""
    x = Value.cast(x)
    lo, hi = fmt.min_int, fmt.max_int
    shape = shape_of(fmt)
    xs = x.shape()
    # skip comparisons that can never be true (keeps the Verilog small)
    x_lo = -(1 << (xs.width - 1)) if xs.signed else 0
    x_hi = (1 << (xs.width - 1)) - 1 if xs.signed else (1 << xs.width) - 1
    over = (x > hi) if x_hi > hi else Const(0, 1)
    under = (x < lo) if x_lo < lo else Const(0, 1)
    clipped = Mux(over, Const(hi, shape), Mux(under, Const(lo, shape), x))
    narrow = clipped[:fmt.bits]
    return (narrow.as_signed() if fmt.signed else narrow), (over | under)


def requantize(x: Value, x_frac: int, fmt: Format) -> tuple[Value, Value]:
    """``q_fmt(x, x_frac)``: round ``x * 2**-x_frac`` to ``fmt.frac`` by ``fmt.rounding``, saturate."""
    return saturate(round_shift(x, x_frac - fmt.frac, fmt.rounding), fmt)


def gate_code(acc: Value, frac: int, bits: int, rounding: Rounding | str) -> Value:
    """Hard-sigmoid gate code ``k = clip(round(acc / 2**(frac-bits+2)) + 2**(bits-1), 0, 2**bits-1)``.

    Same definition as :func:`spec.arch.gate_code`; the clip is the hard sigmoid itself, not an
    overflow, so it raises no saturation flag. Returns an ``unsigned(bits)`` value.
    """
    s = frac - bits + 2
    if s < 0:
        raise ValueError(f"gate accumulator has {frac} fraction bits; needs >= {bits - 2}")
    k = round_shift(acc, s, rounding) + (1 << (bits - 1))
    top = (1 << bits) - 1
    return Mux(k < 0, 0, Mux(k > top, top, k))[:bits]


def any_of(flags) -> Value:
    """OR of a list of 1-bit flags (0 for an empty list)."""
    flags = list(flags)
    return Cat(*flags).any() if flags else Const(0, 1)


def mul_frac(a: Format, b: Format) -> int:
    """Fraction bits of a product of codes of ``a`` and ``b``."""
    return acc_frac(a, b)


def align_bias(b: Value, bias: Format, to_frac: int) -> Value:
    """Bias aligned to an accumulator with ``to_frac`` fraction bits: ``b << (to_frac - bias.frac)``."""
    s = to_frac - bias.frac
    if s < 0:
        raise ValueError(f"bias with {bias.frac} fraction bits cannot align to {to_frac} by a left shift")
    return Value.cast(b) << s
