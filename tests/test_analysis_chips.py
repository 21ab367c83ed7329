"""analysis.chips: chip yield over static draws (exactness without noise, the distribution, the cache)."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.cache import Cache
from analysis.chips import YieldResult, chip_yield
from analysis.data import EvalData
from analysis.evaluate import evaluate
from sim import NoiseModel
from sim.noise import Mismatch
from spec import Arch, random_bundle

#: A noise-free chip is the contract itself: its accuracy equals the exact one, bit for bit.
EXACT_TOL = 0.0
#: Accuracies are fractions k / n: compared as floats, they agree to rounding.
FLOAT_TOL = 1e-12


@pytest.fixture(scope="module")
def setup():
    b = random_bundle(Arch(d_in=1, n_classes=4, hidden=8, layers=2, taps=2, d_max=3, rnn_out="heaviside"),
                      seed=3, scale=0.5)
    b.tensors["out.b"][:] = 0                         # no class wins by its bias alone
    rng = np.random.default_rng(1)
    x = rng.integers(-30000, 30000, size=(16, 40, 1)).astype(np.int16)
    lengths = rng.integers(20, 41, size=16)
    # labels: the noise-free predictions, so that the exact chip is 100 % and noise can only lose
    y = evaluate(b, x, np.zeros(16, np.int64), lengths)["predictions"]
    return b, EvalData(x, np.asarray(y), lengths, "synthetic", list("abcd"), "test")


def test_noise_free_chips_reach_the_exact_accuracy(setup):
    b, d = setup
    r = chip_yield(b, d, 12, noise=NoiseModel.zero(), cache=Cache(False), workers=1, progress=False)
    assert r.exact == 1.0 and r.n_chips == 12 and r.seeds == tuple(range(12))
    assert np.all(np.abs(r.acc - r.exact) <= EXACT_TOL)              # every chip, not only the mean
    assert r.std == 0.0 and r.p5 == r.exact and r.fraction_at_least(r.exact) == 1.0


def test_distribution_of_a_tiny_bundle(setup):
    b, d = setup
    noise = NoiseModel.default(mismatch=Mismatch(pelgrom=0.3 * np.sqrt(1e-15)))   # 30 % unit-cap mismatch
    r = chip_yield(b, d, 24, noise=noise, first=5, cache=Cache(False), workers=1, progress=False)
    assert r.seeds == tuple(range(5, 29)) and r.acc.shape == (24,)
    k = r.acc * len(d)
    assert np.all(np.abs(k - np.round(k)) <= FLOAT_TOL * len(d))      # fractions of the n examples
    assert np.all((0.0 <= r.acc) & (r.acc <= r.exact))                 # labels = exact predictions
    assert r.std > 0.0 and r.acc.min() < r.acc.max()                    # chips differ
    assert abs(r.mean - np.mean(r.acc)) <= FLOAT_TOL
    # the 5th percentile: at least 95 % of the chips reach it, and no higher accuracy is reached by 95 %
    assert r.fraction_at_least(r.p5) >= 0.95
    assert all(r.fraction_at_least(a) < 0.95 for a in r.acc if a > r.p5)
    assert r.p5 <= r.mean <= r.acc.max()
    # chip s is seed s of analysis.evaluate: reproducible with one call
    s = 7
    one = evaluate(b, d.x, d.y, d.lengths, noise=noise, seed=s)
    assert abs(one["accuracy"] - r.acc[r.seeds.index(s)]) <= FLOAT_TOL
    assert r.steps == int(d.lengths.sum()) and r.chip_examples_per_s() > 0


def test_reached_by_on_a_known_distribution():
    r = YieldResult(acc=np.arange(100) / 100, seeds=tuple(range(100)), exact=1.0, n=100, noise=NoiseModel())
    assert r.p5 == pytest.approx(0.05)                # 0.05 .. 0.99: 95 chips
    assert r.reached_by(1.0) == 0.0 and r.reached_by(0.5) == pytest.approx(0.5)
    assert r.fraction_at_least(r.p5) == pytest.approx(0.95)
    with pytest.raises(ValueError):
        r.reached_by(0.0)


def test_cache_hit_on_rerun(setup, tmp_path):
    b, d = setup
    cache = Cache(tmp_path / "c")
    first = chip_yield(b, d, 6, cache=cache, workers=2, progress=False)        # NoiseModel.default(), the pool
    assert first.cached == 0 and cache.misses == 7                            # 6 chips + the noise-free run
    again = chip_yield(b, d, 6, cache=cache, workers=2, progress=False)
    assert again.cached == 6 and cache.hits == 7
    np.testing.assert_array_equal(again.acc, first.acc)
    assert again.compute_s == pytest.approx(first.compute_s)                  # the time recorded with each chip
    inline = chip_yield(b, d, 6, cache=Cache(False), workers=1, progress=False)
    np.testing.assert_array_equal(inline.acc, first.acc)                      # pool == inline


def test_plot_yield(setup):
    from analysis.plots import plot_yield

    r = YieldResult(acc=np.array([0.5, 0.6, 0.6, 0.7]), seeds=(0, 1, 2, 3), exact=0.75, n=20, noise=NoiseModel())
    fig = plot_yield({"synthetic": r}, {"synthetic": {"float": 0.8}})
    assert len(fig.axes) == 2                          # histogram + ECDF twin axis
