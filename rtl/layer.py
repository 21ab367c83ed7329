"""``MgradeLayer``: one mGRADE layer (delay-line conv -> minGRU -> channel mixer -> norm)."""
from __future__ import annotations

import dataclasses

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats
from spec.names import LAYER_TRACE_NAMES, layer_saturation_names, layer_trace_names

from .addrmap import AddressMap
from .conv import DelayLineConv
from .fixed import any_of, requantize, saturate, shape_of
from .mac import group_view
from .microarch import Microarch
from .mingru import GateCandidate, ScUpdate
from .mixer import ChannelMixer
from .norm import AffineNorm

__all__ = ["MgradeLayer", "vector_layout", "layer_trace_layout", "layer_sat_layout"]


def vector_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    """Payload between stages: the residual-stream vector ``a`` and the start-of-sequence flag."""
    return data.StructLayout({"first": 1, "a": data.ArrayLayout(shape_of(fmts.act), arch.hidden)})


def _trace_shapes(arch: Arch, fmts: Formats) -> dict[str, data.ArrayLayout]:
    """The shape of every name of :data:`spec.names.LAYER_TRACE_NAMES` in the RTL."""
    H, E = arch.hidden, arch.mix_width
    act = data.ArrayLayout(shape_of(fmts.act), H)
    shapes = {"s": data.ArrayLayout(shape_of(fmts.dl), H), "u": act, "k": data.ArrayLayout(arch.gate_bits, H),
              "hc": data.ArrayLayout(shape_of(fmts.h), H), "h": data.ArrayLayout(shape_of(fmts.h), H),
              "o": act, "r": act, "m1": data.ArrayLayout(shape_of(fmts.act), E), "y": act, "a": act}
    assert tuple(shapes) == LAYER_TRACE_NAMES, "a trace name without an RTL shape"
    return shapes


def layer_trace_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    """The per-step values of one layer: exactly :func:`spec.names.layer_trace_names` (the names
    ``sim`` traces as ``layers.{i}.<name>``), in that order."""
    shapes = _trace_shapes(arch, fmts)
    return data.StructLayout({n: shapes[n] for n in layer_trace_names(arch)})


def layer_sat_layout(arch: Arch) -> data.StructLayout:
    """One flag per name of :func:`spec.names.layer_saturation_names` (the names ``sim`` counts as
    ``layers.{i}.<name>``), in that order."""
    return data.StructLayout({n: 1 for n in layer_saturation_names(arch)})


@dataclasses.dataclass
class _Datapath:
    """The signals of one layer's step, filled in stage by stage by :class:`MgradeLayer`."""

    a_in: Signal                # the accepted input vector
    first: Signal               # its start-of-sequence flag
    u: Signal                   # registers of the stage results
    r: Signal
    y: Signal
    a_out: Signal
    s: Signal | None = None     # combinational values
    o: Signal | None = None
    u_next: Signal | None = None
    r_next: Signal | None = None
    y_next: Signal | None = None
    conv: DelayLineConv | None = None
    proj: GateCandidate | None = None
    upd: ScUpdate | None = None
    mix: ChannelMixer | None = None
    norm: AffineNorm | None = None
    sat: dict = dataclasses.field(default_factory=dict)     # saturation flags of the combinational parts
    in_rout: Signal | None = None                           # the FSM is in ROUT / NORM (o, r / a are taken)
    in_norm: Signal | None = None


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
    intermediate of the last step (:func:`layer_trace_layout`). ``sat`` (:func:`layer_sat_layout`)
    has one flag per tensor that can saturate, high in each cycle in which a value of that tensor
    that saturated (in any element, at any of its rounding points) is taken: ``s`` when the
    convolution starts, ``u`` / ``hc`` / ``h`` / ``y`` in the done cycle of the convolution, the
    projections (the SC update) and the mixer, ``o`` and ``r`` in ROUT, ``m1`` in each of the
    mixer's store cycles, ``a`` in NORM; within one step each fires at most once, except ``m1``.
    :meth:`elaborate` builds one stage per method and :meth:`_sequence` runs them; :meth:`cycles`
    counts its cycles.
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        self.arch, self.fmts, self.amap, self.layer = arch, fmts, amap, layer
        vec = vector_layout(arch, fmts)
        super().__init__({
            "cfg": In(amap.signature()),
            "i": In(stream.Signature(vec)),
            "o": Out(stream.Signature(vec)),
            "trace": Out(layer_trace_layout(arch, fmts)),
            "sat": Out(layer_sat_layout(arch)),
        })

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles one layer spends on one step, from accepting ``a`` to presenting ``a'``, at the
        microarchitecture ``micro`` (:class:`rtl.microarch.Microarch`; default: the original design).

        ``1`` (accept) ``+`` conv (if K > 0) ``+`` projections (incl. the SC update in their done
        cycle) ``+ P - 1`` (the SC update's further channel groups) ``+ 1`` (output/skip) ``+``
        mixer (if any) ``+ 1`` (norm) ``+ P - 1`` (its further groups, affine norm only), each
        stage's count from its component, ``P`` = ``micro.chan_passes``; the cycle that presents
        ``a'`` is the next stage's accept cycle.
        """
        P = (micro or Microarch()).chan_passes
        n = 1 + GateCandidate.cycles(arch, micro) + (P - 1) + 1 + 1 + (P - 1 if arch.norm == "affine" else 0)
        if arch.taps:
            n += DelayLineConv.cycles(arch, micro)
        if arch.mix != "none":
            n += ChannelMixer.cycles(arch, micro)
        return n

    def elaborate(self, platform):
        m = Module()
        act = data.ArrayLayout(shape_of(self.fmts.act), self.arch.hidden)
        dp = _Datapath(a_in=Signal(act, name="a_in"), first=Signal(name="first"), u=Signal(act, name="u"),
                       r=Signal(act, name="r"), y=Signal(act, name="y"), a_out=Signal(act, name="a_out"),
                       in_rout=Signal(name="in_rout"), in_norm=Signal(name="in_norm"))
        self._accept(m, dp)
        self._conv(m, dp)
        self._projections(m, dp)
        self._mixer(m, dp)
        self._norm(m, dp)
        self._configuration(m, dp)
        self._output(m, dp)
        self._sequence(m, dp)
        self._trace(m, dp)
        self._saturation(m, dp)
        return m

    # ---- stages (combinational datapath) -------------------------------------------------------
    def _accept(self, m: Module, dp: _Datapath) -> None:
        """``s = q_dl(a)``: the sample pushed into the delay line."""
        fmts = self.fmts
        dp.s = Signal(data.ArrayLayout(shape_of(fmts.dl), self.arch.hidden), name="s")
        sats = []
        for c in range(self.arch.hidden):
            q, sat = requantize(dp.a_in[c], fmts.act.frac, fmts.dl)
            m.d.comb += dp.s[c].eq(q)
            sats.append(sat)
        dp.sat["s"] = any_of(sats)

    def _conv(self, m: Module, dp: _Datapath) -> None:
        """The delay-line convolution (K > 0); ``u = sat(u0 + a)`` (skip) or ``u0``."""
        if not self.arch.taps:
            return
        m.submodules.conv = dp.conv = DelayLineConv(self.arch, self.fmts, self.amap, self.layer)
        m.d.comb += [dp.conv.s.eq(dp.s), dp.conv.first.eq(dp.first)]
        dp.u_next, dp.sat["u_skip"] = self._skip_add(m, "u_next", dp.conv.u0, dp.a_in)

    def _projections(self, m: Module, dp: _Datapath) -> None:
        """Gate and candidate projections of ``u``, the SC state update, and the output stage
        ``o = q_act(h)`` or heaviside(h), ``r = sat(o + u)`` (skip) or ``o``."""
        arch, fmts = self.arch, self.fmts
        m.submodules.proj = dp.proj = GateCandidate(arch, fmts, self.amap, self.layer)
        m.submodules.update = dp.upd = ScUpdate(arch, fmts, self.amap.micro.chan_passes)
        m.d.comb += [dp.proj.u.eq(dp.u), dp.upd.k.eq(dp.proj.k), dp.upd.hc.eq(dp.proj.hc)]
        dp.o = Signal(data.ArrayLayout(shape_of(fmts.act), arch.hidden), name="o")
        sats = []
        for c in range(arch.hidden):
            if arch.rnn_out == "linear":
                oc, sat = requantize(dp.upd.h[c], fmts.h.frac, fmts.act)
                sats.append(sat)
            else:
                oc = Mux(dp.upd.h[c] > 0, 1 << fmts.act.frac, 0)
            m.d.comb += dp.o[c].eq(oc)
        dp.sat["o"] = any_of(sats)
        dp.r_next, dp.sat["r"] = self._skip_add(m, "r_next", dp.o, dp.u)

    def _mixer(self, m: Module, dp: _Datapath) -> None:
        """The channel mixer of ``r`` (mix != 'none'); ``y = sat(m2 + r)`` (skip) or ``m2``."""
        if self.arch.mix == "none":
            return
        m.submodules.mix = dp.mix = ChannelMixer(self.arch, self.fmts, self.amap, self.layer)
        m.d.comb += dp.mix.r.eq(dp.r)
        dp.y_next, dp.sat["y_skip"] = self._skip_add(m, "y_next", dp.mix.m2, dp.r)

    def _norm(self, m: Module, dp: _Datapath) -> None:
        """The affine normalisation of ``y`` (norm 'affine')."""
        if self.arch.norm != "affine":
            return
        m.submodules.norm = dp.norm = AffineNorm(self.arch, self.fmts, self.amap, self.layer)
        m.d.comb += dp.norm.y.eq(dp.y)

    def _skip_add(self, m: Module, name: str, x, skip):
        """``sat_act(x + skip)`` per channel with the residual connections (arch.skip), else ``x``.
        Returns the sum and its saturation flag (any channel; 0 without skip)."""
        fmts = self.fmts
        out = Signal(data.ArrayLayout(shape_of(fmts.act), self.arch.hidden), name=name)
        sats = []
        for c in range(self.arch.hidden):
            if self.arch.skip:
                v, sat = saturate(x[c] + skip[c], fmts.act)
                sats.append(sat)
            else:
                v = x[c]
            m.d.comb += out[c].eq(v)
        return out, any_of(sats)

    def _configuration(self, m: Module, dp: _Datapath) -> None:
        """Every block with run-time memories listens to the configuration bus."""
        for sub in (dp.proj, dp.mix, dp.norm, dp.conv):
            if sub is not None:
                m.d.comb += [sub.cfg.addr.eq(self.cfg.addr), sub.cfg.data.eq(self.cfg.data),
                             sub.cfg.en.eq(self.cfg.en)]

    def _output(self, m: Module, dp: _Datapath) -> None:
        m.d.comb += [self.o.payload.a.eq(dp.a_out), self.o.payload.first.eq(dp.first)]

    # ---- sequencing --------------------------------------------------------------------------
    def _sequence(self, m: Module, dp: _Datapath) -> None:
        """The layer's FSM: accept, then each stage's start/wait, then present ``a'``
        (:meth:`cycles` counts its cycles)."""
        arch = self.arch
        P = self.amap.micro.chan_passes
        if P > 1:       # the channel group of the SC update and the norm (their further cycles)
            grp = Signal(range(P), name="grp")
            m.d.comb += dp.upd.group.eq(grp)
            if dp.norm is not None:
                m.d.comb += dp.norm.group.eq(grp)
            with m.If(dp.proj.done):        # group 0 updates in the projections' done cycle
                m.d.sync += grp.eq(1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [dp.a_in.eq(self.i.payload.a), dp.first.eq(self.i.payload.first)]
                    m.d.comb += dp.upd.clear.eq(self.i.payload.first)
                    if arch.taps:
                        m.next = "CONV_GO"
                    else:
                        m.d.sync += dp.u.eq(self.i.payload.a)
                        m.next = "PROJ_GO"
            if arch.taps:
                self._start_and_wait(m, "CONV", dp.conv, "PROJ_GO", dp.u.eq(dp.u_next))
            if P == 1:
                self._start_and_wait(m, "PROJ", dp.proj, "ROUT", dp.upd.en.eq(1), domain="comb")
            else:           # the SC update and the norm take P cycles, a group of H / P channels each
                self._start_and_wait(m, "PROJ", dp.proj, "UPD", dp.upd.en.eq(1), domain="comb")
                with m.State("UPD"):
                    m.d.comb += dp.upd.en.eq(1)
                    m.d.sync += grp.eq(grp + 1)
                    with m.If(grp == P - 1):
                        m.d.sync += grp.eq(0)
                        m.next = "ROUT"
            with m.State("ROUT"):
                m.d.comb += dp.in_rout.eq(1)
                m.d.sync += dp.r.eq(dp.r_next)
                if arch.mix != "none":
                    m.next = "MIX_GO"
                else:
                    m.d.sync += dp.y.eq(dp.r_next)
                    m.next = "NORM"
            if arch.mix != "none":
                self._start_and_wait(m, "MIX", dp.mix, "NORM", dp.y.eq(dp.y_next))
            with m.State("NORM"):
                m.d.comb += dp.in_norm.eq(1)
                if P == 1 or arch.norm != "affine":
                    m.d.sync += dp.a_out.eq(dp.norm.a if arch.norm == "affine" else dp.y)
                    m.next = "OUT"
                else:
                    m.d.sync += [group_view(dp.a_out, grp, arch.hidden // P).eq(dp.norm.a), grp.eq(grp + 1)]
                    with m.If(grp == P - 1):
                        m.d.sync += grp.eq(0)
                        m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"

    @staticmethod
    def _start_and_wait(m: Module, stage: str, block, then: str, on_done, *, domain: str = "sync") -> None:
        """States ``{stage}_GO`` (pulse ``block.start``) and ``{stage}_WAIT`` (until ``block.done``;
        then ``on_done`` in ``domain`` and go to ``then``)."""
        with m.State(f"{stage}_GO"):
            m.d.comb += block.start.eq(1)
            m.next = f"{stage}_WAIT"
        with m.State(f"{stage}_WAIT"):
            with m.If(block.done):
                m.d[domain] += on_done
                m.next = then

    def _trace(self, m: Module, dp: _Datapath) -> None:
        """The trace port: every value of :func:`layer_trace_layout`, by name."""
        values = {"s": dp.s, "u": dp.u, "k": dp.proj.k, "hc": dp.proj.hc, "h": dp.upd.h, "o": dp.o, "r": dp.r,
                  "m1": dp.mix.m1 if dp.mix else None, "y": dp.y, "a": dp.a_out}
        m.d.comb += [self.trace[n].eq(values[n]) for n in layer_trace_names(self.arch)]

    def _saturation(self, m: Module, dp: _Datapath) -> None:
        """The ``sat`` port: each tensor's saturation flag, gated by the cycle its value is taken
        (see the class docstring; one flag per name of :func:`spec.names.layer_saturation_names`)."""
        ev = {"hc": dp.proj.done & dp.proj.sat, "h": dp.upd.sat,
              "o": dp.in_rout & dp.sat["o"], "r": dp.in_rout & dp.sat["r"]}
        if dp.conv is not None:
            ev["s"] = dp.conv.start & dp.sat["s"]
            ev["u"] = dp.conv.done & (dp.conv.sat | dp.sat["u_skip"])
        if dp.mix is not None:
            ev["m1"] = dp.mix.sat_m1
            ev["y"] = dp.mix.sat_m2 | (dp.mix.done & dp.sat["y_skip"])
        if dp.norm is not None:
            ev["a"] = dp.in_norm & dp.norm.sat
        m.d.comb += [self.sat[n].eq(ev[n]) for n in layer_saturation_names(self.arch)]
