"""Issue 14 item 3: ``make report`` (``python -m rtl.report``), the sweep of microarchitectures of a
network: Yosys area of the top (cells, multipliers, flip-flop bits, memory bits) against the cycle
model's cycles per step and the clock that real-time audio needs."""
from __future__ import annotations

import json
from pathlib import Path

from rtl.microarch import Microarch, mac_multipliers
from rtl.top import cycles_per_step, latency
from spec.arch import Arch, Formats

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "bundles" / "gsc12.npz"
#: A tiny audio-like network: 2 samples per step, every projection present.
TINY = Arch(d_in=2, n_classes=4, hidden=8, layers=1, taps=4, d_max=15)


# ---------------------------------------------------------------------------------------------
# make report: the sweep
# ---------------------------------------------------------------------------------------------
def test_report_sweep_rows_are_yosys_area_against_the_cycle_model(tmp_path):
    from rtl.report import sweep, sweep_row, synth_stats
    from rtl.top import MgradeTop
    fmts = Formats()
    lines = []
    rows = sweep(TINY, fmts, ["simd=1", "simd=2", Microarch(enc=1, taps=1, proj=1, mix=1, readout=1),
                              "simd=2,schedule=dataflow"], log=lines.append, cache=tmp_path)
    assert len(rows) == 3                                   # the same microarchitecture once
    assert [ln for ln in lines if "synthesising" in ln][0].startswith("  [1/3] synthesising the top at enc=1")
    assert any(ln.startswith("  [3/3] done in") for ln in lines)
    one, two, df = rows
    mus = (Microarch(), Microarch.parse("simd=2", TINY), Microarch.parse("simd=2,schedule=dataflow", TINY))
    for row, mu in zip(rows, mus, strict=True):
        assert row["micro"] == str(mu)
        assert row["cycles_per_step"] == cycles_per_step(TINY, mu) and row["latency"] == latency(TINY, mu)
        assert row["mac_multipliers"] == mac_multipliers(TINY, mu)
        assert row["steps_per_s"] == 16000 / 2                                  # frame = d_in samples
        assert row["clock_hz"] == row["cycles_per_step"] * 8000
    assert (one["cycles_per_step"], two["cycles_per_step"]) == (72, 45) == (one["latency"], two["latency"])
    # the dataflow schedule: the same datapath (multipliers, memories) plus stage registers, a step
    # every slowest-stage count, the first result after the sequential latency
    assert df["cycles_per_step"] < df["latency"] == 45
    assert (df["multipliers"], df["memory_bits"]) == (two["multipliers"], two["memory_bits"])
    # Yosys counts the folded MAC lanes' multipliers (and the unfolded element-wise stages' once each)
    assert two["multipliers"] - one["multipliers"] == two["mac_multipliers"] - one["mac_multipliers"] == 44
    assert one["memory_bits"] == two["memory_bits"] > 0                        # the same weights, repacked
    # the original design's row is the top of the per-component report
    want = synth_stats(MgradeTop(TINY, fmts))
    assert {k: one[k] for k in want} == want
    # a re-run reads the statistics from the cache; another design (formats) is synthesised again
    again = sweep_row(TINY, fmts, Microarch(), cache=tmp_path)
    assert again["cached"] and not one["cached"] and {k: again[k] for k in want} == want
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_report_cli_micro_and_json(capsys):
    from rtl.report import main
    args = ["--hidden", "8", "--layers", "1", "--taps", "4", "--d-max", "15", "--classes", "4", "--d-in", "2"]
    assert main([*args, "--micro", "simd=2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    (row,) = rep["sweep"]
    assert row["micro"] == "enc=2,taps=2,proj=2,mix=2,readout=2" and row["cycles_per_step"] == 45
    assert "rows" not in rep                                # no per-component report unless asked
    assert main([*args, "--micro", "proj=3"]) == 2
    assert "proj=3 (valid: 1, 2, 4, 8)" in capsys.readouterr().err


def test_report_table_and_real_time_rate():
    from rtl.report import steps_per_second, sweep_table
    assert steps_per_second(TINY) == 8000.0
    assert steps_per_second(TINY, frame=16) == 1000.0
    assert steps_per_second(Arch(d_in=16, n_classes=10, hidden=8, layers=1, encoder="embedding")) is None
    from spec.bundle import load_bundle
    b = load_bundle(SHIPPED)
    assert steps_per_second(b.arch, b.meta["input"]["frame"]) == 1000.0        # 16 kHz, 16 samples per step
    row = {"micro": "x", "simd_enc": 16, "simd_taps": 8, "simd_proj": 64, "simd_mix": 64, "simd_readout": 64,
           "cells": 12345, "multipliers": 53504, "flip_flop_bits": 10, "memory_bits": 20, "cycles_per_step": 53,
           "latency": 225, "clock_hz": 53000.0, "simd_schedule": "dataflow", "simd_proj_passes": 2}
    assert sweep_table([row])[2] == \
        "| 16,8,64,64,64 | 1,1,2,1,1 | 1 | dataflow | 12,345 | 53,504 | 10 | 20 | 53 | 225 | 0.053 MHz |"
