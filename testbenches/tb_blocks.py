"""cocotb tests of :class:`testbenches.blockbench.BlockBench` (the RTL blocks) in Verilator.

Driven by ``tests/test_rtl_blocks.py`` through ``cocotb_tools.runner``: the stimuli come in the
``.npz`` named by ``MGRADE_JOB``; every block's outputs go to ``MGRADE_RESULT``, and the pytest
side compares them with the ``spec``/``sim`` counterparts (so the expected values are computed
by the same code ``sim`` uses, never by this file). Inputs change on the falling clock edge and
outputs are read on the next falling edge (after the rising edge that updated the registers).
The same test runs in Icarus Verilog (both language modes): from the first clock edge on, every
output port named in the job's ``out_ports`` is checked for X/Z at every falling edge
(``x_cycles``/``x_first`` in the result; 0 in 2-state Verilator).
"""
from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer


def _pack(values, width: int) -> int:
    """Lane 0 in the least significant bits (Amaranth ArrayLayout order), two's complement."""
    out, mask = 0, (1 << width) - 1
    for j, v in enumerate(values):
        out |= (int(v) & mask) << (j * width)
    return out


def _unpack(value: int, width: int, n: int, signed: bool) -> list[int]:
    mask = (1 << width) - 1
    out = []
    for j in range(n):
        v = (value >> (j * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def _signed(v: int, width: int) -> int:
    return v - (1 << width) if v >> (width - 1) else v


@cocotb.test()
async def blocks(dut):
    job = dict(np.load(os.environ["MGRADE_JOB"], allow_pickle=False))
    res: dict[str, np.ndarray] = {}
    n_rq, n_gc = int(job["n_rq"]), int(job["n_gc"])
    rq_bits = job["rq_bits"].tolist()
    rq_signed = job["rq_signed"].tolist()

    # -- combinational: requantize and gate codes for every x ---------------------------------
    rq_h = [getattr(dut, f"rq{n}") for n in range(n_rq)]
    rqs_h = [getattr(dut, f"rq{n}_sat") for n in range(n_rq)]
    gc_h = [getattr(dut, f"gc{n}") for n in range(n_gc)]
    rq, rqs, gc = [], [], []
    for v in job["x"].tolist():
        dut.x.value = int(v)
        await Timer(1, unit="ns")
        rq.append([_signed(h.value.to_unsigned(), b) if s else h.value.to_unsigned()
                   for h, b, s in zip(rq_h, rq_bits, rq_signed, strict=True)])
        rqs.append([int(h.value) for h in rqs_h])
        gc.append([h.value.to_unsigned() for h in gc_h])
    res["rq"], res["rq_sat"], res["gc"] = np.array(rq), np.array(rqs), np.array(gc)

    # -- clocked blocks ---------------------------------------------------------------------
    ports = [getattr(dut, n) for n in bytes(job["out_ports"]).decode().split()] if "out_ports" in job else []
    xs = {"n": 0, "edges": 0, "first": ""}

    async def fe():
        """The next falling edge; every output port checked for X/Z there."""
        await FallingEdge(dut.clk)
        xs["edges"] += 1
        bad = [p for p in ports if not p.value.is_resolvable]
        if bad:
            xs["n"] += 1
            if not xs["first"]:
                xs["first"] = f"edge {xs['edges']}: {bad[0]._name} = {bad[0].value}"

    Clock(dut.clk, 2, unit="ns").start()
    dut.rst.value = 1
    for name in ("sc_en", "sc_clear", "cv_start", "cv_first", "cfg__en"):
        getattr(dut, name).value = 0
    await fe()
    await fe()
    dut.rst.value = 0

    # SC update: one (k, hc, en, clear) per cycle, h read after the edge that used them
    H, kb, hb = int(job["H"]), int(job["k_bits"]), int(job["h_bits"])
    outs = [getattr(dut, f"sc_h_{r}") for r in job["sc_roundings"].tolist()]
    hist = [[] for _ in outs]
    for k, hc, en, clr in zip(job["sc_k"].tolist(), job["sc_hc"].tolist(), job["sc_en"].tolist(),
                              job["sc_clear"].tolist(), strict=True):
        dut.sc_k.value = _pack(k, kb)
        dut.sc_hc.value = _pack(hc, hb)
        dut.sc_en.value = int(en)
        dut.sc_clear.value = int(clr)
        await fe()
        for o, hh in zip(outs, hist, strict=True):
            hh.append(_unpack(o.value.to_unsigned(), hb, H, True))
    dut.sc_en.value = 0
    res["sc_h"] = np.array(hist)                    # (roundings, N, H)

    # delay-line convolution: run-time taps and delays, then one step per sample
    dut.cfg__en.value = 1
    for a, d in zip(job["cfg_addr"].tolist(), job["cfg_data"].tolist(), strict=True):
        dut.cfg__addr.value = int(a)
        dut.cfg__data.value = int(d)
        await fe()
    dut.cfg__en.value = 0
    dlb, ab = int(job["dl_bits"]), int(job["act_bits"])
    u0, sat = [], []
    for s, first in zip(job["cv_s"].tolist(), job["cv_first"].tolist(), strict=True):
        dut.cv_s.value = _pack(s, dlb)
        dut.cv_first.value = int(first)
        dut.cv_start.value = 1
        await fe()
        dut.cv_start.value = 0
        for _ in range(1000):
            await fe()
            if int(dut.cv_done.value):
                break
        else:
            raise AssertionError("DelayLineConv never raised done")
        u0.append(_unpack(dut.cv_u0.value.to_unsigned(), ab, H, True))
        sat.append(int(dut.cv_sat.value))
        await fe()          # the sample is pushed at the end of the done cycle: hold s until then
    res["cv_u0"], res["cv_sat"] = np.array(u0), np.array(sat)
    res["x_cycles"], res["x_first"], res["edges"] = np.array(xs["n"]), np.array(xs["first"]), np.array(xs["edges"])
    np.savez(os.environ["MGRADE_RESULT"], **res)
