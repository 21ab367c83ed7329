"""analysis.sweeps: read-offs on synthetic curves, determinism by seed, pool == inline, sweep grids."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.cache import Cache
from analysis.data import EvalData
from analysis.evaluate import batch_seed, evaluate
from analysis.sweeps import SWEEPS, Task, leak_r_off, pick_points, run_sweeps, run_tasks, smallest_within
from sim import Network, NoiseModel
from spec import Arch, random_bundle


# ---------------------------------------------------------------------------------------------
# read-off on synthetic curves
# ---------------------------------------------------------------------------------------------
def test_smallest_capacitor_on_synthetic_curve():
    # accuracy = 0.90 - 0.02 * max(0, log10(1e-13 / C)): exactly 1 point below at C = 10**-13.5
    C = np.array([1e-16, 1e-15, 1e-14, 3e-14, 1e-13, 1e-12])
    acc = 0.90 - 0.02 * np.maximum(0.0, np.log10(1e-13 / C))
    r = smallest_within(C, acc, ref=0.90, tol=0.01, better="high", log=True)
    assert r.status == "ok"
    assert r.x_grid == 1e-13                           # 3e-14 is 1.05 points below
    assert r.x_interp == pytest.approx(10 ** -13.5, rel=1e-9)   # the curve is linear in log C there
    # order of the grid does not matter
    p = np.random.default_rng(0).permutation(len(C))
    r2 = smallest_within(C[p], acc[p], 0.90)
    assert (r2.x_grid, r2.x_interp) == (r.x_grid, r.x_interp)


def test_readoff_stops_at_first_failure_from_the_clean_end():
    C = np.array([1e-15, 1e-14, 1e-13, 1e-12])
    acc = np.array([0.90, 0.90, 0.85, 0.90])           # a dip at 1e-13: smaller C do not count
    r = smallest_within(C, acc, ref=0.90)
    assert r.x_grid == 1e-12 and r.status == "ok"
    # linear interpolation in log C between 1e-12 (0.90) and 1e-13 (0.85): 0.89 at 1/5 of the way
    assert r.x_interp == pytest.approx(10 ** (-12 - 0.2))
    # linear x
    r = smallest_within(C, acc, ref=0.90, log=False)
    assert r.x_interp == pytest.approx(1e-12 + 0.2 * (1e-13 - 1e-12))


def test_readoff_edge_cases():
    C = np.array([1e-15, 1e-14])
    assert smallest_within(C, [0.9, 0.9], 0.9).status == "all_pass"
    assert smallest_within(C, [0.9, 0.9], 0.9).x_grid == 1e-15
    r = smallest_within(C, [0.5, 0.7], 0.9)
    assert r.status == "none_pass" and r.x_grid is None
    # exactly at the threshold passes
    assert smallest_within(C, [0.89, 0.90], 0.90, tol=0.01).status == "all_pass"
    # 'low': noise magnitudes, the largest x within tolerance
    s = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    r = smallest_within(s, [0.9, 0.895, 0.85, 0.2], 0.9, better="low")
    assert r.x_grid == 1e-3 and 1e-3 < r.x_interp < 1e-2
    with pytest.raises(ValueError):
        smallest_within(s, [0.9], 0.9)


def test_pick_points():
    v = list(range(8))
    assert pick_points(v, None) == v and pick_points(v, 20) == v
    assert pick_points(v, 3) == [0, 4, 7] or pick_points(v, 3) == [0, 3, 7]
    assert pick_points(v, 2) == [0, 7]
    assert len(pick_points(v, 5)) == 5


def test_sweep_builders_set_the_physical_quantity():
    nm = SWEEPS["thermal"].noise(2e-15)
    assert nm.thermal.capacitance == 2e-15 and nm.mismatch is None
    assert SWEEPS["mismatch"].noise(0.02).mismatch.unit_sigma() == pytest.approx(0.02)
    lk = SWEEPS["leakage"].noise(1e-3).leakage
    assert 1 - lk.decay() == pytest.approx(1e-3, rel=1e-9)
    assert leak_r_off(0.5, 1e-13, 1e-4) == pytest.approx(1e-4 / (1e-13 * math.log(2)))
    assert SWEEPS["injection"].noise(1e-17).injection.charge == 1e-17
    c = SWEEPS["comparator"].noise(5e-3).comparator
    assert (c.offset, c.noise) == (5e-3, 0.0)
    assert SWEEPS["references"].noise(1e-3).references.sigma == 1e-3
    for sw in SWEEPS.values():                       # grids are sorted and positive (log axes)
        assert list(sw.values) == sorted(sw.values) and min(sw.values) > 0


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup():
    b = random_bundle(Arch(d_in=1, n_classes=4, hidden=8, layers=2, taps=2, d_max=3), seed=3, scale=0.5)
    b.tensors["out.b"][:] = 0                         # no class wins by its bias alone
    rng = np.random.default_rng(1)
    x = rng.integers(-30000, 30000, size=(12, 48, 1)).astype(np.int16)
    lengths = rng.integers(20, 49, size=12)
    d = EvalData(x, rng.integers(0, 4, 12), lengths, "synthetic", list("abcd"), "test")
    return b, d


def test_exact_evaluate_matches_network(setup):
    b, d = setup
    r = evaluate(b, d.x, d.y, d.lengths, batch=5)
    net = Network(b)
    for i in range(len(d)):
        L = int(d.lengths[i])
        p = net.run(d.x[i:i + 1, :L].astype(np.int64)).predictions[0]
        assert r["predictions"][i] == p
    assert r["correct"] == sum(int(p == y) for p, y in zip(r["predictions"], d.y, strict=True))


def test_sweep_results_deterministic_by_seed(setup):
    b, d = setup
    sw = [SWEEPS["thermal"].with_points(2), SWEEPS["comparator"].with_points(2)]
    a = run_sweeps(b, d, sw, seeds=(0, 1, 2), batch=5, cache=Cache(False), workers=1, progress=False)
    c = run_sweeps(b, d, sw, seeds=(0, 1, 2), batch=5, cache=Cache(False), workers=1, progress=False)
    for k in a:
        np.testing.assert_array_equal(a[k].acc, c[k].acc)
        assert a[k].acc.shape == (2, 3)
    # the seed matters: strong kT/C noise gives different predictions for different seeds
    nm = SWEEPS["thermal"].noise(1e-17)
    p = [evaluate(b, d.x, d.y, d.lengths, noise=nm, seed=s, batch=5)["predictions"] for s in (0, 1, 2)]
    assert p[0] == evaluate(b, d.x, d.y, d.lengths, noise=nm, seed=0, batch=5)["predictions"]
    assert p[0] != p[1] and p[1] != p[2]
    assert len({batch_seed(0, i) for i in range(50)} | {batch_seed(1, i) for i in range(50)}) == 100


def test_pool_equals_inline(setup, tmp_path):
    b, d = setup
    tasks = [Task(b, SWEEPS["thermal"].noise(x), s) for x in (1e-17, 1e-15) for s in (0, 1)] + [Task(b)]
    inline = run_tasks(tasks, d, batch=5, cache=Cache(False), workers=1, progress=False)
    pooled = run_tasks(tasks, d, batch=5, cache=Cache(tmp_path), workers=2, progress=False)
    assert [r["predictions"] for r in inline] == [r["predictions"] for r in pooled]
    assert len(list(tmp_path.rglob("*.json"))) == 5


def test_zero_noise_sweep_equals_exact(setup):
    b, d = setup
    exact = evaluate(b, d.x, d.y, d.lengths, batch=5)
    z = evaluate(b, d.x, d.y, d.lengths, noise=NoiseModel.zero(), seed=3, batch=5)
    assert z["predictions"] == exact["predictions"]


# ---------------------------------------------------------------------------------------------
# the default noise model
# ---------------------------------------------------------------------------------------------
def test_default_models_isolate_each_effect():
    from analysis.sweeps import EFFECTS, default_models
    m = default_models()
    assert list(m) == ["all", *EFFECTS]
    assert m["all"] == NoiseModel.default()
    for e in EFFECTS:
        present = [f for f in EFFECTS if getattr(m[e], f) is not None]
        assert present == [e] and getattr(m[e], e) == getattr(NoiseModel.default(), e)


def test_run_default_matches_direct_evaluation(setup):
    from analysis.sweeps import run_default
    b, d = setup
    r = run_default(b, d, seeds=(0, 1), batch=5, cache=Cache(False), workers=1, progress=False)
    assert r.acc.shape == (7, 2) and r.configs[0] == "all" and r.n == len(d)
    assert r.exact == evaluate(b, d.x, d.y, d.lengths, batch=5)["accuracy"]
    for j, s in enumerate((0, 1)):
        want = evaluate(b, d.x, d.y, d.lengths, noise=NoiseModel.default(), seed=s, batch=5)["accuracy"]
        assert r.get("all")[j] == want
    assert r.magnitudes["thermal"]["thermal_update_sigma"] > 0 and "leak_per_step" not in r.magnitudes["thermal"]
    assert "every effect at its default" in r.table()


def test_farads_labels():
    from analysis.plots import farads
    assert [farads(c) for c in (2.28e-10, 1.48e-13, 1e-6, 3e-9, 3e-16)] == \
        ["228 pF", "148 fF", "1 uF", "3 nF", "0.3 fF"]
