"""Fake quantisation for hardware-aware training: the contract's rounding and saturation on floats.

Each function rounds a real tensor onto a :class:`spec.fixedpoint.Format`'s grid with the
format's own rounding rule and saturates to its range, in the forward pass, exactly like
:func:`spec.fixedpoint.requantize` does on integer codes; the backward pass is a
straight-through estimator (STE):

* :func:`fq_weight`: plain STE (gradient 1 everywhere, saturated weights included), so a weight
  pushed out of range can come back.
* :func:`fq_act`: clipped STE (gradient 1 inside the range, 0 where the value saturates), as for
  an activation that hits the rails.
* :func:`fq_gate`: the hard-sigmoid gate code ``k/2**b`` of :func:`spec.arch.gate_code`, with the
  hard sigmoid's own gradient (1/4 inside, 0 where clipped).

With ``fmt=None`` every function is the identity (float mode), so one forward pass serves the
float model and the hardware-aware model.
"""
from __future__ import annotations

import torch

from spec.fixedpoint import Format, Rounding

__all__ = ["round_rule", "fq_weight", "fq_act", "fq_gate", "hard_sigmoid", "heaviside"]


def round_rule(v: torch.Tensor, rounding: Rounding | str) -> torch.Tensor:
    """Round real ``v`` to an integer by a :class:`Rounding` rule (no gradient through it)."""
    rounding = Rounding(rounding)
    if rounding is Rounding.FLOOR:
        return torch.floor(v)
    if rounding is Rounding.HALF_UP:
        return torch.floor(v + 0.5)
    return torch.round(v)  # ties to even


def _ste_round(v: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    return v + (round_rule(v, rounding) - v).detach()


def fq_weight(w: torch.Tensor, fmt: Format | None) -> torch.Tensor:
    """Weight -> nearest value of ``fmt`` (rounded, saturated); gradient passes straight through."""
    if fmt is None:
        return w
    scale = 2.0 ** fmt.frac
    q = round_rule(w.detach() * scale, fmt.rounding).clamp(fmt.min_int, fmt.max_int) / scale
    return w + (q - w).detach()


def fq_act(x: torch.Tensor, fmt: Format | None) -> torch.Tensor:
    """Activation -> ``fmt`` (rounded, saturated); gradient 1 inside the range, 0 where saturated."""
    if fmt is None:
        return x
    scale = 2.0 ** fmt.frac
    v = (x * scale).clamp(fmt.min_int, fmt.max_int)
    return _ste_round(v, fmt.rounding) / scale


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``clip(x/4 + 1/2, 0, 1)``: the gate of the hardware-aware model (slope 1/4, a shift)."""
    return (x * 0.25 + 0.5).clamp(0.0, 1.0)


def fq_gate(x: torch.Tensor, bits: int | None, rounding: Rounding | str = Rounding.HALF_UP) -> torch.Tensor:
    """Gate ``z = k / 2**bits`` with ``k = clip(round((x/4 + 1/2) * 2**bits), 0, 2**bits - 1)``.

    This is :func:`spec.arch.gate_code` read in reals (``x = acc * 2**-frac``; adding the integer
    ``2**(bits-1)`` after rounding equals adding it before, for every rule). ``bits=None``: the
    continuous hard sigmoid of the float model.
    """
    if bits is None:
        return hard_sigmoid(x)
    n = float(1 << bits)
    v = ((x * 0.25 + 0.5) * n).clamp(0.0, n - 1.0)
    return _ste_round(v, Rounding(rounding)) / n


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, width):
        ctx.save_for_backward(h)
        ctx.width = width
        return (h > 0).to(h.dtype)

    @staticmethod
    def backward(ctx, g):
        (h,) = ctx.saved_tensors
        # fast-sigmoid surrogate: d/dh ~ 1 / (1 + |h|/w)^2 / w
        w = ctx.width
        return g / (w * (1.0 + h.abs() / w) ** 2), None


def heaviside(h: torch.Tensor, width: float = 0.5) -> torch.Tensor:
    """``1.0 if h > 0 else 0.0`` with a fast-sigmoid surrogate gradient of the given width."""
    return _Heaviside.apply(h, width)
