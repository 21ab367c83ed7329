"""Fixed-point plumbing of the integer engine: array namespaces, counted requantisation, exact GEMM.

The engine (:mod:`sim.network`) is written once against an *array namespace*
(:func:`array_api_compat.array_namespace`): NumPy arrays run it as ``sim/``, torch tensors (CPU or
GPU) run the very same code as the trainer's hardware-aware evaluation. Nothing in ``sim/`` imports
torch; the namespace comes from the input array.

Everything here is a thin layer over the shared contract in :mod:`spec.fixedpoint`
(``round_shift``, ``saturate``, ``to_int64``); nothing re-defines a rounding rule for integers.
:func:`round_real` is the one addition: the same three rules applied to *real* values (the noisy
SC path, :mod:`sim.noise`), exact whenever its input is an integer divided by a power of two, so
that zero noise reproduces the integer contract bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from spec.fixedpoint import Format, Rounding, round_shift, saturate, to_int64

__all__ = ["SatCounter", "round_real", "ExactGemm", "OnDevice", "array_namespace", "device", "is_numpy_namespace",
           "xp_dtype"]

_F53 = 2 ** 53


def xp_dtype(xp, dt) -> object:
    """The dtype of namespace ``xp`` named like NumPy dtype ``dt`` (e.g. int32 -> ``xp.int32``);
    a dtype of another library (``torch.int64``) is taken as it is."""
    try:
        name = np.dtype(dt).name
    except TypeError:
        return dt
    return getattr(xp, name)


class OnDevice:
    """NumPy constants, converted once per (namespace, device) and cached.

    The engine keeps its parameters as NumPy arrays; a run on torch tensors asks for them on the
    input's device (``get(xp, dev)``) and gets the same integers there.
    """

    def __init__(self, **arrays: np.ndarray | None) -> None:
        self.arrays = arrays
        self._cache: dict[tuple[str, str], dict] = {}

    def get(self, xp, dev) -> dict:
        if is_numpy_namespace(xp):
            return self.arrays
        key = (xp.__name__, str(dev))
        if key not in self._cache:
            self._cache[key] = {k: None if v is None else xp.asarray(v, device=dev) for k, v in self.arrays.items()}
        return self._cache[key]


class SatCounter:
    """Counts saturation events per tensor name, optionally only at valid positions.

    ``counts`` is updated in place. ``valid`` is ``None`` (every position counts) or a boolean
    array whose shape is a prefix of the tensors' shapes, e.g. ``(T, B)`` for ``(T, B, H)``
    tensors (padded steps of shorter sequences are not counted). An *event* is one element
    clipped at one rounding point; a tensor produced by two saturating steps (``u``: conv
    requantisation then skip add) can count twice for one element.

    ``steps``: optionally a dict that also receives the events per position of the two leading
    axes (``(T, B)`` int64 counts per name, for ``(T, B, ...)`` tensors): the per-step counts the
    co-simulation compares with the RTL's saturation flags. Created on a name's first event.
    """

    def __init__(self, counts: dict[str, int], valid=None, steps: dict | None = None) -> None:
        self.counts = counts
        self.valid = valid
        self.steps = steps

    def _add(self, name: str, n: int, x, fmt: Format, valid) -> None:
        if not n:
            return
        masked = valid is not None and not bool(valid.all())
        if masked or self.steps is not None:
            xp = array_namespace(x)
            hit = (x < fmt.min_int) | (x > fmt.max_int)
            if masked:
                hit = hit & valid.reshape(tuple(valid.shape) + (1,) * (x.ndim - valid.ndim))
                n = int(xp.sum(xp.astype(hit, xp.int64)))
            if self.steps is not None:
                hit = xp.astype(hit, xp.int64)
                self.add_steps(name, xp.sum(hit, axis=tuple(range(2, x.ndim))) if x.ndim > 2 else hit)
        self.counts[name] = self.counts.get(name, 0) + n

    def add_steps(self, name: str, per: object) -> None:
        """Add ``per`` ((T, B) event counts) to the per-step counts of ``name`` (if kept)."""
        if self.steps is None:
            return
        self.steps[name] = per if name not in self.steps else self.steps[name] + per

    def sat(self, name: str, x, fmt: Format, valid=...):
        """``sat_F(x)``: clip integer codes to ``fmt``, counting clipped elements under ``name``."""
        if math.prod(x.shape) == 0 or (x.min() >= fmt.min_int and x.max() <= fmt.max_int):
            return x                       # fast path (two reductions): nothing to clip or count
        y, n = saturate(x, fmt)
        self._add(name, n, x, fmt, self.valid if valid is ... else valid)
        return y

    def q(self, name: str, x, x_frac: int, fmt: Format, valid=...):
        """``q_F(x, x_frac)``: round to ``fmt.frac`` by ``fmt``'s rule, then saturate (counted)."""
        return self.sat(name, round_shift(x, x_frac - fmt.frac, fmt.rounding), fmt, valid)


def round_real(x, rounding: Rounding | str, dtype=np.int64):
    """Round real values to integers by the contract's rule; returns ``dtype`` (NumPy name).

    ``floor``: floor(x); ``half_up``: floor(x + 1/2); ``half_even``: nearest, ties to even.
    For ``x = n / 2**s`` with integer ``|n| < 2**52`` every operation is exact in float64, so
    ``round_real(n * 2.0**-s, r) == round_shift(n, s, r)`` bit for bit.
    """
    xp = array_namespace(x)
    rounding = Rounding(rounding)
    if rounding is Rounding.FLOOR:
        r = xp.floor(x)
    elif rounding is Rounding.HALF_UP:
        r = xp.floor(x + 0.5)
    else:
        r = xp.round(x)                    # ties to even in NumPy and torch alike
    return xp.astype(r, xp_dtype(xp, dtype))


class ExactGemm:
    """``x @ W.T + (b << shift)`` on integer codes, computed in float64 GEMM, exact.

    The caller passes the proven bound of ``|accumulator|`` (``spec.arch.acc_bound``); the
    constructor refuses anything at or above 2**53, where float64 stops holding every integer.
    Inside that bound every partial sum of the GEMM kernel is an integer below 2**53 (each
    partial sum is bounded by the same sum of magnitudes; an FMA rounds nothing either), so the
    result is the exact integer in any summation order, on any device, and converting it back is a
    plain cast. ``check=True`` converts with :func:`spec.fixedpoint.to_int64` instead, which
    re-verifies integrality at run time (slower; for debugging).
    """

    def __init__(self, w: np.ndarray, bias_aligned: np.ndarray | None, bound: int, *, what: str,
                 check: bool = False, out_dtype=np.int64) -> None:
        if bound >= _F53:
            raise ValueError(f"{what}: accumulator bound {bound} >= 2**53; float64 GEMM would not be exact")
        self.what = what
        self.bound = bound
        self.check = check
        self.out_dtype = np.dtype(out_dtype)
        if bound > np.iinfo(self.out_dtype).max:
            raise ValueError(f"{what}: accumulator bound {bound} does not fit {self.out_dtype}")
        wt = np.ascontiguousarray(np.asarray(w, dtype=np.int64).T.astype(np.float64))
        b = None if bias_aligned is None else np.asarray(bias_aligned, dtype=np.int64).astype(np.float64)
        self.params = OnDevice(wt=wt, b=b)

    @property
    def n_out(self) -> int:
        return self.params.arrays["wt"].shape[1]

    def __call__(self, x):
        """``x``: (..., n_in) integer codes; returns (..., n_out) exact accumulators (``out_dtype``)."""
        xp = array_namespace(x)
        p = self.params.get(xp, device(x))
        lead = tuple(x.shape[:-1])
        acc = xp.astype(xp.reshape(x, (-1, x.shape[-1])), xp.float64) @ p["wt"]
        if p["b"] is not None:
            acc += p["b"]
        acc = xp.astype(to_int64(acc), xp_dtype(xp, self.out_dtype)) if self.check else \
            xp.astype(acc, xp_dtype(xp, self.out_dtype))
        return xp.reshape(acc, lead + (self.n_out,))
