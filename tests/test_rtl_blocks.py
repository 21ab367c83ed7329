"""RTL block tests against their ``spec``/``sim`` counterparts.

* In Verilator under cocotb (``cocotb_tools.runner``): the fixed-point helpers, the SC update
  and the delay-line convolution in :class:`testbenches.blockbench.BlockBench`, and every block of
  a whole network through its probe port (max delays, z at 0 and full scale, saturation).
* The same block bench in Icarus Verilog, a 4-state event-driven simulator, in Verilog-2005
  (``-g2005``) and SystemVerilog (``-g2012``) scheduling: bit-exact, and no output port X or Z at
  any clock edge (skipped, with the install command, where ``iverilog`` is missing).
* In Amaranth's simulator (no C++ build, so many variants are cheap): the same helpers, the
  address map, and whole tiny networks (every layer's every intermediate) on many architecture
  and rounding variants, edge-case weights and saturating inputs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from rtl import fixed
from rtl.addrmap import AddressMap
from rtl.mingru import ScUpdate
from rtl.top import cycles_closed_form, cycles_per_step
from spec import Arch, Formats, random_bundle
from spec.arch import gate_code as spec_gate_code
from spec.fixedpoint import Format, Rounding
from spec.fixedpoint import requantize as spec_requantize
from spec.names import saturation_names, trace_names
from testbenches.amsim import run_comb, run_top
from testbenches.cosim import expected

pytestmark = pytest.mark.rtl

ROUNDINGS = [Rounding.FLOOR, Rounding.HALF_UP, Rounding.HALF_EVEN]


def _edge_values(bits: int, n: int, rng) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    edge = [lo, lo + 1, -1, 0, 1, hi - 1, hi] + [s * ((1 << k) + d) for k in range(1, bits - 1, 3)
                                                for s in (1, -1) for d in (-1, 0, 1)]
    return np.clip(np.concatenate([edge, rng.integers(lo, hi + 1, size=n)]), lo, hi)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("x_frac,fmt", [(21, Format(True, 16, 10)), (10, Format(True, 8, 4)), (8, Format(True, 12, 8)),
                                        (6, Format(True, 16, 10)), (16, Format(False, 6, 2))])
def test_requantize_matches_spec(rounding, x_frac, fmt):
    rng = np.random.default_rng(1)
    fmt = fmt.with_(rounding=rounding)
    xs = _edge_values(28, 300, rng)
    got = run_comb(lambda x: fixed.requantize(x, x_frac, fmt)[0], xs, signed(28), fixed.shape_of(fmt))
    flag = run_comb(lambda x: fixed.requantize(x, x_frac, fmt)[1], xs, signed(28), unsigned(1))
    exp = np.array([int(spec_requantize(np.int64(v), x_frac, fmt)[0]) for v in xs])
    n_sat = np.array([spec_requantize(np.int64(v), x_frac, fmt)[1] for v in xs])
    np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(flag, n_sat)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("bits", [2, 6, 8])
def test_gate_code_matches_spec(rounding, bits):
    rng = np.random.default_rng(2)
    xs = _edge_values(26, 300, rng)
    got = run_comb(lambda x: fixed.gate_code(x, 16, bits, rounding), xs, signed(26), unsigned(bits))
    exp = spec_gate_code(xs.astype(np.int64), 16, bits, rounding)
    np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_sc_update_edges(rounding):
    """h <- sat(h + round(k (hc - h) / 2**b_z)): k = 0 keeps h, k = 63 is the full-scale share."""
    fmts = Formats(h=Format(True, 16, 10, rounding))
    arch = Arch(d_in=1, n_classes=2, hidden=4, layers=1)
    dut = ScUpdate(arch, fmts)
    hf = fmts.h
    vals = [hf.min_int, hf.max_int, 0, -1, 1, 12345, -23456]
    rng = np.random.default_rng(3)
    cases = [(k, h, hc) for k in (0, 1, 32, 62, 63) for h in vals for hc in vals]
    cases += [(int(rng.integers(0, 64)), int(rng.integers(hf.min_int, hf.max_int + 1)),
               int(rng.integers(hf.min_int, hf.max_int + 1))) for _ in range(200)]
    got = []

    async def tb(ctx):
        for i in range(0, len(cases), 4):
            chunk = cases[i:i + 4] + [(0, 0, 0)] * (4 - len(cases[i:i + 4]))
            for c, (k, h, hc) in enumerate(chunk):
                ctx.set(dut.k[c], k)
                ctx.set(dut.hc[c], hc)
                ctx.set(dut.h[c], h)
            ctx.set(dut.en, 1)
            await ctx.tick()
            got.extend(ctx.get(dut.h[c]) for c in range(4))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    from spec.fixedpoint import round_shift, saturate
    for (k, h, hc), g in zip(cases, got[:len(cases)], strict=True):     # the last chunk is padded
        e = int(saturate(np.int64(h) + round_shift(np.int64(k * (hc - h)), 6, rounding), hf)[0])
        assert g == e, (k, h, hc, g, e)


def test_address_map_covers_every_element_once():
    for arch in (Arch(d_in=3, n_classes=5, hidden=8, taps=4, d_max=9, mix="glu"),
                 Arch(d_in=20, n_classes=12, hidden=4, encoder="embedding", mix="none", norm="none"),
                 Arch(d_in=1, n_classes=40, hidden=8)):
        amap = AddressMap(arch, Formats())
        b = random_bundle(arch, Formats(), seed=0)
        addrs, datas = amap.writes(b.tensors)
        assert len(np.unique(addrs)) == len(addrs) == sum(v.size for v in b.tensors.values())
        assert int(addrs.max()) < (1 << amap.addr_width)


# ---------------------------------------------------------------------------------------------
# whole tiny networks in amaranth.sim: every intermediate of every step vs sim
# ---------------------------------------------------------------------------------------------
BASE = dict(d_in=2, n_classes=3, hidden=4, layers=2, taps=3, d_max=5, expand=2)
VARIANTS = {
    "mlp": {},
    "glu": {"mix": "glu"},
    "none-heaviside": {"mix": "none", "rnn_out": "heaviside"},
    "noskip-last": {"skip": False, "readout": "last"},
    "notaps-nonorm": {"taps": 0, "d_max": 0, "norm": "none"},
    "tap0-only": {"taps": 1, "d_max": 0, "layers": 1},
    "embedding": {"encoder": "embedding", "d_in": 11, "expand": 1},
    "gate4-wide": {"gate_bits": 4, "expand": 3, "n_classes": 6, "hidden": 5},
}
FMT_VARIANTS = {
    "default": Formats(),
    "floor": Formats(act=Format(True, 16, 10, "floor"), h=Format(True, 16, 10, "floor"),
                     logit=Format(True, 16, 8, "floor"), dl=Format(True, 12, 8, "floor")),
    "half_even": Formats(act=Format(True, 14, 9, "half_even"), h=Format(True, 18, 12, "half_even"),
                         dl=Format(True, 16, 10, "half_even"), logit=Format(True, 16, 8, "half_even"),
                         logit_acc=Format(True, 24, 8, "half_even")),
}


def _inputs(arch, rng, lens=(9, 6), scale=30000):
    if arch.encoder == "embedding":
        return [rng.integers(0, arch.d_in, size=n) for n in lens]
    return [rng.integers(-scale, scale, size=(n, arch.d_in)) for n in lens]


def _check(bundle, xs):
    outs, traces, cyc = run_top(bundle, xs)
    assert set(cyc) == {cycles_per_step(bundle.arch)} == {cycles_closed_form(bundle.arch)}
    return _compare(bundle, xs, outs, traces)


def _compare(bundle, xs, outs, traces):
    """Every intermediate of every layer and step (RTL probe) and every output vs ``sim``, the
    saturation flags included (per step and tensor: RTL flag == sim counted an event)."""
    exp, res = expected(bundle, xs, trace=True)
    lens = [len(x) for x in xs]
    # the probe holds exactly sim's trace names (spec.names.trace_names), in order, the logits aside
    names = trace_names(bundle.arch)
    assert set(res.trace) == set(names) and list(traces) == [k for k in names if k != "step_logits"]
    for key, arr in traces.items():
        want = np.concatenate([res.trace[key][b, :n] for b, n in enumerate(lens)])
        np.testing.assert_array_equal(arr.reshape(want.shape), want, err_msg=key)
    np.testing.assert_array_equal(outs["logits"], np.concatenate(exp.logits))
    if exp.acc is not None:
        np.testing.assert_array_equal(outs["acc"], np.concatenate(exp.acc))
    flags = exp.sat_flags()
    assert list(flags) == saturation_names(bundle.arch)
    assert sorted(k for k in outs if k.startswith("sat.")) == sorted(f"sat.{n}" for n in flags)
    for n, want in flags.items():
        np.testing.assert_array_equal(outs[f"sat.{n}"], want, err_msg=f"saturation flag {n}")
    return res


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_variants(variant):
    arch = Arch(**dict(BASE, **VARIANTS[variant]))
    b = random_bundle(arch, Formats(), seed=5)
    _check(b, _inputs(arch, np.random.default_rng(6)))


@pytest.mark.parametrize("fv", [k for k in FMT_VARIANTS if k != "default"])
def test_network_rounding_variants(fv):
    arch = Arch(**dict(BASE, mix="glu"))
    b = random_bundle(arch, FMT_VARIANTS[fv], seed=7)
    _check(b, _inputs(arch, np.random.default_rng(8)))


def _edge_bundle():
    """Delays at 0, d_max - 1 and d_max; gate biases that pin z at 0 (layer 1) and 63/64 (layer 0)."""
    arch = Arch(**BASE)
    b = random_bundle(arch, Formats(), seed=9)
    t = dict(b.tensors)
    D = arch.d_max
    for i in range(arch.layers):
        t[f"layers.{i}.conv.delay"] = np.tile(np.array([0, D - 1, D]), (arch.hidden, 1))
    t["layers.0.rnn.bz"] = np.full(arch.hidden, Formats().bias.max_int)
    t["layers.1.rnn.bz"] = np.full(arch.hidden, Formats().bias.min_int)
    return dataclasses.replace(b, tensors=t), _inputs(arch, np.random.default_rng(10), lens=(13, 8))


def _saturating_bundle():
    """Large weights and full-scale inputs: many saturations."""
    arch = Arch(**BASE)
    b = random_bundle(arch, Formats(), seed=11, scale=12.0)
    return b, _inputs(arch, np.random.default_rng(12), scale=32768)


def _flag_bundle():
    """Narrow formats (h wider than act, logit_acc one bit wider than logit) and an encoder bias at
    the rails: every tensor that can saturate does, in some steps (``h`` never: the exact SC update
    is a convex combination of two in-range codes)."""
    fmts = Formats(act=Format(True, 10, 6, "half_even"), h=Format(True, 16, 10, "floor"), dl=Format(True, 8, 5),
                   logit=Format(True, 10, 4), logit_acc=Format(True, 11, 4), bias=Format(True, 10, 6),
                   w_norm=Format(True, 8, 5, "half_even"))
    arch = Arch(**BASE)
    b = random_bundle(arch, fmts, seed=13, scale=4.0)
    t = dict(b.tensors)
    alt = np.arange(t["enc.w"].size).reshape(t["enc.w"].shape) % 2 == 0
    t["enc.w"] = np.where(alt, fmts.w_enc.max_int, fmts.w_enc.min_int)
    t["enc.b"] = np.where(np.arange(arch.hidden) % 2 == 0, fmts.bias.max_int, fmts.bias.min_int)
    return dataclasses.replace(b, tensors=t), _inputs(arch, np.random.default_rng(14), lens=(12, 7), scale=32768)


def test_saturation_flags_of_every_tensor():
    """The RTL's per-step saturation flag of every tensor that can saturate, vs sim's events per step."""
    b, xs = _flag_bundle()
    res = _check(b, xs)                 # every flag of every step equals sim's (events > 0)
    steps = {n: int((v > 0).sum()) for n, v in res.saturation_steps.items()}
    kind = {n: n.rsplit(".", 1)[-1] for n in steps}
    fired = {kind[n] for n in steps if steps[n]}
    assert fired == set(kind.values()) - {"h", "logit"}, steps   # in some layer, in some step
    assert all(steps[n] == 0 for n in steps if n.endswith(".h")), steps
    assert any(0 < v < 19 for v in steps.values()), steps      # flags of single steps, not constants


def test_edge_weights_max_delays_and_gate_extremes():
    b, xs = _edge_bundle()
    res = _check(b, xs)
    assert (res.trace["layers.0.k"] == 63).all() and (res.trace["layers.1.k"] == 0).all()


def test_saturation_everywhere():
    """Many saturations, still bit-exact, and the RTL's per-step flags of every tensor agree with sim."""
    b, xs = _saturating_bundle()
    res = _check(b, xs)
    assert sum(res.saturations.values()) > 0
    fired = {n for n, v in res.saturation_steps.items() if v.any()}
    assert {"layers.0.hc", "layers.0.m1", "layers.1.u", "layers.1.r", "logit"} <= fired, fired



# ---------------------------------------------------------------------------------------------
# the same blocks in Verilator under cocotb (cocotb_tools.runner), one build each, shared by
# the tests of an xdist group so that no build is made twice
# ---------------------------------------------------------------------------------------------
def _bench_job(rng):
    """Stimuli of the block bench: edge and random x, SC-update sequences with h driven to the
    rails (hc at the format's extremes, k = 63 and k = 0), delay-line steps with full-scale
    samples and the taps at delays 0, d_max - 1 and d_max."""
    from rtl.addrmap import AddressMap
    from testbenches import blockbench as bb
    arch, fmts = bb.bench_arch(), bb.bench_formats()
    H, hf = arch.hidden, fmts.h
    x = _edge_values(bb.X_BITS, 400, rng)
    # SC update: 240 cycles; clear at 0 and 120; k sweeps 0, 1, 32, 62, 63 and random
    N = 240
    k = rng.integers(0, 64, size=(N, H))
    k[:40] = np.array([63, 0, 32, 62])[None, :]
    k[40:60] = 63
    k[60:70] = 0
    hc = rng.integers(hf.min_int, hf.max_int + 1, size=(N, H))
    hc[:20], hc[20:40], hc[40:50] = hf.max_int, hf.min_int, hf.max_int
    hc[50:60] = hf.min_int
    en = (rng.random(N) < 0.9).astype(np.int64)
    clear = np.zeros(N, np.int64)
    clear[[0, 120]] = 1
    # delay line: taps at 0, d_max - 1, d_max and one random delay per channel
    b = random_bundle(arch, fmts, seed=21)
    t = dict(b.tensors)
    D = arch.d_max
    dl = np.tile(np.array([0, D - 1, D, 3]), (H, 1))
    dl[:, 3] = rng.integers(0, D + 1, size=H)
    t["layers.0.conv.delay"] = dl
    t["layers.0.conv.w"] = np.array(t["layers.0.conv.w"], np.int64)
    t["layers.0.conv.w"][0] = fmts.w_conv.max_int          # channel 0: every tap at +max
    t["layers.0.conv.w"][1] = fmts.w_conv.min_int          # channel 1: every tap at -min
    amap = AddressMap(arch, fmts)
    addrs, datas = amap.writes(t)
    sel = np.zeros(len(addrs), bool)                      # the bench holds only the convolution's memories
    for n in ("layers.0.conv.w", "layers.0.conv.delay"):
        e = amap[n]
        sel |= (addrs >> (amap.word_bits + amap.lane_bits)) == e.tid
    T = 2 * D + 8
    s = rng.integers(fmts.dl.min_int, fmts.dl.max_int + 1, size=(T, H))
    s[: D + 3, 0] = fmts.dl.max_int                         # saturate channel 0 upwards
    s[: D + 3, 1] = fmts.dl.max_int                         # and channel 1 downwards
    first = np.zeros(T, np.int64)
    first[[0, D + 5]] = 1                                   # a second sequence: the line restarts empty
    return {"x": x, "n_rq": len(bb.RQ_CASES), "n_gc": len(bb.GC_CASES),
            "rq_bits": np.array([f.bits for _, f in bb.RQ_CASES]),
            "rq_signed": np.array([int(f.signed) for _, f in bb.RQ_CASES]),
            "H": H, "k_bits": arch.gate_bits, "h_bits": hf.bits,
            "sc_roundings": np.array([r.value for r in bb.SC_ROUNDINGS]),
            "sc_k": k, "sc_hc": hc, "sc_en": en, "sc_clear": clear,
            "cfg_addr": addrs[sel].astype(np.int64), "cfg_data": datas[sel].astype(np.int64),
            "dl_bits": fmts.dl.bits, "act_bits": fmts.act.bits, "cv_s": s, "cv_first": first,
            "_delays": dl, "_w": t["layers.0.conv.w"]}


def simulators(group: str) -> list:
    """Verilator and Icarus Verilog in both language modes, as pytest params; the Icarus ones
    (marked ``icarus``, own xdist groups) are skipped with the install command without iverilog."""
    from testbenches.build import ICARUS_HINT, ICARUS_MODES, icarus_available
    return [pytest.param("verilator", marks=pytest.mark.xdist_group(group))] + [
        pytest.param(m, marks=[pytest.mark.icarus, pytest.mark.xdist_group(f"{group}_{m}"),
                               pytest.mark.skipif(not icarus_available(), reason=ICARUS_HINT)])
        for m in ICARUS_MODES]


@pytest.mark.parametrize("simulator", simulators("rtl_blockbench"))
def test_blocks_in_simulators(simulator, tmp_path):
    """requantize, gate codes, the SC update (3 rounding rules) and the delay-line convolution
    in Verilator, and in Icarus Verilog in both language modes, under cocotb, against spec/ and
    sim/ on edge and random stimuli; every output port defined (no X/Z) at every clock edge."""
    from sim.delayline import conv_step
    from sim.mingru import state_update
    from spec.arch import acc_frac
    from testbenches import blockbench as bb
    from testbenches.build import build_cocotb, output_ports, run_cocotb_test, verilog_of
    job = _bench_job(np.random.default_rng(20))
    vfile = verilog_of(bb.BlockBench, bb.TOP_NAME, "v1")
    outs = output_ports(vfile, bb.TOP_NAME)
    job["out_ports"] = np.frombuffer(" ".join(outs).encode(), np.uint8)
    bdir = build_cocotb(vfile, top=bb.TOP_NAME, simulator=simulator)
    jf, rf = tmp_path / "job.npz", tmp_path / "res.npz"
    np.savez(jf, **{k: v for k, v in job.items() if not k.startswith("_")})
    n, fail = run_cocotb_test(bdir, top=bb.TOP_NAME, module="testbenches.tb_blocks", workdir=tmp_path,
                              env={"MGRADE_JOB": str(jf), "MGRADE_RESULT": str(rf)}, simulator=simulator)
    assert n == 1 and fail == 0, (tmp_path / "sim.log").read_text()[-3000:]
    r = np.load(rf)
    assert len(outs) > 30 and int(r["edges"]) > 400
    assert int(r["x_cycles"]) == 0, f"{simulator}: an output port held X/Z, first at {r['x_first']}"
    xs = job["x"].astype(np.int64)
    for c, (xf, f) in enumerate(bb.RQ_CASES):
        q, _ = spec_requantize(xs, xf, f)
        np.testing.assert_array_equal(r["rq"][:, c], q, err_msg=f"requantize case {c}: {xf} -> {f}")
        sat = np.array([spec_requantize(np.int64(v), xf, f)[1] for v in xs])
        np.testing.assert_array_equal(r["rq_sat"][:, c], sat, err_msg=f"saturation flag case {c}")
    for c, (frac, bits, rnd) in enumerate(bb.GC_CASES):
        np.testing.assert_array_equal(r["gc"][:, c], spec_gate_code(xs, frac, bits, rnd), err_msg=f"gate {c}")
    arch = bb.bench_arch()
    for ri, rnd in enumerate(bb.SC_ROUNDINGS):
        fh = bb.bench_formats(rnd).h
        h = np.zeros(arch.hidden, np.int64)
        want = []
        for k, hc, en, clr in zip(job["sc_k"], job["sc_hc"], job["sc_en"], job["sc_clear"], strict=True):
            if clr:
                h = np.zeros_like(h)
            elif en:
                h = state_update(h, k.astype(np.int64), hc.astype(np.int64), b_z=arch.gate_bits, fmt_h=fh)[0]
            want.append(h)
        np.testing.assert_array_equal(r["sc_h"][ri], np.array(want), err_msg=f"SC update, {rnd.value}")
    # the rails were reached: the edge cases were exercised
    assert (r["sc_h"] == bb.bench_formats().h.max_int).any() or (r["sc_h"] > 30000).any()
    fmts = bb.bench_formats()
    D = arch.d_max
    want_u, want_sat = [], []
    line, t = None, 0
    for s, first in zip(job["cv_s"], job["cv_first"], strict=True):
        if first:
            line, t = np.zeros((1, arch.hidden, D), np.int64), 0
        acc = conv_step(line, s[None].astype(np.int64), job["_delays"], job["_w"].astype(np.int64), t)[0]
        t += 1
        q, n_sat = spec_requantize(acc, acc_frac(fmts.dl, fmts.w_conv), fmts.act)
        want_u.append(q)
        want_sat.append(int(n_sat > 0))
    np.testing.assert_array_equal(r["cv_u0"], np.array(want_u), err_msg="delay-line convolution")
    np.testing.assert_array_equal(r["cv_sat"], np.array(want_sat), err_msg="convolution saturation flag")
    assert sum(want_sat) > 0


@pytest.mark.xdist_group("rtl_probe")
@pytest.mark.parametrize("case,micro", [("edges", None), ("saturation", None),
                                        ("edges", "simd=2,taps_passes=2,proj_passes=2,mix_passes=2,"
                                                  "readout_passes=3,chan_passes=2,schedule=dataflow")])
def test_network_blocks_in_verilator(case, micro):
    """Every block of a whole 2-layer network, every step, through the probe port in Verilator:
    delays 0 / d_max - 1 / d_max with z pinned at 63/64 and 0, and a saturating bundle; the edge
    case also at a folded, row-passed, channel-grouped dataflow microarchitecture (rtl.microarch:
    the probe shows the presented step's intermediates, carried through the pipeline)."""
    from rtl.microarch import Microarch
    from testbenches.cosim import run_cocotb
    b, xs = _edge_bundle() if case == "edges" else _saturating_bundle()
    r = run_cocotb(b, xs, probe=True, micro=Microarch.parse(micro, b.arch))
    assert r.bit_exact, r.mismatch
    res = _compare(b, xs, r.outputs, r.trace)
    if case == "edges":
        assert (res.trace["layers.0.k"] == 63).all() and (res.trace["layers.1.k"] == 0).all()
    else:
        assert sum(res.saturations.values()) > 0
