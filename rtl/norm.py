"""``AffineNorm``: the per-channel affine normalisation (batch norm folded at export)."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac

from .addrmap import AddressMap
from .fixed import align_bias, any_of, requantize, shape_of
from .memory import weight_memory

__all__ = ["AffineNorm"]


class AffineNorm(wiring.Component):
    """``a' = q_act(g * y + (b << s), f_a + f_w_norm)`` per channel: H multipliers, combinational.

    One multiply and one add per channel, no division, no square root (README "normalisation").
    The owning layer registers ``a`` one cycle after ``y`` is ready.
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        self.arch, self.fmts, self.amap, self.prefix = arch, fmts, amap, f"layers.{layer}.norm."
        H = arch.hidden
        super().__init__({
            "cfg": In(amap.signature()),
            "y": In(data.ArrayLayout(shape_of(fmts.act), H)),
            "a": Out(data.ArrayLayout(shape_of(fmts.act), H)),
            "sat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmts = self.fmts
        f_n = acc_frac(fmts.act, fmts.w_norm)
        g = weight_memory(m, self.amap, self.prefix + "g", self.cfg, 0)
        b = weight_memory(m, self.amap, self.prefix + "b", self.cfg, 0)
        sats = []
        for c in range(self.arch.hidden):
            q, sat = requantize(g[c] * self.y[c] + align_bias(b[c], fmts.bias, f_n), f_n, fmts.act)
            m.d.comb += self.a[c].eq(q)
            sats.append(sat)
        m.d.comb += self.sat.eq(any_of(sats))
        return m
