"""Tiny builds in Amaranth's own simulator (``amaranth.sim``): block tests without a C++ compile.

:func:`run_top` drives :class:`rtl.top.MgradeTop` (with the trace port) exactly like the
Verilator testbench does - configuration writes, one sample per step, per-step outputs - and
returns the outputs and every layer's trace per step, for comparison with ``sim``.
:func:`run_comb` evaluates a combinational function of one input over many values.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from rtl.addrmap import AddressMap
from rtl.top import MgradeTop, output_layout, trace_layout
from spec.bundle import Bundle

from . import layouts

__all__ = ["run_top", "run_comb"]


def run_top(bundle: Bundle, xs: list[np.ndarray], *, cfg_overrides=None, micro=None, preload: bool = False):
    """Run sequences ``xs`` through ``MgradeTop(trace=True, micro=micro)`` in amaranth.sim.

    Returns ``(outputs, traces, cycles)``: dicts of (N_steps, ...) int64 arrays, and the
    simulated clock cycles of every step. The samples are fed as a stream without gaps (the next one
    as soon as the design takes one) and every result is taken at once; ``cycles[0]`` counts from
    the first sample's acceptance to its result's, inclusive (:func:`rtl.top.latency`), and
    ``cycles[k]`` the cycles from result ``k - 1`` to result ``k`` (:func:`rtl.top.cycles_per_step`
    in steady state; both the same for the sequential schedule).
    ``cfg_overrides``: extra ``(addr, data)`` writes applied after the bundle (fault injection).
    ``micro``: the :class:`rtl.microarch.Microarch` (default: the original design); the bundle is
    written in its layout (:meth:`rtl.addrmap.AddressMap.writes`).
    ``preload``: the bundle baked into the weight memories instead (no configuration writes; large
    networks, whose tens of thousands of writes are slow in amaranth.sim).
    """
    arch, fmts = bundle.arch, bundle.formats
    dut = MgradeTop(arch, fmts, trace=True, micro=micro, preload=bundle.tensors if preload else None)
    amap = AddressMap(arch, fmts, micro=micro)
    writes = [] if preload else list(zip(*(v.tolist() for v in amap.writes(bundle.tensors)), strict=True))
    writes += list(cfg_overrides or [])
    steps = []
    for x in xs:
        for t in range(len(x)):
            steps.append((t == 0, x[t]))
    outs, traces, cyc = [], [], []

    async def tb(ctx):
        for a, d in writes:
            ctx.set(dut.cfg.payload.addr, a)
            ctx.set(dut.cfg.payload.data, d)
            ctx.set(dut.cfg.valid, 1)
            await ctx.tick()
        ctx.set(dut.cfg.valid, 0)
        ctx.set(dut.o.ready, 1)

        def present(k):
            first, x = steps[k]
            ctx.set(dut.i.payload.first, int(first))
            if arch.encoder == "linear":
                for j in range(arch.d_in):
                    ctx.set(dut.i.payload.x[j], int(np.asarray(x).reshape(-1)[j]))
            else:
                ctx.set(dut.i.payload.token, int(x))
            ctx.set(dut.i.valid, 1)

        # a stream fed without gaps: the next sample as soon as one is taken, every result taken at once
        k_in, c, t0, t_out = 0, 0, None, []
        present(0)
        while len(outs) < len(steps):
            accepted = k_in < len(steps) and ctx.get(dut.i.ready)
            if accepted and t0 is None:
                t0 = c
            if ctx.get(dut.o.valid):
                outs.append(ctx.get(dut.o.payload).as_value().value)
                traces.append(ctx.get(dut.probe).as_value().value)
                t_out.append(c)
            await ctx.tick()
            c += 1
            if accepted:
                k_in += 1
                if k_in < len(steps):
                    present(k_in)
                else:
                    ctx.set(dut.i.valid, 0)
        cyc.extend(b - a for a, b in zip([t0 - 1, *t_out[:-1]], t_out, strict=True))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    ol, tl = output_layout(arch, fmts), trace_layout(arch, fmts)
    mask_o, mask_t = (1 << layouts.nbits(ol)) - 1, (1 << layouts.nbits(tl)) - 1
    return (layouts.unpack([v & mask_o for v in outs], ol), layouts.unpack([v & mask_t for v in traces], tl),
            cyc)


def run_comb(build, values, in_shape, out_shape):
    """Evaluate ``out = build(inp)`` (an Amaranth expression builder) for each input value."""
    m = Module()
    inp = Signal(in_shape)
    out = Signal(out_shape)
    m.d.comb += out.eq(build(inp))
    res = []

    async def tb(ctx):
        for v in values:
            ctx.set(inp, int(v))
            res.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    return np.array(res, dtype=np.int64)
