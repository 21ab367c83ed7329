"""Issue 14 item 4: the default microarchitecture of the co-simulations (the fastest to simulate: at
most 100 cycles per step on the shipped GSC network), ``--micro`` in ``make regress`` and ``make
bench`` (the ratio of clips per hour against the original design)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtl.microarch import Microarch, MicroarchError
from rtl.top import cycles_per_step, stream_cycles

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "bundles" / "gsc12.npz"


def _gsc_arch():
    from spec.bundle import load_bundle
    return load_bundle(SHIPPED)


# ---------------------------------------------------------------------------------------------
# the default microarchitecture
# ---------------------------------------------------------------------------------------------
def test_default_micro_of_the_shipped_gsc_network_is_at_most_100_cycles_per_step():
    from testbenches.micro import fastest, resolve
    b = _gsc_arch()
    mu = fastest(b.arch)
    assert resolve(None, b.arch) == mu == resolve("", b.arch) == resolve("fastest", b.arch)
    assert cycles_per_step(b.arch, mu) <= 100
    assert (str(mu), cycles_per_step(b.arch, mu)) == ("enc=8,taps=8,proj=8,mix=8,readout=8,schedule=dataflow", 53)
    assert cycles_per_step(b.arch, resolve("original", b.arch)) == 1443     # the original design
    assert resolve("original", b.arch) == Microarch() == resolve("simd=1", b.arch)
    assert resolve("proj=8,mix=8", b.arch) == Microarch(proj=8, mix=8)
    with pytest.raises(MicroarchError, match=r"proj=3 \(valid: 1, 2, 4, 8, 16, 32, 64\)"):
        resolve("proj=3", b.arch)


def test_default_micro_is_valid_for_every_stream_network():
    """Every stream's network (shipped or small) takes the default (each projection capped at its columns)."""
    from testbenches.micro import fastest
    from testbenches.streams import STREAMS, make_case
    for name in STREAMS:
        case = make_case(name, n_seqs=1, max_steps=5, small=True, root="fixture")
        mu = fastest(case.bundle.arch)
        assert cycles_per_step(case.bundle.arch, mu) < cycles_per_step(case.bundle.arch), name


# ---------------------------------------------------------------------------------------------
# make bench: new against the original design, in the same run
# ---------------------------------------------------------------------------------------------
def test_bench_rtl_ratio_of_clips_per_hour(monkeypatch):
    """bench_rtl runs the chosen microarchitecture (cocotb and C++) and the baseline (cocotb) on the
    same clip; clips per hour from the seconds per clip, and their ratio (fake simulators)."""
    import numpy as np

    from benchmarks import bench_rtl as br
    from testbenches import cosim, streams
    real = streams.make_case
    monkeypatch.setattr(streams, "make_case", lambda name, **kw: real(name, small=True, root="fixture",
                                                                      **{**kw, "max_steps": kw.get("max_steps") or 40}))
    seen = []

    class R:
        def __init__(self, micro, xs):
            n = sum(len(x) for x in xs)
            self.steps, self.micro = n, micro
            self.cycles = n * cycles_per_step(case_arch[0], micro)
            self.wall = self.cycles * 1e-4 * (1 if micro.is_default else 0.25)   # the fold: 4x less per cycle
            self.cycles_per_step, self.bit_exact, self.build_wall = cycles_per_step(case_arch[0], micro), True, 0.0

    case_arch = []

    def fake_cocotb(bundle, xs, exp=None, *, micro=None, log=None):
        case_arch[:] = [bundle.arch]
        seen.append(("cocotb", micro))
        return R(micro, xs)

    def fake_harness(bundle, xs, *, micro=None, log=None):
        seen.append(("cpp", micro))
        exp, _ = cosim.expected(bundle, xs)
        return {"outputs": {"logits": exp.logits[0], "acc": None if exp.acc is None else exp.acc[0]},
                "steps": 1, "cycles": 1, "wall": 1.0}

    monkeypatch.setattr(cosim, "run_cocotb", fake_cocotb)
    monkeypatch.setattr(cosim, "run_harness", fake_harness)
    r = br.bench_rtl(steps=40, cores=2, micro="simd=4", baseline="original")
    arch = case_arch[0]
    new, old = Microarch.parse("simd=4", arch), Microarch()
    assert seen == [("cocotb", new), ("cpp", new), ("cocotb", old)]
    assert r["rtl_micro"] == str(new) and r["rtl_baseline_micro"] == str(old)
    c_new, c_old = cycles_per_step(arch, new), cycles_per_step(arch, old)
    assert (r["rtl_cycles_per_step"], r["rtl_baseline_cycles_per_step"]) == (c_new, c_old)
    assert r["rtl_clips_per_hour_ratio"] == round(4 * c_old / c_new, 2)
    assert np.isclose(r["rtl_clips_per_hour"] / r["rtl_baseline_clips_per_hour"], 4 * c_old / c_new, rtol=1e-2)
    seen.clear()
    r = br.bench_rtl(steps=40, cores=2, baseline="none")          # no baseline: the default micro only
    from testbenches.micro import fastest
    assert [m for _, m in seen] == [fastest(arch)] * 2 and "rtl_clips_per_hour_ratio" not in r
    seen.clear()
    r = br.bench_rtl(steps=40, cores=2, cpp=False)                 # no C++ loop: cocotb, new and baseline
    assert seen == [("cocotb", fastest(arch)), ("cocotb", old)] and r["rtl_cpp_steps_per_s"] is None


# ---------------------------------------------------------------------------------------------
# make regress --micro: a tiny real run (small ListOps network, fixture sequences)
# ---------------------------------------------------------------------------------------------
@pytest.mark.rtl
@pytest.mark.xdist_group("rtl_listops_stream")
@pytest.mark.parametrize("micro", [None, "original"])
def test_regress_micro_tiny_run_is_bit_exact(micro, tmp_path, capfd):
    """The default (the fastest to simulate) and a named one (the original design): 2 sequences, 0
    mismatches, cycles = steps x the model's cycles per step at that microarchitecture. (The builds are
    those of the regress test in test_cluster.py and of the stream test in test_rtl_streams.py.)"""
    from testbenches import regress
    from testbenches.micro import resolve
    from testbenches.streams import make_case
    case = make_case("listops_stream", n_seqs=2, small=True, root="fixture")
    mu = resolve(micro, case.bundle.arch)
    out = tmp_path / "r.json"
    argv = ["--small", "--root", "fixture", "--streams", "listops_stream", "--n", "listops_stream=2", "--jobs", "1",
            "--chunk", "2", "--no-progress", "--store", str(tmp_path / "store"), "--json", str(out)]
    assert regress.main(argv + (["--micro", micro] if micro else [])) == 0
    text = capfd.readouterr().out
    assert f"listops_stream: microarchitecture {mu} (rtl.top.cycles_per_step {cycles_per_step(case.bundle.arch, mu)})" \
        in text and f"microarchitecture {mu}" in text.split("---- regression totals ----")[1]
    d = json.loads(out.read_text())
    (chunk,) = d["chunks"]
    steps = sum(len(x) for x in case.xs)
    assert d["bit_exact"] and chunk["bit_exact"] and chunk["mismatch"] is None and chunk["micro"] == str(mu)
    assert chunk["steps"] == steps
    # a stream fed without gaps: the first result after the latency, then one every cycles_per_step
    assert abs(chunk["cycles"] - stream_cycles(case.bundle.arch, mu, steps)) <= cycles_per_step(case.bundle.arch, mu)


def test_regress_refuses_an_invalid_micro(capsys):
    from testbenches import regress
    assert regress.main(["--small", "--root", "fixture", "--streams", "listops_stream", "--micro", "proj=3"]) == 2
    assert "proj=3 (valid: 1, 2, 4, 8)" in capsys.readouterr().err


def test_regress_chunk_key_depends_on_the_micro():
    from testbenches.regress import ChunkJob, chunk_key
    job = ChunkJob("gsc_stream", 0, 1, 1, True, "fixture")
    parts = {"bundle": "b", "data": "d"}
    keys = {chunk_key(job, dict(parts, micro=m), "c", {}) for m in ("enc=1,taps=1,proj=1,mix=1,readout=1",
                                                                      "enc=1,taps=1,proj=2,mix=1,readout=1")}
    assert len(keys) == 2


@pytest.mark.parametrize("spec", [None, "original", "simd=2"])
def test_make_sim_runs_the_default_or_the_named_micro(spec, monkeypatch):
    """make sim (testbenches.run) without --micro hands the fastest microarchitecture to the co-simulation."""
    from testbenches import cosim
    from testbenches.micro import fastest
    from testbenches.run import main
    from testbenches.streams import make_case
    seen = []

    class Stop(Exception):
        pass

    def record(bundle, xs, exp=None, *, micro=None, **kw):
        seen.append(micro)
        raise Stop

    monkeypatch.setattr(cosim, "run_cocotb", record)
    with pytest.raises(Stop):
        main(["gsc_stream", "--small", "--root", "fixture", "--steps", "3"] + (["--micro", spec] if spec else []))
    arch = make_case("gsc_stream", n_seqs=1, small=True, root="fixture").bundle.arch
    want = {None: fastest(arch), "original": Microarch(), "simd=2": Microarch.parse("simd=2", arch)}[spec]
    assert seen == [want]


def test_bench_rtl_cli_prints_without_the_cpp_loop(monkeypatch, capsys):
    """python -m benchmarks.bench_rtl --no-cpp: the summary prints the ratio and no C++ line."""
    from benchmarks import bench_rtl as br
    r = {"rtl_steps": 10, "rtl_clip_steps": 10, "rtl_micro": "m", "rtl_cycles_per_step": 53, "rtl_bundle": "b",
         "rtl_cocotb_steps_per_s": 1.0, "rtl_cocotb_cycles_per_s": 53, "rtl_cpp_steps_per_s": None,
         "rtl_cpp_cycles_per_s": None, "rtl_cocotb_over_cpp": None, "rtl_bit_exact": True, "rtl_cores": 2,
         "rtl_seconds_per_clip": 10.0, "rtl_clips_per_hour": 720.0, "rtl_baseline_micro": "o",
         "rtl_baseline_cycles_per_step": 1443, "rtl_baseline_seconds_per_clip": 38.0,
         "rtl_baseline_clips_per_hour": 189.5, "rtl_baseline_bit_exact": True, "rtl_clips_per_hour_ratio": 3.8}
    seen = {}
    monkeypatch.setattr(br, "bench_rtl", lambda *a, **kw: seen.update(kw) or r)
    assert br.main(["--no-cpp", "--micro", "simd=4"]) == 0
    out = capsys.readouterr().out
    assert seen["cpp"] is False and seen["micro"] == "simd=4" and seen["baseline"] == "original"
    assert "C++" not in out and "clips per hour new / baseline:    3.8x" in out
