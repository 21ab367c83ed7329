"""The minGRU of one layer: gate and candidate projections, and the switched-capacitor update."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac, gate_format

from .addrmap import AddressMap
from .fixed import acc_shape, any_of, gate_code, requantize, round_shift, saturate, shape_of
from .mac import MacLanes, broadcast_columns, column_group, group_view, pass_cycles, pass_results, projection_sequencer
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["GateCandidate", "ScUpdate"]


class GateCandidate(wiring.Component):
    """Gate and candidate projections (README rows "gate" and "candidate").

    Two :class:`MacLanes` of H lanes share the broadcast input ``u[i]``: lane ``c`` accumulates
    ``Wz[c,i] u[i]`` and ``Wh[c,i] u[i]`` over ``i = 0..H-1``, starting from the aligned biases,
    ``s = micro.proj`` columns per cycle (:class:`rtl.microarch.Microarch`; 1 by default).
    Then ``k = gate_code(accz)`` (6-bit hard sigmoid, ``z = k / 2**b_z``) and ``hc = q_h(acch)``.

    With ``R = micro.proj_passes`` > 1 the arrays have H / R lanes and make R row passes
    (:func:`rtl.mac.pass_sequencer`; the passes' ``k`` and ``hc`` are stored in registers, the last
    pass's come from the accumulators).

    Timing: ``start`` (loads the biases) + H / s cycles + 1 cycle with ``done``; R passes: R (H / s
    + 1) + 1 (:meth:`cycles`).
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
        """Cycles from ``start`` to ``done`` inclusive: ``R (H / s + 1) + 1`` (``H / s + 2`` with
        one row pass)."""
        mu = micro or Microarch()
        return pass_cycles(arch.hidden // mu.proj, mu.proj_passes)

    def elaborate(self, platform):
        m = Module()
        arch, fmts, p = self.arch, self.fmts, self.prefix
        H, s, R = arch.hidden, self.amap.micro.proj, self.amap.micro.proj_passes
        n = H // R
        f_acc = acc_frac(fmts.act, fmts.w_rnn)
        ashape = acc_shape(H, fmts.act, fmts.w_rnn, fmts.bias)
        m.submodules.mac_z = mz = MacLanes(n, shape_of(fmts.act), shape_of(fmts.w_rnn), ashape, simd=s)
        m.submodules.mac_h = mh = MacLanes(n, shape_of(fmts.act), shape_of(fmts.w_rnn), ashape, simd=s)
        sq = projection_sequencer(m, self.start, self.done, H // s, R)
        wz = weight_memory(m, self.amap, p + "wz", self.cfg, sq.word)
        wh = weight_memory(m, self.amap, p + "wh", self.cfg, sq.word)
        bz = weight_memory(m, self.amap, p + "bz", self.cfg, sq.bias_word)
        bh = weight_memory(m, self.amap, p + "bh", self.cfg, sq.bias_word)
        for mac, w, b in ((mz, wz, bz), (mh, wh, bh)):     # both share the broadcast u[i]
            broadcast_columns(m, mac, column_group(self.u, sq.i, s), w, b, bias=fmts.bias, f_acc=f_acc,
                              start=self.start, running=sq.running, load=sq.load)
        gate_rounding = gate_format(arch, fmts).rounding
        sats = []
        if R == 1:
            for c in range(H):
                q, sat = requantize(mh.acc[c], f_acc, fmts.h)
                m.d.comb += [self.hc[c].eq(q),
                             self.k[c].eq(gate_code(mz.acc[c], f_acc, arch.gate_bits, gate_rounding))]
                sats.append(sat)
            m.d.comb += self.sat.eq(any_of(sats))
            return m
        hc, k = [], []
        for c in range(n):
            q, sat = requantize(mh.acc[c], f_acc, fmts.h)
            hc.append(q)
            k.append(gate_code(mz.acc[c], f_acc, arch.gate_bits, gate_rounding))
            sats.append(sat)
        pass_results(m, self.k, k, sq.p, sq.store, self.start, name="k")
        m.d.comb += self.sat.eq(pass_results(m, self.hc, hc, sq.p, sq.store, self.start, any_of(sats), "hc"))
        return m


class ScUpdate(wiring.Component):
    """The switched-capacitor state update (README row "SC state update").

    ``h = sat_h(h + round_h((k * (hc - h)) / 2**b_z))``: the state capacitor ``h`` shares charge
    with a ``k``-weighted bank charged to ``hc``, i.e. ``h + z (hc - h)`` with ``z = k / 2**b_z``.
    ``clear`` (start of a sequence) sets ``h = 0``. With ``passes`` 1 (``micro.chan_passes``,
    :class:`rtl.microarch.Microarch`; the default) all H channels update in the one cycle with
    ``en`` high per step. With ``passes`` P > 1 the update has H / P datapaths and a step takes P
    cycles with ``en`` high, ``group`` = 0 .. P-1 in turn updating channels ``group * H/P ..``;
    ``sat`` is high in each such cycle in which a channel of the group saturated.
    """

    def __init__(self, arch: Arch, fmts: Formats, passes: int = 1):
        self.arch, self.fmts, self.passes = arch, fmts, passes
        H = arch.hidden
        members = {
            "k": In(data.ArrayLayout(unsigned(arch.gate_bits), H)),
            "hc": In(data.ArrayLayout(shape_of(fmts.h), H)),
            "en": In(1),
            "clear": In(1),
            "h": Out(data.ArrayLayout(shape_of(fmts.h), H)),
            "sat": Out(1),
        }
        if passes > 1:
            members["group"] = In(range(passes))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        fmts, bz = self.fmts, self.arch.gate_bits
        sats = []
        if self.passes > 1:
            n = self.arch.hidden // self.passes
            k, hc = group_view(self.k, self.group, n), group_view(self.hc, self.group, n)
            h = group_view(self.h, self.group, n)
            h_next = Signal(data.ArrayLayout(shape_of(fmts.h), n))
            for c in range(n):
                v, sat = saturate(h[c] + round_shift(k[c] * (hc[c] - h[c]), bz, fmts.h.rounding), fmts.h)
                m.d.comb += h_next[c].eq(v)
                sats.append(sat)
            with m.If(self.clear):
                m.d.sync += self.h.eq(0)
            with m.Elif(self.en):
                m.d.sync += h.eq(h_next)
            m.d.comb += self.sat.eq(any_of(sats) & self.en)
            return m
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
