"""Fixed-point formats, rounding and saturation: the one definition every layer uses.

A :class:`Format` says how an integer code ``q`` stands for a real value: ``value = q * 2**-frac``,
with ``q`` restricted to ``bits`` two's-complement bits (``signed``) or ``bits`` plain bits.
Converting *into* a format rounds by the format's :class:`Rounding` rule and then saturates to
its range (the only overflow rule); every saturation is counted, never hidden.

The integer operations below (:func:`round_shift`, :func:`requantize`, :func:`saturate`) work
on NumPy ``int64`` arrays and on ``torch.int64`` tensors alike (they use only ``>>``, ``&``,
``+`` and comparisons), so the NumPy model in ``sim/`` and the PyTorch model in ``models/``
run literally the same code. The RTL generator in ``rtl/`` reads the same :class:`Format`
objects and emits the same shift/round/clip structure in gates.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "Rounding", "Format", "FormatError", "round_shift", "requantize", "saturate",
    "quantize_real", "align", "to_int64", "storage_dtype",
]


class FormatError(ValueError):
    """A format, or a value checked against one, is invalid."""


class Rounding(str, enum.Enum):
    """How a value is rounded when low-order fraction bits are dropped.

    ======== ===================================================== ==================
    rule     definition for ``x / 2**s`` (``x`` integer)           RTL cost
    ======== ===================================================== ==================
    floor    largest integer <= x/2**s (arithmetic shift)          none
    half_up  floor(x/2**s + 1/2): ties go towards +inf             one adder
    half_even nearest, ties to the even neighbour (IEEE default)   adder + tie logic
    ======== ===================================================== ==================
    """

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


_NAME_RE = re.compile(r"^([su])(\d+)f(-?\d+)$")


@dataclasses.dataclass(frozen=True)
class Format:
    """A fixed-point format: ``value = code * 2**-frac``.

    Parameters
    ----------
    signed: two's complement if true, else unsigned.
    bits:   total bits of the code, sign bit included (1..62).
    frac:   fraction bits (may be negative or exceed ``bits``).
    rounding: rule applied when a wider value is converted into this format.

    The overflow rule is always *saturate* (clip to the range and count it).
    The short name ``s16f10`` means signed, 16 bits, 10 fraction bits.
    """

    signed: bool
    bits: int
    frac: int
    rounding: Rounding = Rounding.HALF_UP

    def __post_init__(self) -> None:
        if not isinstance(self.signed, bool):
            raise FormatError(f"signed must be a bool, not {self.signed!r}")
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 62:
            raise FormatError(f"bits must be an integer in 1..62, not {self.bits!r}")
        if self.signed and self.bits < 2:
            raise FormatError("a signed format needs at least 2 bits (sign + magnitude)")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool) or abs(self.frac) > 62:
            raise FormatError(f"frac must be an integer in -62..62, not {self.frac!r}")
        try:
            object.__setattr__(self, "rounding", Rounding(self.rounding))
        except ValueError:
            raise FormatError(
                f"rounding must be one of {[r.value for r in Rounding]}, not {self.rounding!r}") from None

    # -- range ---------------------------------------------------------------------------------
    @property
    def min_int(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def lsb(self) -> Fraction:
        """Value of one code step, exactly."""
        return Fraction(1, 1 << self.frac) if self.frac >= 0 else Fraction(1 << -self.frac)

    @property
    def min_value(self) -> Fraction:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> Fraction:
        return self.max_int * self.lsb

    @property
    def name(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}f{self.frac}"

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return f"{self.name}({self.rounding.value})"

    def contains(self, codes: Any) -> bool:
        a = np.asarray(codes)
        return bool(a.size == 0 or (a.min() >= self.min_int and a.max() <= self.max_int))

    def with_(self, **changes: Any) -> "Format":
        return dataclasses.replace(self, **changes)

    # -- (de)serialisation --------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"signed": self.signed, "bits": self.bits, "frac": self.frac, "rounding": self.rounding.value}

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "format") -> "Format":
        if isinstance(obj, str):
            return cls.parse(obj)
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: expected an object with signed/bits/frac/rounding, got {obj!r}")
        missing = {"signed", "bits", "frac"} - obj.keys()
        if missing:
            raise FormatError(f"{where}: missing field(s) {sorted(missing)}")
        extra = obj.keys() - {"signed", "bits", "frac", "rounding"}
        if extra:
            raise FormatError(f"{where}: unknown field(s) {sorted(extra)}")
        try:
            return cls(obj["signed"], obj["bits"], obj["frac"], obj.get("rounding", "half_up"))
        except FormatError as e:
            raise FormatError(f"{where}: {e}") from None

    @classmethod
    def parse(cls, name: str, rounding: Rounding | str = Rounding.HALF_UP) -> "Format":
        """``Format.parse("s16f10")``."""
        m = _NAME_RE.match(name)
        if not m:
            raise FormatError(f"format name must look like 's16f10' or 'u6f6', not {name!r}")
        # refused before int(): a 5000-digit field must fail the same way whatever the interpreter's
        # int/str digit limit is (another library may have lifted it)
        if max(len(m.group(2)), len(m.group(3))) > 4:
            raise FormatError(f"format name {name[:24]!r}...: bits and frac have at most 4 digits")
        return cls(m.group(1) == "s", int(m.group(2)), int(m.group(3)), Rounding(rounding))


# ---------------------------------------------------------------------------------------------
# Integer operations, shared by NumPy (sim/) and PyTorch (models/).
# ---------------------------------------------------------------------------------------------
def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _where(c, a, b):
    if _is_torch(c):
        import torch
        return torch.where(c, a, b)
    return np.where(c, a, b)


def _clip(x, lo: int, hi: int):
    if _is_torch(x):
        return x.clamp(lo, hi)
    return np.clip(x, lo, hi)


def _count(mask) -> int:
    return int(mask.sum())


def to_int64(x):
    """Exact conversion of an integer-valued array (e.g. a float64 BLAS result) to int64.

    Raises if any element is not an integer or lies beyond 2**53, where float64 stops being exact.
    """
    if _is_torch(x):
        import torch
        if x.dtype == torch.int64:
            return x
        if x.dtype.is_floating_point:
            if x.numel() and (x.abs().max() >= 2.0 ** 53 or (x != x.round()).any()):
                raise FormatError("float tensor is not an exact integer below 2**53")
        return x.to(torch.int64)
    a = np.asarray(x)
    if a.dtype == np.int64:
        return a
    if a.dtype.kind == "f":
        if a.size and (np.abs(a).max() >= 2.0 ** 53 or not np.array_equal(a, np.round(a))):
            raise FormatError("float array is not an exact integer below 2**53")
    return a.astype(np.int64)


def round_shift(x, s: int, rounding: Rounding | str):
    """Exact ``x / 2**s`` rounded by ``rounding``, for integer ``x`` and ``s >= 0``.

    Negative ``s`` multiplies by ``2**-s`` exactly.
    """
    rounding = Rounding(rounding)
    if s <= 0:
        return x << (-s) if s < 0 else x
    if rounding is Rounding.FLOOR:
        return x >> s
    if rounding is Rounding.HALF_UP:
        return (x + (1 << (s - 1))) >> s
    q = x >> s
    r = x & ((1 << s) - 1)
    half = 1 << (s - 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up.to(q.dtype) if _is_torch(q) else q + up.astype(q.dtype)


def saturate(x, fmt: Format):
    """Clip integer codes to ``fmt``'s range. Returns ``(clipped, number_of_saturations)``."""
    n = _count((x < fmt.min_int) | (x > fmt.max_int))
    return (_clip(x, fmt.min_int, fmt.max_int) if n else x), n


def requantize(x, x_frac: int, fmt: Format):
    """Convert integer ``x`` (value ``x * 2**-x_frac``) into ``fmt``: round, then saturate.

    Returns ``(codes, number_of_saturations)``.
    """
    return saturate(round_shift(x, x_frac - fmt.frac, fmt.rounding), fmt)


def align(x, x_frac: int, to_frac: int):
    """Exactly re-express integer ``x`` at a finer fraction ``to_frac >= x_frac`` (left shift)."""
    if to_frac < x_frac:
        raise FormatError(f"cannot align fraction {x_frac} to coarser {to_frac} without rounding")
    return x << (to_frac - x_frac) if to_frac > x_frac else x


def quantize_real(x, fmt: Format):
    """Round real values (float arrays) to codes of ``fmt``; returns ``(int64 codes, n_saturated)``.

    Used at the boundary float -> fixed (export, input conversion). The rounding is applied to
    ``x * 2**frac`` exactly as :func:`round_shift` would on an integer with infinite fraction.
    """
    scale = 2.0 ** fmt.frac
    if _is_torch(x):
        import torch
        v = x.to(torch.float64) * scale
        if fmt.rounding is Rounding.FLOOR:
            q = torch.floor(v)
        elif fmt.rounding is Rounding.HALF_UP:
            q = torch.floor(v + 0.5)
        else:
            q = torch.round(v)  # ties to even
        if not torch.isfinite(q).all():
            raise FormatError("cannot quantise NaN or infinite values")
        q = q.clamp(-(2.0 ** 62), 2.0 ** 62).to(torch.int64)
    else:
        v = np.asarray(x, dtype=np.float64) * scale
        if fmt.rounding is Rounding.FLOOR:
            q = np.floor(v)
        elif fmt.rounding is Rounding.HALF_UP:
            q = np.floor(v + 0.5)
        else:
            q = np.round(v)  # numpy rounds ties to even
        if not np.all(np.isfinite(q)):
            raise FormatError("cannot quantise NaN or infinite values")
        q = np.clip(q, -(2.0 ** 62), 2.0 ** 62).astype(np.int64)
    return saturate(q, fmt)


def storage_dtype(fmt: Format) -> np.dtype:
    """Smallest NumPy integer dtype that holds every code of ``fmt``."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= fmt.min_int and fmt.max_int <= info.max:
            return np.dtype(dt)
    raise FormatError(f"{fmt.name} does not fit in int64")  # pragma: no cover - bits <= 62
