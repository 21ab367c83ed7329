"""The delay line and its sparse convolution, over a chunk of steps.

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

__all__ = ["conv_chunk"]


def conv_chunk(line: np.ndarray, s: np.ndarray, delays: np.ndarray, w: np.ndarray, t0: int) -> np.ndarray:
    """Push ``s`` into the delay lines and return the exact tap sums.

    line:   (B, H, d_max) integer ring buffer, updated in place.
    s:      (T_c, B, H) delay-line codes of steps ``t0 .. t0 + T_c - 1``.
    delays: (H, K) int delays in 0..d_max; w: (H, K) int tap weights.
    Returns (T_c, B, H) accumulators ``sum_k w[c,k] * sample[t - delays[c,k]]`` in ``s``'s dtype;
    the caller guarantees that dtype holds every accumulator (``spec.arch.acc_bound``).
    """
    Tc, B, H = s.shape
    dmax = line.shape[-1]
    acc_dtype = s.dtype
    sp = np.empty((H, B, dmax + Tc), dtype=acc_dtype)        # chronological: index j <-> step t0 - dmax + j
    if dmax:
        sp[:, :, :dmax] = np.roll(line, -(t0 % dmax), axis=-1).transpose(1, 0, 2)
    sp[:, :, dmax:] = s.transpose(2, 1, 0)
    win = sliding_window_view(sp, Tc, axis=2)                # (H, B, dmax+1, T_c): win[c,b,j,t] = sp[c,b,j+t]
    ch = np.arange(H)
    acc = np.zeros((H, B, Tc), dtype=acc_dtype)
    wk = w.astype(acc_dtype)
    for k in range(delays.shape[1]):
        tap = win[ch, :, dmax - delays[:, k], :]             # (H, B, T_c): sample t - d[c,k] of channel c
        tap *= wk[:, k, None, None]
        acc += tap
    if dmax:
        t_end = t0 + Tc
        line[...] = np.roll(sp[:, :, Tc:].transpose(1, 0, 2), t_end % dmax, axis=-1)
    return np.ascontiguousarray(acc.transpose(2, 1, 0))
