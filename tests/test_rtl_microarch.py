"""The RTL's microarchitecture (:mod:`rtl.microarch`): input columns per cycle of every projection,
channels per cycle of the element-wise stages, and the schedule (sequential or dataflow).

* Validation: invalid values are refused with the list of valid ones; ``simd=N`` parsing; ``str``
  round-trips.
* The address map at every fold: every element written once, the preload image where the writes go.
* Whole tiny networks in amaranth.sim at several folds and every architecture variant: every
  intermediate of every step and every output (saturation flags included) bit-exact with ``sim``,
  the simulated cycles of the first step equal to ``rtl.top.latency(arch, micro)`` and of every
  further step to ``rtl.top.cycles_per_step(arch, micro)`` (the dataflow schedule's initiation
  interval), both equal to the closed forms; a dataflow pipeline whose slowest stage is the
  encoder or the readout.
* Verilator stream tests of the small GSC network at a non-default fold, sequential and dataflow
  (bit-exact, cycles of the whole stream), and the plain C++ harness streaming a dataflow design.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_rtl_blocks import BASE, VARIANTS, _compare, _flag_bundle, _inputs

from rtl.addrmap import AddressMap
from rtl.microarch import (
    FIELDS,
    PASS_FIELDS,
    Microarch,
    MicroarchError,
    cycles_closed_form,
    latency_closed_form,
    mac_multipliers,
    valid_values,
)
from rtl.top import cycles_per_step, latency, stage_cycles, stream_cycles
from spec import Arch, Formats, random_bundle
from testbenches.amsim import run_top

pytestmark = pytest.mark.rtl

#: Folds of the amaranth.sim tests: Microarch.parse texts (simd=N: every projection at the largest
#: valid value <= N, so simd=64 is "all columns at once"), "mixed", "+chan", "+rows", "+lane" (:func:`_fold`).
FOLDS = ["simd=2", "simd=64", "mixed", "schedule=dataflow", "simd=2,+chan", "mixed,+chan,schedule=dataflow",
         "+rows", "mixed,+lane,+chan,schedule=dataflow"]


def _fold(arch: Arch, fold: str) -> Microarch:
    """``fold`` for ``arch``; "mixed": a different fold per projection (encoder and taps all at
    once, gate+candidate at the largest proper divisor, the mixer at the smallest fold > 1, the
    readout one column per cycle); "+chan": the element-wise stages one channel per cycle
    (``chan_passes`` = H); "+rows": every projection in its fewest row passes > 1 (half the lanes
    where the rows are even); "+lane": every projection one MAC lane (as many passes as rows);
    other items as :meth:`Microarch.parse` reads them."""
    items = fold.split(",")
    kw = {}
    if "mixed" in items:
        v = {f: valid_values(arch, f) for f in FIELDS}
        kw = dict(enc=v["enc"][-1], taps=v["taps"][-1], proj=v["proj"][-2] if len(v["proj"]) > 1 else 1,
                  mix=v["mix"][min(1, len(v["mix"]) - 1)], readout=1)
    if "+chan" in items:
        kw["chan_passes"] = arch.hidden
    for f in PASS_FIELDS:
        v = valid_values(arch, f)
        if "+rows" in items:
            kw[f] = v[min(1, len(v) - 1)]
        if "+lane" in items:
            kw[f] = v[-1]
    rest = ",".join(i for i in items if i not in ("mixed", "+chan", "+rows", "+lane"))
    mu = Microarch.parse(rest, arch)
    return Microarch(**{**mu.to_json(), **kw}).check(arch)


def test_invalid_values_are_refused_with_the_valid_ones():
    arch = Arch(d_in=6, n_classes=3, hidden=8, taps=4, d_max=5)
    assert valid_values(arch, "proj") == [1, 2, 4, 8]
    assert valid_values(arch, "enc") == [1, 2, 3, 6]
    assert valid_values(arch, "taps") == [1, 2, 4]
    with pytest.raises(MicroarchError, match=r"proj=3 \(valid: 1, 2, 4, 8\).*readout=16 \(valid: 1, 2, 4, 8\)"):
        Microarch(proj=3, readout=16).check(arch)
    with pytest.raises(MicroarchError, match=r"mix=2 \(valid: 1\)"):
        Microarch(mix=2).check(Arch(d_in=6, n_classes=3, hidden=8, mix="none"))
    with pytest.raises(MicroarchError, match=r"enc=2 \(valid: 1\)"):
        Microarch(enc=2).check(Arch(d_in=6, n_classes=3, hidden=8, encoder="embedding"))
    with pytest.raises(MicroarchError, match="integer >= 1"):
        Microarch(proj=0)
    with pytest.raises(MicroarchError, match="one of enc, taps, proj, mix, readout, enc_passes, taps_passes, "
                                             "proj_passes, mix_passes, readout_passes, chan_passes, schedule or simd"):
        Microarch.parse("lanes=4")
    with pytest.raises(MicroarchError, match="schedule must be one of sequential, dataflow, not 'pipelined'"):
        Microarch.parse("schedule=pipelined")
    with pytest.raises(MicroarchError, match=r"chan_passes=3 \(valid: 1, 2, 4, 8\)"):
        Microarch(chan_passes=3).check(arch)
    with pytest.raises(MicroarchError, match="integer >= 1"):
        Microarch(chan_passes=0)
    assert valid_values(arch, "chan_passes") == [1, 2, 4, 8]
    # row passes: divisors of the rows (H; C for the readout); 1 where there is no such projection
    assert valid_values(arch, "readout_passes") == [1, 3] and valid_values(arch, "taps_passes") == [1, 2, 4, 8]
    with pytest.raises(MicroarchError, match=r"proj_passes=3 \(valid: 1, 2, 4, 8\); readout_passes=2 \(valid: 1, 3\)"):
        Microarch(proj_passes=3, readout_passes=2).check(arch)
    with pytest.raises(MicroarchError, match=r"enc_passes=2 \(valid: 1\); mix_passes=2 \(valid: 1\)"):
        Microarch(enc_passes=2, mix_passes=2).check(Arch(d_in=6, n_classes=3, hidden=8, encoder="embedding",
                                                         mix="none"))
    mu = Microarch.parse("proj=8,proj_passes=4,readout_passes=3", arch)
    assert mu.lanes(arch, "proj") == 2 and mu.lanes(arch, "readout") == 1 and mu.lanes(arch, "mix") == 8
    assert Microarch.parse(str(mu), arch) == mu
    assert valid_values(arch, "schedule") == ["sequential", "dataflow"]
    with pytest.raises(MicroarchError, match=r"taps=3 \(valid: 1, 2, 4\)"):
        Microarch.parse("taps=3", arch)
    with pytest.raises(MicroarchError, match="not an integer"):
        Microarch.parse("proj=x")
    # simd=N: each projection at the largest valid value <= N; named fields win
    assert Microarch.parse("simd=4", arch) == Microarch(enc=3, taps=4, proj=4, mix=4, readout=4)
    assert Microarch.parse("simd=64,proj=2", arch) == Microarch(enc=6, taps=4, proj=2, mix=8, readout=8)
    assert Microarch.parse(None) == Microarch.parse("default") == Microarch()
    assert Microarch.parse(str(Microarch(enc=2, mix=4))) == Microarch(enc=2, mix=4)
    assert str(Microarch(enc=2, mix=4)) == "enc=2,taps=1,proj=1,mix=4,readout=1"      # as before the new fields
    mu = Microarch.parse("proj=8,chan_passes=4,schedule=dataflow", arch)
    assert mu == Microarch(proj=8, chan_passes=4, schedule="dataflow") and mu.dataflow
    assert str(mu) == "enc=1,taps=1,proj=8,mix=1,readout=1,chan_passes=4,schedule=dataflow"
    assert Microarch.parse(str(mu), arch) == mu and not mu.is_default
    with pytest.raises(MicroarchError):
        cycles_per_step(arch, Microarch(proj=3))


@pytest.mark.parametrize("fold", ["default", *FOLDS])
def test_address_map_at_every_fold(fold):
    arch = Arch(d_in=4, n_classes=5, hidden=8, taps=4, d_max=9, mix="glu")
    mu = _fold(arch, fold)
    amap = AddressMap(arch, Formats(), micro=mu)
    b = random_bundle(arch, Formats(), seed=0)
    addrs, datas = amap.writes(b.tensors)
    assert len(np.unique(addrs)) == len(addrs) == sum(v.size for v in b.tensors.values())
    assert int(addrs.max()) < (1 << amap.addr_width)
    for name, e in amap.entries.items():
        word, slot = e.locate()
        img = amap.image(name, b.tensors[name])
        assert img.shape == (e.depth, e.slots) and (slot < e.slots).all() and (word < e.depth).all()
        np.testing.assert_array_equal(img[word, slot], b.tensors[name])
        if name.endswith("rnn.wz"):         # one word holds every lane's columns of one group
            assert e.simd == mu.proj and e.depth == mu.proj_passes * arch.hidden // mu.proj
            assert e.lanes == mu.lanes(arch, "proj")


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_bit_exact_and_cycles_at_every_fold(variant, fold):
    """Every intermediate and output bit-exact with sim, and every step's simulated cycles equal
    to the cycle model, at each fold of every architecture variant of the block tests."""
    arch = Arch(**dict(BASE, **VARIANTS[variant]))
    mu = _fold(arch, fold)
    b = random_bundle(arch, Formats(), seed=5)
    xs = _inputs(arch, np.random.default_rng(6), lens=(6, 4))
    outs, traces, cyc = run_top(b, xs, micro=mu)
    _check_cycles(arch, mu, cyc)
    if mu.chan_passes == 1 and all(getattr(mu, f) == 1 for f in PASS_FIELDS):
        assert cycles_per_step(arch, mu) < cycles_per_step(arch)
    if any(getattr(mu, f) > 1 for f in PASS_FIELDS):        # fewer lanes: fewer multipliers
        assert mac_multipliers(arch, mu) < mac_multipliers(arch, dataclasses.replace(
            mu, **{f: 1 for f in PASS_FIELDS}))
    _compare(b, xs, outs, traces)


def _check_cycles(arch: Arch, mu: Microarch, cyc: list[int]) -> None:
    """The first step takes the latency, every further one the cycles per step (the initiation
    interval), as the model and the closed form say."""
    assert cyc[0] == latency(arch, mu) == latency_closed_form(arch, mu)
    assert set(cyc[1:]) == {cycles_per_step(arch, mu)} == {cycles_closed_form(arch, mu)}
    assert sum(cyc) == stream_cycles(arch, mu, len(cyc))
    if mu.dataflow:
        assert cycles_per_step(arch, mu) == max(stage_cycles(arch, mu).values()) < latency(arch, mu)
    else:
        assert cycles_per_step(arch, mu) == latency(arch, mu)


@pytest.mark.parametrize("slowest", ["encoder", "readout"])
def test_dataflow_pipeline_limited_by_the_encoder_or_the_readout(slowest):
    """A dataflow design whose slowest stage is not a layer: the encoder (many input features, one
    per cycle) or the readout (one column per cycle) sets the steps' rate, bit-exact."""
    arch = Arch(d_in=12 if slowest == "encoder" else 2, n_classes=3, hidden=4, layers=2, taps=0, d_max=0,
                mix="none")
    mu = Microarch.parse("simd=64,schedule=dataflow," + ("enc=1" if slowest == "encoder" else "readout=1"), arch)
    st = stage_cycles(arch, mu)
    assert max(st, key=st.get) == slowest and st[slowest] > st["layer"]
    b = random_bundle(arch, Formats(), seed=7)
    xs = _inputs(arch, np.random.default_rng(8), lens=(5, 3))
    outs, traces, cyc = run_top(b, xs, micro=mu)
    _check_cycles(arch, mu, cyc)
    _compare(b, xs, outs, traces)


@pytest.mark.parametrize("fold", ["simd=2", "simd=2,chan_passes=2,schedule=dataflow"])
def test_saturation_flags_at_a_fold(fold):
    """The saturating bundle's per-step flags of every tensor at a fold (sums of several columns
    per cycle, the mixer's stores of folded passes, the element-wise stages' channel groups, and
    with the dataflow schedule the flags travelling with their step through the pipeline),
    against sim's events."""
    b, xs = _flag_bundle()
    mu = Microarch.parse(fold, b.arch)
    outs, traces, cyc = run_top(b, xs, micro=mu)
    _check_cycles(b.arch, mu, cyc)
    res = _compare(b, xs, outs, traces)
    assert sum(int((v > 0).sum()) for v in res.saturation_steps.values()) > 0


def test_cycle_model_of_the_shipped_gsc_network():
    """The README's figures: the shipped GSC network (H=64, L=4, K=8, E=128, d_in=16) takes 1,443
    cycles per step with one column per cycle, and the closed form agrees at every fold."""
    arch = Arch(d_in=16, n_classes=12, hidden=64, layers=4, taps=8, d_max=63)
    assert cycles_per_step(arch) == 1443
    for n in (1, 2, 4, 8, 16, 32, 64):
        mu = Microarch.parse(f"simd={n}", arch)
        assert cycles_per_step(arch, mu) == cycles_closed_form(arch, mu)
        assert all(getattr(mu, f) == min(n, {"enc": 16, "taps": 8}.get(f, 64)) for f in FIELDS)
    assert cycles_per_step(arch, Microarch.parse("simd=64", arch)) == 77
    # the dataflow schedule: a layer's stage (339 + 1 cycles) sets the rate; the latency is the sequential step
    df = Microarch(schedule="dataflow")
    assert cycles_per_step(arch, df) == 340 == cycles_closed_form(arch, df) and latency(arch, df) == 1443
    df64 = Microarch.parse("simd=64,schedule=dataflow", arch)
    assert cycles_per_step(arch, df64) == 18 and latency(arch, df64) == 77
    # the element-wise stages in 4 channel groups: 3 more cycles for the SC update and 3 for the norm per layer
    assert cycles_per_step(arch, Microarch(chan_passes=4)) == 1443 + 4 * 6
    # rows in parallel: gate and candidate with 16 lanes in 4 passes, 3 store cycles more each
    mu = Microarch(proj_passes=4)
    assert cycles_per_step(arch, mu) == 1443 + 4 * (3 * 64 + 3) == cycles_closed_form(arch, mu)
    assert mac_multipliers(arch) - mac_multipliers(arch, mu) == 4 * 2 * 48


@pytest.mark.xdist_group("rtl_gsc_small_micro")
@pytest.mark.parametrize("fold", ["simd=4", "simd=4,taps_passes=2,proj_passes=2,readout_passes=3,chan_passes=2,"
                                  "schedule=dataflow"])
def test_stream_at_a_fold_in_verilator(tmp_path, fold):
    """The small GSC network (H = 8) at a non-default fold in Verilator, sequential, and dataflow
    with row and channel passes, each its own build (the Verilog is keyed by the
    microarchitecture): bit-exact with sim, and the stream's cycles those of the cycle model (the
    feeder presents the next sample as soon as one is taken: the dataflow design takes a sample
    every cycles_per_step cycles)."""
    from testbenches.cosim import run_cocotb
    from testbenches.streams import make_case
    case = make_case("gsc_stream", n_seqs=2, max_steps=200, small=True, root="fixture")
    arch = case.bundle.arch
    mu = Microarch.parse(fold, arch)
    assert not mu.is_default
    r = run_cocotb(case.bundle, case.xs, micro=mu, workdir=tmp_path)
    assert r.bit_exact, r.mismatch
    steps = sum(len(x) for x in case.xs)
    assert r.steps == steps and r.micro == mu
    assert r.cycles == stream_cycles(arch, mu, steps) and cycles_per_step(arch, mu) < cycles_per_step(arch)
    if mu.dataflow:
        assert r.cycles < steps * latency(arch, mu)


@pytest.mark.xdist_group("rtl_gsc_small_micro")
def test_cpp_harness_streams_a_dataflow_design(tmp_path):
    """The plain C++ harness (make bench's speed reference) streams the samples: on the small GSC
    network at a dataflow fold its outputs are sim's bit for bit and the two sequences take the cycle
    model's stream cycles, not one latency per step as when each step entered alone."""
    from testbenches.cosim import expected, run_harness
    from testbenches.streams import make_case
    case = make_case("gsc_stream", n_seqs=2, max_steps=40, small=True, root="fixture")
    arch = case.bundle.arch
    mu = Microarch.parse("simd=4,schedule=dataflow", arch)
    exp, _ = expected(case.bundle, case.xs)
    h = run_harness(case.bundle, case.xs, micro=mu, workdir=tmp_path)
    steps = sum(len(x) for x in case.xs)
    np.testing.assert_array_equal(h["outputs"]["logits"], np.concatenate(exp.logits))
    np.testing.assert_array_equal(h["outputs"]["acc"], np.concatenate(exp.acc))
    assert h["steps"] == steps and h["cycles"] == stream_cycles(arch, mu, steps) < steps * latency(arch, mu)


def test_folds_table(capsys):
    """``python -m testbenches.folds`` (the README's table) on the small GSC network: a row per fold,
    simulated cycles equal to the model, bit-exact; an invalid fold exits 2 naming the valid values."""
    from testbenches import folds
    from testbenches.streams import make_case
    assert folds.main(["--small", "--root", "fixture", "--steps", "3", "simd=1", "proj=2,mix=4",
                       "proj=2,mix_passes=2,chan_passes=2,schedule=dataflow"]) == 0
    out = capsys.readouterr().out
    arch = make_case("gsc_stream", small=True, root="fixture", max_steps=1).bundle.arch
    for mu in (Microarch(), Microarch(proj=2, mix=4),
               Microarch(proj=2, mix_passes=2, chan_passes=2, schedule="dataflow")):
        c, n, lat = cycles_closed_form(arch, mu), mac_multipliers(arch, mu), latency_closed_form(arch, mu)
        passes = f"1,1,1,{mu.mix_passes},1"
        assert (f"| {mu.enc},{mu.taps},{mu.proj},{mu.mix},{mu.readout} | {passes} | {mu.chan_passes} | "
                f"{mu.schedule} | {n} | {c} | {c} | {lat} | {lat} | yes |") in out, out
    assert folds.main(["--small", "--root", "fixture", "--steps", "1", "proj=3"]) == 2
    assert "proj=3 (valid: 1, 2, 4, 8)" in capsys.readouterr().err
