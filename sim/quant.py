"""Fixed-point plumbing of the bit-accurate model: counted requantisation, exact BLAS, real rounding.

Everything here is a thin layer over the shared contract in :mod:`spec.fixedpoint`
(``round_shift``, ``saturate``, ``requantize``, ``to_int64``); nothing re-defines a rounding rule
for integers. :func:`round_real` is the one addition: the same three rules applied to *real*
values (the noisy SC path, :mod:`sim.noise`), exact whenever its input is an integer divided by a
power of two, so that zero noise reproduces the integer contract bit for bit.
"""
from __future__ import annotations

import numpy as np

from spec.fixedpoint import Format, Rounding, round_shift, saturate, to_int64

__all__ = ["SatCounter", "round_real", "ExactGemm"]

_F53 = 2 ** 53


class SatCounter:
    """Counts saturation events per tensor name, optionally only at valid positions.

    ``counts`` is updated in place. ``valid`` is ``None`` (every position counts) or a boolean
    array whose shape is a prefix of the tensors' shapes, e.g. ``(T, B)`` for ``(T, B, H)``
    tensors (padded steps of shorter sequences are not counted). An *event* is one element
    clipped at one rounding point; a tensor produced by two saturating steps (``u``: conv
    requantisation then skip add) can count twice for one element.
    """

    def __init__(self, counts: dict[str, int], valid: np.ndarray | None = None) -> None:
        self.counts = counts
        self.valid = valid

    def _add(self, name: str, n: int, x: np.ndarray, fmt: Format, valid: np.ndarray | None) -> None:
        if not n:
            return
        if valid is not None and not valid.all():
            m = valid.reshape(valid.shape + (1,) * (x.ndim - valid.ndim))
            n = int((((x < fmt.min_int) | (x > fmt.max_int)) & m).sum())
        self.counts[name] = self.counts.get(name, 0) + n

    def sat(self, name: str, x: np.ndarray, fmt: Format, valid: np.ndarray | None = ...) -> np.ndarray:
        """``sat_F(x)``: clip integer codes to ``fmt``, counting clipped elements under ``name``."""
        if x.size == 0 or (x.min() >= fmt.min_int and x.max() <= fmt.max_int):
            return x                       # fast path (two reductions): nothing to clip or count
        y, n = saturate(x, fmt)
        self._add(name, n, x, fmt, self.valid if valid is ... else valid)
        return y

    def q(self, name: str, x: np.ndarray, x_frac: int, fmt: Format, valid: np.ndarray | None = ...) -> np.ndarray:
        """``q_F(x, x_frac)``: round to ``fmt.frac`` by ``fmt``'s rule, then saturate (counted)."""
        return self.sat(name, round_shift(x, x_frac - fmt.frac, fmt.rounding), fmt, valid)


def round_real(x: np.ndarray, rounding: Rounding | str, dtype=np.int64) -> np.ndarray:
    """Round real values to integers by the contract's rule; returns ``dtype`` (int64).

    ``floor``: floor(x); ``half_up``: floor(x + 1/2); ``half_even``: nearest, ties to even.
    For ``x = n / 2**s`` with integer ``|n| < 2**52`` every operation is exact in float64, so
    ``round_real(n * 2.0**-s, r) == round_shift(n, s, r)`` bit for bit.
    """
    rounding = Rounding(rounding)
    if rounding is Rounding.FLOOR:
        r = np.floor(x)
    elif rounding is Rounding.HALF_UP:
        r = np.floor(x + 0.5)
    else:
        r = np.rint(x)
    return r.astype(dtype)


class ExactGemm:
    """``x @ W.T + (b << shift)`` on integer codes, computed in float64 BLAS, exact.

    The caller passes the proven bound of ``|accumulator|`` (``spec.arch.acc_bound``); the
    constructor refuses anything at or above 2**53, where float64 stops holding every integer.
    Inside that bound every partial sum of the BLAS kernel is an integer below 2**53 (each
    partial sum is bounded by the same sum of magnitudes), so the result is the exact integer
    and converting it back is a plain cast. ``check=True`` converts with :func:`spec.fixedpoint.to_int64`
    instead, which re-verifies integrality at run time (slower; for debugging).
    """

    def __init__(self, w: np.ndarray, bias_aligned: np.ndarray | None, bound: int, *, what: str,
                 check: bool = False, out_dtype=np.int64) -> None:
        if bound >= _F53:
            raise ValueError(f"{what}: accumulator bound {bound} >= 2**53; float64 BLAS would not be exact")
        self.what = what
        self.bound = bound
        self.wt = np.ascontiguousarray(np.asarray(w, dtype=np.int64).T.astype(np.float64))
        self.b = None if bias_aligned is None else np.asarray(bias_aligned, dtype=np.int64).astype(np.float64)
        self.check = check
        self.out_dtype = np.dtype(out_dtype)
        if bound > np.iinfo(self.out_dtype).max:
            raise ValueError(f"{what}: accumulator bound {bound} does not fit {self.out_dtype}")

    @property
    def n_out(self) -> int:
        return self.wt.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x``: (..., n_in) integer codes; returns (..., n_out) exact accumulators (``out_dtype``)."""
        lead = x.shape[:-1]
        xf = x.reshape(-1, x.shape[-1]).astype(np.float64)
        acc = xf @ self.wt
        if self.b is not None:
            acc += self.b
        acc = to_int64(acc).astype(self.out_dtype, copy=False) if self.check else acc.astype(self.out_dtype)
        return acc.reshape(lead + (self.n_out,))
