"""Verilator regression (CI): short versions of every stream test through the whole network under
cocotb, bit for bit against ``sim`` (small architectures, H = 8, each stream another RTL variant;
real fixture data), and the mismatch localisation path (fault injected into the RTL's weights).
A short GSC stream of the small network also runs in Icarus Verilog, in Verilog-2005 and in
SystemVerilog scheduling: bit-exact, and no output port of the design X or Z at any clock edge;
loaded through the configuration port and preloaded in the weight memories.

Long versions: ``python -m testbenches.regress`` (``make regress``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rtl.top import cycles_per_step
from testbenches.build import ICARUS_HINT, ICARUS_MODES, icarus_available
from testbenches.cosim import expected, localise, run_cocotb
from testbenches.streams import STREAMS, make_case

pytestmark = pytest.mark.rtl

SHORT_STEPS = 300


def _first_difference(name, case, r, out_dir, rtl_bundle=None) -> str:
    """The failure message of a stream test: the first differing (stream, sequence, step, layer,
    tensor, channel), both values, and the FST waveform of the steps around it."""
    m = r.mismatch
    if m is None:
        return f"{name}: the cocotb run failed without a mismatch (steps {r.steps}); see build/runs"
    loc = localise(case.bundle, case.xs[m["seq"]], m["step"], out_dir=out_dir, rtl_bundle=rtl_bundle,
                   log=lambda *a: None)
    where = (f"layer {loc['layer']}, " if loc.get("layer") is not None else "") + f"tensor {loc['tensor']}"
    return (f"{name}: output {m['output']}[{m['class']}] differs in sequence {m['seq']} at step {m['step']} "
            f"(RTL {m['got']}, sim {m['expected']}); first difference: step {loc['step']}, {where}, "
            f"channel {loc.get('channel')}: RTL {loc.get('rtl')} != sim {loc.get('sim')}; waveform {loc['fst']} "
            f"(steps {loc['fst_steps'][0]}..{loc['fst_steps'][1] - 1})")


def _group(name):
    # the gsc design is shared with the localisation test: same worker, one build
    return pytest.mark.xdist_group("rtl_gsc_small" if name == "gsc_stream" else f"rtl_{name}")


@pytest.mark.parametrize("name", [pytest.param(n, marks=_group(n)) for n in STREAMS])
def test_stream_short(name, tmp_path):
    case = make_case(name, n_seqs=2, max_steps=SHORT_STEPS, small=True, root="fixture")
    r = run_cocotb(case.bundle, case.xs)
    if not r.bit_exact:
        pytest.fail(_first_difference(name, case, r, tmp_path))
    steps = sum(len(x) for x in case.xs)
    assert r.steps == steps
    # cycles are counted from the first sample to the last result: one step per cycles_per_step
    assert abs(r.cycles - steps * cycles_per_step(case.bundle.arch)) <= cycles_per_step(case.bundle.arch)


ICARUS_STEPS = 20


@pytest.mark.icarus
@pytest.mark.parametrize("simulator", [pytest.param(m, marks=pytest.mark.xdist_group(f"rtl_gsc_small_{m}"))
                                       for m in ICARUS_MODES])
@pytest.mark.skipif(not icarus_available(), reason=ICARUS_HINT)
def test_stream_icarus(simulator, tmp_path):
    """Two short real GSC clips through the small network in Icarus Verilog (``-g2005`` and
    ``-g2012``), through the same feeder and comparison as Verilator: every output of every step
    equal to sim/, and every output port of the design defined (no X/Z) at every clock edge from
    the first (with ``amaranth.back.verilog``'s text ``i.ready`` was X through reset in -g2012 and
    the first result came out twice)."""
    case = make_case("gsc_stream", n_seqs=2, max_steps=ICARUS_STEPS, small=True, root="fixture")
    r = run_cocotb(case.bundle, case.xs, workdir=tmp_path, simulator=simulator)
    assert r.x_cycles == 0, f"{simulator}: an output port of the design held X/Z at {r.x_cycles} clock edges"
    if not r.bit_exact:
        pytest.fail(f"{simulator}: {r.mismatch or 'the cocotb run failed; see ' + str(tmp_path / 'sim.log')}")
    steps = sum(len(x) for x in case.xs)
    assert r.steps == steps == 2 * ICARUS_STEPS
    assert abs(r.cycles - steps * cycles_per_step(case.bundle.arch)) <= cycles_per_step(case.bundle.arch)


def test_preload_image_holds_what_the_writes_write():
    """The preloaded memory contents (:meth:`rtl.addrmap.AddressMap.image`) are, word for word and
    lane for lane, what the configuration writes of the same bundle put there."""
    from rtl.addrmap import AddressMap
    case = make_case("gsc_stream", n_seqs=1, max_steps=1, small=True, root="fixture")
    arch, fmts = case.bundle.arch, case.bundle.formats
    amap = AddressMap(arch, fmts)
    addrs, datas = amap.writes(case.bundle.tensors)
    lane = addrs & ((1 << amap.lane_bits) - 1)
    word = (addrs >> amap.lane_bits) & ((1 << amap.word_bits) - 1)
    tid = addrs >> (amap.lane_bits + amap.word_bits)
    for name, e in amap.entries.items():
        img = amap.image(name, case.bundle.tensors[name])
        assert img.shape == (e.depth, e.lanes)
        hit = tid == e.tid
        bits = e.fmt.bits
        code = (datas[hit] & ((1 << bits) - 1)).astype(np.int64)
        if e.fmt.signed:
            code = np.where(code >= 1 << (bits - 1), code - (1 << bits), code)
        written = np.zeros_like(img)
        written[word[hit].astype(np.int64), lane[hit].astype(np.int64)] = code
        np.testing.assert_array_equal(img, written, err_msg=name)


@pytest.mark.icarus
@pytest.mark.parametrize("simulator", [pytest.param(m, marks=pytest.mark.xdist_group(f"rtl_gsc_small_{m}"))
                                       for m in ICARUS_MODES])
@pytest.mark.skipif(not icarus_available(), reason=ICARUS_HINT)
def test_stream_icarus_preload(simulator, tmp_path):
    """The same two clips in Icarus with the bundle baked into the weight memories' initial
    contents (``preload``, how the shipped GSC bundle runs in Icarus: README): no configuration
    write (the feeder goes from reset to streaming in one cycle), bit-exact, no X/Z."""
    case = make_case("gsc_stream", n_seqs=2, max_steps=ICARUS_STEPS, small=True, root="fixture")
    r = run_cocotb(case.bundle, case.xs, workdir=tmp_path, simulator=simulator, preload=True)
    assert r.x_cycles == 0, f"{simulator}: an output port of the design held X/Z at {r.x_cycles} clock edges"
    if not r.bit_exact:
        pytest.fail(f"{simulator}: {r.mismatch or 'the cocotb run failed; see ' + str(tmp_path / 'sim.log')}")
    assert r.preload and r.cfg_cycles == 1, f"{r.cfg_cycles - 1} configuration cycles with preloaded memories"
    assert r.steps == sum(len(x) for x in case.xs) == 2 * ICARUS_STEPS


@pytest.mark.xdist_group("rtl_gsc_small")
def test_mismatch_is_localised_with_waveform(tmp_path):
    """A corrupted candidate weight of layer 1, channel 3 in the RTL: the run stops at the first
    differing step and the localisation names layer 1's ``hc``, channel 3, with an FST."""
    case = make_case("gsc_stream", n_seqs=1, max_steps=60, small=True, root="fixture")
    good = case.bundle
    t = dict(good.tensors)
    wh = t["layers.1.rnn.wh"].copy()
    wh[3, :] = np.where(wh[3, :] == 100, -100, 100)
    t["layers.1.rnn.wh"] = wh
    bad = dataclasses.replace(good, tensors=t)
    exp, _ = expected(good, case.xs)
    r = run_cocotb(bad, case.xs, exp)
    assert not r.bit_exact and r.mismatch is not None
    assert r.mismatch["seq"] == 0 and r.mismatch["step"] == 0
    loc = localise(good, case.xs[0], r.mismatch["step"], rtl_bundle=bad, out_dir=tmp_path)
    assert loc["tensor"] == "layers.1.hc" and loc["layer"] == 1 and loc["channel"] == 3, loc
    assert loc["step"] == 0
    assert loc["rtl"] != loc["sim"]
    fst = Path(loc["fst"])
    assert fst.read_bytes()[:1] == b"\x00" and fst.stat().st_size > 1000   # an FST header block (type 0)
    # the message a failing stream test prints names all of it
    msg = _first_difference("gsc_stream", case, r, tmp_path, rtl_bundle=bad)
    assert "layer 1, tensor layers.1.hc, channel 3" in msg and ".fst" in msg


@pytest.mark.xdist_group("rtl_gsc_small")
def test_saturation_flags_agree_with_sim(tmp_path):
    """The RTL's per-step saturation flags (one per tensor of spec.names.saturation_names) against
    sim's saturation events of each step, in Verilator: the small GSC network with its weights
    scaled up (random_bundle scale 4) so that several tensors saturate in some steps and not in
    others; then a flag that differs from sim's is reported like any other mismatch."""
    from spec import random_bundle
    case = make_case("gsc_stream", n_seqs=2, max_steps=SHORT_STEPS, small=True, root="fixture")
    b = random_bundle(case.bundle.arch, case.bundle.formats, seed=3, scale=4.0)
    case = dataclasses.replace(case, bundle=b)
    exp, res = expected(b, case.xs)
    r = run_cocotb(b, case.xs, exp, workdir=tmp_path / "run")
    if not r.bit_exact:
        pytest.fail(_first_difference("gsc_stream", case, r, tmp_path))
    want = {n: int((v > 0).sum()) for n, v in res.saturation_steps.items()}
    assert r.sat_steps() == want
    partial = [n for n, c in want.items() if 0 < c < r.steps]      # raised in some steps only
    assert sum(want.values()) > 0 and partial, want
    # sim says this tensor saturated in a step where the RTL's flag is low: a mismatch at that step
    name = partial[0]
    seq = next(s for s, c in enumerate(exp.sat[name]) if (c == 0).any())
    step = int(np.flatnonzero(exp.sat[name][seq] == 0)[0])
    sat = {k: [c.copy() for c in v] for k, v in exp.sat.items()}
    sat[name][seq][step] = 1
    r2 = run_cocotb(b, case.xs, dataclasses.replace(exp, sat=sat), workdir=tmp_path / "tampered")
    assert not r2.bit_exact
    assert r2.mismatch == {"seq": seq, "step": step, "output": "sat", "class": name, "got": 0, "expected": 1}
