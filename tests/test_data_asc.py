"""Arabic Speech Commands (asc40): strict FLAC/WAV reading, layout and label checks, speaker-disjoint
splits; on the committed fixture, on broken copies of it in tmp, and on the real archive where present."""
import io
import shutil
import tarfile

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

from data import DataError, load_task, shared_dir  # noqa: E402
from data.asc import ASC_WORDS, TOP, asc_speaker, load_asc, pcm_sha256, read_pcm16, val_speaker_split  # noqa: E402
from data.core import FIXTURES  # noqa: E402
from data.tasks import TASKS, load_split, task_info  # noqa: E402

FIX = FIXTURES / "asc40" / TOP
CLIP = "dataset/yes/00000001_NO_01.flac"      # a train clip of the fixture
ARCHIVE = "asc_kws40_train_test_flac.tar"


@pytest.fixture
def tmp_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tree(tmp_path, tmp_cache):
    """A writable copy of the fixture (the data root holding train.csv)."""
    root = tmp_path / "asc" / TOP
    shutil.copytree(FIX, root)
    return root


def _speech(n=16000, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)


# --------------------------------------------------------------------------------------------------
# the committed fixture
# --------------------------------------------------------------------------------------------------

def test_fixture_splits_labels_shapes():
    parts = {s: load_task("asc40", root="fixture", split=s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [9, 3, 6]
    for s, ds in parts.items():
        assert ds.x.shape == (len(ds), 16000) and ds.x.dtype == np.int16 and ds.y.dtype == np.int64
        assert ds.classes == ASC_WORDS and len(ds.classes) == 40 and "zoom in" in ds.classes
        assert np.all(ds.lengths == 16000) and ds.meta["n_padded"] == 0
        assert ds.meta["split"] == s and ds.meta["verified_sha256"] and ds.meta["speaker_disjoint"]
        assert ds.meta["licence"] == "CC BY 4.0" and "Ghandoura" in ds.meta["citation"]
        assert sorted({ds.classes[k] for k in ds.y}) == ["no", "yes", "zoom in"]
        for i in range(len(ds)):   # the label is the clip's folder
            assert ds.ids[i].split("/")[1] == ds.classes[ds.y[i]]
    spk = {s: {asc_speaker(i) for i in ds.ids} for s, ds in parts.items()}
    assert spk == {"train": {"00000001", "00000005", "00000009"}, "val": {"00000006"},
                   "test": {"00000003", "00000004"}}
    assert parts["val"].meta["val_speakers"] == ["00000006"]
    # int16 exactly as stored: the FLAC decoded directly, and the manifest's hash
    i = list(parts["train"].ids).index(CLIP)
    assert np.array_equal(parts["train"].x[i], sf.read(str(FIX / CLIP), dtype="int16")[0])
    row = [ln.split("\t") for ln in (FIX / "manifest.tsv").read_text().splitlines() if CLIP in ln][0]
    assert pcm_sha256(parts["train"].x[i]) == row[-1]
    assert np.abs(parts["test"].x.astype(np.int32)).max() > 1000   # real speech


def test_load_split_and_task_info():
    assert "asc40" in TASKS
    sp = load_split("asc40", root="fixture", split="test")
    assert sp.kind == "audio" and sp.x.dtype == np.int16 and sp.x.shape == (6, 16000)
    info = task_info(sp)
    assert (info.encoder, info.d_in, info.n_classes) == ("linear", 1, 40)
    assert len(load_split("asc40", root="fixture", split="train", limit=4)) == 4


def test_val_speakers_deterministic_and_checked():
    spk = [f"{i:08d}" for i in range(1, 19)]
    a = val_speaker_split(spk)
    assert len(a) == 3 and a == val_speaker_split(list(reversed(spk))) and a == sorted(a)
    assert val_speaker_split(spk, seed=1) != a and len(val_speaker_split(spk, 5)) == 5
    assert val_speaker_split(spk, 0) == []
    with pytest.raises(DataError, match="val_speakers=18"):
        val_speaker_split(spk, 18)
    tr = load_task("asc40", root="fixture", split="train", val_speakers=2, cache=False)
    va = load_task("asc40", root="fixture", split="val", val_speakers=2, cache=False)
    assert len(tr) == 6 and len(va) == 6 and set(tr.ids).isdisjoint(va.ids)


# --------------------------------------------------------------------------------------------------
# broken clips: each rejection names the file and the problem (FLAC and WAV written with soundfile)
# --------------------------------------------------------------------------------------------------

def _write(path, kind, fmt="FLAC"):
    x = _speech()
    if kind == "rate":
        sf.write(str(path), x, 8000, format=fmt, subtype="PCM_16")
    elif kind == "short":
        sf.write(str(path), x[:15999], 16000, format=fmt, subtype="PCM_16")
    elif kind == "long":
        sf.write(str(path), _speech(16001), 16000, format=fmt, subtype="PCM_16")
    elif kind == "stereo":
        sf.write(str(path), np.stack([x, x], 1), 16000, format=fmt, subtype="PCM_16")
    elif kind == "bits8":
        sf.write(str(path), x, 16000, format=fmt, subtype="PCM_S8" if fmt == "FLAC" else "PCM_U8")
    elif kind == "bits24":
        sf.write(str(path), x, 16000, format=fmt, subtype="PCM_24")
    elif kind == "float":
        sf.write(str(path), x.astype(np.float32) / 32768, 16000, format="WAV", subtype="FLOAT")
    elif kind == "truncated":
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format=fmt, subtype="PCM_16")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "garbage":
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format=fmt, subtype="PCM_16")
        b = buf.getvalue()
        path.write_bytes(b[:200] + bytes(1000) + b[1200:])
    elif kind == "not_audio":
        path.write_bytes(b"this is not audio at all" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "wav_as_flac":
        sf.write(str(path), x, 16000, format="WAV", subtype="PCM_16")
    elif kind == "other_speech":   # a valid clip whose samples are not the archive's
        sf.write(str(path), x, 16000, format=fmt, subtype="PCM_16")
    else:
        raise KeyError(kind)


BAD_CLIPS = [
    ("rate", "sample rate 8000 Hz, expected 16000 Hz"),
    ("short", "15999 samples, expected exactly 16000"),
    ("long", "16001 samples, expected exactly 16000"),
    ("stereo", "2 channels, expected 1"),
    ("bits8", "expected 16-bit integer PCM"),
    ("bits24", "sample format PCM_24, expected 16-bit"),
    ("truncated", "damaged or unreadable"),
    ("garbage", "damaged or unreadable"),
    ("not_audio", "damaged or unreadable"),
    ("empty", "damaged or unreadable"),
    ("wav_as_flac", "container WAV, expected FLAC"),
    ("other_speech", "do not match the SHA-256 in manifest.tsv"),
]


@pytest.mark.parametrize("kind, message", BAD_CLIPS, ids=[k for k, _ in BAD_CLIPS])
def test_bad_clip_in_the_layout(tree, kind, message):
    p = tree / CLIP
    _write(p, kind)
    with pytest.raises(DataError) as e:
        load_task("asc40", root=tree.parent, split="train")
    assert message in str(e.value) and str(p) in str(e.value)
    if kind == "other_speech":      # without hashing a valid clip is accepted as it is
        ds = load_task("asc40", root=tree, split="train", verify=False)
        assert not ds.meta["verified_sha256"]
    else:                           # the val split does not decode this train-speaker clip
        assert len(load_task("asc40", root=tree, split="val")) == 3


@pytest.mark.parametrize("kind, message", [
    ("rate", "sample rate 8000 Hz"), ("short", "15999 samples"), ("long", "16001 samples"),
    ("stereo", "2 channels"), ("bits8", "sample format PCM_U8"), ("bits24", "sample format PCM_24"),
    ("float", "sample format FLOAT"), ("truncated", "truncated WAV file"), ("empty", "damaged or unreadable"),
])
def test_read_pcm16_wav(tmp_path, kind, message):
    p = tmp_path / f"{kind}.wav"
    _write(p, kind, fmt="WAV")
    with pytest.raises(DataError) as e:
        read_pcm16(p, fmt="WAV")
    assert message in str(e.value) and str(p) in str(e.value)


def test_read_pcm16_exact(tmp_path):
    x = _speech()
    x[:4] = [32767, -32768, 0, -1]
    for fmt in ("FLAC", "WAV"):
        p = tmp_path / f"ok.{fmt.lower()}"
        sf.write(str(p), x, 16000, format=fmt, subtype="PCM_16")
        y = read_pcm16(p, fmt=fmt)
        assert y.dtype == np.int16 and np.array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# broken lists and layout
# --------------------------------------------------------------------------------------------------

def _edit(path, old, new):
    s = path.read_text()
    assert old in s
    path.write_text(s.replace(old, new, 1))


@pytest.mark.parametrize("breakage, message", [
    ("unknown_label", "bad label 'maybe' (not one of the 40 ASC keywords)"),
    ("label_not_folder", "lies in folder 'yes' but is labelled 'no'"),
    ("unknown_folder", "bad label: folder 'maybe'"),
    ("unlisted_clip", "clip not listed in train.csv or test.csv"),
    ("listed_missing", "listed in train.csv but missing on disk"),
    ("listed_twice", "listed twice"),
    ("in_both_csvs", "listed in both train.csv and test.csv"),
    ("speaker_in_both", "appear in both train.csv and test.csv"),
    ("bad_header", "header must be 'file,class'"),
    ("malformed_name", "malformed file name"),
    ("no_test_csv", "missing split file test.csv"),
    ("manifest_class", "disagrees with train.csv"),
    ("manifest_missing_row", "no row for dataset/yes/00000001_NO_01.flac"),
    ("stray_file", "unexpected file"),
])
def test_layout_errors(tree, breakage, message):
    tr, te, man = tree / "train.csv", tree / "test.csv", tree / "manifest.tsv"
    if breakage == "unknown_label":
        _edit(tr, f"{CLIP},yes", f"{CLIP},maybe")
    elif breakage == "label_not_folder":
        _edit(tr, f"{CLIP},yes", f"{CLIP},no")
    elif breakage == "unknown_folder":
        (tree / "dataset" / "maybe").mkdir()
    elif breakage == "unlisted_clip":
        shutil.copyfile(tree / CLIP, tree / "dataset/yes/00000001_NO_02.flac")
    elif breakage == "listed_missing":
        (tree / CLIP).unlink()
    elif breakage == "listed_twice":
        tr.write_text(tr.read_text() + f"{CLIP},yes\n")
    elif breakage == "in_both_csvs":
        te.write_text(te.read_text() + f"{CLIP},yes\n")
    elif breakage == "speaker_in_both":
        shutil.copyfile(tree / CLIP, tree / "dataset/yes/00000003_NO_02.flac")
        tr.write_text(tr.read_text() + "dataset/yes/00000003_NO_02.flac,yes\n")
    elif breakage == "bad_header":
        _edit(tr, "file,class", "path,label")
    elif breakage == "malformed_name":
        _edit(tr, f"{CLIP},yes", "dataset/yes/speaker1.flac,yes")
    elif breakage == "no_test_csv":
        te.unlink()
    elif breakage == "manifest_class":
        _edit(man, f"{CLIP}\tyes", f"{CLIP}\tno")
    elif breakage == "manifest_missing_row":
        man.write_text("\n".join(ln for ln in man.read_text().splitlines() if CLIP not in ln) + "\n")
    elif breakage == "stray_file":
        (tree / "dataset" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as e:
        load_task("asc40", root=tree, split="train")
    assert message in str(e.value)


def test_verify_true_needs_manifest(tree):
    (tree / "manifest.tsv").unlink()
    with pytest.raises(DataError, match="verify=True needs manifest.tsv"):
        load_task("asc40", root=tree, split="test", verify=True)
    ds = load_task("asc40", root=tree, split="test")       # default: hash where a manifest exists
    assert len(ds) == 6 and not ds.meta["verified_sha256"]


def test_missing_root_and_bad_split(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_asc(tmp_path / "nope")
    with pytest.raises(DataError, match="split must be"):
        load_task("asc40", root="fixture", split="dev")


def test_asc_stream_case_from_fixture():
    """The co-simulation stream (no simulator here): real fixture clips as s16f15 codes, framed by the
    shipped bundle's d_in samples per step, with its 40-class readout."""
    from testbenches.streams import STREAMS, make_case
    assert STREAMS["asc_stream"].task == "asc40"
    case = make_case("asc_stream", n_seqs=2, root="fixture")
    frame = case.bundle.arch.d_in
    assert case.bundle.arch.n_classes == 40 and case.classes == ASC_WORDS
    assert [x.shape for x in case.xs] == [(16000 // frame, frame)] * 2 and case.pool_size == 2
    ds = load_task("asc40", root="fixture", split="test", limit=2)
    assert np.array_equal(case.xs[0].reshape(-1), ds.x[0]) and np.array_equal(case.labels, ds.y)
    assert "models/bundles/asc40.npz" in case.bundle_source


# --------------------------------------------------------------------------------------------------
# the real archive (skipped where ../shared/data is absent)
# --------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (shared_dir() / ARCHIVE).is_file(),
                    reason=f"real data archive {shared_dir() / ARCHIVE} not present (set MGRADE_SHARED_DATA)")
def test_real_archive_counts_and_speakers():
    parts = {s: load_task("asc40", split=s) for s in ("train", "val", "test")}
    assert len(parts["train"]) + len(parts["val"]) == 7200 and len(parts["test"]) == 2400
    assert (len(parts["train"]), len(parts["val"])) == (6000, 1200)
    counts = sum(np.bincount(p.y, minlength=40) for p in (parts["train"], parts["val"]))
    assert counts.tolist() == [180] * 40
    assert np.bincount(parts["test"].y, minlength=40).tolist() == [60] * 40
    spk = {s: {asc_speaker(i) for i in p.ids} for s, p in parts.items()}
    assert len(spk["train"] | spk["val"]) == 18 and len(spk["test"]) == 6 and len(spk["val"]) == 3
    assert spk["train"].isdisjoint(spk["val"]) and spk["train"].isdisjoint(spk["test"])
    assert spk["val"].isdisjoint(spk["test"])
    assert all(p.meta["verified_sha256"] for p in parts.values())
    # bit-exact against the archive member itself
    k = 123
    with tarfile.open(shared_dir() / ARCHIVE) as tf:
        raw = tf.extractfile(f"{TOP}/{parts['test'].ids[k]}").read()
    assert np.array_equal(parts["test"].x[k], sf.read(io.BytesIO(raw), dtype="int16")[0])
