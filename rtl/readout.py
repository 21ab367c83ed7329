"""``Readout``: decoder (per-step logits) and the wide saturating logit accumulator."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac

from .addrmap import AddressMap
from .fixed import acc_shape, any_of, requantize, saturate, shape_of
from .mac import MacLanes, broadcast_columns, column_group, pass_cycles, pass_results, projection_sequencer
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["Readout"]


class Readout(wiring.Component):
    """``l_t = q_logit(W_out a_L + b_out, f_a + f_w_out)``; ``acc = sat_logit_acc(acc + l_t)``.

    C lanes (one per class), H / s cycles broadcasting ``a_L[i]`` (``s = micro.readout`` columns per
    cycle, :class:`rtl.microarch.Microarch`; 1 by default). With ``readout='mean'`` the
    accumulator is updated in the ``done`` cycle (restarting from 0 when ``first``) and ``acc``
    shows the updated sum in that cycle; ``argmax(acc)`` is the argmax of the time mean.
    With ``readout='last'`` the logits of the last step are the result and ``acc`` is absent.
    With ``R = micro.readout_passes`` > 1 it has C / R lanes and makes R row passes
    (:func:`rtl.mac.pass_sequencer`; the passes' logits are stored in registers, the last pass's come
    from the accumulators). Timing: ``start`` + H / s cycles + 1 cycle with ``done``; R passes:
    R (H / s + 1) + 1 (:meth:`cycles`). Saturation flags, high
    in the ``done`` cycle only: ``sat_logit`` (a step logit), ``sat_acc`` (the accumulator), ``sat``
    either.
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap):
        self.arch, self.fmts, self.amap = arch, fmts, amap
        C = arch.n_classes
        members = {
            "cfg": In(amap.signature()),
            "a": In(data.ArrayLayout(shape_of(fmts.act), arch.hidden)),
            "first": In(1),
            "start": In(1),
            "done": Out(1),
            "logits": Out(data.ArrayLayout(shape_of(fmts.logit), C)),
            "sat": Out(1),
            "sat_logit": Out(1),
            "sat_acc": Out(1),
        }
        if arch.readout == "mean":
            members["acc"] = Out(data.ArrayLayout(shape_of(fmts.logit_acc), C))
        super().__init__(members)

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``R (H / s + 1) + 1`` (``H / s + 2`` with
        one row pass)."""
        mu = micro or Microarch()
        return pass_cycles(arch.hidden // mu.readout, mu.readout_passes)

    def elaborate(self, platform):
        m = Module()
        arch, fmts = self.arch, self.fmts
        H, C = arch.hidden, arch.n_classes
        s, R = self.amap.micro.readout, self.amap.micro.readout_passes
        f_acc = acc_frac(fmts.act, fmts.w_out)
        m.submodules.mac = mac = MacLanes(C // R, shape_of(fmts.act), shape_of(fmts.w_out),
                                          acc_shape(H, fmts.act, fmts.w_out, fmts.bias), simd=s)
        sq = projection_sequencer(m, self.start, self.done, H // s, R)
        w = weight_memory(m, self.amap, "out.w", self.cfg, sq.word)
        b = weight_memory(m, self.amap, "out.b", self.cfg, sq.bias_word)
        broadcast_columns(m, mac, column_group(self.a, sq.i, s), w, b, bias=fmts.bias, f_acc=f_acc,
                          start=self.start, running=sq.running, load=sq.load)
        if R > 1:           # the logits of the stored passes and the live one, then as with one pass
            live, lsats = [], []
            for c in range(C // R):
                q, sat = requantize(mac.acc[c], f_acc, fmts.logit)
                live.append(q)
                lsats.append(sat)
            logits = Signal(data.ArrayLayout(shape_of(fmts.logit), C))
            sat_logits = pass_results(m, logits, live, sq.p, sq.store, self.start, any_of(lsats), "logits")
        sats, sats_acc = [], []
        for c in range(C):
            if R == 1:
                q, sat = requantize(mac.acc[c], f_acc, fmts.logit)
                sats.append(sat)
            else:
                q = logits[c]
            m.d.comb += self.logits[c].eq(q)
            if arch.readout == "mean":
                total = Signal(shape_of(fmts.logit_acc), name=f"total{c}")
                new, sat2 = saturate(Mux(self.first, 0, total) + q, fmts.logit_acc)
                m.d.comb += self.acc[c].eq(new)
                with m.If(self.done):
                    m.d.sync += total.eq(new)
                sats_acc.append(sat2)
        sat_logit = any_of(sats) if R == 1 else sat_logits
        m.d.comb += [self.sat_logit.eq(sat_logit & self.done), self.sat_acc.eq(any_of(sats_acc) & self.done),
                     self.sat.eq(self.sat_logit | self.sat_acc)]
        return m
