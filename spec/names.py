"""Names of a network's intermediate tensors, in data-flow order: the one list for every layer.

``sim`` keys its traces and saturation counts by these names, the RTL names its trace port's
fields by them, and the co-simulation compares them in this order. A name is
``'enc'``, ``'layers.{i}.{name}'`` (``name`` from :data:`LAYER_TRACE_NAMES`), ``'logit'``,
``'logit_acc'`` or ``'step_logits'``.
"""
from __future__ import annotations

from .arch import Arch

__all__ = ["LAYER_TRACE_NAMES", "layer_trace_names", "trace_names", "layer_saturation_names", "saturation_names"]

#: Per-layer trace names, in data-flow order (a subset exists for a given architecture).
LAYER_TRACE_NAMES = ("s", "u", "k", "hc", "h", "o", "r", "m1", "y", "a")


def layer_trace_names(arch: Arch) -> list[str]:
    """The per-layer names that exist for ``arch``, in data-flow order.

    ``s`` exists if taps > 0; ``r`` if skip; ``m1``, ``y`` if mix != 'none'. ``u`` always (it is
    the layer input when taps = 0 and skip is off), ``a`` always (the layer's output: the
    normalisation's, else the mixer's ``y``, else ``r``, else ``o``).
    """
    present = {"s": bool(arch.taps), "r": arch.skip, "m1": arch.mix != "none", "y": arch.mix != "none"}
    return [n for n in LAYER_TRACE_NAMES if present.get(n, True)]


def trace_names(arch: Arch) -> list[str]:
    """Keys of a whole-network trace: 'enc', 'layers.{i}.{name}' and 'step_logits'."""
    layer = layer_trace_names(arch)
    return ["enc"] + [f"layers.{i}.{n}" for i in range(arch.layers) for n in layer] + ["step_logits"]


def layer_saturation_names(arch: Arch) -> list[str]:
    """The per-layer names that can saturate for ``arch``, in data-flow order (see
    :func:`saturation_names`): ``s``, ``u`` if taps > 0; ``hc``, ``h``; ``o`` if rnn_out is
    'linear'; ``r`` if skip; ``m1``, ``y`` if mix != 'none'; ``a`` if norm is 'affine'."""
    can = {"s": bool(arch.taps), "u": bool(arch.taps), "hc": True, "h": True, "o": arch.rnn_out == "linear",
           "r": arch.skip, "m1": arch.mix != "none", "y": arch.mix != "none", "a": arch.norm == "affine"}
    return [n for n in LAYER_TRACE_NAMES if can.get(n, False)]


def saturation_names(arch: Arch) -> list[str]:
    """Every point that can saturate (the keys of saturation counts), in data-flow order.

    A key counts *events* at every rounding point of that tensor: ``u`` the convolution's
    requantisation and the skip add, ``y`` the mixer's projection and its skip add, ``m1`` both
    GLU requantisations. ``k`` never saturates (the gate code is clipped by definition).
    The RTL's per-step saturation flags (:func:`rtl.top.output_layout`, field ``sat``) carry
    exactly these names, in this order.
    """
    out = ["enc"] if arch.encoder == "linear" else []
    layer = layer_saturation_names(arch)
    out += [f"layers.{i}.{n}" for i in range(arch.layers) for n in layer]
    out.append("logit")
    return out + (["logit_acc"] if arch.readout == "mean" else [])
