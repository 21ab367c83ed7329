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
the cycle each value is taken, are OR-ed into a register cleared when the step's sample is accepted
(in the dataflow schedule, one such register per pipeline stage, handed on with the step).

``first`` marks the first sample of a sequence: the minGRU states, the delay lines and the
logit accumulator restart from zero. The network (sequential schedule, the default) takes one
sample, runs the encoder, the layers and the readout one after another, presents the step's
result on ``o`` and takes the next sample after ``o`` was accepted: :func:`cycles_per_step` clock
cycles per time step.

``MgradeTop(arch, fmts, preload=tensors)``: the weight memories start with ``tensors`` (a
bundle's) in them (:class:`rtl.addrmap.AddressMap`'s ``preload``), so the design runs without
configuration writes; the Verilog then holds the bundle.

``MgradeTop(arch, fmts, micro=Microarch(...))``: the projections take several input columns per
cycle, the element-wise stages a group of channels per cycle, and with ``schedule='dataflow'``
the encoder, the layers and the readout work as a stream pipeline, each stage on its own step
(the encoder takes the next sample as soon as it has handed the last one on), see
:mod:`rtl.microarch`; same results, other cycles per step and area. The default is the original
design (one column per cycle, all channels at once, sequential), with the original Verilog.
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

__all__ = ["MgradeTop", "cycles_per_step", "latency", "stage_cycles", "stream_cycles", "cycles_formula",
           "cycles_closed_form", "input_layout", "output_layout", "trace_layout", "cfg_layout", "sat_layout"]


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


def latency(arch: Arch, micro: Microarch | None = None) -> int:
    """Clock cycles from accepting a sample to the cycle its result is accepted (with ``o.ready``
    high) when the design is otherwise empty, at the microarchitecture ``micro``
    (:class:`rtl.microarch.Microarch`; default: the original design), either schedule.

    The sum of the stages' own counts: ``1`` (accept) ``+`` encoder ``+ L x`` layer ``+ 1`` (take
    the last layer's ``a``) ``+`` readout ``+ 1`` (present the result).
    """
    micro = (micro or Microarch()).check(arch)
    return (1 + encoder_class(arch).cycles(arch, micro) + arch.layers * MgradeLayer.cycles(arch, micro) + 1
            + Readout.cycles(arch, micro) + 1)


def stage_cycles(arch: Arch, micro: Microarch | None = None) -> dict[str, int]:
    """Cycles between two steps that each stage of the ``dataflow`` schedule can take in (its
    initiation interval on its own): ``encoder`` ``2 +`` encoder (accept, the encoder, hand over),
    ``layer`` ``1 +`` layer (a layer's count, then the cycle presenting ``a'``), ``readout`` ``2 +``
    readout (accept, the readout, present the result)."""
    micro = (micro or Microarch()).check(arch)
    return {"encoder": 2 + encoder_class(arch).cycles(arch, micro), "layer": 1 + MgradeLayer.cycles(arch, micro),
            "readout": 2 + Readout.cycles(arch, micro)}


def cycles_per_step(arch: Arch, micro: Microarch | None = None) -> int:
    """Clock cycles per time step at the microarchitecture ``micro`` (:class:`rtl.microarch.Microarch`;
    default: the original design): the steady-state initiation interval, the cycles between two
    accepted samples (and between two results) of a stream fed without gaps.

    ``sequential``: a step runs the stages one after another and the next sample is taken after the
    result was accepted, so this is :func:`latency`. ``dataflow``: every stage works on its own step,
    so this is the slowest stage's :func:`stage_cycles` (usually a layer's); the first result still
    comes :func:`latency` cycles after the first sample (:func:`stream_cycles`). See
    :func:`rtl.microarch.cycles_formula` for the closed form (:func:`rtl.microarch.cycles_closed_form`).
    """
    micro = (micro or Microarch()).check(arch)
    if micro.dataflow:
        return max(stage_cycles(arch, micro).values())
    return latency(arch, micro)


def stream_cycles(arch: Arch, micro: Microarch | None, steps: int) -> int:
    """Cycles of a stream of ``steps`` samples fed without gaps (results taken at once), from the
    first sample's acceptance to the last result's, inclusive (the feeder's ``cycles``):
    ``latency + (steps - 1) x cycles_per_step`` (``steps x cycles_per_step`` when sequential)."""
    return latency(arch, micro) + (steps - 1) * cycles_per_step(arch, micro) if steps else 0


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

    def _blocks(self, m: Module):
        """The blocks both schedules share: the configuration bus to every block, the encoder (and
        its input register ``x``), the layers chained by their streams, the readout.
        Returns ``(enc, x, layers, ro)``."""
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
        return enc, x, layers, ro

    def _sat_events(self, enc, layers, ro) -> list[dict]:
        """The blocks' saturation flags by name of :func:`spec.names.saturation_names`, each high in
        the cycle its value is taken, per pipeline stage: ``[encoder, layer 0, ..., readout]``."""
        arch = self.arch
        ev_enc = {"enc": enc.done & enc.sat} if arch.encoder == "linear" else {}
        ev_ro = {"logit": ro.sat_logit}
        if arch.readout == "mean":
            ev_ro["logit_acc"] = ro.sat_acc
        ev_layers = [{f"layers.{i}.{n}": lay.sat[n] for n, _ in lay.sat.shape()} for i, lay in enumerate(layers)]
        return [ev_enc, *ev_layers, ev_ro]

    def _elaborate_dataflow(self):
        """``schedule='dataflow'``: the encoder, every layer and the readout are the stages of a
        stream pipeline, each working on its own time step (see :func:`cycles_per_step`).

        The encoder stage (accept a sample, run the encoder, hand ``a0`` to layer 0) and the readout
        stage (take the last layer's ``a``, run the readout, present the result) are two small
        FSMs; the layers are chained by their own streams as in the sequential design. What belongs
        to a step travels with it: ``first`` in the layers' payload, and per stage a register of the
        step's saturation flags so far (taken from the previous stage when the step is accepted,
        then OR-ed with the stage's own events), and with ``trace`` a register of the traces of the
        stages the step has left (so ``probe`` shows the presented step's intermediates).
        """
        m = Module()
        arch, fmts = self.arch, self.fmts
        enc, x, layers, ro = self._blocks(m)
        sat = sat_layout(arch)
        stage_ev = []
        for k, ev in enumerate(self._sat_events(enc, layers, ro)):
            e = Signal(sat, name=f"events{k}")
            m.d.comb += [e[n].eq(v) for n, v in ev.items()]
            stage_ev.append(e.as_value())

        # encoder stage
        first_e = Signal()
        flags_e = Signal(sat)
        m.d.sync += flags_e.eq(flags_e.as_value() | stage_ev[0])
        m.d.comb += [layers[0].i.payload.a.eq(enc.a), layers[0].i.payload.first.eq(first_e)]
        with m.FSM(name="enc_stage"):
            self._encoder_states(m, enc, x, first_e, flags_e, layers[0], then="IDLE")

        # the layers: each stage's flags (and traces) of its step, taken over when it accepts the step
        prev_flags = flags_e.as_value() | stage_ev[0]
        prev_trace = {"enc": enc.a}
        for i, lay in enumerate(layers):
            fl = Signal(sat, name=f"flags{i}")
            accept = lay.i.valid & lay.i.ready
            m.d.sync += fl.eq(fl.as_value() | stage_ev[1 + i])
            with m.If(accept):
                m.d.sync += fl.eq(prev_flags)
            prev_flags = fl.as_value() | stage_ev[1 + i]
            if self.with_trace:
                prev_trace = self._trace_stage(m, f"trace{i}", prev_trace, accept)
                prev_trace[f"layers.{i}"] = lay.trace

        # readout stage
        a_last = Signal(data.ArrayLayout(shape_of(fmts.act), arch.hidden))
        first_r = Signal()
        flags_r = Signal(sat)
        out = Signal(output_layout(arch, fmts))
        m.d.comb += [ro.a.eq(a_last), ro.first.eq(first_r), self.o.payload.eq(out)]
        last = layers[-1].o
        with m.FSM(name="ro_stage"):
            with m.State("IDLE"):
                m.d.comb += last.ready.eq(1)
                with m.If(last.valid):
                    m.d.sync += [a_last.eq(last.payload.a), first_r.eq(last.payload.first), flags_r.eq(prev_flags)]
                    m.next = "RO_GO"
            self._readout_states(m, ro, out, flags_r.as_value() | stage_ev[-1])
        if self.with_trace:
            snap = self._trace_stage(m, "trace_ro", prev_trace, last.valid & last.ready)
            m.d.comb += [self.probe[n].eq(v) for n, v in snap.items()]
        return m

    def _encoder_states(self, m: Module, enc, x, first, flags, layer0, then: str) -> None:
        """FSM states IDLE, ENC_GO, ENC_WAIT, FEED: take a sample (its ``first`` bit; the step's
        saturation ``flags`` cleared), run the encoder, hand ``a0`` to ``layer0``, then go to ``then``."""
        with m.State("IDLE"):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [first.eq(self.i.payload.first), flags.eq(0)]
                m.d.sync += x.eq(self.i.payload.x if self.arch.encoder == "linear" else self.i.payload.token)
                m.next = "ENC_GO"
        with m.State("ENC_GO"):
            m.d.comb += enc.start.eq(1)
            m.next = "ENC_WAIT"
        with m.State("ENC_WAIT"):
            with m.If(enc.done):
                m.next = "FEED"
        with m.State("FEED"):
            m.d.comb += layer0.i.valid.eq(1)
            with m.If(layer0.i.ready):
                m.next = then

    def _readout_states(self, m: Module, ro, out, sat) -> None:
        """FSM states RO_GO, RO_WAIT, OUT: run the readout, latch its logits (and the mean's
        accumulator) with the step's saturation flags ``sat``, present the result, back to IDLE."""
        with m.State("RO_GO"):
            m.d.comb += ro.start.eq(1)
            m.next = "RO_WAIT"
        with m.State("RO_WAIT"):
            with m.If(ro.done):
                m.d.sync += [out.logits.eq(ro.logits), out.sat.eq(sat)]
                if self.arch.readout == "mean":
                    m.d.sync += out.acc.eq(ro.acc)
                m.next = "OUT"
        with m.State("OUT"):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.next = "IDLE"

    def _trace_stage(self, m: Module, name: str, values: dict, accept) -> dict:
        """A register of the trace fields ``values`` (name -> live value), loaded when ``accept``;
        returns its fields by name."""
        full = trace_layout(self.arch, self.fmts)
        lay = data.StructLayout({n: full.members[n] for n in values})
        reg = Signal(lay, name=name)
        with m.If(accept):
            m.d.sync += [reg[n].eq(v) for n, v in values.items()]
        return {n: reg[n] for n in values}

    def elaborate(self, platform):
        if self.micro.dataflow:
            return self._elaborate_dataflow()
        m = Module()
        arch, fmts = self.arch, self.fmts
        enc, x, layers, ro = self._blocks(m)

        first = Signal()
        a_last = Signal(data.ArrayLayout(shape_of(fmts.act), arch.hidden))
        out = Signal(output_layout(arch, fmts))
        m.d.comb += [ro.a.eq(a_last), ro.first.eq(first), self.o.payload.eq(out)]
        m.d.comb += [layers[0].i.payload.a.eq(enc.a), layers[0].i.payload.first.eq(first)]

        # saturation: every block's flag in the cycle its value is taken, OR-ed over the step
        events = Signal(sat_layout(arch))
        ev = {k: v for part in self._sat_events(enc, layers, ro) for k, v in part.items()}
        m.d.comb += [events[n].eq(ev[n]) for n in saturation_names(arch)]
        flags = Signal(sat_layout(arch))        # this step's so far
        m.d.sync += flags.eq(flags.as_value() | events.as_value())

        with m.FSM():
            self._encoder_states(m, enc, x, first, flags, layers[0], then="LAYERS")
            with m.State("LAYERS"):
                m.d.comb += layers[-1].o.ready.eq(1)
                with m.If(layers[-1].o.valid):
                    m.d.sync += a_last.eq(layers[-1].o.payload.a)
                    m.next = "RO_GO"
            self._readout_states(m, ro, out, flags.as_value() | events.as_value())

        if self.with_trace:
            m.d.comb += self.probe["enc"].eq(enc.a)
            for i, lay in enumerate(layers):
                m.d.comb += self.probe[f"layers.{i}"].eq(lay.trace)
        return m
