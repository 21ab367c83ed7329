"""Fused recurrences of the training forward: Triton on CUDA, the reference PyTorch code elsewhere.

Two operations over (B, T, H) tensors, time on dim 1:

* :func:`linear_recurrence` ``h_t = a_t h_{t-1} + b_t`` (the float minGRU, ``a = 1 - z``,
  ``b = z hc``) with its own backward, the reverse recurrence
  ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/db_t = g_t``, ``dL/da_t = g_t h_{t-1}``,
  ``dL/dh0 = a_0 g_0``. On CUDA: one Triton kernel each way (:mod:`models.triton_kernels`),
  reading a and b once and writing h once (forward), reading a, h, dL/dh once and writing the two
  gradients once (backward). Elsewhere: :func:`models.scan.linear_scan` (autograd through its
  Hillis-Steele rounds), also the reference the kernel is tested against.
* :func:`sc_state_sequence` the chip's integer SC state update
  (:func:`sim.mingru.state_update`) over T steps. On CUDA: one Triton kernel; elsewhere
  :func:`sim.mingru.state_sequence` itself, the one definition the kernel is tested against bit
  for bit.
* :func:`sc_state_sequence_noisy` the SC update of one chip instance with its non-idealities
  (:func:`sim.mingru.state_update_sc`: mismatch, leakage, charge injection, kT/C), for
  noise-aware training. On CUDA: one Triton kernel in float64 in sim's order of operations
  (instead of a Python loop of a dozen kernel launches per step); elsewhere
  :func:`sim.mingru.state_sequence_sc` itself.

``use_fused(False)`` (a context manager, or a plain call that sets the module switch) makes both
take the reference path also on CUDA: the OLD path of ``benchmarks.bench_train``.
"""
from __future__ import annotations

import importlib.util

import torch

from sim.mingru import state_sequence, state_sequence_sc
from spec.fixedpoint import Format

from .scan import linear_scan

__all__ = ["linear_recurrence", "sc_state_sequence", "sc_state_sequence_noisy", "use_fused", "fused_enabled",
           "triton_available"]

_FUSED = True


class use_fused:
    """``with use_fused(False): ...`` runs the reference paths; ``use_fused(False)`` as a plain
    call switches them for good (until ``use_fused(True)``)."""

    def __init__(self, on: bool = True):
        global _FUSED
        self.prev, _FUSED = _FUSED, bool(on)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _FUSED
        _FUSED = self.prev
        return False


def fused_enabled() -> bool:
    return _FUSED


#: triton installed (found, not imported: CPU-only installs have none, and importing it is slow)
_TRITON = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    return _TRITON


def _tk():
    from . import triton_kernels
    return triton_kernels


def _on_gpu(*xs) -> bool:
    return _FUSED and all(x.is_cuda for x in xs if x is not None) and triton_available()


class _LinearRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        h = _tk().recurrence_fwd(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, gh):
        a, h, h0 = ctx.saved_tensors
        ga, gb, gh0 = _tk().recurrence_bwd(a, h, h0, gh.contiguous())
        return ga, gb, gh0


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All ``h_t`` of ``h_t = a_t h_{t-1} + b_t``, ``h_{-1} = h0`` (default 0).

    ``a``, ``b``: (B, T, H) real (broadcast to one shape, promoted to one dtype); ``h0``: (B, H).
    Returns (B, T, H) in the promoted dtype. Differentiable in ``a``, ``b``, ``h0``. The kernel
    accumulates in fp32 (fp64 for fp64), so bf16 inputs keep an fp32 state between steps.
    """
    if not _on_gpu(a, b, h0) or a.dim() != 3:
        return linear_scan(a, b, h0)
    dt = torch.promote_types(a.dtype, b.dtype)
    a, b = torch.broadcast_tensors(a.to(dt), b.to(dt))
    h0 = None if h0 is None else h0.to(dt).expand(a.shape[0], a.shape[2]).contiguous()
    return _LinearRecurrence.apply(a.contiguous(), b.contiguous(), h0)


def _int32_ok(b_z: int, fmt_h: Format) -> bool:
    """int32 holds every intermediate when k < 2**b_z and |hc - h| < 2**(bits+1):
    |k (hc - h)| + 2**(b_z-1) < 2**(b_z + bits + 2) <= 2**31 (and h + delta, the clip bounds)."""
    return b_z + fmt_h.bits + 2 <= 31


def _codes_fit(k: torch.Tensor, hc: torch.Tensor, h0, b_z: int, fmt_h: Format) -> bool:
    """The bounds the int32 kernel relies on: k in [0, 2**b_z), hc within twice h's range (so
    |hc - h| < 2**(bits+1)), h0 in h's range. One host sync."""
    lo, hi = fmt_h.min_int, fmt_h.max_int
    kmin, kmax = torch.aminmax(k)
    cmin, cmax = torch.aminmax(hc)
    ok = (kmin >= 0) & (kmax < 1 << b_z) & (cmin >= 2 * lo) & (cmax <= 2 * hi)
    if h0 is not None:
        ok = ok & (h0.min() >= lo) & (h0.max() <= hi)
    return bool(ok)


def sc_state_sequence(k: torch.Tensor, hc: torch.Tensor, b_z: int, fmt_h: Format,
                      h0: torch.Tensor | None = None, check: bool = True) -> torch.Tensor:
    """Every state of ``h = sat_h(h + round_h((k (hc - h)) >> b_z))`` (:func:`sim.mingru.state_update`).

    ``k``: (B, T, H) gate codes (0 .. 2**b_z - 1); ``hc``: (B, T, H) candidate codes of ``fmt_h``;
    ``h0``: (B, H) initial state codes (default 0). Integer tensors. Returns the (B, T, H)
    saturated states, int64. Not differentiable (codes).

    On CUDA the Triton kernel computes in int32 when ``b_z + bits + 2 <= 31`` and the codes lie in
    the bounds of :func:`_codes_fit` (checked when ``check``, one host sync; ``check=False``: the
    caller vouches for them), else in int64; the result is the same either way.
    """
    if not _on_gpu(k, hc, h0):
        h0 = torch.zeros_like(hc[:, 0]) if h0 is None else h0.to(hc.dtype)
        return state_sequence(h0, k.movedim(1, 0), hc.movedim(1, 0), b_z=b_z, fmt_h=fmt_h).movedim(0, 1).long()
    narrow = _int32_ok(b_z, fmt_h) and (not check or _codes_fit(k, hc, h0, b_z, fmt_h))
    dt = torch.int32 if narrow else torch.int64
    k, hc = (x.to(dt).contiguous() for x in torch.broadcast_tensors(k, hc))
    h0 = None if h0 is None else h0.to(dt).expand(hc.shape[0], hc.shape[2]).contiguous()
    return _tk().sc_state_sequence(k, hc, h0, b_z, fmt_h).long()


def sc_state_sequence_noisy(k: torch.Tensor, hc: torch.Tensor, b_z: int, fmt_h: Format, *, z_eff=None, leak=None,
                            offset=None, noise=None) -> torch.Tensor:
    """Every state of :func:`sim.mingru.state_update_sc` from ``h = 0``.

    ``k``, ``hc``: (B, T, H) integer gate and candidate codes; ``z_eff`` (H, 2**b_z), ``leak``,
    ``offset`` (H,) float64 (LSB of h) or None; ``noise``: (T, B, H) float64 per-step draws in LSB
    of h (sim's time-major layout) or None. Returns the (B, T, H) saturated states, int64.
    """
    if not _on_gpu(k, hc, z_eff, leak, offset, noise) or (offset is not None and offset.dim() != 1):
        hs = state_sequence_sc(torch.zeros_like(hc[:, 0]), k.movedim(1, 0), hc.movedim(1, 0), b_z=b_z, fmt_h=fmt_h,
                               z_eff=z_eff, leak=leak, offset=offset, noise=noise)
        return hs.movedim(0, 1).long()
    k, hc = (x.contiguous() for x in torch.broadcast_tensors(k, hc))
    z_eff, leak, offset = (None if a is None else a.to(torch.float64).contiguous() for a in (z_eff, leak, offset))
    return _tk().sc_state_sequence_noisy(k, hc, b_z, fmt_h, z_eff=z_eff, leak=leak, offset=offset,
                                         noise=None if noise is None else noise.to(torch.float64).movedim(0, 1))
