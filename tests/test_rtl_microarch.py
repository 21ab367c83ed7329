"""The RTL's microarchitecture (:mod:`rtl.microarch`): input columns per cycle of every projection.

* Validation: invalid values are refused with the list of valid ones; ``simd=N`` parsing.
* The address map at every fold: every element written once, the preload image where the writes go.
* Whole tiny networks in amaranth.sim at several folds and every architecture variant: every
  intermediate of every step and every output (saturation flags included) bit-exact with ``sim``,
  and the simulated cycles of every step equal to ``rtl.top.cycles_per_step(arch, micro)`` and to
  the closed form.
* One Verilator stream test of the small GSC network at a non-default fold (bit-exact, cycles).
"""
from __future__ import annotations

import numpy as np
import pytest
from test_rtl_blocks import BASE, VARIANTS, _compare, _flag_bundle, _inputs

from rtl.addrmap import AddressMap
from rtl.microarch import FIELDS, Microarch, MicroarchError, cycles_closed_form, valid_values
from rtl.top import cycles_per_step
from spec import Arch, Formats, random_bundle
from testbenches.amsim import run_top

pytestmark = pytest.mark.rtl

#: Folds of the amaranth.sim tests: Microarch.parse texts (simd=N: every projection at the largest
#: valid value <= N, so simd=64 is "all columns at once"), and "mixed" (:func:`_fold`).
FOLDS = ["simd=2", "simd=64", "mixed"]


def _fold(arch: Arch, fold: str) -> Microarch:
    """``fold`` for ``arch``; "mixed": a different fold per projection (encoder and taps all at
    once, gate+candidate at the largest proper divisor, the mixer at the smallest fold > 1, the
    readout one column per cycle)."""
    if fold != "mixed":
        return Microarch.parse(fold, arch)
    v = {f: valid_values(arch, f) for f in FIELDS}
    return Microarch(enc=v["enc"][-1], taps=v["taps"][-1], proj=v["proj"][-2] if len(v["proj"]) > 1 else 1,
                     mix=v["mix"][min(1, len(v["mix"]) - 1)], readout=1).check(arch)


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
    with pytest.raises(MicroarchError, match="one of enc, taps, proj, mix, readout or simd"):
        Microarch.parse("lanes=4")
    with pytest.raises(MicroarchError, match=r"taps=3 \(valid: 1, 2, 4\)"):
        Microarch.parse("taps=3", arch)
    with pytest.raises(MicroarchError, match="not an integer"):
        Microarch.parse("proj=x")
    # simd=N: each projection at the largest valid value <= N; named fields win
    assert Microarch.parse("simd=4", arch) == Microarch(enc=3, taps=4, proj=4, mix=4, readout=4)
    assert Microarch.parse("simd=64,proj=2", arch) == Microarch(enc=6, taps=4, proj=2, mix=8, readout=8)
    assert Microarch.parse(None) == Microarch.parse("default") == Microarch()
    assert Microarch.parse(str(Microarch(enc=2, mix=4))) == Microarch(enc=2, mix=4)
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
            assert e.simd == mu.proj and e.depth == arch.hidden // mu.proj


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
    assert set(cyc) == {cycles_per_step(arch, mu)} == {cycles_closed_form(arch, mu)}
    if not mu.is_default:
        assert cycles_per_step(arch, mu) < cycles_per_step(arch)
    _compare(b, xs, outs, traces)


def test_saturation_flags_at_a_fold():
    """The saturating bundle's per-step flags of every tensor at a fold (sums of several columns
    per cycle and the mixer's stores of folded passes), against sim's events."""
    b, xs = _flag_bundle()
    mu = Microarch.parse("simd=2", b.arch)
    outs, traces, cyc = run_top(b, xs, micro=mu)
    assert set(cyc) == {cycles_per_step(b.arch, mu)}
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


@pytest.mark.xdist_group("rtl_gsc_small_micro")
def test_stream_at_a_fold_in_verilator(tmp_path):
    """The small GSC network (H = 8) at a non-default fold in Verilator, its own build (the
    Verilog is keyed by the microarchitecture): bit-exact with sim, and the cycles of the cycle model."""
    from testbenches.cosim import run_cocotb
    from testbenches.streams import make_case
    case = make_case("gsc_stream", n_seqs=2, max_steps=200, small=True, root="fixture")
    arch = case.bundle.arch
    mu = Microarch.parse("simd=4", arch)
    assert not mu.is_default
    r = run_cocotb(case.bundle, case.xs, micro=mu, workdir=tmp_path)
    assert r.bit_exact, r.mismatch
    steps = sum(len(x) for x in case.xs)
    assert r.steps == steps and r.micro == mu
    assert r.cycles == steps * cycles_per_step(arch, mu) and cycles_per_step(arch, mu) < cycles_per_step(arch)


def test_folds_table(capsys):
    """``python -m testbenches.folds`` (the README's table) on the small GSC network: a row per fold,
    simulated cycles equal to the model, bit-exact; an invalid fold exits 2 naming the valid values."""
    from rtl.microarch import mac_multipliers
    from testbenches import folds
    from testbenches.streams import make_case
    assert folds.main(["--small", "--root", "fixture", "--steps", "2", "simd=1", "proj=2,mix=4"]) == 0
    out = capsys.readouterr().out
    arch = make_case("gsc_stream", small=True, root="fixture", max_steps=1).bundle.arch
    for mu in (Microarch(), Microarch(proj=2, mix=4)):
        c, n = cycles_closed_form(arch, mu), mac_multipliers(arch, mu)
        assert f"| {mu.enc},{mu.taps},{mu.proj},{mu.mix},{mu.readout} | {n} | {c} | {c} | yes |" in out, out
    assert folds.main(["--small", "--root", "fixture", "--steps", "1", "proj=3"]) == 2
    assert "proj=3 (valid: 1, 2, 4, 8)" in capsys.readouterr().err
