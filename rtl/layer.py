"""``MgradeLayer``: one mGRADE layer (delay-line conv -> minGRU -> channel mixer -> norm)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats
from .addrmap import AddressMap
from .conv import DelayLineConv
from .fixed import requantize, saturate, shape_of
from .mingru import GateCandidate, ScUpdate
from .mixer import ChannelMixer
from .norm import AffineNorm

__all__ = ["MgradeLayer", "vector_layout", "layer_trace_layout", "layer_cycles"]


def vector_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    """Payload between stages: the residual-stream vector ``a`` and the start-of-sequence flag."""
    return data.StructLayout({"first": 1, "a": data.ArrayLayout(shape_of(fmts.act), arch.hidden)})


def layer_trace_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    """The per-step values of one layer, named as in ``sim`` traces (``layers.{i}.<name>``)."""
    H, E = arch.hidden, arch.mix_width
    act = data.ArrayLayout(shape_of(fmts.act), H)
    f = {}
    if arch.taps:
        f["s"] = data.ArrayLayout(shape_of(fmts.dl), H)
    f["u"] = act
    f["k"] = data.ArrayLayout(arch.gate_bits, H)
    f["hc"] = data.ArrayLayout(shape_of(fmts.h), H)
    f["h"] = data.ArrayLayout(shape_of(fmts.h), H)
    f["o"] = act
    f["r"] = act
    if arch.mix != "none":
        f["m1"] = data.ArrayLayout(shape_of(fmts.act), E)
    f["y"] = act
    f["a"] = act
    return data.StructLayout(f)


def layer_cycles(arch: Arch) -> int:
    """Cycles one layer spends on one step, from accepting ``a`` to presenting ``a'``.

    ``1`` (accept) ``+ (K + 2)`` (conv, if K > 0) ``+ (H + 2)`` (projections, incl. the SC update
    in their done cycle) ``+ 1`` (output/skip) ``+ mixer`` ``+ 1`` (norm); the cycle that
    presents ``a'`` is the next stage's accept cycle.
    """
    H, K = arch.hidden, arch.taps
    n = 1 + (K + 2 if K else 0) + (H + 2) + 1 + 1
    if arch.mix != "none":
        n += ChannelMixer.cycles(arch)
    return n


class MgradeLayer(wiring.Component):
    """One mGRADE layer, time-multiplexed: the stages below run one after another per step.

    ======== =========================================== =====================
    stage    what                                         component
    ======== =========================================== =====================
    accept   latch ``a``; ``s = q_dl(a)``; clear state     (``first``)
    conv     ``u = sat(q_act(sum_k w line) + a)``         :class:`DelayLineConv`
    proj     ``k = gate(Wz u + bz)``, ``hc = q_h(Wh u)``  :class:`GateCandidate`
    update   ``h += round(k (hc - h) / 2**b_z)``          :class:`ScUpdate`
    output   ``o = q_act(h)`` or heaviside; ``r = sat(o + u)``
    mix      ``y = sat(m2 + r)``                          :class:`ChannelMixer`
    norm     ``a' = q_act(g y + b)``                       :class:`AffineNorm`
    ======== =========================================== =====================

    ``i`` and ``o`` are :mod:`amaranth.lib.stream` interfaces carrying :func:`vector_layout`;
    the layer takes the next vector only after ``o`` was accepted. ``trace`` holds every
    intermediate of the last step (:func:`layer_trace_layout`).
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        self.arch, self.fmts, self.amap, self.layer = arch, fmts, amap, layer
        vec = vector_layout(arch, fmts)
        super().__init__({
            "cfg": In(amap.signature()),
            "i": In(stream.Signature(vec)),
            "o": Out(stream.Signature(vec)),
            "trace": Out(layer_trace_layout(arch, fmts)),
        })

    def elaborate(self, platform):
        m = Module()
        arch, fmts, amap, L = self.arch, self.fmts, self.amap, self.layer
        H, fa = arch.hidden, fmts.act.frac
        tr = self.trace
        act = data.ArrayLayout(shape_of(fmts.act), H)
        a_in = Signal(act)
        first = Signal()
        u, r, y, a_out = Signal(act), Signal(act), Signal(act), Signal(act)

        # s = q_dl(a)
        s = Signal(data.ArrayLayout(shape_of(fmts.dl), H))
        for c in range(H):
            q, _ = requantize(a_in[c], fa, fmts.dl)
            m.d.comb += s[c].eq(q)

        if arch.taps:
            m.submodules.conv = conv = DelayLineConv(arch, fmts, amap, L)
            m.d.comb += [conv.s.eq(s), conv.first.eq(first)]
        m.submodules.proj = proj = GateCandidate(arch, fmts, amap, L)
        m.submodules.update = upd = ScUpdate(arch, fmts)
        subs = [proj]
        m.d.comb += [proj.u.eq(u), upd.k.eq(proj.k), upd.hc.eq(proj.hc)]
        if arch.mix != "none":
            m.submodules.mix = mix = ChannelMixer(arch, fmts, amap, L)
            subs.append(mix)
            m.d.comb += [mix.r.eq(r), tr.m1.eq(mix.m1)]
        if arch.norm == "affine":
            m.submodules.norm = norm = AffineNorm(arch, fmts, amap, L)
            subs.append(norm)
            m.d.comb += norm.y.eq(y)
        if arch.taps:
            subs.append(conv)
        for sub in subs:
            m.d.comb += [sub.cfg.addr.eq(self.cfg.addr), sub.cfg.data.eq(self.cfg.data),
                         sub.cfg.en.eq(self.cfg.en)]

        # o = q_act(h) or heaviside(h); r = sat(o + u)
        o = Signal(act)
        r_next, u_next, y_next = Signal(act), Signal(act), Signal(act)
        for c in range(H):
            if arch.rnn_out == "linear":
                oc, _ = requantize(upd.h[c], fmts.h.frac, fmts.act)
            else:
                oc = Mux(upd.h[c] > 0, 1 << fa, 0)
            m.d.comb += o[c].eq(oc)
            m.d.comb += r_next[c].eq(saturate(o[c] + u[c], fmts.act)[0] if arch.skip else o[c])
            # u = sat(u0 + a) ; y = sat(m2 + r)
            if arch.taps:
                m.d.comb += u_next[c].eq(saturate(conv.u0[c] + a_in[c], fmts.act)[0] if arch.skip
                                         else conv.u0[c])
            if arch.mix != "none":
                m.d.comb += y_next[c].eq(saturate(mix.m2[c] + r[c], fmts.act)[0] if arch.skip
                                         else mix.m2[c])

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [a_in.eq(self.i.payload.a), first.eq(self.i.payload.first)]
                    m.d.comb += upd.clear.eq(self.i.payload.first)
                    if arch.taps:
                        m.next = "CONV_GO"
                    else:
                        m.d.sync += u.eq(self.i.payload.a)
                        m.next = "PROJ_GO"
            if arch.taps:
                with m.State("CONV_GO"):
                    m.d.comb += conv.start.eq(1)
                    m.next = "CONV_WAIT"
                with m.State("CONV_WAIT"):
                    with m.If(conv.done):
                        m.d.sync += u.eq(u_next)
                        m.next = "PROJ_GO"
            with m.State("PROJ_GO"):
                m.d.comb += proj.start.eq(1)
                m.next = "PROJ_WAIT"
            with m.State("PROJ_WAIT"):
                with m.If(proj.done):
                    m.d.comb += upd.en.eq(1)
                    m.next = "ROUT"
            with m.State("ROUT"):
                m.d.sync += r.eq(r_next)
                if arch.mix != "none":
                    m.next = "MIX_GO"
                else:
                    m.d.sync += y.eq(r_next)
                    m.next = "NORM"
            if arch.mix != "none":
                with m.State("MIX_GO"):
                    m.d.comb += mix.start.eq(1)
                    m.next = "MIX_WAIT"
                with m.State("MIX_WAIT"):
                    with m.If(mix.done):
                        m.d.sync += y.eq(y_next)
                        m.next = "NORM"
            with m.State("NORM"):
                m.d.sync += a_out.eq(norm.a if arch.norm == "affine" else y)
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
        m.d.comb += [self.o.payload.a.eq(a_out), self.o.payload.first.eq(first)]

        if arch.taps:
            m.d.comb += tr.s.eq(s)
        m.d.comb += [tr.u.eq(u), tr.k.eq(proj.k), tr.hc.eq(proj.hc), tr.h.eq(upd.h), tr.o.eq(o),
                     tr.r.eq(r), tr.y.eq(y), tr.a.eq(a_out)]
        return m
