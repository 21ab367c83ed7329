"""The minGRU of one layer: gate and candidate projections, and the switched-capacitor update."""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac, gate_format

from .addrmap import AddressMap
from .fixed import acc_shape, any_of, gate_code, requantize, round_shift, saturate, shape_of
from .mac import MacLanes, broadcast_columns, column_cycles, column_group, column_sequencer
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["GateCandidate", "ScUpdate"]


class GateCandidate(wiring.Component):
    """Gate and candidate projections (README rows "gate" and "candidate").

    Two :class:`MacLanes` of H lanes share the broadcast input ``u[i]``: lane ``c`` accumulates
    ``Wz[c,i] u[i]`` and ``Wh[c,i] u[i]`` over ``i = 0..H-1``, starting from the aligned biases,
    ``s = micro.proj`` columns per cycle (:class:`rtl.microarch.Microarch`; 1 by default).
    Then ``k = gate_code(accz)`` (6-bit hard sigmoid, ``z = k / 2**b_z``) and ``hc = q_h(acch)``.

    Timing: ``start`` (loads the biases) + H / s cycles + 1 cycle with ``done`` (:meth:`cycles`).
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        self.arch, self.fmts, self.amap, self.prefix = arch, fmts, amap, f"layers.{layer}.rnn."
        H = arch.hidden
        super().__init__({
            "cfg": In(amap.signature()),
            "u": In(data.ArrayLayout(shape_of(fmts.act), H)),
            "start": In(1),
            "done": Out(1),
            "k": Out(data.ArrayLayout(unsigned(arch.gate_bits), H)),
            "hc": Out(data.ArrayLayout(shape_of(fmts.h), H)),
            "sat": Out(1),
        })

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``H / s + 2``."""
        return column_cycles(arch.hidden // (micro or Microarch()).proj)

    def elaborate(self, platform):
        m = Module()
        arch, fmts, p = self.arch, self.fmts, self.prefix
        H, s = arch.hidden, self.amap.micro.proj
        f_acc = acc_frac(fmts.act, fmts.w_rnn)
        ashape = acc_shape(H, fmts.act, fmts.w_rnn, fmts.bias)
        m.submodules.mac_z = mz = MacLanes(H, shape_of(fmts.act), shape_of(fmts.w_rnn), ashape, simd=s)
        m.submodules.mac_h = mh = MacLanes(H, shape_of(fmts.act), shape_of(fmts.w_rnn), ashape, simd=s)
        i, running = column_sequencer(m, self.start, self.done, H // s)
        wz = weight_memory(m, self.amap, p + "wz", self.cfg, i)
        wh = weight_memory(m, self.amap, p + "wh", self.cfg, i)
        bz = weight_memory(m, self.amap, p + "bz", self.cfg, 0)
        bh = weight_memory(m, self.amap, p + "bh", self.cfg, 0)
        for mac, w, b in ((mz, wz, bz), (mh, wh, bh)):     # both share the broadcast u[i]
            broadcast_columns(m, mac, column_group(self.u, i, s), w, b, bias=fmts.bias, f_acc=f_acc,
                              start=self.start, running=running)
        gate_rounding = gate_format(arch, fmts).rounding
        sats = []
        for c in range(H):
            q, sat = requantize(mh.acc[c], f_acc, fmts.h)
            m.d.comb += [self.hc[c].eq(q),
                         self.k[c].eq(gate_code(mz.acc[c], f_acc, arch.gate_bits, gate_rounding))]
            sats.append(sat)
        m.d.comb += self.sat.eq(any_of(sats))
        return m


class ScUpdate(wiring.Component):
    """The switched-capacitor state update (README row "SC state update").

    ``h = sat_h(h + round_h((k * (hc - h)) / 2**b_z))``: the state capacitor ``h`` shares charge
    with a ``k``-weighted bank charged to ``hc``, i.e. ``h + z (hc - h)`` with ``z = k / 2**b_z``.
    One cycle with ``en`` high per step; ``clear`` (start of a sequence) sets ``h = 0``.
    """

    def __init__(self, arch: Arch, fmts: Formats):
        self.arch, self.fmts = arch, fmts
        H = arch.hidden
        super().__init__({
            "k": In(data.ArrayLayout(unsigned(arch.gate_bits), H)),
            "hc": In(data.ArrayLayout(shape_of(fmts.h), H)),
            "en": In(1),
            "clear": In(1),
            "h": Out(data.ArrayLayout(shape_of(fmts.h), H)),
            "sat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, bz = self.fmts, self.arch.gate_bits
        sats = []
        for c in range(self.arch.hidden):
            h, hc, k = self.h[c], self.hc[c], self.k[c]
            h_next, sat = saturate(h + round_shift(k * (hc - h), bz, fmts.h.rounding), fmts.h)
            sats.append(sat)
            with m.If(self.clear):
                m.d.sync += h.eq(0)
            with m.Elif(self.en):
                m.d.sync += h.eq(h_next)
        m.d.comb += self.sat.eq(any_of(sats) & self.en)
        return m
