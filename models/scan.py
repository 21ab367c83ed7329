"""Parallel and sequential solutions of the linear recurrence ``h_t = a_t * h_{t-1} + b_t``.

minGRU: ``h_t = (1 - z_t) h_{t-1} + z_t hc_t``, i.e. ``a_t = 1 - z_t`` and ``b_t = z_t hc_t``.
Our candidate ``hc`` is linear and signed, and the hard-sigmoid gate can make ``a_t`` exactly 0,
so the log-space (Heinsen) scan, which needs ``b > 0`` and ``a > 0``, does not apply. We use the
associative scan of affine maps instead (Hillis-Steele, ``ceil(log2 T)`` rounds):

    (a1, b1) then (a2, b2)  =  (a1 a2, a2 b1 + b2)

Every round only multiplies factors in [0, 1] and adds, with no division and no logarithm, so
it is numerically safe for signed ``b`` and for ``a`` = 0; it is differentiable by autograd.

Long sequences are scanned in chunks of ``chunk`` steps: a Hillis-Steele scan inside every
chunk (log2(chunk) rounds over the whole tensor), a scan of the chunks' end states (on a tensor
``chunk`` times smaller), and one multiply-add that carries each chunk's incoming state in. That
is about log2(chunk) + 1 full passes instead of log2(T).
"""
from __future__ import annotations

import torch

__all__ = ["linear_scan", "linear_scan_sequential"]


def _shift(x: torch.Tensor, d: int, fill: float, dim: int) -> torch.Tensor:
    """``x`` delayed by ``d`` steps along ``dim`` (the first ``d`` entries are ``fill``)."""
    pad_shape = list(x.shape)
    pad_shape[dim] = d
    pad = x.new_full(pad_shape, fill)
    return torch.cat([pad, x.narrow(dim, 0, x.shape[dim] - d)], dim=dim)


def _hillis_steele(a: torch.Tensor, b: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of affine maps along ``dim``: returns (prod a, h with h_{-1} = 0)."""
    T = a.shape[dim]
    A, Bv = a, b
    d = 1
    while d < T:
        Bv = A * _shift(Bv, d, 0.0, dim) + Bv
        A = A * _shift(A, d, 1.0, dim)
        d *= 2
    return A, Bv


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, dim: int = 1,
                chunk: int = 64) -> torch.Tensor:
    """All ``h_t`` of ``h_t = a_t h_{t-1} + b_t`` (``h_{-1} = h0``, default 0), in parallel over ``dim``."""
    if dim != 1:
        out = linear_scan(a.movedim(dim, 1), b.movedim(dim, 1), h0, 1, chunk)
        return out.movedim(1, dim)
    T = a.shape[1]
    if T <= chunk:
        A, Bv = _hillis_steele(a, b, 1)
        return Bv if h0 is None else Bv + A * h0.unsqueeze(1)
    n = -(-T // chunk)
    pad = n * chunk - T
    if pad:
        a = torch.cat([a, a.new_ones((a.shape[0], pad) + a.shape[2:])], dim=1)
        b = torch.cat([b, b.new_zeros((b.shape[0], pad) + b.shape[2:])], dim=1)
    rest = a.shape[2:]
    A, Bv = _hillis_steele(a.reshape((a.shape[0], n, chunk) + rest), b.reshape((b.shape[0], n, chunk) + rest), 2)
    # state at the end of every chunk, then the state entering every chunk
    h_end = linear_scan(A[:, :, -1], Bv[:, :, -1], h0, 1, chunk)
    first = h_end.new_zeros(h_end[:, :1].shape) if h0 is None else h0.unsqueeze(1)
    h_in = torch.cat([first, h_end[:, :-1]], dim=1)
    h = Bv + A * h_in.unsqueeze(2)
    return h.reshape((h.shape[0], n * chunk) + rest)[:, :T]


def linear_scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None,
                           dim: int = 1) -> torch.Tensor:
    """The same recurrence, one step at a time (the inference order)."""
    a_t, b_t = a.unbind(dim), b.unbind(dim)
    h = torch.zeros_like(b_t[0]) if h0 is None else h0
    out = []
    for at, bt in zip(a_t, b_t, strict=True):
        h = at * h + bt
        out.append(h)
    return torch.stack(out, dim=dim)
