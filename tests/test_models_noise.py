"""Noise-aware training (models.noise): zero magnitudes are the plain hardware-aware forward bit for bit,
the chips and their draws are sim.NoiseModel's, each non-ideality enters where sim/ adds it, and a
noisy training run works end to end."""
import copy
import json

import numpy as np
import pytest
import torch

from models import model_from_bundle
from models import train as mtrain
from models.noise import ChipSampler, draw_chip
from sim import Network, NoiseModel
from sim.noise import STREAM_KINDS, Chip
from spec import Arch, load_bundle, random_bundle

ARCHS = {
    "linear-mlp": Arch(d_in=2, n_classes=5, hidden=8, layers=2, taps=4, d_max=15),
    "heaviside-glu": Arch(d_in=2, n_classes=4, hidden=8, layers=2, taps=3, d_max=9, mix="glu", rnn_out="heaviside"),
    "embed-none-heaviside-last": Arch(d_in=11, n_classes=3, hidden=8, layers=2, taps=0, d_max=0, encoder="embedding",
                                      mix="none", norm="none", skip=False, rnn_out="heaviside", readout="last"),
}

#: dynamic noise moments over N_DRAWS standard normals scaled by sigma: |mean| < MEAN_TOL_SE
#: standard errors (sigma / sqrt(N)), |std / sigma - 1| < STD_RTOL (its standard error is ~0.1 %)
N_DRAWS = 1 << 19
MEAN_TOL_SE = 5.0
STD_RTOL = 0.01
#: noisy torch forward (float64) vs sim's noisy run with the same chip and draws: per-step logits
#: in LSB of formats.logit (the fake-quantised forward's own tolerance, tests/test_models_mgrade.py;
#: measured: 0, every step equal)
MIRROR_STEP_TOL_LSB = 1


def inputs(arch, B=3, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    if arch.encoder == "linear":
        return torch.randint(-20000, 20000, (B, T, arch.d_in), generator=g)
    return torch.randint(0, arch.d_in, (B, T), generator=g)


def model(name, seed=2, dtype=torch.float32):
    b = random_bundle(ARCHS[name], seed=seed, scale=2.0)
    m = model_from_bundle(b, dtype=dtype)
    m.train()                                       # the hardware-aware training forward
    return b, m


def forward_and_grads(m, x):
    m.zero_grad(set_to_none=True)
    logits, steps = m(x, return_steps=True)
    (logits.square().sum() + steps.sum()).backward()
    return steps.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------------------------------------
# (a) zero magnitudes: the plain hardware-aware forward, bit for bit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [NoiseModel.zero(), NoiseModel()], ids=["all-zero", "none-present"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_zero_noise_is_plain_hardware_aware_forward(name, noise):
    _, m = model(name)
    x = inputs(m.arch)
    s0, g0 = forward_and_grads(m, x)
    m.set_noise(noise, seed=3)
    s1, g1 = forward_and_grads(m, x)
    assert m.noise.chips == 1                        # the noisy path ran (one chip drawn)
    assert torch.equal(s0, s1)
    assert g0.keys() == g1.keys() and len(g0) > 5
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k


# ---------------------------------------------------------------------------------------------
# (b) the chips are sim's (realize), the dynamic draws have sim's sigmas
# ---------------------------------------------------------------------------------------------
def _chip_arrays(lc):
    return {k: v for k, v in vars(lc).items() if isinstance(v, np.ndarray)}


def test_chips_are_sims_realize():
    b, m = model("heaviside-glu")
    noise = NoiseModel.default()
    s = ChipSampler(noise, seed=7)
    chips = [draw_chip(m, s, torch.device("cpu"), torch.float64) for _ in range(3)]
    assert s.chips == 3
    seeds = [s.chip_seed(n) for n in range(3)]
    assert len(set(seeds)) == 3 and seeds == [ChipSampler(noise, seed=7).chip_seed(n) for n in range(3)]
    assert ChipSampler(noise, seed=8).chip_seed(0) != seeds[0]
    wfrac = b.formats.w_rnn.frac
    for n, layers in enumerate(chips):
        ref = noise.replace(seed=seeds[n]).realize(b.arch, b.formats, b.tensors)   # what sim/ draws
        for i, ln in enumerate(layers):
            want = _chip_arrays(ref.layers[i])
            assert set(want) == {"z_eff", "leak", "offset", "gate_offset", "heav_offset", "dwz", "dwh"}
            for k, v in want.items():
                np.testing.assert_array_equal(_chip_arrays(ln.chip)[k], v, err_msg=k)
                t = getattr(ln, k).numpy()
                np.testing.assert_array_equal(t, v * 2.0 ** -wfrac if k in ("dwz", "dwh") else v, err_msg=k)
            for k in ("sigma_update", "sigma_candidate", "gate_sigma", "heav_sigma"):
                assert getattr(ln.chip, k) == getattr(ref.layers[i], k) > 0
    # a new chip per batch: the static draws differ
    assert not np.array_equal(chips[0][0].chip.z_eff, chips[1][0].chip.z_eff)
    assert not np.array_equal(chips[0][0].chip.dwz, chips[1][0].chip.dwz)


class RecordingSampler(ChipSampler):
    """Records every dynamic draw (layer, kind, shape) of a forward."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.log = []

    def standard_normal(self, layer, kind, shape, device, dtype):
        self.log.append((layer, kind, tuple(shape)))
        return super().standard_normal(layer, kind, shape, device, dtype)


def test_dynamic_draws_every_kind_in_sims_layout_and_moments():
    _, m = model("heaviside-glu")
    s = RecordingSampler(NoiseModel.default(), seed=1)
    m.set_noise(s)
    x = inputs(m.arch, B=3, T=40)
    m(x)
    H = m.arch.hidden
    assert sorted(s.log) == sorted((i, k, (40, 3, H)) for i in range(m.arch.layers) for k in STREAM_KINDS)
    # moments: sigma x standard normals, as sim's streams (Chip.streams) give them
    chip = draw_chip(m, s, torch.device("cpu"), torch.float64)[0]
    like = torch.zeros(1, N_DRAWS, 1, dtype=torch.float64)
    rng = Chip(s.noise, [chip.chip]).streams(0)
    for kind, sigma in (("gate", chip.chip.gate_sigma), ("candidate", chip.chip.sigma_candidate),
                        ("update", chip.chip.sigma_update), ("heaviside", chip.chip.heav_sigma)):
        for d in (chip._draw(kind, sigma, like).flatten().numpy(),                  # torch
                  sigma * rng[(0, kind)].standard_normal(N_DRAWS)):                  # sim/
            assert abs(d.mean()) < MEAN_TOL_SE * sigma / np.sqrt(N_DRAWS), kind
            assert abs(d.std() / sigma - 1) < STD_RTOL, kind


def test_sampler_state_continues_the_sequence():
    s = ChipSampler(NoiseModel.default(), seed=4)
    arch = ARCHS["linear-mlp"]
    b = random_bundle(arch, seed=1)
    s.next_chip(arch, b.formats, b.tensors)
    s.standard_normal(0, "gate", (5,), torch.device("cpu"), torch.float32)
    st = s.state_dict()
    def after(s):
        return s.next_chip(arch, b.formats, b.tensors).layers[0].z_eff, s.standard_normal(0, "gate", (5,), "cpu",
                                                                                            torch.float32)
    s3 = copy.deepcopy(s)
    a = after(s)
    s2 = ChipSampler(NoiseModel.default(), seed=4)
    s2.load_state_dict(st)
    for c in (after(s2), after(s3)):
        np.testing.assert_array_equal(a[0], c[0])
        assert torch.equal(a[1], c[1])
    with pytest.raises(ValueError, match="differs"):
        ChipSampler(NoiseModel.default(), seed=5).load_state_dict(st)


# ---------------------------------------------------------------------------------------------
# where each non-ideality enters: the torch forward with sim's chip and sim's draws == sim's noisy run
# ---------------------------------------------------------------------------------------------
class SimDraws(ChipSampler):
    """One fixed chip and sim's own dynamic streams (``Chip.streams(seed)``), in sim's layout."""

    def __init__(self, noise, layers, dyn_seed):
        super().__init__(noise, 0)
        self.streams = Chip(noise, [None] * layers).streams(dyn_seed)

    def chip_seed(self, n):
        return self.noise.seed

    def standard_normal(self, layer, kind, shape, device, dtype):
        return torch.as_tensor(self.streams[(layer, kind)].standard_normal(shape), dtype=dtype, device=device)


@pytest.mark.parametrize("name", list(ARCHS))
def test_noisy_forward_mirrors_sim(name):
    b, m = model(name, dtype=torch.float64)
    x = inputs(m.arch, B=4, T=50, seed=1)
    noise = NoiseModel.default(seed=11)
    ref = Network(b, noise=noise).run(x.numpy(), seed=5, chunk=50)          # one chunk: one draw per stream
    m.set_noise(SimDraws(noise, m.arch.layers, 5))
    with torch.no_grad():
        _, steps = m(x, return_steps=True)
    lsb = 2.0 ** -b.formats.logit.frac
    diff = (steps - torch.from_numpy(ref.step_logits).double() * lsb).abs() / lsb
    assert diff.max() <= MIRROR_STEP_TOL_LSB, float(diff.max())
    clean = Network(b).run(x.numpy()).step_logits
    assert not np.array_equal(clean, ref.step_logits)                        # the noise mattered


# ---------------------------------------------------------------------------------------------
# (c) a noisy forward differs, trains with finite gradients; evaluation stays noise-free
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ARCHS))
def test_noisy_training_step(name):
    b, m = model(name)
    x = inputs(m.arch)
    y = torch.arange(x.shape[0]) % m.arch.n_classes
    s0, g0 = forward_and_grads(m, x)
    m.set_noise(NoiseModel.default(), seed=0)
    s1, g1 = forward_and_grads(m, x)
    s2, _ = forward_and_grads(m, x)
    assert not torch.equal(s0, s1) and not torch.equal(s1, s2)                # another chip, other draws
    assert all(torch.isfinite(g).all() for g in g1.values())
    assert any(not torch.equal(g0[k], g1[k]) for k in g0)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in m.parameters())
    # eval: the integer path and the fake-quantised float path are noise-free
    m.eval()
    n = m.noise.chips
    with torch.no_grad():
        res = m.run_integer(x)
        assert torch.equal(m(x, return_steps=True)[1], res.step_logits.float() * 2.0 ** -m.formats.logit.frac)
        m.set_noise(None)
        clean = m(x, path="float")
        m.set_noise(NoiseModel.default())
        assert torch.equal(m(x, path="float"), clean) and m.noise.chips == 0 and n == 3


# ---------------------------------------------------------------------------------------------
# (d) the CLI: a tiny noise-aware run on synth-audio, end to end
# ---------------------------------------------------------------------------------------------
def test_cli_noise_aware_training(tmp_path):
    out, bundle_path = tmp_path / "run", tmp_path / "b.npz"
    args = ["--task", "synth-audio", "--hidden", "8", "--layers", "1", "--taps", "3", "--d-max", "7",
            "--batch-size", "64", "--lr", "1e-2", "--out", str(out), "--no-progress", "--seed", "1",
            "--epochs", "1", "--noise", "default", "--noise-seed", "9", "--no-sim"]
    assert mtrain.main(args + ["--qat-epochs", "1"]) == 0
    assert torch.load(out / "last.pt", weights_only=False)["rng"]["noise"]["chips"] == 256 // 64   # one per batch
    # resume: the chip sequence goes on; then export with sim/
    args = args[:-1] + ["--qat-epochs", "2", "--resume", "--export", str(bundle_path)]
    assert mtrain.main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    b = load_bundle(bundle_path)
    assert b.meta["noise"] == metrics["noise"] == NoiseModel.default().to_json()
    assert b.meta["noise_seed"] == metrics["noise_seed"] == 9
    assert NoiseModel.from_json(b.meta["noise"]) == NoiseModel.default()
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["rng"]["noise"]["chips"] == 2 * 256 // 64
    assert np.isfinite(metrics["history"][-1]["train_loss"])
    # evaluated without noise, the exported bundle is sim/ bit for bit
    assert metrics["sim_test_acc"] == metrics["qat_test_acc"]
    m = model_from_bundle(b)
    x = torch.randint(-3000, 3000, (2, 30, 1))
    assert torch.equal(m.run_integer(x).step_logits, torch.from_numpy(Network(b).run(x.numpy()).step_logits))
    # noise-aware fine-tuning of a bundle: --init BUNDLE.npz --epochs 0
    out2, b2_path = tmp_path / "ft", tmp_path / "ft.npz"
    ft = args[:args.index("--out")] + ["--out", str(out2), "--no-progress", "--seed", "2", "--noise", "default",
                                        "--init", str(bundle_path), "--qat-epochs", "1", "--export", str(b2_path)]
    with pytest.raises(SystemExit, match="--epochs 0"):
        mtrain.main(ft + ["--epochs", "1"])
    with pytest.raises(SystemExit, match="arch differs"):
        mtrain.main(ft + ["--epochs", "0", "--hidden", "6"])
    assert mtrain.main(ft + ["--epochs", "0"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert [h["phase"] for h in m2["history"]] == ["qat"] and m2["sim_test_acc"] == m2["qat_test_acc"]
    b2 = load_bundle(b2_path)
    assert b2.meta["noise_seed"] == 2 and b2.arch == b.arch
    assert any(not np.array_equal(b.tensors[k], b2.tensors[k]) for k in b.tensors)      # it trained


def test_cli_noise_arguments(tmp_path, capsys):
    f = tmp_path / "n.json"
    f.write_text(json.dumps(NoiseModel.zero().to_json()))
    base = ["--task", "synth-audio", "--out", str(tmp_path)]
    assert mtrain.parse_args(base + ["--noise", str(f)]).noise == str(f)
    with pytest.raises(SystemExit):
        mtrain.parse_args(base + ["--noise", "loud"])
    f.write_text(json.dumps({"thermal": {"kelvin": 3}}))
    with pytest.raises(SystemExit):
        mtrain.parse_args(base + ["--noise", str(f)])
    assert "unknown Thermal field" in capsys.readouterr().err
