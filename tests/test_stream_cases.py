"""Stream cases (no simulator): regression chunks of one pool are disjoint and together are the pool."""
from __future__ import annotations

import numpy as np
import pytest

from testbenches.streams import STREAMS, make_case


def _keys(case):
    return [x.tobytes() for x in case.xs]


# pool sizes within each fixture's test split (the ListOps fixture holds 4 test sequences)
@pytest.mark.parametrize("name,pool", [("gsc_stream", 6), ("listops_stream", 4), ("image_stream", 6)])
def test_chunks_of_one_pool_are_disjoint_and_cover_it(name, pool):
    half = pool // 2
    whole = make_case(name, n_seqs=pool, small=True, root="fixture", max_steps=200)
    parts = [make_case(name, n_seqs=half, offset=o, pool=pool, small=True, root="fixture", max_steps=200)
             for o in (0, half)]
    assert len(whole.xs) == pool and whole.pool_size == pool
    assert _keys(parts[0]) + _keys(parts[1]) == _keys(whole)
    assert not set(_keys(parts[0])) & set(_keys(parts[1]))
    assert np.array_equal(np.concatenate([p.labels for p in parts]), whole.labels)


def test_bad_slice_is_refused():
    with pytest.raises(ValueError, match="offset"):
        make_case("listops_stream", n_seqs=2, offset=5, pool=4, small=True, root="fixture")
    # the ListOps fixture holds 4 test sequences: asking for the 6th says so instead of returning nothing
    with pytest.raises(ValueError, match="has only 4"):
        make_case("listops_stream", n_seqs=2, offset=5, pool=8, small=True, root="fixture")
    assert make_case("listops_stream", n_seqs=8, pool=8, small=True, root="fixture").pool_size == 4
    with pytest.raises(KeyError):
        make_case("no_such_stream")
    assert "gsc_stream" in STREAMS


def _fake_chunk(job):
    """Stands in for a cocotb run: sequence k of a stream has fingerprint k; image chunks after the
    first fail; text chunks all repeat the first sequences; ListOps holds a duplicated sequence."""
    name, offset, n = job.name, job.offset, job.n
    if name == "image_stream" and offset > 0:
        raise RuntimeError("simulated chunk failure")
    prints = [f"{name}:{k}" for k in range(offset, offset + n)]
    if name == "text_stream":      # every chunk runs the same sequences (the old overlapping-pool bug)
        offset = 0
    if name == "listops_stream" and offset == 0:   # sequences 0 and 1 identical: reported, not a failure
        prints[0] = f"{name}:1"
    from testbenches.regress import ChunkResult
    return ChunkResult(name=name, seqs=n, steps=10 * n, cycles=100 * n, wall=1.0, bit_exact=True, mismatch=None,
                       offset=offset, prints=prints, correct=n // 2, bundle="b", data="d", t0=0.0, t1=1.0)


def test_regress_totals_and_exit_status(monkeypatch, tmp_path, capsys):
    import json

    from testbenches import cosim, regress
    monkeypatch.setattr(regress, "_chunk", _fake_chunk)
    monkeypatch.setattr(cosim, "build_stream", lambda arch, fmts, **kw: None)
    out = tmp_path / "r.json"
    common = ["--small", "--root", "fixture", "--jobs", "2", "--json", str(out), "--store", str(tmp_path / "store"),
              "--chunk", "2"]
    # the ListOps fixture holds 4 sequences: 6 asked, 4 run, all distinct, exit 0
    assert regress.main(["--streams", "listops_stream", "--n", "listops_stream=6", *common]) == 0
    text = capsys.readouterr().out
    assert "holds 4 sequences, not 6: running 4" in text
    assert "4 seqs (4 distinct, 1 identical in content (duplicates in the data))" in text
    assert "bit-exact yes" in text
    assert sum(c["seqs"] for c in json.loads(out.read_text())["chunks"]) == 4
    # a failing chunk: the totals are still printed, the run exits 1
    assert regress.main(["--streams", "image_stream", "--n", "image_stream=4", *common]) == 1
    text = capsys.readouterr().out
    assert "FAILED RuntimeError: simulated chunk failure" in text and "bit-exact NO" in text
    # overlapping chunks: bit-exact each, but not distinct sequences -> exit 1
    assert regress.main(["--streams", "text_stream", "--n", "text_stream=4", *common]) == 1
    text = capsys.readouterr().out
    assert "4 seqs (2 distinct)" in text and "bit-exact NO" in text


@pytest.mark.parametrize("bad", ["gsc_stream", "gsc_stream=0", "gsc_stream=ten", "nope=3"])
def test_regress_refuses_bad_counts(bad, capsys):
    from testbenches import regress
    with pytest.raises(SystemExit) as e:
        regress.main(["--n", bad])
    assert e.value.code == 2 and "expected STREAM=N" in capsys.readouterr().err


def test_user_bundle_runs_and_is_named(tmp_path):
    """make sim/regress BUNDLE=...: a fitting bundle is used as given, and the summary names it with its accuracy."""
    from spec import Arch, random_bundle
    from spec.bundle import save_bundle
    b = random_bundle(Arch(d_in=16, n_classes=10, hidden=8, layers=1, taps=2, d_max=7, encoder="embedding"), seed=4)
    b.meta["accuracy"] = {"sim": 0.5, "n_test": 4, "split": "test"}
    path = save_bundle(b, tmp_path / "mine.npz")
    case = make_case("listops_stream", n_seqs=1, root="fixture", max_steps=50, bundle_path=path)
    assert case.bundle.arch == b.arch
    assert str(path) in case.bundle_source and "0.5000 on 4 test" in case.bundle_source


def test_user_bundle_given_as_a_relative_path(monkeypatch):
    """BUNDLE=models/bundles/gsc12.npz (relative to the working directory) names the file in the repo."""
    from testbenches.build import REPO
    monkeypatch.chdir(REPO)
    case = make_case("gsc_stream", n_seqs=1, root="fixture", max_steps=10, bundle_path="models/bundles/gsc12.npz")
    assert case.bundle_source.startswith("bundle models/bundles/gsc12.npz, recorded sim/ accuracy")


def test_user_bundle_that_does_not_fit_is_refused(tmp_path):
    from spec import Arch, random_bundle
    from spec.bundle import save_bundle
    b = random_bundle(Arch(d_in=16, n_classes=7, hidden=8, layers=1, taps=2, d_max=7, encoder="linear"), seed=4)
    path = save_bundle(b, tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"does not fit listops_stream.*encoder linear \(task: embedding\)"
                                         r".*n_classes 7 \(task: 10\)"):
        make_case("listops_stream", n_seqs=1, root="fixture", bundle_path=path)


def test_bundle_that_fails_to_load_is_an_error_not_random(tmp_path):
    from spec.bundle import BundleError
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(BundleError):
        make_case("gsc_stream", n_seqs=1, root="fixture", bundle_path=bad)


def test_run_cli_refuses_a_misfit_bundle_with_status_2(tmp_path, capsys):
    from spec import Arch, random_bundle
    from spec.bundle import save_bundle
    from testbenches.run import main
    path = save_bundle(random_bundle(Arch(d_in=1, n_classes=3, hidden=8, layers=1, taps=2, d_max=7), seed=1),
                       tmp_path / "three.npz")
    assert main(["gsc_stream", "--root", "fixture", "--bundle", str(path)]) == 2
    assert "n_classes 3 (task: 12)" in capsys.readouterr().err


def test_regress_bundle_needs_streams(capsys):
    from testbenches.regress import main
    with pytest.raises(SystemExit) as e:
        main(["--bundle", "x.npz"])
    assert e.value.code == 2 and "--bundle needs --streams" in capsys.readouterr().err


def test_default_offset_skips_filler_labels():
    from testbenches.streams import FILLER_LABELS, default_offset
    classes = ["yes", "no", *FILLER_LABELS]
    assert default_offset([2, 3, 2, 1, 0], classes) == 3
    assert default_offset([2, 3], classes) == 0                # no keyword at all: the first example
    assert default_offset([0, 1], ["a", "b"]) == 0             # no filler classes: the first example


@pytest.mark.parametrize("root", [None, "fixture"])
def test_gsc_stream_default_clip_is_a_spoken_keyword(root, monkeypatch):
    """make sim TEST=gsc_stream (no --offset) streams a clip labelled with a keyword, chosen by label."""
    from testbenches import streams
    from testbenches.run import main
    from testbenches.streams import FILLER_LABELS
    seen, real = [], streams.make_case

    def record(*args, **kw):
        seen.append((kw["offset"], real(*args, **kw)))
        raise ValueError("stop before the simulator")

    monkeypatch.setattr(streams, "make_case", record)
    argv = ["gsc_stream", "--steps", "5"] + (["--root", root] if root else [])
    assert main(argv) == 2
    (offset, case), = seen
    assert offset is None
    label = case.classes[int(case.labels[0])]
    assert label not in FILLER_LABELS and label in case.classes[:10]
    # the first keyword clip of the whole test split in file order: every example before it is a filler
    whole = make_case("gsc_stream", n_seqs=case.offset + 1, pool=case.pool_size, root=root, max_steps=5)
    assert [whole.classes[int(y)] in FILLER_LABELS for y in whole.labels] == [True] * case.offset + [False]
    assert np.array_equal(whole.xs[case.offset], case.xs[0])
    # an explicit offset keeps its meaning (sequence K of a pool of K + n)
    assert make_case("gsc_stream", n_seqs=1, root=root, offset=0, max_steps=5).offset == 0
