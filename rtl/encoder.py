"""Encoders: ``LinearEncoder`` (x -> act by a d_in-column projection) and ``EmbeddingEncoder``."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.arch import Arch, Formats, acc_frac

from .addrmap import AddressMap
from .fixed import acc_shape, any_of, requantize, shape_of
from .mac import MacLanes, broadcast_columns, column_group, pass_cycles, pass_results, projection_sequencer
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["LinearEncoder", "EmbeddingEncoder", "encoder_class", "token_bits"]


def token_bits(arch: Arch) -> int:
    return max(1, ceil_log2(arch.d_in))


def encoder_class(arch: Arch) -> type:
    """The encoder component of ``arch`` (:class:`LinearEncoder` or :class:`EmbeddingEncoder`)."""
    return LinearEncoder if arch.encoder == "linear" else EmbeddingEncoder


def _encoder_members(arch: Arch, fmts: Formats, amap: AddressMap, name: str, shape) -> dict:
    """The encoders' common signature; only the input port (``x`` features or a ``token`` id) differs."""
    return {
        "cfg": In(amap.signature()),
        name: In(shape),
        "start": In(1),
        "done": Out(1),
        "a": Out(data.ArrayLayout(shape_of(fmts.act), arch.hidden)),
        "sat": Out(1),
    }


class LinearEncoder(wiring.Component):
    """``a0 = q_act(W_enc x + (b_enc << s), f_x + f_w_enc)``: H lanes, ``s = micro.enc`` input
    features per cycle (:class:`rtl.microarch.Microarch`; 1 by default).

    With ``R = micro.enc_passes`` > 1 it has H / R lanes and makes R row passes (:func:`rtl.mac.pass_sequencer`;
    the passes' rows are stored in registers, the last pass's come from the accumulators).

    Timing: ``start`` (loads the bias) + d_in / s cycles + 1 cycle with ``done``; R passes: R - 1
    store cycles more (:meth:`cycles`).
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap):
        self.arch, self.fmts, self.amap = arch, fmts, amap
        super().__init__(_encoder_members(arch, fmts, amap, "x", data.ArrayLayout(shape_of(fmts.x), arch.d_in)))

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``R (d_in / s + 1) + 1`` (``d_in / s + 2``
        with one row pass)."""
        mu = micro or Microarch()
        return pass_cycles(arch.d_in // mu.enc, mu.enc_passes)

    def elaborate(self, platform):
        m = Module()
        arch, fmts = self.arch, self.fmts
        H, N = arch.hidden, arch.d_in
        s, R = self.amap.micro.enc, self.amap.micro.enc_passes
        f_acc = acc_frac(fmts.x, fmts.w_enc)
        m.submodules.mac = mac = MacLanes(H // R, shape_of(fmts.x), shape_of(fmts.w_enc),
                                          acc_shape(N, fmts.x, fmts.w_enc, fmts.bias), simd=s)
        sq = projection_sequencer(m, self.start, self.done, N // s, R)
        w = weight_memory(m, self.amap, "enc.w", self.cfg, sq.word)
        b = weight_memory(m, self.amap, "enc.b", self.cfg, sq.bias_word)
        broadcast_columns(m, mac, column_group(self.x, sq.i, s), w, b, bias=fmts.bias, f_acc=f_acc,
                          start=self.start, running=sq.running, load=sq.load)
        sats, live = [], []
        for c in range(H // R):
            q, sat = requantize(mac.acc[c], f_acc, fmts.act)
            live.append(q)
            sats.append(sat)
        if R == 1:
            m.d.comb += [self.a[c].eq(live[c]) for c in range(H)]
            m.d.comb += self.sat.eq(any_of(sats))
        else:
            m.d.comb += self.sat.eq(pass_results(m, self.a, live, sq.p, sq.store, self.start, any_of(sats), "a"))
        return m


class EmbeddingEncoder(wiring.Component):
    """``a0 = table[token]`` (table stored in ``act``): one read. ``done`` one cycle after ``start``."""

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap):
        self.arch, self.fmts, self.amap = arch, fmts, amap
        super().__init__(_encoder_members(arch, fmts, amap, "token", token_bits(arch)))

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``start``, then ``done``."""
        return 2

    def elaborate(self, platform):
        m = Module()
        row = weight_memory(m, self.amap, "enc.table", self.cfg, self.token)
        m.d.comb += [self.a.eq(row), self.sat.eq(0)]
        m.d.sync += self.done.eq(self.start)
        return m
