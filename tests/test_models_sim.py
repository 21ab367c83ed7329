"""The hardware-aware model in eval mode computes exactly what sim/ computes (bit for bit)."""
from pathlib import Path

import numpy as np
import pytest
import torch

import sim
from models import MGRADE, bundle_from_model, model_from_bundle
from spec import Arch, Format, Formats, random_bundle

ARCHS = {
    "linear-mlp": Arch(d_in=1, n_classes=5, hidden=12, layers=2, taps=4, d_max=15),
    "linear-glu-din3": Arch(d_in=3, n_classes=4, hidden=8, layers=2, taps=3, d_max=7, mix="glu"),
    "embed-mlp": Arch(d_in=13, n_classes=6, hidden=8, layers=2, taps=4, d_max=20, encoder="embedding"),
    "embed-glu-heaviside": Arch(d_in=9, n_classes=3, hidden=8, layers=1, taps=2, d_max=5, encoder="embedding",
                                mix="glu", rnn_out="heaviside"),
    "minimalist": Arch(d_in=1, n_classes=4, hidden=8, layers=2, taps=0, d_max=0, mix="none", norm="none",
                       skip=False, rnn_out="heaviside", readout="last"),
    "noskip-last-mlp": Arch(d_in=2, n_classes=3, hidden=8, layers=2, taps=3, d_max=31, skip=False, readout="last"),
    "nonorm-skip-none": Arch(d_in=2, n_classes=3, hidden=8, layers=1, taps=5, d_max=12, mix="none", norm="none"),
}

FORMATS = {
    "default": Formats(),
    # other rounding rules and narrow formats, so that saturation and ties happen often
    "narrow": Formats(act=Format(True, 10, 6, "half_even"), h=Format(True, 9, 6, "floor"),
                      dl=Format(True, 8, 5), logit=Format(True, 10, 4), logit_acc=Format(True, 14, 4),
                      bias=Format(True, 10, 6), w_norm=Format(True, 8, 5, "half_even")),
}


def make_inputs(arch, B, T, seed):
    rng = np.random.default_rng(seed)
    if arch.encoder == "linear":
        x = rng.integers(-32768, 32768, (B, T, arch.d_in))
    else:
        x = rng.integers(0, arch.d_in, (B, T))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    return x, lengths


def assert_same(res_sim, res_int, trace=True):
    np.testing.assert_array_equal(res_sim.logits, res_int.logits.numpy())
    np.testing.assert_array_equal(res_sim.step_logits, res_int.step_logits.numpy())
    assert res_sim.saturations == res_int.saturations
    if trace:
        for k, v in res_sim.trace.items():
            if k != "step_logits":
                np.testing.assert_array_equal(v, res_int.trace[k].numpy(), err_msg=k)


@pytest.mark.parametrize("fmt_name", list(FORMATS))
@pytest.mark.parametrize("name", list(ARCHS))
def test_integer_path_equals_sim_on_random_bundles(name, fmt_name):
    arch, fmts = ARCHS[name], FORMATS[fmt_name]
    b = random_bundle(arch, fmts, seed=11, scale=1.5)
    net = sim.Network(b)
    model = model_from_bundle(b)
    for seed, padded in ((0, False), (1, True)):
        x, lengths = make_inputs(arch, B=4, T=50, seed=seed)
        L = lengths if padded else None
        r_sim = net.run(x, lengths=L, trace=True)
        # the same engine on torch tensors (the namespace comes from the input)
        r_int = net.run(torch.as_tensor(x), lengths=None if L is None else torch.as_tensor(L), trace=True)
        assert isinstance(r_int.logits, torch.Tensor)
        assert_same(r_sim, r_int)
        assert set(r_int.saturations) == set(sim.saturation_names(arch))
        # the model's eval-mode forward is this integer path
        r_model = model.run_integer(torch.as_tensor(x), None if L is None else torch.as_tensor(L))
        assert_same(r_sim, r_model, trace=False)
        with torch.no_grad():
            logits, steps = model(torch.as_tensor(x), None if L is None else torch.as_tensor(L), return_steps=True)
        f = 2.0 ** -fmts.logit.frac
        assert torch.equal(steps, torch.as_tensor(r_sim.step_logits).float() * f)
        assert np.array_equal(logits.argmax(-1).numpy(), r_sim.predictions)
    if fmt_name == "narrow":  # the comparison must cover saturation events
        assert sum(r_sim.saturations.values()) > 0


def test_trained_quantised_model_equals_sim():
    """A model after float + QAT steps (not a random bundle), exported, then run in sim/."""
    arch = Arch(d_in=4, n_classes=3, hidden=8, layers=2, taps=3, d_max=10, mix="glu")
    torch.manual_seed(0)
    m = MGRADE(arch)
    x, lengths = make_inputs(arch, B=8, T=30, seed=3)
    x, lengths = torch.as_tensor(x), torch.as_tensor(lengths)
    y = torch.randint(0, 3, (8,))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for phase in ("float", "qat"):
        if phase == "qat":
            m.quantize(train_delays=True)
            opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
        m.train()
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(m(x, lengths), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.clamp_()
    m.eval()
    b = bundle_from_model(m)
    r_sim = sim.Network(b).run(x.numpy(), lengths=lengths.numpy())
    with torch.no_grad():
        logits, steps = m(x, lengths, return_steps=True)
    np.testing.assert_array_equal(r_sim.step_logits, (steps * 2 ** b.formats.logit.frac).round().long().numpy())
    r_int = m.run_integer(x, lengths)
    assert_same(r_sim, r_int, trace=False)


def test_streams_from_data_fixtures_equal_sim():
    """Real streams (the fixtures in data/) for each encoder type: audio, pixels, tokens."""
    from data.tasks import batches, load_split, task_info

    for task, frame, opts in (("gsc12", 16, {"resplit": None}), ("gsc12", 1, {"resplit": None}),
                              ("image", 1, {}), ("pathfinder", 1, {}), ("listops", 1, {}), ("text", 1, {}),
                              ("retrieval", 1, {})):
        split = load_split(task, "fixture", "test", limit=3, options=opts)
        info = task_info(split, frame)
        arch = Arch(d_in=info.d_in, n_classes=info.n_classes, hidden=8, layers=2, taps=4, d_max=31,
                    encoder=info.encoder, mix="glu" if task == "listops" else "mlp")
        b = random_bundle(arch, seed=5)
        x, y, lengths = next(batches(split, 3, b.formats.x, frame))
        T = min(x.shape[1], 400)                   # keep the test fast: the first 400 steps
        x, lengths = x[:, :T], np.minimum(lengths, T)
        r_sim = sim.Network(b).run(x, lengths=lengths)
        r_int = model_from_bundle(b).run_integer(torch.from_numpy(x), torch.from_numpy(lengths))
        assert_same(r_sim, r_int, trace=False)


_BUNDLES = Path(__file__).resolve().parent.parent / "models" / "bundles"
SHIPPED = sorted(_BUNDLES.glob("*.npz")) + sorted(_BUNDLES.glob("codesign/*/*.npz"))   # + the co-design points


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(_BUNDLES).with_suffix("")) for p in SHIPPED])
def test_shipped_bundles_equal_sim_on_their_task(path):
    """Every trained bundle in models/bundles: the quantised model rebuilt from it computes, on real
    fixture examples of its own task, exactly the logits and saturations sim/ computes."""
    from data.tasks import batches, load_split
    from spec.bundle import load_bundle

    b = load_bundle(path)
    task = b.meta["task"]
    opts = {"resplit": None} if task == "gsc12" else {}
    split = load_split(task, "fixture", "test", limit=2, options=opts)
    x, y, lengths = next(batches(split, 2, b.formats.x, b.meta["input"]["frame"]))
    T = min(x.shape[1], 1500)                      # the first 1,500 steps keep the test fast
    x, lengths = x[:, :T], np.minimum(lengths, T)
    r_sim = sim.Network(b).run(x, lengths=lengths)
    x, lengths = torch.from_numpy(x), torch.from_numpy(lengths)
    m = model_from_bundle(b).eval()
    r_int = m.run_integer(x, lengths)
    assert_same(r_sim, r_int, trace=False)
    with torch.no_grad():                          # and the eval-mode forward decides the same class
        logits = m(x, lengths)
    np.testing.assert_array_equal(r_sim.predictions, logits.argmax(-1).numpy())


def test_shipped_bundles_exist():
    assert {p.stem for p in SHIPPED} >= {"asc40", "gsc12", "listops", "asc40_noise", "gsc12_noise", "listops_noise"}
