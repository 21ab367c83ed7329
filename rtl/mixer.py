"""``ChannelMixer``: the per-step channel-mixing MLP or GLU of one layer."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac, gate_format

from .addrmap import AddressMap
from .fixed import acc_shape, align_bias, any_of, gate_code, requantize, shape_of
from .mac import MacLanes, column_group, pass_results
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["ChannelMixer"]


class ChannelMixer(wiring.Component):
    """Channel mixing (README rows "mixer (mlp)" / "mixer (glu)"), without the skip add.

    One :class:`MacLanes` of H lanes taking ``s = micro.mix`` columns per cycle
    (:class:`rtl.microarch.Microarch`; 1 by default). The expansion ``W1 r + b1`` has ``R = E``
    (mlp) or ``2E`` (glu) rows, done in ``P = R / H`` passes of H / s cycles (pass ``p`` gives rows
    ``pH .. pH+H-1``); each pass ends with one cycle that stores its rows into the register file
    ``m1``:

    * mlp: ``m1 = max(0, q_act(p))``;
    * glu: passes ``0..E/H-1`` store ``v = q_act(p[:E])``; passes ``E/H..`` replace them with
      ``q_act(v * gate_code(p[E:]), f_a + b_z)``.

    Then the projection ``W2 m1 + b2`` broadcasts ``m1[i]`` for ``i = 0..E-1`` (E / s cycles) and
    ``m2 = q_act(acc)``. Saturation flags, each high in the cycle a saturated value is taken:
    ``sat_m1`` (a store cycle: a requantisation of ``m1``), ``sat_m2`` (the ``done`` cycle: ``m2``);
    ``sat`` is either. Timing: ``1 + P (H/s + 1) + E/s + 1`` cycles from ``start`` to ``done``
    inclusive (the last pass's store cycle also loads ``b2``).

    With ``R = micro.mix_passes`` > 1 the array has H / R lanes: the expansion makes ``P R`` passes
    of H / R rows, and the projection ``W2`` R passes of H / R rows, each but the last followed by
    a cycle that stores its rows of ``m2`` in registers and loads the next pass's ``b2`` (the last
    pass's rows come from the accumulators): ``1 + P R (H/s + 1) + R (E/s + 1)`` cycles.
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        if arch.mix not in ("mlp", "glu"):
            raise ValueError(f"ChannelMixer implements mix='mlp' or 'glu', not {arch.mix!r}")
        self.arch, self.fmts, self.amap, self.prefix = arch, fmts, amap, f"layers.{layer}.mix."
        H, E = arch.hidden, arch.mix_width
        super().__init__({
            "cfg": In(amap.signature()),
            "r": In(data.ArrayLayout(shape_of(fmts.act), H)),
            "start": In(1),
            "done": Out(1),
            "m1": Out(data.ArrayLayout(shape_of(fmts.act), E)),
            "m2": Out(data.ArrayLayout(shape_of(fmts.act), H)),
            "sat": Out(1),
            "sat_m1": Out(1),
            "sat_m2": Out(1),
        })

    @staticmethod
    def passes(arch: Arch) -> int:
        """``P``: passes of H rows over the expansion's ``E`` (mlp) or ``2E`` (glu) rows."""
        E = arch.mix_width
        return (2 * E if arch.mix == "glu" else E) // arch.hidden

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``1 + P (H/s + 1) + E/s + 1``; with R row
        passes ``1 + P R (H/s + 1) + R (E/s + 1)``."""
        mu = micro or Microarch()
        s, R = mu.mix, mu.mix_passes
        return 1 + ChannelMixer.passes(arch) * R * (arch.hidden // s + 1) + R * (arch.mix_width // s + 1)

    def elaborate(self, platform):
        m = Module()
        arch, fmts, pre = self.arch, self.fmts, self.prefix
        H, E, s, R = arch.hidden, arch.mix_width, self.amap.micro.mix, self.amap.micro.mix_passes
        n = H // R                     # lanes
        glu = arch.mix == "glu"
        P = self.passes(arch) * R      # passes of W1
        gate_rounding = gate_format(arch, fmts).rounding
        f_mix = acc_frac(fmts.act, fmts.w_mix)
        ashape = acc_shape(max(H, E), fmts.act, fmts.w_mix, fmts.bias)
        m.submodules.mac = mac = MacLanes(n, shape_of(fmts.act), shape_of(fmts.w_mix), ashape, simd=s)

        p = Signal(range(P + 1))       # current pass
        i = Signal(range(max(H // s, E // s)))   # column group
        expand = Signal()              # running a W1 pass
        store = Signal()               # storing the rows of pass p
        project = Signal()             # running W2
        last_pass = p == P - 1
        if R > 1:
            q = Signal(range(R))       # W2 pass
            store2 = Signal()          # storing the rows of W2 pass q
            w2_word, b2_word = q * (E // s) + i, Mux(store & last_pass, 0, q + 1)
        else:
            w2_word, b2_word = i, 0
        w1 = weight_memory(m, self.amap, pre + "w1", self.cfg, p * (H // s) + i)
        b1 = weight_memory(m, self.amap, pre + "b1", self.cfg, Mux(self.start, 0, p + 1))
        w2 = weight_memory(m, self.amap, pre + "w2", self.cfg, w2_word)
        b2 = weight_memory(m, self.amap, pre + "b2", self.cfg, b2_word)

        if s == 1:
            x = Mux(project, self.m1[i], self.r[i])
        else:
            x = Mux(project, column_group(self.m1, i, s).as_value(), column_group(self.r, i, s).as_value())
        to_b2 = store & last_pass if R == 1 else (store & last_pass) | store2
        for c in range(n):
            init = Mux(to_b2, align_bias(b2[c], fmts.bias, f_mix), align_bias(b1[c], fmts.bias, f_mix))
            ws = [mac.w[c].eq(Mux(project, w2[c], w1[c]))] if s == 1 else \
                [mac.w[c][k].eq(Mux(project, w2[c * s + k], w1[c * s + k])) for k in range(s)]
            m.d.comb += [mac.x[c].eq(x), *ws, mac.init[c].eq(init)]
        load = self.start | store if R == 1 else self.start | store | store2
        m.d.comb += [mac.load.eq(load), mac.en.eq(expand | project)]

        with m.If(self.start):
            m.d.sync += [expand.eq(1), p.eq(0), i.eq(0)]
            if R > 1:
                m.d.sync += q.eq(0)
        with m.Elif(expand):
            m.d.sync += i.eq(i + 1)
            with m.If(i == H // s - 1):
                m.d.sync += [expand.eq(0), store.eq(1)]
        with m.Elif(store):
            m.d.sync += [store.eq(0), i.eq(0), p.eq(p + 1)]
            with m.If(last_pass):
                m.d.sync += project.eq(1)
            with m.Else():
                m.d.sync += expand.eq(1)
        with m.Elif(project):
            m.d.sync += i.eq(i + 1)
            with m.If(i == E // s - 1):
                m.d.sync += project.eq(0)
                if R > 1:
                    m.d.sync += store2.eq(q != R - 1)
        if R > 1:
            with m.Elif(store2):
                m.d.sync += [store2.eq(0), project.eq(1), i.eq(0), q.eq(q + 1)]
            m.d.sync += self.done.eq(project & (i == E // s - 1) & (q == R - 1))
        else:
            m.d.sync += self.done.eq(project & (i == E // s - 1))

        # store the rows of pass p into m1
        sats, sats2 = [], []
        with m.If(store):
            with m.Switch(p):
                for pp in range(P):
                    with m.Case(pp):
                        for c in range(n):
                            qv, sat = requantize(mac.acc[c], f_mix, fmts.act)
                            if not glu:
                                m.d.sync += self.m1[pp * n + c].eq(Mux(qv < 0, 0, qv))
                            elif pp < E // n:
                                m.d.sync += self.m1[pp * n + c].eq(qv)
                            else:
                                e = (pp - E // n) * n + c
                                k = gate_code(mac.acc[c], f_mix, arch.gate_bits, gate_rounding)
                                qv, sat = requantize(self.m1[e] * k, fmts.act.frac + arch.gate_bits, fmts.act)
                                m.d.sync += self.m1[e].eq(qv)
                            sats.append(sat & store & (p == pp))
        if R == 1:
            for c in range(H):
                qv, sat = requantize(mac.acc[c], f_mix, fmts.act)
                m.d.comb += self.m2[c].eq(qv)
                sats2.append(sat & self.done)
            sat_m2 = any_of(sats2)
        else:
            live = []
            for c in range(n):
                qv, sat = requantize(mac.acc[c], f_mix, fmts.act)
                live.append(qv)
                sats2.append(sat)
            sat_m2 = pass_results(m, self.m2, live, q, store2, self.start, any_of(sats2), "m2") & self.done
        m.d.comb += [self.sat_m1.eq(any_of(sats)), self.sat_m2.eq(sat_m2),
                     self.sat.eq(self.sat_m1 | self.sat_m2)]
        return m
