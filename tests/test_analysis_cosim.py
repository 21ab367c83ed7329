"""analysis.cosim: the streaming and whole-sequence traces agree bit for bit; compare finds planted
differences; the RTL hook either runs bit-exact or says why it cannot."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import cosim
from spec import Arch, random_bundle


@pytest.fixture(scope="module")
def bundle():
    return random_bundle(Arch(d_in=1, n_classes=5, hidden=8, layers=2, taps=3, d_max=7), seed=5)


def test_step_and_run_agree(bundle):
    x = np.random.default_rng(0).integers(-30000, 30000, size=(120, 1))
    a, b = cosim.sim_stream(bundle, x), cosim.sim_whole(bundle, x)
    cmp = cosim.compare(a, b)
    assert set(cmp) == {"step_logits", "acc", "h[0]", "h[1]", "logits"}
    assert all(v["equal"] and v["mismatches"] == 0 for v in cmp.values())
    assert a["step_logits"].shape == (120, 5) and a["h"][1].shape == (120, 8)
    np.testing.assert_array_equal(a["acc"][-1], a["logits"])
    np.testing.assert_array_equal(a["acc"], np.cumsum(a["step_logits"], axis=0))


def test_compare_reports_planted_mismatch(bundle):
    x = np.random.default_rng(1).integers(-30000, 30000, size=(50, 1))
    a = cosim.sim_whole(bundle, x)
    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    b["h"] = {i: h.copy() for i, h in a["h"].items()}
    b["h"][1][17, 3] += 1
    b["h"][1][30, 0] -= 1
    c = cosim.compare(a, b)
    assert c["h[1]"] == {"equal": False, "mismatches": 2, "first_step": 17, "entries": 400}
    assert c["h[0]"]["equal"] and c["step_logits"]["equal"]


def test_running_acc_saturates_like_the_contract(bundle):
    fmt = bundle.formats.logit_acc
    sl = np.zeros((4, 5), np.int64)
    sl[:, 0] = fmt.max_int // 2 + 1                      # overflows at the second step
    sl[:, 1] = [5, -3, 2, 1]
    acc = cosim.running_acc(sl, bundle)
    assert acc[:, 0].tolist() == [fmt.max_int // 2 + 1] + [fmt.max_int] * 3
    assert acc[:, 1].tolist() == [5, 2, 4, 5]


@pytest.mark.rtl
def test_rtl_hook_bit_exact_or_unavailable(bundle):
    x = np.random.default_rng(2).integers(-30000, 30000, size=(40, 1))
    try:
        r = cosim.rtl_trace(bundle, x)
    except cosim.RTLUnavailable as e:
        pytest.skip(f"RTL not available: {str(e)[:200]}")
    c = cosim.compare(cosim.sim_whole(bundle, x), r)
    assert c and all(v["equal"] for v in c.values()), c


class _FakeHarness:
    """Stands in for testbenches.cosim.run_harness: fixed RTL-side numbers, trace build optional."""

    def __init__(self, T, C, H, L, trace_ok=True, fail=False):
        rng = np.random.default_rng(7)
        self.logits = rng.integers(-100, 100, size=(T, C))
        self.acc = np.cumsum(self.logits, axis=0)
        self.h = {f"layers.{i}.h": rng.integers(-500, 500, size=(T, H)) for i in range(L)}
        self.trace_ok, self.fail, self.calls = trace_ok, fail, []

    def __call__(self, bundle, xs, *, trace_steps=None, log=print, **kw):
        self.calls.append(trace_steps)
        if self.fail:
            raise RuntimeError("verilator build failed: no compiler")
        if trace_steps is not None and not self.trace_ok:
            raise RuntimeError("verilator build failed: trace port clash")
        out = {"cycles": 123 * len(xs[0]), "wall": 0.1, "outputs": {"logits": self.logits, "acc": self.acc}}
        if trace_steps is not None:
            out["trace"] = self.h
        return out


@pytest.mark.parametrize("trace_ok", [True, False])
def test_rtl_trace_returns_the_harness_numbers(bundle, monkeypatch, trace_ok):
    import testbenches.cosim as tc
    x = np.zeros((30, 1), np.int64)
    fake = _FakeHarness(30, 5, 8, 2, trace_ok=trace_ok)
    monkeypatch.setattr(tc, "run_harness", fake)
    r = cosim.rtl_trace(bundle, x)
    np.testing.assert_array_equal(r["step_logits"], fake.logits)
    np.testing.assert_array_equal(r["acc"], fake.acc)
    np.testing.assert_array_equal(r["logits"], fake.acc[-1])
    assert r["cycles"] == 123 * 30 and r["path"] == "RTL (Verilator)"
    if trace_ok:
        assert fake.calls == [(0, 30)] and "h_unavailable" not in r
        np.testing.assert_array_equal(r["h"][1], fake.h["layers.1.h"])
    else:                                   # retried without the trace port; h is not made up
        assert fake.calls == [(0, 30), None] and "h" not in r
        assert "trace port clash" in r["h_unavailable"]
        assert set(cosim.compare(cosim.sim_whole(bundle, x), r)) == {"step_logits", "acc", "logits"}


def test_rtl_trace_unavailable_names_the_reason(bundle, monkeypatch):
    import testbenches.cosim as tc
    monkeypatch.setattr(tc, "run_harness", _FakeHarness(10, 5, 8, 2, fail=True))
    with pytest.raises(cosim.RTLUnavailable, match="no compiler"):
        cosim.rtl_trace(bundle, np.zeros((10, 1), np.int64))
