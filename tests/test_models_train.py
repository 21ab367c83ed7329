"""models.train / models.export: a tiny training run lowers the loss; CLI end to end; resume."""
import json

import numpy as np
import pytest
import torch

from data.tasks import batches, load_split, task_info
from models import MGRADE, model_from_bundle
from models import export as mexport
from models import train as mtrain
from spec import Arch, load_bundle


def test_tiny_training_lowers_the_loss():
    torch.manual_seed(0)
    split = load_split("synth-tokens", split="train", limit=128)
    info = task_info(split)
    arch = Arch(d_in=info.d_in, n_classes=info.n_classes, hidden=16, layers=1, taps=3, d_max=7,
                encoder=info.encoder)
    m = MGRADE(arch)
    opt = mtrain.make_optimizer(m, 1e-2, 0.0, 5.0)
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["lr"] == pytest.approx(5e-2)   # positions
    xb, yb, lb = map(torch.from_numpy, next(batches(split, 128)))

    def loss_now():
        with torch.no_grad():
            m.eval()
            return float(torch.nn.functional.cross_entropy(m(xb, lb), yb))

    first = loss_now()
    for phase in ("float", "qat"):
        if phase == "qat":
            m.quantize()
            opt = mtrain.make_optimizer(m, 2e-3, 0.0, 5.0)
        for epoch in range(12 if phase == "float" else 3):
            m.train()
            for b in batches(split, 32, shuffle=True, rng=np.random.default_rng(epoch)):
                x, y, lengths = map(torch.from_numpy, b)
                loss = torch.nn.functional.cross_entropy(m(x, lengths), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                m.clamp_()
        if phase == "float":
            after_float = loss_now()
    after_qat = loss_now()                                   # eval(): the exact integer path
    assert after_float < 0.8 * first, (first, after_float)
    assert after_qat < 0.8 * first, (first, after_qat)


def test_schedules():
    assert mtrain.lr_at(0.05, 0.1) == pytest.approx(0.5)               # warm-up
    assert mtrain.lr_at(0.1, 0.1) == pytest.approx(1.0)
    assert mtrain.lr_at(0.99, 0.1) < 0.01                                # cosine decay
    assert mtrain.sigma_at_progress(0.0, 8.0, 0.5, 0.5) == pytest.approx(8.0)
    assert mtrain.sigma_at_progress(0.25, 8.0, 0.5, 0.5) == pytest.approx(2.0)
    assert mtrain.sigma_at_progress(0.5, 8.0, 0.5, 0.5) == pytest.approx(0.5)
    assert mtrain.sigma_at_progress(0.99, 8.0, 0.5, 0.5) == pytest.approx(0.5)


def test_cli_train_export_resume(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--task", "synth-audio", "--hidden", "8", "--layers", "1", "--taps", "3", "--d-max", "7",
              "--batch-size", "64", "--lr", "1e-2", "--out", str(out), "--no-progress", "--seed", "1"]
    assert mtrain.main(common + ["--epochs", "2", "--qat-epochs", "0", "--no-sim"]) == 0
    ck1 = torch.load(out / "last.pt", weights_only=False)
    assert ck1["epoch"] == 2 and not ck1["model"]["qat"]
    # resume: two more float epochs and one QAT epoch, then export with sim/
    bundle_path = tmp_path / "b.npz"
    assert mtrain.main(common + ["--epochs", "4", "--qat-epochs", "1", "--resume", "--export", str(bundle_path)]) == 0
    log = capsys.readouterr().out
    assert "resumed from" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    assert [h["phase"] for h in metrics["history"]] == ["float"] * 4 + ["qat"]
    assert metrics["n_test"] == 64 and metrics["data"]["train"]["n"] == 256
    for k in ("float_test_acc", "qat_test_acc"):
        assert 0.0 <= metrics[k] <= 1.0
    b = load_bundle(bundle_path)
    assert b.meta["task"] == "synth-audio" and b.meta["accuracy"]["qat"] == metrics["qat_test_acc"]
    if metrics["sim_test_acc"] is not None:
        assert metrics["sim_test_acc"] == metrics["qat_test_acc"]      # sim/ == the integer path
    # the export CLI on the checkpoint gives the same tensors, and records the sim/ accuracy
    b2_path = tmp_path / "b2.npz"
    assert mexport.main([str(out / "last.pt"), "-o", str(b2_path), "--eval-sim"]) == 0
    b2 = load_bundle(b2_path)
    for k in b.tensors:
        assert np.array_equal(b.tensors[k], b2.tensors[k])
    assert b2.meta["sim_accuracy"]["accuracy"] == metrics["qat_test_acc"]
    assert b2.meta["sim_accuracy"]["n"] == 64 and b2.meta["data"]["test"]["n"] == 64
    assert "git_commit" in b2.meta and b2.meta["formats"]["act"]["bits"] == 16
    # and the bundle imports back into a model that reproduces the accuracy
    m = model_from_bundle(b2)
    split = load_split("synth-audio", split="test", seed=1)
    correct = sum(int((m(torch.from_numpy(x), torch.from_numpy(lengths)).argmax(-1).numpy() == y).sum())
                  for x, y, lengths in batches(split, 64))
    assert correct / len(split) == metrics["qat_test_acc"]


def test_augment_audio_short_clips_and_bounds():
    """Shift and gain keep the shape and dtype, stay in int16, and never run past a short clip's end."""
    from models.train import augment_audio
    gen = torch.Generator().manual_seed(0)
    for T in (1, 7, 64, 16000):
        x = torch.randint(-32768, 32768, (4, T, 1), dtype=torch.int64)
        y = augment_audio(x, gen)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert int(y.min()) >= -32768 and int(y.max()) <= 32767
    x = torch.full((64, 16000, 1), 1000, dtype=torch.int64)
    y = augment_audio(x, gen)
    lead = (y[:, :, 0] == 0).int().argmin(dim=1)        # zero fill before a positive shift
    assert int(lead.max()) <= 1600
