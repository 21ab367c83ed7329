"""SC non-idealities (sim.noise): zero noise is exact, seeding, and each effect's physics."""
import math

import numpy as np
import pytest

from sim import ChargeInjection, Comparator, Leakage, Mismatch, Network, NoiseModel, ReferenceLevels, Thermal
from sim.mingru import state_update, state_update_sc
from sim.noise import K_B
from spec import Arch, random_bundle

ARCH = Arch(d_in=2, n_classes=4, hidden=8, layers=2, taps=3, d_max=9)
ARCH_HEAV = Arch(d_in=2, n_classes=4, hidden=8, layers=2, taps=3, d_max=9, mix="glu", rnn_out="heaviside")
V_LSB = 1.0 / 2 ** 16          # default v_fs = 1 V over the 16-bit state

#: statistical tolerances (relative), for ~32k samples per estimate
STD_RTOL = 0.04
RATIO_RTOL = 0.04


def _x(B, T, seed=0):
    return np.random.default_rng(seed).integers(-32768, 32768, (B, T, 2))


@pytest.fixture(scope="module")
def bundle():
    return random_bundle(ARCH, seed=1)


@pytest.fixture(scope="module")
def first_step(bundle):
    """One step of a large batch: exact trace."""
    x = _x(4096, 1)
    return x, Network(bundle).run(x, trace=True)


def _first_step_error(bundle, first_step, noise, name="layers.0.h"):
    x, ex = first_step
    r = Network(bundle, noise=noise).run(x, trace=True)
    return (r.trace[name][:, 0] - ex.trace[name][:, 0]).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# exactness and reproducibility
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", [ARCH, ARCH_HEAV], ids=["linear", "heaviside-glu"])
@pytest.mark.parametrize("model", [NoiseModel(), NoiseModel.zero()], ids=["none", "all-zero"])
def test_zero_noise_is_bit_exact(arch, model):
    b = random_bundle(arch, seed=2, scale=2.0)
    x = _x(3, 80, seed=1)
    ex = Network(b).run(x, trace=True, lengths=np.array([80, 33, 5]))
    net = Network(b, noise=model)
    assert net.chip is not None                      # the SC path runs, with nothing to add
    r = net.run(x, trace=True, lengths=np.array([80, 33, 5]))
    np.testing.assert_array_equal(r.logits, ex.logits)
    np.testing.assert_array_equal(r.step_logits, ex.step_logits)
    for k in ex.trace:
        np.testing.assert_array_equal(r.trace[k], ex.trace[k], err_msg=k)
    assert r.saturations == ex.saturations


def test_zero_noise_update_equals_contract_for_every_rounding():
    from spec.fixedpoint import Format
    rng = np.random.default_rng(0)
    h = rng.integers(-32768, 32768, 200000)
    hc = rng.integers(-32768, 32768, 200000)
    k = rng.integers(0, 64, 200000)
    for rule in ("floor", "half_up", "half_even"):
        f = Format(True, 16, 10, rule)
        a = state_update(h, k, hc, b_z=6, fmt_h=f)
        z = np.tile(np.arange(64) / 64.0, (1, 1))            # ideal z table for one channel
        b = state_update_sc(h, k, hc, b_z=6, fmt_h=f, z_eff=None, leak=np.ones(1), offset=0.0, noise=0 * h)
        c = state_update_sc(h[:, None], k[:, None], hc[:, None], b_z=6, fmt_h=f, z_eff=z)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], c[0][:, 0])


def test_seeds():
    b = random_bundle(ARCH_HEAV, seed=3)
    x = _x(4, 50)
    net = Network(b, noise=NoiseModel.default(seed=7))
    r1, r2 = net.run(x), net.run(x)
    np.testing.assert_array_equal(r1.step_logits, r2.step_logits)      # same seed, same result
    r3 = Network(b, noise=NoiseModel.default(seed=7)).run(x)
    np.testing.assert_array_equal(r1.step_logits, r3.step_logits)      # reproducible across instances
    r4 = net.run(x, seed=8)                                            # other dynamic noise, same chip
    assert not np.array_equal(r1.step_logits, r4.step_logits)
    np.testing.assert_array_equal(net.run(x, seed=8).step_logits, r4.step_logits)
    r5 = Network(b, noise=NoiseModel.default(seed=9)).run(x)           # another chip
    assert not np.array_equal(r1.step_logits, r5.step_logits)
    c1, c2 = Network(b, noise=NoiseModel.default(seed=7)).chip, Network(b, noise=NoiseModel.default(seed=9)).chip
    np.testing.assert_array_equal(c1.layers[1].z_eff, Network(b, noise=NoiseModel.default(seed=7)).chip.layers[1].z_eff)
    assert not np.array_equal(c1.layers[1].z_eff, c2.layers[1].z_eff)
    # removing one non-ideality leaves the others' static draws unchanged
    c3 = Network(b, noise=NoiseModel.default(seed=7).replace(leakage=None)).chip
    np.testing.assert_array_equal(c1.layers[0].z_eff, c3.layers[0].z_eff)
    np.testing.assert_array_equal(c1.layers[0].heav_offset, c3.layers[0].heav_offset)


def test_noisy_stream_equals_noisy_run():
    b = random_bundle(ARCH_HEAV, seed=4)
    net = Network(b, noise=NoiseModel.default(seed=1, thermal=Thermal(capacitance=20e-15)))
    x = _x(3, 40, seed=2)
    r = net.run(x, seed=11, chunk=7)
    st = net.init_state(3, seed=11)
    steps = []
    for t in range(40):
        st, lt = net.step(st, x[:, t])
        steps.append(lt)
    np.testing.assert_array_equal(np.stack(steps, 1), r.step_logits)
    np.testing.assert_array_equal(net.readout(st), r.logits)
    assert st.saturations == r.saturations


@pytest.mark.parametrize("name,model", [
    ("thermal", NoiseModel(thermal=Thermal())),
    ("mismatch", NoiseModel(mismatch=Mismatch())),
    ("mismatch-serial", NoiseModel(mismatch=Mismatch(scheme="serial"))),
    ("leakage", NoiseModel(leakage=Leakage())),
    ("injection", NoiseModel(injection=ChargeInjection())),
    ("comparator", NoiseModel(comparator=Comparator())),
    ("references", NoiseModel(references=ReferenceLevels())),
])
def test_each_non_ideality_changes_outputs(name, model):
    b = random_bundle(ARCH_HEAV, seed=5)
    x = _x(4, 60, seed=3)
    ex = Network(b).run(x, trace=True)
    r = Network(b, noise=model).run(x, trace=True)
    assert not np.array_equal(r.trace["layers.1.h"], ex.trace["layers.1.h"]), name
    assert not np.array_equal(r.step_logits, ex.step_logits), name


# ---------------------------------------------------------------------------------------------
# physics of each effect
# ---------------------------------------------------------------------------------------------
def test_thermal_kTC_sigma_halves_when_C_quadruples(bundle, first_step):
    """Empirical std of the state error after one update against sqrt(kT/2C * 4/3 (1 - 4**-b_z))."""
    sig = {}
    for C in (10e-15, 40e-15):
        e = _first_step_error(bundle, first_step, NoiseModel(thermal=Thermal(capacitance=C, candidate=False)))
        theory = math.sqrt(K_B * 300.0 / (2 * C) * (4 / 3) * (1 - 4.0 ** -6)) / V_LSB
        # rounding adds ~1/6 LSB^2 of variance (two independent roundings)
        sig[C] = math.sqrt(max(e.var() - 1 / 6, 0.0))
        assert sig[C] == pytest.approx(theory, rel=STD_RTOL), (C, sig[C], theory)
        assert abs(e.mean()) < 4 * theory / math.sqrt(e.size)
    assert sig[10e-15] / sig[40e-15] == pytest.approx(2.0, rel=RATIO_RTOL)
    d = NoiseModel(thermal=Thermal(capacitance=10e-15)).describe(ARCH, bundle.formats)
    assert d["thermal_update_sigma"] == pytest.approx(sig[10e-15], rel=STD_RTOL)
    # the candidate's own kT/C sample: sqrt(kT/C)
    e = _first_step_error(bundle, first_step, NoiseModel(thermal=Thermal(capacitance=10e-15)), "layers.0.hc")
    assert math.sqrt(e.var() - 1 / 6) == pytest.approx(math.sqrt(K_B * 300.0 / 10e-15) / V_LSB, rel=STD_RTOL)
    # and it grows with temperature as sqrt(T)
    e_hot = _first_step_error(bundle, first_step, NoiseModel(thermal=Thermal(10e-15, 1200.0, candidate=False)))
    assert math.sqrt(e_hot.var() - 1 / 6) / sig[10e-15] == pytest.approx(2.0, rel=RATIO_RTOL)


@pytest.mark.parametrize("scheme", ["bank", "serial"])
def test_mismatch_pelgrom_scaling(scheme):
    """z_eff's error shrinks as 1/sqrt(C_u) (Pelgrom): quadrupling the unit cap halves it."""
    rng = np.random.default_rng(0)
    err = {}
    for cu in (1e-15, 4e-15):
        z = Mismatch(pelgrom=0.02 * math.sqrt(1e-15), unit_capacitance=cu, scheme=scheme).z_table(rng, 20000, 6)
        assert z.shape == (20000, 64)
        err[cu] = (z - np.arange(64) / 64.0).std(axis=0)
    assert np.all(err[1e-15][1:] > 0) and err[1e-15][0] == 0          # code 0 connects nothing
    ratio = np.full(64, np.nan)
    ratio[1:] = err[1e-15][1:] / err[4e-15][1:]
    first_order = np.arange(1, 64)
    if scheme == "serial":
        # z(16) = a (1 - a) has no first-order term in a - 1/2: its error is second order (sigma^2)
        assert ratio[16] == pytest.approx(4.0, rel=0.06)
        first_order = first_order[first_order != 16]
    np.testing.assert_allclose(ratio[first_order], 2.0, rtol=0.06)
    if scheme == "bank":
        # the MSB alone (k = 32): z = C_5 / (sum C + C_t); first order sigma_z = sigma_u/2 * sqrt(1/32 ...)
        su = 0.02
        c = 2.0 ** np.arange(6)
        # var(z) = [(1-z)^2 var(C5) + z^2 (var(others))] / 64^2 with var(C_i) = su^2 * 2^i, z = 1/2
        var = (0.25 * su ** 2 * 32 + 0.25 * su ** 2 * (c[:5].sum() + 1)) / 64 ** 2
        assert err[1e-15][32] == pytest.approx(math.sqrt(var), rel=0.05)
    # in the network: a static, per-channel bias of the update
    b = random_bundle(ARCH, seed=1)
    x = _x(512, 1)
    ex = Network(b).run(x, trace=True)
    chip_net = Network(b, noise=NoiseModel(mismatch=Mismatch(scheme=scheme), seed=3))
    r = chip_net.run(x, trace=True)
    k, hc = ex.trace["layers.0.k"][:, 0], ex.trace["layers.0.hc"][:, 0]
    z = chip_net.chip.layers[0].z_eff
    want = np.floor(z[np.arange(8), k] * hc + 0.5).astype(np.int64)      # h starts at 0; half_up
    np.testing.assert_array_equal(r.trace["layers.0.h"][:, 0], want)


def test_leakage_decay():
    """A held state decays by exp(-T / (R_off C)) per step; halving R_off doubles the loss."""
    h = np.full((1, 4), 20000)
    k = np.zeros((1, 4), np.int64)                                   # z = 0: only the leak acts
    from spec.fixedpoint import Format
    f = Format(True, 16, 10)
    loss = {}
    for r_off in (1e12, 0.5e12):
        lk = Leakage(r_off=r_off, capacitance=100e-15, t_step=62.5e-6)
        lam = lk.decay()
        assert lam == pytest.approx(math.exp(-62.5e-6 / (r_off * 100e-15)))
        hn, _ = state_update_sc(h, k, h * 0, b_z=6, fmt_h=f, leak=np.full(4, lam))
        loss[r_off] = 20000 - hn[0, 0]
        assert hn[0, 0] == round(20000 * lam)
    assert loss[0.5e12] in (2 * loss[1e12] - 1, 2 * loss[1e12], 2 * loss[1e12] + 1)
    # per-channel spread of R_off gives per-channel decay factors
    chip = NoiseModel(leakage=Leakage(spread=0.3)).realize(ARCH, random_bundle(ARCH).formats,
                                                           random_bundle(ARCH).tensors)
    assert np.unique(chip.layers[0].leak).size == 8
    # in the network, the state shrinks towards 0 compared with the exact model
    b = random_bundle(ARCH, seed=2)
    x = _x(64, 200)
    ex = Network(b).run(x, trace=True)
    r = Network(b, noise=NoiseModel(leakage=Leakage(r_off=1e10))).run(x, trace=True)
    assert np.abs(r.trace["layers.0.h"][:, -1]).mean() < np.abs(ex.trace["layers.0.h"][:, -1]).mean()


def test_charge_injection_offset(bundle, first_step):
    """Q/C per switch opening, accumulated over b_z halving phases: 2 (1 - 2**-b_z) Q / C."""
    shift = {}
    for q in (0.01e-15, 0.02e-15):
        e = _first_step_error(bundle, first_step, NoiseModel(injection=ChargeInjection(charge=q, spread=0.0)))
        theory = q / 100e-15 * 2 * (1 - 2.0 ** -6) / V_LSB               # ~12.9 LSB for 0.01 fC
        shift[q] = e.mean()
        assert shift[q] == pytest.approx(theory, abs=0.5)
    assert shift[0.02e-15] / shift[0.01e-15] == pytest.approx(2.0, rel=RATIO_RTOL)
    # with spread, channels differ, each by its own static offset
    net = Network(bundle, noise=NoiseModel(injection=ChargeInjection(spread=0.5), seed=4))
    e = _first_step_error(bundle, first_step, NoiseModel(injection=ChargeInjection(spread=0.5), seed=4))
    np.testing.assert_allclose(e.mean(axis=0), net.chip.layers[0].offset, atol=0.5)


def test_comparator_heaviside_offset_decides_exactly():
    b = random_bundle(ARCH_HEAV, seed=6)
    x = _x(16, 50)
    model = NoiseModel(comparator=Comparator(offset=2e-3, noise=0.0, gate=False), seed=2)
    net = Network(b, noise=model)
    r = net.run(x, trace=True)
    ex = Network(b).run(x, trace=True)
    h = r.trace["layers.0.h"]
    np.testing.assert_array_equal(h, ex.trace["layers.0.h"])        # layer 0's state is untouched
    off = net.chip.layers[0].heav_offset                              # LSB of h (2 mV ~ 131 LSB)
    want = ((h + off) > 0).astype(np.int64) << b.formats.act.frac
    np.testing.assert_array_equal(r.trace["layers.0.o"], want)
    assert not np.array_equal(r.trace["layers.0.o"], ex.trace["layers.0.o"])


def test_comparator_gate_noise_scales(bundle, first_step):
    """The gate digitiser's input-referred noise, in gate-code LSB (v_fs_gate / 2**b_z)."""
    x, ex = first_step
    k0 = ex.trace["layers.0.k"][:, 0]
    inside = (k0 >= 12) & (k0 <= 51)                                 # away from the clip at 0 and 63
    sig = {}
    for v in (30e-3, 60e-3):
        e = _first_step_error(bundle, first_step, NoiseModel(comparator=Comparator(offset=0.0, noise=v)),
                              "layers.0.k")[inside]
        sig[v] = math.sqrt(e.var() - 1 / 6)
        assert sig[v] == pytest.approx(v / (1.0 / 64), rel=STD_RTOL)
    assert sig[60e-3] / sig[30e-3] == pytest.approx(2.0, rel=RATIO_RTOL)


def test_reference_level_errors(bundle, first_step):
    """Each code level of Wh carries its own static error; hc follows the perturbed weights exactly."""
    x, ex = first_step
    F = bundle.formats
    for sigma in (2e-3, 4e-3):
        net = Network(bundle, noise=NoiseModel(references=ReferenceLevels(sigma=sigma), seed=1))
        dwh = net.chip.layers[0].dwh
        wh = bundle["layers.0.rnn.wh"].astype(np.int64)
        # one error per code level: equal codes, equal errors
        for code in np.unique(wh)[:5]:
            assert np.unique(dwh[wh == code]).size == 1
        u = ex.trace["layers.0.u"][:, 0]
        f = F.act.frac + F.w_rnn.frac
        acc = u @ wh.T + (bundle["layers.0.rnn.bh"].astype(np.int64) << (f - F.bias.frac))
        want = np.floor((acc + u @ dwh.T) * 2.0 ** (F.h.frac - f) + 0.5).astype(np.int64)
        r = net.run(x, trace=True)
        np.testing.assert_array_equal(r.trace["layers.0.hc"][:, 0], np.clip(want, F.h.min_int, F.h.max_int))
        # the level errors in weight LSB: sigma / (v_fs / 2**bits), linear in sigma
        assert dwh.std() == pytest.approx(sigma / (1.0 / 2 ** 8), rel=0.5)
    d2 = Network(bundle, noise=NoiseModel(references=ReferenceLevels(sigma=2e-3), seed=1)).chip.layers[0].dwh
    d4 = Network(bundle, noise=NoiseModel(references=ReferenceLevels(sigma=4e-3), seed=1)).chip.layers[0].dwh
    np.testing.assert_allclose(d4, 2 * d2)


def test_noise_model_validation():
    with pytest.raises(ValueError, match="Thermal.capacitance must be a number > 0"):
        Thermal(capacitance=0.0)
    with pytest.raises(ValueError, match="Mismatch.scheme"):
        Mismatch(scheme="parallel")
    with pytest.raises(ValueError, match="NoiseModel.thermal must be a Thermal"):
        NoiseModel(thermal=Mismatch())
    with pytest.raises(TypeError, match="sim.noise.NoiseModel"):
        Network(random_bundle(ARCH), noise=Thermal())
    with pytest.raises(ValueError, match="v_fs must be a number > 0"):
        NoiseModel(v_fs=-1.0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        NoiseModel(seed=-3)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        Network(random_bundle(ARCH), noise=NoiseModel()).run(_x(1, 3), seed=1.5)
