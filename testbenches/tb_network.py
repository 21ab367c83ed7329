"""cocotb tests of the whole network against expected per-step outputs.

Driven by :mod:`testbenches.cosim` through ``cocotb_tools.runner``; the job (expected outputs,
and for ``stream_job`` the bundle writes and input payloads) comes in the ``.npz`` named by
``MGRADE_JOB`` and the result goes to ``MGRADE_RESULT``.

* :func:`stream_bulk` (the stream tests, ``make sim``, ``make regress``, the benchmark): the
  toplevel is the self-clocked feeder ``mgrade_tb`` (:mod:`testbenches.feeder`), which bulk-loads
  the configuration and every input sample from files and stores every output. Python wakes up
  twice per run (configuration loaded, all steps done), then compares every output of every
  step with ``sim``'s in bulk; no Python runs per clock cycle or per time step. The same test
  runs in Verilator and in Icarus Verilog (both language modes); it also fails if the feeder saw
  an X or Z on any output port of the design at any clock edge (4-state Icarus).
* :func:`stream_job` (block tests through the probe port): the toplevel is ``mgrade_top`` with a
  C++ ``cocotb.clock.Clock``; Python reads each step's result and probe with one access each at the
  rising edge of ``o.valid``, while a feeding coroutine presents the samples as a stream (each until
  the design takes it: a wake-up per cycle while it waits, so a pipelined design gets its next
  sample before the previous result is out).
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 2


def _decode(values, fields: dict, n_classes: int) -> dict[str, np.ndarray]:
    width = fields["__width__"]
    nbytes = (width + 7) // 8
    buf = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    bits = np.unpackbits(np.frombuffer(buf, np.uint8).reshape(len(values), nbytes), axis=1,
                         bitorder="little")
    out = {}
    for key, spec in fields.items():
        if key.startswith("__"):
            continue
        off, w, count, sgn = spec
        n = max(count, 1)
        sl = bits[:, off:off + w * n].reshape(len(values), n, w).astype(np.int64)
        v = (sl << np.arange(w, dtype=np.int64)).sum(axis=2)
        if sgn:
            v = np.where(v >= (1 << (w - 1)), v - (1 << w), v)
        out[key] = v if count else v[:, 0]      # a scalar field (a saturation flag): (N,)
    return out


async def _configure(dut, words: list[int]):
    """One configuration write per cycle; ``words`` are packed ``cfg`` payloads
    (:func:`testbenches.cosim.cfg_words`)."""
    re = RisingEdge(dut.clk)
    pay, val = dut.cfg__payload, dut.cfg__valid
    val.value = 1
    for w in words:
        pay.value = w
        await re
    val.value = 0
    await re


def _compare(got: dict, exp: dict, starts, ends, n_steps: int, sat_keys=()):
    """First mismatch as {"seq", "step", "output", "class", "got", "expected"}, or None.

    Per sequence: the step logits, then the accumulator, then the saturation flags ``sat_keys``
    (``'sat.<tensor>'``, data-flow order): the earliest step at which a flag differs, reported as
    output ``'sat'`` with the tensor's name as ``class`` (RTL flag vs ``sim``'s events > 0)."""
    for seq, (a, e) in enumerate(zip(starts, ends, strict=True)):
        e = min(e, n_steps)
        if a >= e:
            break
        for key in ("logits", "acc"):
            if key not in got or key not in exp:
                continue
            bad = np.argwhere(got[key][a:e] != exp[key][a:e])
            if len(bad):
                t, c = (int(v) for v in bad[0])
                return {"seq": seq, "step": t, "output": key, "class": c,
                        "got": int(got[key][a + t, c]), "expected": int(exp[key][a + t, c])}
        first = None
        for key in sat_keys:
            if key not in got:                  # a design without this flag: a difference at step 0
                return {"seq": seq, "step": 0, "output": "sat", "class": key[4:], "got": None,
                        "expected": int(exp[key][a])}
            bad = np.flatnonzero(got[key][a:e] != exp[key][a:e])
            if len(bad) and (first is None or bad[0] < first[0]):
                first = (int(bad[0]), key)
        if first is not None:
            t, key = first
            return {"seq": seq, "step": t, "output": "sat", "class": key[4:],
                    "got": int(got[key][a + t]), "expected": int(exp[key][a + t])}
    return None


@cocotb.test()
async def stream_bulk(dut):
    job = np.load(os.environ["MGRADE_JOB"], allow_pickle=False)
    meta = json.loads(bytes(job["meta"]).decode())
    n_steps = int(meta["max_steps"])
    t_cfg = time.perf_counter()
    if dut.streaming.value != 1:        # X before the feeder's initial block in a 4-state simulator
        await RisingEdge(dut.streaming)
    t0 = time.perf_counter()
    t_cfg = t0 - t_cfg
    if dut.done.value != 1:
        await RisingEdge(dut.done)
    wall = time.perf_counter() - t0
    cycles = int(dut.cycles.value.to_unsigned())
    x_cycles, x_first = int(dut.x_cycles.value.to_unsigned()), int(dut.x_first.value.to_unsigned())
    cfg_cycles = int(dut.cfg_cycles.value.to_unsigned())
    with open(os.path.join(meta["dir"], "out.hex")) as fh:
        # ``//`` comments (Icarus writes the address every 16 words) and ``@addr`` are not data
        raw = [int(w, 16) for line in fh for w in line.split("//")[0].split() if not w.startswith("@")]
    assert len(raw) == n_steps, f"feeder wrote {len(raw)} outputs, expected {n_steps}"
    got = _decode(raw, meta["out_fields"], meta["n_classes"])
    exp = {k[4:]: job[k] for k in job.files if k.startswith("exp_")}
    mismatch = _compare(got, exp, job["seq_start"].tolist(), job["seq_end"].tolist(), n_steps,
                        meta.get("sat_keys", ()))
    np.savez(os.environ["MGRADE_RESULT"], steps=len(raw), cycles=cycles, wall=wall, cfg_wall=t_cfg,
             mismatch=json.dumps(mismatch), x_cycles=x_cycles, x_first=x_first, cfg_cycles=cfg_cycles,
             **{f"got_{k}": v for k, v in got.items()})
    assert mismatch is None, f"RTL differs from the model: {mismatch}"
    assert x_cycles == 0, f"an output port of the design held X/Z at {x_cycles} clock edges (first: edge {x_first})"


@cocotb.test()
async def stream_job(dut):
    job = np.load(os.environ["MGRADE_JOB"], allow_pickle=False)
    meta = json.loads(bytes(job["meta"]).decode())
    out_fields = meta["out_fields"]
    C = meta["n_classes"]
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.cfg__valid.value = 0
    dut.o__ready.value = 1
    await Timer(3 * PERIOD_NS, unit="ns")
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    t_cfg = time.perf_counter()
    await _configure(dut, [int(s) for s in bytes(job["cfg_txt"]).decode().split()])
    t_cfg = time.perf_counter() - t_cfg

    inputs = [int(v) for v in meta["inputs"]] if "inputs" in meta else None
    if inputs is None:  # wide payloads travel as decimal strings
        inputs = [int(s) for s in bytes(job["inputs_txt"]).decode().split()]
    starts = job["seq_start"].tolist()
    ends = job["seq_end"].tolist()
    exp = {k[4:]: job[k] for k in job.files if k.startswith("exp_")}
    n_steps = int(meta.get("max_steps") or len(inputs))

    pin, vin, pout, vout = dut.i__payload, dut.i__valid, dut.o__payload, dut.o__valid
    # block tests: the probe port (every layer's intermediates) read in the same access
    probe = dut.probe if meta.get("probe") else None
    probes: list[int] = []
    rise = RisingEdge(vout)
    raw: list[int] = []
    mismatch = None
    t0_sim = get_sim_time("ns")
    t0 = time.perf_counter()
    seq = 0

    async def feed():
        """The samples as a stream: each held with ``valid`` until the design takes it (``ready``
        high before a rising edge), then the next one at once (a pipelined design takes the next
        sample before the previous result is out)."""
        fall, edge = FallingEdge(dut.clk), RisingEdge(dut.clk)
        for k in range(n_steps):
            pin.value = inputs[k]
            vin.value = 1
            while True:
                await fall
                if dut.i__ready.value == 1:
                    break
            await edge
        vin.value = 0

    feeder = cocotb.start_soon(feed())
    for n in range(n_steps):
        await rise
        raw.append(pout.value.to_unsigned())
        if probe is not None:
            probes.append(probe.value.to_unsigned())
        if n + 1 == ends[seq] or n + 1 == n_steps:
            a = starts[seq]
            got = _decode(raw[a:n + 1], out_fields, C)
            mismatch = _compare(got, {k: v[a:n + 1] for k, v in exp.items()}, [0], [n + 1 - a], n + 1 - a,
                                meta.get("sat_keys", ()))
            if mismatch:
                mismatch["seq"] = seq
                break
            seq += 1
    feeder.cancel()
    wall = time.perf_counter() - t0
    cycles = (get_sim_time("ns") - t0_sim) // PERIOD_NS
    vin.value = 0
    got = _decode(raw, out_fields, C) if raw else {}
    extra = {"probe_txt": np.frombuffer(" ".join(map(str, probes)).encode(), np.uint8)} if probe is not None else {}
    np.savez(os.environ["MGRADE_RESULT"], steps=len(raw), cycles=cycles, wall=wall, cfg_wall=t_cfg,
             mismatch=json.dumps(mismatch), **{f"got_{k}": v for k, v in got.items()}, **extra)
    assert mismatch is None, f"RTL differs from the model: {mismatch}"
