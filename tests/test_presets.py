"""Formats presets (spec/presets.py): validation, bundle round trip, bit-exact runs, ``models.train --formats``."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import sim
from models import train as mtrain
from spec import PRESETS, Arch, ArchError, Format, Formats, load_bundle, minimalist_arch, random_bundle, save_bundle
from spec.presets import MINIMALIST_FORMATS, Preset, resolve


def test_presets_are_what_the_issue_names():
    assert PRESETS["mgrade-hw"].formats == Formats() and PRESETS["mgrade-hw"].arch == {}
    m = PRESETS["minimalist"]
    assert m.formats.w_rnn.bits == 2 and m.formats.bias.bits == 6                   # 2-bit weights, 6-bit biases
    assert m.arch["gate_bits"] == 6 and m.arch["rnn_out"] == "heaviside"           # 6-bit hard sigmoid, Heaviside
    assert m.arch["skip"] is False and m.arch["mix"] == "none"                     # no skips, no channel mixing
    assert minimalist_arch(3, 5, hidden=16, layers=3) == (m.arch_for(3, 5, hidden=16, layers=3), MINIMALIST_FORMATS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_validate_like_every_format(name):
    p = PRESETS[name]
    arch = p.arch_for(d_in=2, n_classes=3, hidden=8, layers=2)
    p.check(arch)
    # a bias finer than an accumulator cannot align by a left shift: check_formats refuses it
    bad = dataclasses.replace(p, formats=p.formats.replace(bias=Format(True, 6, 30)))
    with pytest.raises(ArchError, match="bias"):
        bad.check(arch)


def test_conflicting_explicit_setting_is_refused():
    m = PRESETS["minimalist"]
    base = Arch(d_in=1, n_classes=4)
    assert m.apply(base).mix == "none"                      # defaults are overridden...
    with pytest.raises(ArchError, match="mix='mlp'"):       # ...an explicit choice is not
        m.apply(base, explicit={"mix": "mlp", "hidden": 64})
    with pytest.raises(ArchError, match="does not follow"):
        m.check(base)
    with pytest.raises(ArchError, match="task"):
        Preset("x", Formats(), {"d_in": 3})


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_bundles_and_files(tmp_path, name):
    p = PRESETS[name]
    b = random_bundle(p.arch_for(1, 4, hidden=8, layers=2), p.formats, seed=2, meta={"formats_preset": name})
    c = load_bundle(save_bundle(b, tmp_path / "b.npz"))
    assert c.formats == p.formats and c.meta["formats_preset"] == name
    p.check(c.arch)
    for k in b.tensors:
        np.testing.assert_array_equal(c.tensors[k], b.tensors[k])
    # a bundle header's "formats" object is a formats file; a preset's to_json() is one with arch constraints
    (tmp_path / "f.json").write_text(json.dumps(c.formats.to_json()))
    assert resolve(tmp_path / "f.json").formats == p.formats
    (tmp_path / "p.json").write_text(json.dumps(p.to_json()))
    q = resolve(tmp_path / "p.json")
    assert (q.name, q.formats, q.arch) == (p.name, p.formats, p.arch)


def test_bad_formats_files(tmp_path):
    with pytest.raises(ArchError, match="neither a preset"):
        resolve(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("[1]")
    with pytest.raises(ArchError, match="JSON object"):
        resolve(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"formats": Formats().to_json(), "arch": {"mix": "nope"}}))
    with pytest.raises(ArchError):
        resolve(tmp_path / "b.json").arch_for(1, 2)


def test_minimalist_bundle_is_bit_exact_numpy_vs_torch():
    p = PRESETS["minimalist"]
    b = random_bundle(p.arch_for(1, 4, hidden=8, layers=2), p.formats, seed=5, scale=1.5)
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32768, (6, 40, 1))
    lengths = rng.integers(1, 41, 6)
    net = sim.Network(b)
    r_np = net.run(x, lengths=lengths, trace=True)
    r_t = net.run(torch.from_numpy(x), lengths=torch.from_numpy(lengths), trace=True)
    np.testing.assert_array_equal(r_np.logits, r_t.logits.numpy())
    for k, v in r_np.trace.items():
        np.testing.assert_array_equal(v, r_t.trace[k].numpy(), err_msg=k)
    assert r_np.saturations == r_t.saturations
    assert set(np.unique(r_np.trace["layers.0.o"])) <= {0, 1 << b.formats.act.frac}   # Heaviside outputs


def test_train_cli_with_minimalist_formats(tmp_path):
    out, bundle = tmp_path / "run", tmp_path / "m.npz"
    argv = ["--task", "synth-audio", "--formats", "minimalist", "--hidden", "8", "--layers", "1", "--epochs", "1",
            "--qat-epochs", "1", "--batch-size", "128", "--limit", "128", "--eval-limit", "32", "--val-split", "",
            "--out", str(out), "--export", str(bundle), "--no-progress", "--threads", "1"]
    assert mtrain.main(argv) == 0
    b = load_bundle(bundle)
    p = PRESETS["minimalist"]
    assert b.formats == p.formats and b.meta["formats_preset"] == "minimalist"
    p.check(b.arch)
    assert (b.arch.hidden, b.arch.layers) == (8, 1)
    assert b.meta["accuracy"]["qat"] == b.meta["accuracy"]["sim"]        # the integer path is sim/
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["formats_preset"] == "minimalist" and metrics["arch"]["mix"] == "none"
    # a flag the preset fixes otherwise is refused, with the flag named
    with pytest.raises(SystemExit):
        mtrain.parse_args(argv + ["--mix", "glu"])
    args = mtrain.parse_args(argv + ["--no-skip", "--gate-bits", "6"])   # agreeing flags are fine
    assert args.no_skip and args.taps == 0 and args.mix == "none"


@pytest.mark.rtl
def test_minimalist_bundle_through_the_rtl(tmp_path):
    """A ``minimalist`` bundle (2-bit minGRU weights, 6-bit biases, no conv/skip/mix/norm, Heaviside)
    streams through the Verilator RTL bit for bit against sim/ (two short real GSC clips)."""
    from rtl.top import cycles_per_step
    from testbenches.cosim import run_cocotb
    from testbenches.streams import make_case

    case = make_case("gsc_stream", n_seqs=2, max_steps=40, small=True, root="fixture")
    p = PRESETS["minimalist"]
    b = random_bundle(p.arch_for(case.bundle.arch.d_in, case.bundle.arch.n_classes, hidden=8, layers=2),
                      p.formats, seed=4, scale=1.5, meta={"formats_preset": "minimalist"})
    r = run_cocotb(b, case.xs, workdir=tmp_path)
    assert r.bit_exact, r
    steps = sum(len(x) for x in case.xs)
    assert r.steps == steps
    assert abs(r.cycles - steps * cycles_per_step(b.arch)) <= cycles_per_step(b.arch)
