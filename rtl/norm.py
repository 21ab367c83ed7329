"""``AffineNorm``: the per-channel affine normalisation (batch norm folded at export)."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac

from .addrmap import AddressMap
from .fixed import align_bias, any_of, requantize, shape_of
from .mac import group_view
from .memory import weight_memory

__all__ = ["AffineNorm"]


class AffineNorm(wiring.Component):
    """``a' = q_act(g * y + (b << s), f_a + f_w_norm)`` per channel, combinational.

    One multiply and one add per channel, no division, no square root (README "normalisation").
    With ``micro.chan_passes`` P = 1 (:class:`rtl.microarch.Microarch`; the default) it has H
    multipliers and ``a`` holds all H channels; the owning layer registers ``a`` one cycle after
    ``y`` is ready. With P > 1 it has H / P multipliers and ``a`` holds the H / P channels of
    ``group`` (``group * H/P ..``; ``g`` and ``b`` are stored one group per word,
    :class:`rtl.addrmap.AddressMap`): the layer registers the groups in P cycles.
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        self.arch, self.fmts, self.amap, self.prefix = arch, fmts, amap, f"layers.{layer}.norm."
        H, P = arch.hidden, amap.micro.chan_passes
        members = {
            "cfg": In(amap.signature()),
            "y": In(data.ArrayLayout(shape_of(fmts.act), H)),
            "a": Out(data.ArrayLayout(shape_of(fmts.act), H // P)),
            "sat": Out(1),
        }
        if P > 1:
            members["group"] = In(range(P))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        fmts = self.fmts
        P = self.amap.micro.chan_passes
        n = self.arch.hidden // P
        f_n = acc_frac(fmts.act, fmts.w_norm)
        word = self.group if P > 1 else 0
        g = weight_memory(m, self.amap, self.prefix + "g", self.cfg, word)
        b = weight_memory(m, self.amap, self.prefix + "b", self.cfg, word)
        y = group_view(self.y, self.group, n) if P > 1 else self.y
        sats = []
        for c in range(n):
            q, sat = requantize(g[c] * y[c] + align_bias(b[c], fmts.bias, f_n), f_n, fmts.act)
            m.d.comb += self.a[c].eq(q)
            sats.append(sat)
        m.d.comb += self.sat.eq(any_of(sats))
        return m
