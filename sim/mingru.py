"""The minGRU core of the chip: gate code, SC state update, output comparator.

This is the one place where the state update lives. The exact row of the README table::

    h = sat_h(h + round_h((k * (hc - h)) >> b_z))          i.e.  h + z (hc - h),  z = k / 2**b_z

is :func:`state_update`. :func:`state_update_sc` is the same update with the switched-capacitor
non-idealities of :mod:`sim.noise` (all in LSB of ``h``, real-valued), rounded once by ``h``'s rule
at the same point; with no non-ideality it returns exactly what :func:`state_update` returns.

Likewise :func:`gate` and :func:`heaviside` take optional offsets/noise that are added *before*
the contract's rounding/decision point; with ``None`` they are the integer contract itself
(:func:`spec.arch.gate_code`, ``h > 0``), with zeros the real path gives the same bits.

Every function works on NumPy arrays or torch tensors (any array namespace; the non-ideality arrays
must be of the same kind, on the same device): the noise-aware training of ``models/`` runs
:func:`state_sequence_sc` on torch tensors, so the SC update's physics on the LSB grid is defined
here once.
"""
from __future__ import annotations

import numpy as np

from spec.arch import gate_code
from spec.fixedpoint import Format, Rounding, round_shift

from .quant import array_namespace, device, round_real

__all__ = ["state_update", "state_sequence", "state_update_sc", "state_sequence_sc", "gate", "heaviside"]


def state_update(h: np.ndarray, k: np.ndarray, hc: np.ndarray, *, b_z: int, fmt_h: Format
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One step of the SC state update, exactly the README row
    ``h = sat_h(h + round_h((k * (hc - h)) >> b_z))``.

    ``h``, ``hc``: integer codes of ``fmt_h``; ``k``: integer gate codes (0 .. 2**b_z - 1); NumPy
    arrays or torch tensors (any array namespace).
    Returns ``(h_new, h_unsat)``: the saturated new state and the value before saturation
    (``h_new != h_unsat`` marks the saturation events).
    """
    h_unsat = h + round_shift(k * (hc - h), b_z, fmt_h.rounding)
    return _sat(h_unsat, fmt_h), h_unsat


def _ns(x):
    """The array namespace of ``x``: NumPy itself for NumPy arrays (NumPy >= 2 has the array-API
    functions used here; skipping the compat wrappers keeps the per-step loops fast)."""
    return np if isinstance(x, np.ndarray) else array_namespace(x)


def _sat(x, fmt: Format):
    """Clip to ``fmt`` (what ``spec.fixedpoint.saturate`` returns, without its count: the callers
    count in bulk, per chunk, from ``h_unsat``)."""
    if isinstance(x, np.ndarray):          # two ufuncs: faster than np.clip on small arrays
        return np.minimum(np.maximum(x, fmt.min_int), fmt.max_int)
    return array_namespace(x).clip(x, fmt.min_int, fmt.max_int)


def state_sequence(h0, k, hc, *, b_z: int, fmt_h: Format, out=None):
    """Every state of :func:`state_update` over the leading (time) axis of ``k``, ``hc``.

    ``h0``: (...) initial state; ``k``, ``hc``: (T, ...) gate and candidate codes. Returns the
    (T, ...) saturated states (into ``out`` if given). The only loop over time of the engine: every
    step depends on the one before, element by element.
    """
    xp = array_namespace(hc)
    hs = xp.empty(hc.shape, dtype=hc.dtype, device=device(hc)) if out is None else out
    h = h0
    for t in range(hc.shape[0]):
        h, _ = state_update(h, k[t], hc[t], b_z=b_z, fmt_h=fmt_h)
        hs[t] = h
    return hs


def state_update_sc(h: np.ndarray, k: np.ndarray, hc: np.ndarray, *, b_z: int, fmt_h: Format,
                    z_eff: np.ndarray | None = None, leak: np.ndarray | None = None,
                    offset: np.ndarray | float | None = None, noise: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The SC state update with non-idealities, on the LSB grid of ``h``::

        h_held = leak * h                                      (decay while held, leak = exp(-T/RC))
        delta  = (h_held - h) + z(k) * (hc - h_held) + offset + noise
        h_new  = sat_h(h + round_h(delta))

    ``z(k) = z_eff[c, k]`` (per channel, per code; mismatch) or ``k / 2**b_z``; ``offset`` is a
    static per-channel shift (charge injection), ``noise`` a per-step draw (kT/C), both in LSB.
    With every argument ``None`` (or ideal: ``z_eff = k/2**b_z``, ``leak = 1``, zeros)
    ``delta = k (hc - h) / 2**b_z`` exactly in float64 and the result equals :func:`state_update`
    bit for bit. Rounding the *increment* (not ``h + delta``) keeps ``half_even`` identical too.
    """
    xp = _ns(h)
    hf = xp.astype(h, xp.float64)
    if leak is None:
        held, delta = hf, 0.0
    else:
        held = hf * leak
        delta = held - hf
    if z_eff is None:
        z = xp.astype(k, xp.float64) * (1.0 / (1 << b_z))
    else:                                                # (..., H) gather of each channel's table
        z = z_eff[xp.arange(z_eff.shape[0], device=device(z_eff)), k]
    delta = delta + z * (hc - held)
    if offset is not None:
        delta = delta + offset
    if noise is not None:
        delta = delta + noise
    lim = 2.0 ** (fmt_h.bits + 1)          # beyond this h saturates anyway; keeps the cast in range
    h_unsat = h + round_real(xp.clip(delta, -lim, lim), fmt_h.rounding, h.dtype)
    return _sat(h_unsat, fmt_h), h_unsat


def state_sequence_sc(h0, k, hc, *, b_z: int, fmt_h: Format, z_eff=None, leak=None, offset=None, noise=None,
                      out=None):
    """Every state of :func:`state_update_sc` over the leading (time) axis of ``k``, ``hc``.

    ``h0``: (..., H) initial state; ``k``, ``hc``: (T, ..., H) gate and candidate codes; ``noise``:
    (T, ..., H) per-step draws (LSB of ``h``) or None; ``z_eff``, ``leak``, ``offset``: the chip's
    static arrays (see :func:`state_update_sc`). Returns the (T, ..., H) saturated states (into
    ``out`` if given), in ``hc``'s dtype. With no non-ideality: :func:`state_sequence` bit for bit.
    """
    xp = array_namespace(hc)
    hs = xp.empty(hc.shape, dtype=hc.dtype, device=device(hc)) if out is None else out
    h = h0
    for t in range(hc.shape[0]):                         # every step depends on the one before
        h, _ = state_update_sc(h, k[t], hc[t], b_z=b_z, fmt_h=fmt_h, z_eff=z_eff, leak=leak, offset=offset,
                               noise=None if noise is None else noise[t])
        hs[t] = h
    return hs


def gate(acc: np.ndarray, frac: int, bits: int, rounding: Rounding | str, *,
         offset: np.ndarray | float | None = None, noise: np.ndarray | None = None, dtype=np.int64) -> np.ndarray:
    """Gate code ``k`` from the exact accumulator ``acc`` (value ``acc * 2**-frac``).

    Without offset/noise: :func:`spec.arch.gate_code` (the contract). With them (in units of the
    gate code's LSB, i.e. of ``z``'s 2**-bits, input-referred comparator offset and noise of the
    digitiser): ``k = clip(round(acc / 2**s + offset + noise) + 2**(bits-1), 0, 2**bits - 1)``,
    ``s = frac - bits + 2``; exact for zero offset/noise. ``dtype``: of the real path's codes.
    """
    if offset is None and noise is None:
        return gate_code(acc, frac, bits, rounding)
    xp = _ns(acc)
    s = frac - bits + 2
    x = xp.astype(acc, xp.float64) * (2.0 ** -s)
    if offset is not None:
        x = x + offset
    if noise is not None:
        x = x + noise
    lim = 2.0 ** (bits + 1)                # beyond this k clips anyway; keeps the cast in range
    k = round_real(xp.clip(x, -lim, lim), rounding, dtype) + (1 << (bits - 1))
    return xp.clip(k, 0, (1 << bits) - 1)


def heaviside(h: np.ndarray, f_out: int, *, offset: np.ndarray | float | None = None,
              noise: np.ndarray | None = None) -> np.ndarray:
    """Comparator output ``o = (h > 0) << f_out`` (value 1.0 or 0 in a format with ``f_out``
    fraction bits), in ``h``'s dtype. ``offset``/``noise`` (LSB of ``h``) are added to ``h`` before the
    decision."""
    if offset is None and noise is None:
        xp = array_namespace(h)
        return xp.astype(h > 0, h.dtype) << f_out
    xp = _ns(h)
    x = xp.astype(h, xp.float64)
    if offset is not None:
        x = x + offset
    if noise is not None:
        x = x + noise
    return xp.astype(x > 0, h.dtype) << f_out
