"""``BlockBench``: the RTL's building blocks side by side in one design, for cocotb block tests in
Verilator (one build serves every block test; :mod:`testbenches.tb_blocks` drives it).

=================== ======================================================= ===================
ports               block                                                    compared with
=================== ======================================================= ===================
``x`` -> ``rq{n}``, ``rq{n}_sat``  ``rtl.fixed.requantize`` per case of :data:`RQ_CASES`  ``spec.fixedpoint.requantize``
``x`` -> ``gc{n}``  ``rtl.fixed.gate_code`` per case of :data:`GC_CASES`        ``spec.arch.gate_code``
``sc_*``            :class:`rtl.mingru.ScUpdate`, one per rounding rule      ``sim.mingru.state_update``
``cv_*``, ``cfg``   :class:`rtl.conv.DelayLineConv` (run-time taps/delays)    ``sim.delayline.conv_step``
=================== ======================================================= ===================

``x`` is a signed 28-bit accumulator-like input (wider than every format used here), so the
saturation and rounding edges of every case are reachable. The blocks share nothing but the
clock; combinational cases settle in the cycle ``x`` changes.
"""
from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl import fixed
from rtl.addrmap import AddressMap
from rtl.conv import DelayLineConv
from rtl.mingru import ScUpdate
from spec.arch import Arch, Formats
from spec.fixedpoint import Format, Rounding

__all__ = ["BlockBench", "RQ_CASES", "GC_CASES", "SC_ROUNDINGS", "X_BITS", "bench_arch", "bench_formats",
           "TOP_NAME"]

TOP_NAME = "block_bench"
X_BITS = 28
ROUNDINGS = (Rounding.FLOOR, Rounding.HALF_UP, Rounding.HALF_EVEN)
#: (x_frac, target format) of each requantisation case, for every rounding rule.
RQ_CASES = [(xf, f.with_(rounding=r)) for r in ROUNDINGS
            for xf, f in ((21, Format(True, 16, 10)), (10, Format(True, 8, 4)), (8, Format(True, 12, 8)),
                          (6, Format(True, 16, 10)), (16, Format(False, 6, 2)))]
#: (accumulator frac, gate bits, rounding) of each gate-code case.
GC_CASES = [(16, bits, r) for r in ROUNDINGS for bits in (2, 6, 8)]
SC_ROUNDINGS = ROUNDINGS


def bench_arch() -> Arch:
    """Architecture of the bench's SC update (H = 4, b_z = 6) and delay line (K = 4 taps up to
    d_max = 9, so delays 0, d_max - 1 and d_max all fit in one channel)."""
    return Arch(d_in=1, n_classes=2, hidden=4, layers=1, taps=4, d_max=9)


def bench_formats(rounding: Rounding = Rounding.HALF_UP) -> Formats:
    return Formats(h=Format(True, 16, 10, rounding))


class BlockBench(wiring.Component):
    def __init__(self):
        arch, fmts = bench_arch(), bench_formats()
        self.arch, self.fmts = arch, fmts
        self.amap = AddressMap(arch, fmts)
        H = arch.hidden
        members = {"x": In(signed(X_BITS))}
        for n, (_, f) in enumerate(RQ_CASES):
            members[f"rq{n}"] = Out(fixed.shape_of(f))
            members[f"rq{n}_sat"] = Out(1)
        for n, (_, bits, _) in enumerate(GC_CASES):
            members[f"gc{n}"] = Out(unsigned(bits))
        hs = fixed.shape_of(fmts.h)
        members.update({
            "sc_k": In(data.ArrayLayout(unsigned(arch.gate_bits), H)),
            "sc_hc": In(data.ArrayLayout(hs, H)),
            "sc_en": In(1), "sc_clear": In(1),
        })
        for r in SC_ROUNDINGS:
            members[f"sc_h_{r.value}"] = Out(data.ArrayLayout(hs, H))
        members.update({
            "cfg": In(self.amap.signature()),
            "cv_s": In(data.ArrayLayout(fixed.shape_of(fmts.dl), H)),
            "cv_first": In(1), "cv_start": In(1),
            "cv_done": Out(1), "cv_sat": Out(1),
            "cv_u0": Out(data.ArrayLayout(fixed.shape_of(fmts.act), H)),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for n, (xf, f) in enumerate(RQ_CASES):
            q, sat = fixed.requantize(self.x, xf, f)
            m.d.comb += [getattr(self, f"rq{n}").eq(q), getattr(self, f"rq{n}_sat").eq(sat)]
        for n, (frac, bits, r) in enumerate(GC_CASES):
            m.d.comb += getattr(self, f"gc{n}").eq(fixed.gate_code(self.x, frac, bits, r))
        for r in SC_ROUNDINGS:
            sc = ScUpdate(self.arch, bench_formats(r))
            m.submodules[f"sc_{r.value}"] = sc
            m.d.comb += [sc.k.eq(self.sc_k), sc.hc.eq(self.sc_hc), sc.en.eq(self.sc_en),
                         sc.clear.eq(self.sc_clear), getattr(self, f"sc_h_{r.value}").eq(sc.h)]
        m.submodules.conv = cv = DelayLineConv(self.arch, self.fmts, self.amap, 0)
        m.d.comb += [cv.cfg.addr.eq(self.cfg.addr), cv.cfg.data.eq(self.cfg.data), cv.cfg.en.eq(self.cfg.en),
                     cv.s.eq(self.cv_s), cv.first.eq(self.cv_first), cv.start.eq(self.cv_start),
                     self.cv_done.eq(cv.done), self.cv_sat.eq(cv.sat), self.cv_u0.eq(cv.u0)]
        return m
