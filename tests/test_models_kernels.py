"""models.kernels: the fallback paths equal the references; the autograd wrapper of the fused
recurrence (run here on a PyTorch stand-in for the Triton module); the Triton kernels on CUDA only;
a smoke run of benchmarks.bench_train on the CPU."""
import json
import types

import numpy as np
import pytest
import torch

from models import kernels
from models.scan import linear_scan_sequential
from sim.mingru import state_sequence, state_update
from spec import Format
from spec.fixedpoint import Rounding

#: fallback (chunked Hillis-Steele scan) vs step-by-step recurrence, float64
TOL = 1e-10

CUDA = torch.cuda.is_available() and kernels.triton_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="Triton kernels need CUDA and triton (CPU runs the fallbacks)")


def _abh(B, T, H, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(B, T, H, generator=g, dtype=dtype)
    a[:, T // 4] = 0.0                                       # hard-sigmoid gates reach exactly 0 and 1
    a[:, T // 3] = 1.0
    b = torch.randn(B, T, H, generator=g, dtype=dtype)
    h0 = torch.randn(B, H, generator=g, dtype=dtype)
    return a.to(device), b.to(device), h0.to(device)


def _grads(fn, a, b, h0, w):
    leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
    h = fn(*leaves)
    # unused leaves (h0 = None; a when T = 1 and h0 = 0) have zero gradients
    return (h.detach(),) + torch.autograd.grad((h * w).sum(), leaves, allow_unused=True, materialize_grads=True)


def _assert_matches_sequential(a, b, h0):
    """kernels.linear_recurrence == linear_scan_sequential, forward and every gradient, with and
    without an initial state."""
    w = torch.randn_like(b)
    for init in (None, h0):
        def fn(a_, b_, h_, with_h0=init is not None):      # bound now, not at call time
            return kernels.linear_recurrence(a_, b_, h_ if with_h0 else None)

        def ref(a_, b_, h_, with_h0=init is not None):
            return linear_scan_sequential(a_, b_, h_ if with_h0 else None)

        for x, y in zip(_grads(fn, a, b, h0, w), _grads(ref, a, b, h0, w), strict=True):
            assert torch.allclose(x, y, atol=TOL, rtol=0)


# --- linear_recurrence: fallback -----------------------------------------------------------
@pytest.mark.parametrize("T", [1, 7, 64, 300])
def test_linear_recurrence_fallback_matches_sequential(T):
    _assert_matches_sequential(*_abh(2, T, 5))


def test_linear_recurrence_fallback_gradcheck():
    a, b, h0 = (t.requires_grad_() for t in _abh(2, 9, 3))
    assert torch.autograd.gradcheck(kernels.linear_recurrence, (a, b, h0))


# --- linear_recurrence: the autograd Function on a PyTorch stand-in of the Triton module -----
def _standin():
    """Sequential PyTorch implementations of the Triton module's contract (forward, and the
    backward's reverse recurrence), so that the Function's wiring is tested without a GPU."""
    def fwd(a, b, h0, block=None):
        return linear_scan_sequential(a, b, h0)

    def bwd(a, h, h0, gh, block=None):
        T = a.shape[1]
        g, ga, gb = torch.zeros_like(gh[:, 0]), torch.empty_like(a), torch.empty_like(a)
        for t in reversed(range(T)):
            g = gh[:, t] + (a[:, t + 1] * g if t + 1 < T else 0.0)
            gb[:, t] = g
            prev = h[:, t - 1] if t else (h0 if h0 is not None else torch.zeros_like(g))
            ga[:, t] = g * prev
        return ga, gb, (a[:, 0] * g if h0 is not None else None)
    return types.SimpleNamespace(recurrence_fwd=fwd, recurrence_bwd=bwd)


@pytest.fixture
def fused_on_cpu(monkeypatch):
    monkeypatch.setattr(kernels, "_tk", _standin)
    monkeypatch.setattr(kernels, "_on_gpu", lambda *xs: kernels.fused_enabled())


def test_linear_recurrence_function_backward(fused_on_cpu):
    _assert_matches_sequential(*_abh(3, 50, 4))
    tiny = tuple(t.requires_grad_() for t in _abh(2, 6, 3, seed=1))
    assert torch.autograd.gradcheck(kernels.linear_recurrence, tiny)


def test_linear_recurrence_function_promotes_and_broadcasts(fused_on_cpu):
    a, b, _ = _abh(2, 10, 3)
    h = kernels.linear_recurrence(a.float(), b)                      # float32 a, float64 b
    assert h.dtype == torch.float64
    assert torch.allclose(h, linear_scan_sequential(a.float().double(), b), atol=TOL, rtol=0)
    with kernels.use_fused(False):
        assert not kernels.fused_enabled()
    assert kernels.fused_enabled()


# --- sc_state_sequence: fallback ---------------------------------------------------------
def _codes(B, T, H, b_z, fmt, seed=0):
    """k in [0, 2**b_z), hc in twice h's range (h saturates), h0 in range; int64."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 1 << b_z, (B, T, H), generator=g)
    k[:, T // 3: T // 2] = (1 << b_z) - 1
    hc = torch.randint(2 * fmt.min_int, 2 * fmt.max_int + 1, (B, T, H), generator=g)
    h0 = torch.randint(fmt.min_int, fmt.max_int + 1, (B, H), generator=g)
    return k, hc, h0


def _loop(k, hc, h0, b_z, fmt):
    """state_update step by step on NumPy, (B, T, H): the README row itself."""
    k, hc, h = k.numpy(), hc.numpy(), h0.numpy()
    out, sat = np.empty_like(hc), 0
    for t in range(hc.shape[1]):
        h, unsat = state_update(h, k[:, t], hc[:, t], b_z=b_z, fmt_h=fmt)
        out[:, t], sat = h, sat + int((h != unsat).sum())
    return torch.from_numpy(out), sat


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("bits,frac,b_z", [(16, 10, 6), (8, 4, 3), (40, 20, 12)])
def test_sc_state_sequence_fallback_matches_state_update(rounding, bits, frac, b_z):
    fmt = Format(True, bits, frac, rounding)
    k, hc, h0 = _codes(2, 120, 5, b_z, fmt)
    for init in (None, h0):
        start = torch.zeros_like(h0) if init is None else h0
        want, sat = _loop(k, hc, start, b_z, fmt)
        assert sat > 0                                        # saturation is exercised
        got = kernels.sc_state_sequence(k, hc, b_z, fmt, h0=init)
        assert got.dtype == torch.int64 and torch.equal(got, want)


@pytest.mark.parametrize("rounding", list(Rounding))
def test_sc_int32_width_is_exact_at_the_bounds(rounding):
    """The int32 kernel's claim (b_z + bits + 2 <= 31 with k < 2**b_z, |hc| within twice h's
    range): state_sequence in int32 equals int64 at the extreme codes, the widest such format."""
    b_z, bits = 13, 16
    fmt = Format(True, bits, 10, rounding)
    assert kernels._int32_ok(b_z, fmt) and not kernels._int32_ok(b_z + 1, fmt)
    k, hc, h0 = _codes(2, 200, 6, b_z, fmt, seed=3)
    hc[:, ::2] = torch.where(hc[:, ::2] > 0, 2 * fmt.max_int, 2 * fmt.min_int)   # the extremes
    assert kernels._codes_fit(k, hc, h0, b_z, fmt)
    ref = state_sequence(h0, k.movedim(1, 0), hc.movedim(1, 0), b_z=b_z, fmt_h=fmt)
    narrow = state_sequence(h0.int(), k.int().movedim(1, 0), hc.int().movedim(1, 0), b_z=b_z, fmt_h=fmt)
    assert torch.equal(narrow.long(), ref)
    assert not kernels._codes_fit(k, hc + 2 * fmt.max_int, h0, b_z, fmt)


# --- Triton kernels (CUDA only) ---------------------------------------------------------------
@needs_cuda
def test_triton_linear_recurrence_matches_reference():
    from benchmarks.bench_train import FP32_REL_TOL, check_linear_recurrence
    r = check_linear_recurrence(torch.device("cuda"))
    assert r["gradcheck_fp64"] and r["max_rel_err"] < FP32_REL_TOL, r


@needs_cuda
def test_triton_linear_recurrence_bf16_and_old_path():
    a, b, h0 = _abh(2, 300, 33, dtype=torch.float32, device="cuda")
    ref = linear_scan_sequential(a.double(), b.double(), h0.double())
    h = kernels.linear_recurrence(a.bfloat16(), b.bfloat16(), h0.bfloat16())
    assert h.dtype == torch.bfloat16 and float((h.double() - ref).abs().max() / ref.abs().max()) < 0.05
    with kernels.use_fused(False):                           # the OLD path: the Hillis-Steele scan
        old = kernels.linear_recurrence(a, b, h0)
    assert torch.allclose(old.double(), ref, atol=1e-4, rtol=0)


@needs_cuda
def test_triton_sc_state_sequence_bit_exact():
    from benchmarks.bench_train import check_sc_state_sequence
    r = check_sc_state_sequence(torch.device("cuda"))
    assert r["ok"], r


@needs_cuda
def test_triton_sc_state_sequence_noisy_bit_exact():
    from benchmarks.bench_train import check_sc_state_sequence_noisy
    r = check_sc_state_sequence_noisy(torch.device("cuda"))
    assert r["ok"], r


def test_sc_state_sequence_noisy_fallback_is_sims_loop():
    """Off CUDA the noisy sequence is sim.mingru.state_sequence_sc itself; the check's own cases
    (every non-ideality, every rounding, saturation) hold on the CPU."""
    from benchmarks.bench_train import check_sc_state_sequence_noisy
    r = check_sc_state_sequence_noisy(torch.device("cpu"), B=2, T=200, H=8)
    assert r["ok"], r


# --- benchmark smoke (CPU, tiny) ---------------------------------------------------------
def test_bench_train_smoke_cpu(tmp_path):
    from benchmarks import bench_train
    from data.listops import VOCAB
    assert bench_train.LISTOPS_VOCAB == len(VOCAB)
    out = tmp_path / "bench.json"
    res = bench_train.main(["--device", "cpu", "--steps", "200", "--batch", "2", "--hidden", "16", "--repeat", "1",
                            "--warmup", "0", "--check", "--out", str(out)])
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == len(res["runs"]) == 8 and all("error" not in r and r["steps_per_s"] > 0 for r in runs), runs
    assert {(r["phase"], r["path"]) for r in runs} == {(p, q) for p in ("float", "hw") for q in ("old", "new")}
