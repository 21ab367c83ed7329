"""``DelayLineConv``: per-channel delay line and the K-tap convolution at programmable delays."""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spec.arch import Arch, Formats, acc_frac

from .addrmap import AddressMap
from .fixed import acc_shape, any_of, requantize, shape_of
from .mac import MacLanes, pass_cycles, pass_results
from .memory import weight_memory
from .microarch import Microarch

__all__ = ["DelayLineConv"]


class DelayLineConv(wiring.Component):
    """Delay-line convolution of one layer (README rows "delay line" and "convolution").

    Each channel ``c`` owns a circular memory of ``d_max`` past samples ``s`` (format ``dl``);
    delay 0 is the current sample ``s`` (input port), delay ``d >= 1`` reads slot
    ``(t - d) mod d_max``, and a slot not yet written since ``first`` (``t - d < 0``) reads as 0.
    The K taps are sequenced ``s = micro.taps`` per cycle (:class:`rtl.microarch.Microarch`; 1 by
    default) over all channels at once: tap ``k`` reads ``w[c, k]`` and ``delay[c, k]`` (run-time
    memories; ``s`` taps per word) and accumulates ``w[c,k] * line[c, t - delay[c,k]]`` exactly
    (each line has ``s`` read ports); ``u0 = q_act(acc, f_dl + f_w_conv)``. After the last tap the
    current sample is pushed (slot ``t mod d_max``).

    With ``R = micro.taps_passes`` > 1 the array has H / R lanes and makes R passes over the
    channels (:meth:`_elaborate_passes`).

    Timing: ``start`` (1 cycle, clears the accumulator) + K / s tap cycles + 1 push cycle with
    ``done`` high; R passes: R - 1 store cycles more (:meth:`cycles`). ``u0`` stays valid until
    the next ``start``. Protocol: ``s`` and ``first`` are held from ``start`` through the ``done``
    cycle (``s`` is pushed at its end), and ``start`` comes after the ``done`` cycle (the owning
    layer's sequencer guarantees both).
    """

    def __init__(self, arch: Arch, fmts: Formats, amap: AddressMap, layer: int):
        if arch.taps < 1:
            raise ValueError("DelayLineConv needs arch.taps >= 1")
        self.arch, self.fmts, self.amap, self.prefix = arch, fmts, amap, f"layers.{layer}.conv."
        H = arch.hidden
        super().__init__({
            "cfg": In(amap.signature()),
            "s": In(data.ArrayLayout(shape_of(fmts.dl), H)),
            "first": In(1),
            "start": In(1),
            "done": Out(1),
            "u0": Out(data.ArrayLayout(shape_of(fmts.act), H)),
            "sat": Out(1),
        })

    @staticmethod
    def cycles(arch: Arch, micro: Microarch | None = None) -> int:
        """Cycles from ``start`` to ``done`` inclusive: ``K / s + 2``; with R row passes
        ``R (K / s + 1) + 1``."""
        mu = micro or Microarch()
        if mu.taps_passes > 1:
            return pass_cycles(arch.taps // mu.taps, mu.taps_passes)
        return 1 + arch.taps // mu.taps + 1

    def elaborate(self, platform):
        if self.amap.micro.taps_passes > 1:
            return self._elaborate_passes()
        m = Module()
        arch, fmts = self.arch, self.fmts
        H, K, D, n = arch.hidden, arch.taps, arch.d_max, self.amap.micro.taps
        f_acc = acc_frac(fmts.dl, fmts.w_conv)
        m.submodules.mac = mac = MacLanes(H, shape_of(fmts.dl), shape_of(fmts.w_conv),
                                          acc_shape(K, fmts.dl, fmts.w_conv), simd=n)
        k = Signal(range(max(K // n, 2)))           # tap group
        w = weight_memory(m, self.amap, self.prefix + "w", self.cfg, k)
        dly = weight_memory(m, self.amap, self.prefix + "delay", self.cfg, k)

        running = Signal()
        pushing = Signal()
        ptr = Signal(range(max(D, 1)))          # slot of the current step: t mod d_max
        fill = Signal(range(D + 1))             # min(t, d_max): how many past samples exist

        samples = []                            # per channel, the sample of each tap of the group
        for c in range(H):
            if D == 0:
                samples.append([self.s[c]])
                continue
            line = Memory(shape=shape_of(fmts.dl), depth=D, init=[])
            m.submodules[f"line{c}"] = line
            wp = line.write_port()
            samples.append([])
            for j in range(n):
                x = _tap_sample(m, line, ptr, fill, dly[c * n + j], self.s[c], D)
                if j == 0:
                    m.d.comb += [wp.addr.eq(ptr), wp.data.eq(self.s[c]), wp.en.eq(pushing)]
                samples[c].append(x)

        for c in range(H):
            if n == 1:
                m.d.comb += [mac.x[c].eq(samples[c][0]), mac.w[c].eq(w[c]), mac.init[c].eq(0)]
            else:
                m.d.comb += [mac.x[c][j].eq(samples[c][j]) for j in range(n)]
                m.d.comb += [mac.w[c][j].eq(w[c * n + j]) for j in range(n)]
                m.d.comb += mac.init[c].eq(0)
        m.d.comb += [mac.load.eq(self.start), mac.en.eq(running), self.done.eq(pushing)]

        with m.If(self.start):
            m.d.sync += [running.eq(1), k.eq(0)]
            with m.If(self.first):
                m.d.sync += [ptr.eq(0), fill.eq(0)]
        with m.Elif(running):
            m.d.sync += k.eq(k + 1)
            with m.If(k == K // n - 1):
                m.d.sync += [running.eq(0), pushing.eq(1)]
        with m.Elif(pushing):
            m.d.sync += pushing.eq(0)
            if D:
                m.d.sync += [ptr.eq(Mux(ptr == D - 1, 0, ptr + 1)), fill.eq(Mux(fill == D, D, fill + 1))]

        sats = []
        for c in range(H):
            q, sat = requantize(mac.acc[c], f_acc, fmts.act)
            m.d.comb += self.u0[c].eq(q)
            sats.append(sat)
        m.d.comb += self.sat.eq(any_of(sats))
        return m

    def _elaborate_passes(self):
        """``micro.taps_passes`` R > 1: H / R lanes; pass ``p`` convolves channels ``p H/R ..``
        (each lane picks its channel's delay-line samples by the pass), stores their ``u0`` (the last
        pass's come from the accumulators), and after the last pass the sample is pushed."""
        m = Module()
        arch, fmts = self.arch, self.fmts
        H, K, D, n, R = arch.hidden, arch.taps, arch.d_max, self.amap.micro.taps, self.amap.micro.taps_passes
        L, G = H // R, K // n                     # lanes, tap groups per pass
        f_acc = acc_frac(fmts.dl, fmts.w_conv)
        m.submodules.mac = mac = MacLanes(L, shape_of(fmts.dl), shape_of(fmts.w_conv),
                                          acc_shape(K, fmts.dl, fmts.w_conv), simd=n)
        k = Signal(range(max(G, 2)))               # tap group
        p = Signal(range(R))                       # pass
        w = weight_memory(m, self.amap, self.prefix + "w", self.cfg, p * G + k)
        dly = weight_memory(m, self.amap, self.prefix + "delay", self.cfg, p * G + k)

        running, store, pushing = Signal(), Signal(), Signal()
        ptr = Signal(range(max(D, 1)))
        fill = Signal(range(D + 1))
        samples = []                               # per channel, the sample of each tap of the group
        for c in range(H):
            lane = c % L
            if D == 0:
                samples.append([self.s[c]] * n)
                continue
            line = Memory(shape=shape_of(fmts.dl), depth=D, init=[])
            m.submodules[f"line{c}"] = line
            wp = line.write_port()
            m.d.comb += [wp.addr.eq(ptr), wp.data.eq(self.s[c]), wp.en.eq(pushing)]
            samples.append([])
            for j in range(n):
                samples[c].append(_tap_sample(m, line, ptr, fill, dly[lane * n + j], self.s[c], D))
        for lane in range(L):
            for j in range(n):
                x = Array([samples[q * L + lane][j] for q in range(R)])[p]
                if n == 1:
                    m.d.comb += [mac.x[lane].eq(x), mac.w[lane].eq(w[lane])]
                else:
                    m.d.comb += [mac.x[lane][j].eq(x), mac.w[lane][j].eq(w[lane * n + j])]
            m.d.comb += mac.init[lane].eq(0)
        m.d.comb += [mac.load.eq(self.start | store), mac.en.eq(running), self.done.eq(pushing)]

        with m.If(self.start):
            m.d.sync += [running.eq(1), k.eq(0), p.eq(0)]
            with m.If(self.first):
                m.d.sync += [ptr.eq(0), fill.eq(0)]
        with m.Elif(running):
            m.d.sync += k.eq(k + 1)
            with m.If(k == G - 1):
                m.d.sync += running.eq(0)
                with m.If(p == R - 1):
                    m.d.sync += pushing.eq(1)
                with m.Else():
                    m.d.sync += store.eq(1)
        with m.Elif(store):
            m.d.sync += [store.eq(0), running.eq(1), k.eq(0), p.eq(p + 1)]
        with m.Elif(pushing):
            m.d.sync += pushing.eq(0)
            if D:
                m.d.sync += [ptr.eq(Mux(ptr == D - 1, 0, ptr + 1)), fill.eq(Mux(fill == D, D, fill + 1))]

        live, sats = [], []
        for lane in range(L):
            q, sat = requantize(mac.acc[lane], f_acc, fmts.act)
            live.append(q)
            sats.append(sat)
        m.d.comb += self.sat.eq(pass_results(m, self.u0, live, p, store, self.start, any_of(sats), "u0"))
        return m


def _tap_sample(m: Module, line: Memory, ptr, fill, d, s, D: int):
    """The sample ``d`` steps back on a channel's delay line (a ring of ``D`` slots written at
    ``ptr``): ``s`` itself for ``d = 0``, 0 before the line holds ``d`` past samples (``fill``)."""
    rp = line.read_port(domain="comb")
    diff = ptr - d
    m.d.comb += rp.addr.eq(Mux(diff < 0, diff + D, diff))
    return Mux(d == 0, s, Mux(d <= fill, rp.data, 0))
