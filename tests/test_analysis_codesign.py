"""The co-design study's library: design points, their formats and noise, the cost proxies, the
fine-tune commands, and the re-quantising start of a fine-tune (models.train.init_from_bundle)."""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest

from analysis import codesign
from analysis.codesign import AXES, CENTRE, CostModel, Point, macs_per_step, point_arch, points
from spec.arch import Arch, Formats, check_formats
from spec.bundle import random_bundle, save_bundle
from spec.fixedpoint import Format

GSC_LIKE = Arch(d_in=16, n_classes=12, hidden=8, layers=2, taps=4, d_max=15)


def test_points_cover_every_axis_once_plus_presets():
    ps = points()
    names = [p.name for p in ps]
    assert len(names) == len(set(names))
    assert len(ps) == sum(len(v) - 1 for v in AXES.values()) + 2      # the centre once, as mgrade-hw
    assert {p.value for p in ps if p.axis == "preset"} == {"mgrade-hw", "minimalist"}
    assert Point("capacitor", 3e-13).name == "capacitor_300fF"
    with pytest.raises(ValueError, match="unknown axis"):
        Point("clock", 1)
    with pytest.raises(ValueError, match="preset"):
        Point("preset", "other")


@pytest.mark.parametrize("point", points(), ids=lambda p: p.name)
def test_every_point_is_a_valid_chip(point):
    arch = point_arch(point, GSC_LIKE)
    fmts = point.formats()
    check_formats(arch, fmts)                                # raises on an invalid chip
    assert arch.gate_bits == point.gate_bits()
    k = point.knobs()
    if point.axis != "preset":
        assert fmts.w_rnn == Format(True, k["weight_bits"], k["weight_bits"] - 2)
        assert fmts.h == Format(True, k["state_bits"], k["state_bits"] - 6)
        assert fmts.w_rnn.max_int * 2.0 ** -fmts.w_rnn.frac < 2 <= (fmts.w_rnn.max_int + 1) * 2.0 ** -fmts.w_rnn.frac


def test_capacitor_point_sets_the_state_capacitor_everywhere():
    lo, hi = Point("capacitor", 30e-15).noise(), Point("capacitor", 3e-12).noise()
    for nm, c in ((lo, 30e-15), (hi, 3e-12)):
        assert nm.thermal.capacitance == nm.leakage.capacitance == nm.injection.capacitance == c
    d_lo, d_hi = lo.describe(GSC_LIKE, Formats()), hi.describe(GSC_LIKE, Formats())
    assert d_lo["thermal_update_sigma"] / d_hi["thermal_update_sigma"] == pytest.approx(10.0)   # sqrt(100)
    assert d_lo["injection_per_update"] / d_hi["injection_per_update"] == pytest.approx(100.0)  # 1/C
    # the other points keep NoiseModel.default()'s 100 fF
    assert Point("weight_bits", 4).noise().thermal.capacitance == CENTRE["capacitor"] == 100e-15


def test_cost_model_by_hand():
    cm = CostModel(cap_density=2e-15, bit_area=0.5, unit_cap=1e-15, v=1.0)
    a, f, c = GSC_LIKE, Formats(), 100e-15
    # per channel: 2 x 100 fF + 2**6 x 1 fF = 264 fF; per weight row 2**8 fF, 2 rows per channel
    want_cap = 2 * 8 * (264e-15 + 2 * 256e-15)
    got = cm.area_um2(a, f, c)
    assert got["capacitance_pF"] == pytest.approx(want_cap * 1e12)
    assert got["area_cap_um2"] == pytest.approx(want_cap / 2e-15)
    assert got["area_um2"] == pytest.approx(want_cap / 2e-15 + 0.5 * got["memory_bits"])
    e = cm.energy_per_step_J(a, f, c)
    assert e["energy_share_J"] == pytest.approx(2 * 8 * 7 * 100e-15)          # (b_z + 1) events
    assert e["energy_dac_J"] == pytest.approx(2 * 2 * 8 * 256e-15)
    # fewer weight bits and a smaller capacitor are cheaper, on both proxies
    small = Point("weight_bits", 2).formats()
    assert cm.cost(a, small, c)["area_um2"] < got["area_um2"]
    assert cm.cost(a, f, 30e-15)["energy_analog_J"] < e["energy_analog_J"]


def test_macs_per_step_counts_every_matrix_once():
    a = GSC_LIKE
    E = a.mix_width
    want = a.hidden * a.d_in + a.layers * (a.hidden * a.taps + 2 * a.hidden ** 2 + 2 * a.hidden * E) \
        + a.n_classes * a.hidden
    assert macs_per_step(a) == want


def test_train_commands_parse_and_write_their_files(tmp_path):
    from models.train import parse_args
    ta = {"hidden": 8, "layers": 2, "lr": 3e-3, "taps": 4, "d_max": 15, "frame": 16, "label_smoothing": 0.1}
    for p in (Point("gate_bits", 4), Point("capacitor", 1e-12), Point("preset", "minimalist")):
        codesign.write_point_files(p, tmp_path)
        argv = codesign.train_command("asc40", p, "models/bundles/asc40.npz", str(tmp_path), ta, time_budget=60)
        assert argv[1:3] == ["-m", "models.train"]
        args = parse_args(argv[3:])
        assert args.noise == str(tmp_path / f"{p.name}.noise.json") and args.noise_clean == 0.5
        assert args.time_budget == 60
        noise = json.loads((tmp_path / f"{p.name}.noise.json").read_text())
        assert noise == p.noise().to_json()
        if p.axis == "preset":
            assert args.formats == "minimalist" and args.init is None and args.epochs > 0
        else:
            assert args.gate_bits == p.gate_bits() and args.epochs == 0 and args.init.endswith("asc40.npz")
            saved = json.loads((tmp_path / f"{p.name}.formats.json").read_text())["formats"]
            assert Formats.from_json(saved) == p.formats()


def test_init_from_bundle_requantises_to_the_runs_formats(tmp_path):
    """A co-design fine-tune starts from the shipped bundle's values (codes x 2**-frac of its formats),
    fake-quantised in the run's formats: 2-bit weights are the bundle's rounded to the 2-bit grid."""
    from models.export import bundle_from_model
    from models.mgrade import MGRADE
    from models.train import init_from_bundle

    arch = dataclasses.replace(GSC_LIKE, d_in=4)
    b = random_bundle(arch, seed=3)
    path = tmp_path / "b.npz"
    save_bundle(b, path)
    new_f = Point("weight_bits", 2).formats()
    new_a = dataclasses.replace(arch, gate_bits=4)
    model = MGRADE(new_a, new_f)
    init_from_bundle(model, path, argparse.Namespace(epochs=0, qat_train_delays=False))
    assert model.formats == new_f and model.arch.gate_bits == 4
    out = bundle_from_model(model)
    for name in ("layers.0.rnn.wz", "layers.1.rnn.wh"):
        real = b.tensors[name].astype(np.float64) * 2.0 ** -b.formats.w_rnn.frac
        want = np.clip(np.round(real * 2.0 ** new_f.w_rnn.frac), new_f.w_rnn.min_int, new_f.w_rnn.max_int)
        np.testing.assert_array_equal(out.tensors[name], want.astype(out.tensors[name].dtype))
    np.testing.assert_array_equal(out.tensors["layers.0.conv.delay"], b.tensors["layers.0.conv.delay"])
    with pytest.raises(SystemExit, match="arch differs"):
        init_from_bundle(MGRADE(dataclasses.replace(arch, hidden=16), Formats()), path,
                         argparse.Namespace(epochs=0, qat_train_delays=False))
