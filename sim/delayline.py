"""The delay line and its sparse convolution, over a chunk of steps (any array namespace).

Each channel ``c`` keeps the last ``d_max`` delay-line samples in a ring buffer: sample of step
``tau`` lives at ``line[b, c, tau % d_max]`` (what the chip's circular SRAM addressing does).
The convolution reads ``line[c, t - d[c, k]]`` (delay 0 is the sample pushed this step; a read
before step 0 gives 0) and accumulates ``sum_k w[c, k] * sample`` exactly.

For a chunk of ``T_c`` steps the ring is unrolled once into chronological order, the chunk's
samples are appended, and each tap is one gather of a time window per channel (a strided view, no
Python loop over channels or steps); afterwards the last ``d_max`` samples go back into the ring.
A chunk of one step is the streaming case; any chunking gives the same integers.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .quant import array_namespace, device

__all__ = ["conv_chunk", "conv_step"]


def _windows(x, n: int):
    """(B, H, L) -> (B, H, L - n + 1, n) view of every window of ``n`` along the last axis.

    The array API has no sliding-window view; NumPy and torch each have one (no copy)."""
    if isinstance(x, np.ndarray):
        return sliding_window_view(x, n, axis=2)
    return x.unfold(2, n, 1)


def _contiguous(x):
    """``x`` in row-major memory order (a copy if it is a transposed view)."""
    return np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x.contiguous()


def conv_step(line, s, delays, w, t: int):
    """One step (the streaming case), straight from the ring buffer: push ``s`` (B, H) of step
    ``t`` and return the (B, H) tap sums. Delay ``d >= 1`` reads slot ``(t - d) % d_max``; a slot
    never written yet still holds its initial 0, which is the "before step 0" rule."""
    xp = array_namespace(s)
    B, H = s.shape
    dmax = line.shape[-1]
    if dmax:
        ch = xp.arange(H, device=device(s))[:, None]
        past = line[:, ch, (t - delays) % dmax]                              # (B, H, K)
        samples = xp.where(delays == 0, s[:, :, None], past)
        line[:, :, t % dmax] = s
    else:
        samples = s[:, :, None]                                             # taps = 1, delay 0
    return xp.sum(samples * w, axis=-1, dtype=s.dtype)


def conv_chunk(line, s, delays, w, t0: int):
    """Push ``s`` into the delay lines and return the exact tap sums.

    line:   (B, H, d_max) integer ring buffer, updated in place.
    s:      (T_c, B, H) delay-line codes of steps ``t0 .. t0 + T_c - 1``.
    delays: (H, K) int delays in 0..d_max; w: (H, K) int tap weights (same namespace and device).
    Returns (T_c, B, H) accumulators ``sum_k w[c,k] * sample[t - delays[c,k]]`` in ``s``'s dtype;
    the caller guarantees that dtype holds every accumulator (``spec.arch.acc_bound``).
    """
    xp = array_namespace(s)
    Tc, B, H = s.shape
    dmax = line.shape[-1]
    dev = device(s)
    sp = xp.empty((B, H, dmax + Tc), dtype=s.dtype, device=dev)  # chronological: j <-> step t0 - dmax + j
    if dmax:                                                 # unroll the ring: oldest sample first
        p = t0 % dmax
        sp[:, :, :dmax - p] = line[:, :, p:]
        sp[:, :, dmax - p:dmax] = line[:, :, :p]
    # (T, B, H) -> (B, H, T) in two steps (outer swap, then small per-b transposes): ~4x faster
    sp[:, :, dmax:] = xp.permute_dims(_contiguous(xp.permute_dims(s, (1, 0, 2))), (0, 2, 1))
    win = _windows(sp, Tc)                                   # (B, H, dmax+1, T_c): win[b,c,j,t] = sp[b,c,j+t]
    ch = xp.arange(H, device=dev)
    acc = xp.zeros((B, H, Tc), dtype=s.dtype, device=dev)
    for k in range(delays.shape[1]):
        tap = win[:, ch, dmax - delays[:, k], :]             # (B, H, T_c): sample t - d[c,k] of channel c
        tap *= w[None, :, k, None]
        acc += tap
    if dmax:                                                 # the last d_max samples back into the ring
        q = (t0 + Tc) % dmax                                 # slot of the oldest of them
        line[:, :, q:] = sp[:, :, Tc:Tc + dmax - q]
        line[:, :, :q] = sp[:, :, Tc + dmax - q:]
    return _contiguous(xp.permute_dims(_contiguous(xp.permute_dims(acc, (0, 2, 1))), (1, 0, 2)))
