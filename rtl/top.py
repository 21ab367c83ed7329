"""``MgradeTop``: the whole network, samples in and per-step results out through streams.

Ports (Verilog names after ``amaranth.back.verilog``: ``<member>__<field>``):

=========== ======================================================= =========================
port        payload                                                  protocol
=========== ======================================================= =========================
``cfg``     ``{addr, data}`` (:class:`rtl.addrmap.AddressMap`)       stream, always ready
``i``       ``{first, x[d_in]}`` or ``{first, token}``               stream (ready = idle)
``o``       ``{logits[C], acc[C], sat}`` (``acc`` if readout=mean)    stream (back-pressure)
``probe``   every layer's intermediates (only ``trace=True``)        plain output
=========== ======================================================= =========================

``o.payload.sat`` holds the step's saturation flags: one bit per name of
:func:`spec.names.saturation_names` (``enc``, ``layers.{i}.{s,u,hc,h,o,r,m1,y,a}``, ``logit``,
``logit_acc``, as the architecture has them), set if any element of that tensor saturated, at any
of its rounding points, during this step (the events ``sim`` counts). The blocks' flags, gated by
the cycle each value is taken, are OR-ed into a register cleared when the step's sample is accepted.

``first`` marks the first sample of a sequence: the minGRU states, the delay lines and the
logit accumulator restart from zero. The network takes one sample, runs the encoder, the
layers and the readout one after another, presents the step's result on ``o`` and takes the
next sample after ``o`` was accepted: :func:`cycles_per_step` clock cycles per time step.

``MgradeTop(arch, fmts, preload=tensors)``: the weight memories start with ``tensors`` (a
bundle's) in them (:class:`rtl.addrmap.AddressMap`'s ``preload``), so the design runs without
configuration writes; the Verilog then holds the bundle.

``MgradeTop(arch, fmts, micro=Microarch(...))``: the projections take several input columns per
cycle (:mod:`rtl.microarch`); same results, fewer cycles per step, more multipliers. The default
is the original design (one column per cycle), with the original Verilog.
"""
from __future__ import annotations

from itertools import pairwise

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats
from spec.names import saturation_names

from .addrmap import AddressMap
from .encoder import EmbeddingEncoder, LinearEncoder, encoder_class, token_bits
from .fixed import shape_of
from .layer import MgradeLayer, layer_trace_layout
from .microarch import Microarch, cycles_closed_form, cycles_formula
from .readout import Readout

__all__ = ["MgradeTop", "cycles_per_step", "cycles_formula", "cycles_closed_form", "input_layout", "output_layout",
           "trace_layout", "cfg_layout", "sat_layout"]


def input_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    if arch.encoder == "linear":
        return data.StructLayout({"first": 1, "x": data.ArrayLayout(shape_of(fmts.x), arch.d_in)})
    return data.StructLayout({"first": 1, "token": token_bits(arch)})


def sat_layout(arch: Arch) -> data.StructLayout:
    """The per-step saturation flags: one bit per name of :func:`spec.names.saturation_names`, in order."""
    return data.StructLayout({n: 1 for n in saturation_names(arch)})


def output_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    f = {"logits": data.ArrayLayout(shape_of(fmts.logit), arch.n_classes)}
    if arch.readout == "mean":
        f["acc"] = data.ArrayLayout(shape_of(fmts.logit_acc), arch.n_classes)
    f["sat"] = sat_layout(arch)
    return data.StructLayout(f)


def trace_layout(arch: Arch, fmts: Formats) -> data.StructLayout:
    f = {"enc": data.ArrayLayout(shape_of(fmts.act), arch.hidden)}
    for i in range(arch.layers):
        f[f"layers.{i}"] = layer_trace_layout(arch, fmts)
    return data.StructLayout(f)


def cfg_layout(amap: AddressMap) -> data.StructLayout:
    return data.StructLayout({"addr": amap.addr_width, "data": amap.data_width})


def cycles_per_step(arch: Arch, micro: Microarch | None = None) -> int:
    """Clock cycles of one time step at the microarchitecture ``micro`` (:class:`rtl.microarch.Microarch`;
    default: the original design), from accepting a sample to the cycle its result is accepted
    (with ``o.ready`` high); the next sample is accepted in the following cycle.

    The sum of the stages' own counts: ``1`` (accept) ``+`` encoder ``+ L x`` layer ``+ 1`` (take
    the last layer's ``a``) ``+`` readout ``+ 1`` (present the result). See
    :func:`rtl.microarch.cycles_formula` for the closed form (:func:`rtl.microarch.cycles_closed_form`).
    """
    micro = (micro or Microarch()).check(arch)
    return (1 + encoder_class(arch).cycles(arch, micro) + arch.layers * MgradeLayer.cycles(arch, micro) + 1
            + Readout.cycles(arch, micro) + 1)


class MgradeTop(wiring.Component):
    """The mGRADE network of ``arch``/``fmts`` (see the module docstring)."""

    def __init__(self, arch: Arch, fmts: Formats, *, trace: bool = False, preload=None,
                 micro: Microarch | None = None):
        self.arch, self.fmts, self.with_trace = arch, fmts, trace
        self.amap = AddressMap(arch, fmts, preload=preload, micro=micro)
        self.micro = self.amap.micro
        members = {
            "cfg": In(stream.Signature(cfg_layout(self.amap))),
            "i": In(stream.Signature(input_layout(arch, fmts))),
            "o": Out(stream.Signature(output_layout(arch, fmts))),
        }
        if trace:
            # named "probe", not "trace": Verilator's model class has a trace() method
            members["probe"] = Out(trace_layout(arch, fmts))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        arch, fmts, amap = self.arch, self.fmts, self.amap
        cfg = amap.signature().create(path=("cfgbus",))
        m.d.comb += [cfg.addr.eq(self.cfg.payload.addr), cfg.data.eq(self.cfg.payload.data),
                     cfg.en.eq(self.cfg.valid), self.cfg.ready.eq(1)]

        if arch.encoder == "linear":
            m.submodules.enc = enc = LinearEncoder(arch, fmts, amap)
            x = Signal(data.ArrayLayout(shape_of(fmts.x), arch.d_in))
            m.d.comb += enc.x.eq(x)
        else:
            m.submodules.enc = enc = EmbeddingEncoder(arch, fmts, amap)
            x = Signal(token_bits(arch))
            m.d.comb += enc.token.eq(x)
        layers = []
        for i in range(arch.layers):
            lay = MgradeLayer(arch, fmts, amap, i)
            m.submodules[f"layer{i}"] = lay
            layers.append(lay)
        m.submodules.readout = ro = Readout(arch, fmts, amap)
        for sub in [enc, ro] + layers:
            m.d.comb += [sub.cfg.addr.eq(cfg.addr), sub.cfg.data.eq(cfg.data), sub.cfg.en.eq(cfg.en)]
        for a, b in pairwise(layers):
            wiring.connect(m, a.o, b.i)

        first = Signal()
        a_last = Signal(data.ArrayLayout(shape_of(fmts.act), arch.hidden))
        out = Signal(output_layout(arch, fmts))
        m.d.comb += [ro.a.eq(a_last), ro.first.eq(first), self.o.payload.eq(out)]
        m.d.comb += [layers[0].i.payload.a.eq(enc.a), layers[0].i.payload.first.eq(first)]

        # saturation: every block's flag in the cycle its value is taken, OR-ed over the step
        events = Signal(sat_layout(arch))
        ev = {"logit": ro.sat_logit}
        if arch.encoder == "linear":
            ev["enc"] = enc.done & enc.sat
        if arch.readout == "mean":
            ev["logit_acc"] = ro.sat_acc
        for i, lay in enumerate(layers):
            ev.update({f"layers.{i}.{n}": lay.sat[n] for n, _ in lay.sat.shape()})
        m.d.comb += [events[n].eq(ev[n]) for n in saturation_names(arch)]
        flags = Signal(sat_layout(arch))        # this step's so far
        m.d.sync += flags.eq(flags.as_value() | events.as_value())

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [first.eq(self.i.payload.first), flags.eq(0)]
                    if arch.encoder == "linear":
                        m.d.sync += x.eq(self.i.payload.x)
                    else:
                        m.d.sync += x.eq(self.i.payload.token)
                    m.next = "ENC_GO"
            with m.State("ENC_GO"):
                m.d.comb += enc.start.eq(1)
                m.next = "ENC_WAIT"
            with m.State("ENC_WAIT"):
                with m.If(enc.done):
                    m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += layers[0].i.valid.eq(1)
                with m.If(layers[0].i.ready):
                    m.next = "LAYERS"
            with m.State("LAYERS"):
                m.d.comb += layers[-1].o.ready.eq(1)
                with m.If(layers[-1].o.valid):
                    m.d.sync += a_last.eq(layers[-1].o.payload.a)
                    m.next = "RO_GO"
            with m.State("RO_GO"):
                m.d.comb += ro.start.eq(1)
                m.next = "RO_WAIT"
            with m.State("RO_WAIT"):
                with m.If(ro.done):
                    m.d.sync += [out.logits.eq(ro.logits), out.sat.eq(flags.as_value() | events.as_value())]
                    if arch.readout == "mean":
                        m.d.sync += out.acc.eq(ro.acc)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"

        if self.with_trace:
            m.d.comb += self.probe["enc"].eq(enc.a)
            for i, lay in enumerate(layers):
                m.d.comb += self.probe[f"layers.{i}"].eq(lay.trace)
        return m
