"""Speech Commands loaders: strict WAV reading, GSC layout, MLPerf KWS12, splits; fixtures and real data."""
import struct
import tarfile

import numpy as np
import pytest

from data import DataError, load_task, read_wav, shared_dir, write_wav
from data.speech import (
    GSC_V1_WORDS,
    GSC_V2_WORDS,
    KWS12_CLASSES,
    _read_split_list,
    gsc_which_set,
    load_mlperf_kws,
    speaker_id,
    split_kws12,
)


@pytest.fixture
def tmp_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _wav_bytes(samples, rate=16000, channels=1, bits=16, tag=1, data_size=None):
    pcm = np.asarray(samples, dtype="<i2").tobytes() if bits == 16 else bytes(len(samples) * bits // 8)
    size = len(pcm) if data_size is None else data_size
    block = channels * bits // 8
    return (struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, tag, channels, rate,
                        rate * block, block, bits, b"data", size) + pcm)


# --------------------------------------------------------------------------------------------------
# WAV reader
# --------------------------------------------------------------------------------------------------

def test_wav_round_trip_exact(tmp_path):
    x = np.array([0, 1, -1, 32767, -32768, 12345, -2], dtype=np.int16)
    p = write_wav(tmp_path / "a.wav", x)
    y = read_wav(p)
    assert y.dtype == np.int16 and np.array_equal(x, y)


@pytest.mark.parametrize("kind, message", [
    ("rate", "sample rate 8000 Hz, expected 16000 Hz"),
    ("width8", "sample width 8 bits, expected 16-bit"),
    ("width24", "sample width 24 bits, expected 16-bit"),
    ("stereo", "2 channels, expected 1"),
    ("float", "not integer PCM"),
    ("truncated", "truncated WAV file"),
    ("short_header", "truncated WAV file"),
    ("empty", "truncated WAV file"),
    ("not_riff", "not a RIFF/WAVE file"),
    ("odd_bytes", "not a whole number of 2-byte frames"),
    ("no_data", "no 'data' chunk"),
    ("too_long", "16001 samples, longer than 16000"),
])
def test_wav_malformed(tmp_path, kind, message):
    p = tmp_path / f"{kind}.wav"
    ok = _wav_bytes(np.zeros(100))
    data = {
        "rate": _wav_bytes(np.zeros(100), rate=8000),
        "width8": _wav_bytes(np.zeros(100), bits=8),
        "width24": _wav_bytes(np.zeros(100), bits=24),
        "stereo": _wav_bytes(np.zeros(100), channels=2),
        "float": _wav_bytes(np.zeros(100), tag=3),
        "truncated": ok[:-50],
        "short_header": ok[:8],
        "empty": b"",
        "not_riff": b"RIFX" + ok[4:],
        "odd_bytes": ok[:40] + struct.pack("<I", 199) + ok[44:] + b"\0",
        "no_data": ok[:36].replace(struct.pack("<I", 36 + 200), struct.pack("<I", 28)),
        "too_long": _wav_bytes(np.zeros(16001)),
    }[kind]
    p.write_bytes(data)
    with pytest.raises(DataError) as e:
        read_wav(p, max_samples=16000)
    assert message in str(e.value) and str(p) in str(e.value)


# --------------------------------------------------------------------------------------------------
# standard GSC layout (synthetic trees in tmp)
# --------------------------------------------------------------------------------------------------

def _gsc_tree(root, words, lengths=None, val=(), test=()):
    """One clip per word '<word>/0000000<i>_nohash_0.wav'; lists name the given words' clips."""
    root.mkdir(parents=True, exist_ok=True)
    names = {}
    for i, w in enumerate(words):
        (root / w).mkdir()
        n = (lengths or {}).get(w, 16000)
        rel = f"{w}/{i:08x}_nohash_0.wav"
        write_wav(root / rel, (np.arange(n) % 200 - 100 + i).astype(np.int16))
        names[w] = rel
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "noise.wav", np.zeros(48000, dtype=np.int16))
    (root / "validation_list.txt").write_text("\n".join(names[w] for w in val))
    (root / "testing_list.txt").write_text("\n".join(names[w] for w in test))
    return names


def test_gsc35_layout(tmp_path, tmp_cache):
    root = tmp_path / "sc"
    names = _gsc_tree(root, GSC_V2_WORDS, lengths={"yes": 8000}, val=["no", "up"], test=["go"])
    tr = load_task("gsc35", root=root, split="train")
    va = load_task("gsc35", root=root, split="val")
    te = load_task("gsc35", root=root, split="test")
    assert len(tr) == 32 and len(va) == 2 and len(te) == 1
    assert tr.classes == GSC_V2_WORDS and len(tr.classes) == 35
    assert tr.x.shape == (32, 16000) and tr.x.dtype == np.int16 and tr.y.dtype == np.int64
    i = list(tr.ids).index(names["yes"])
    assert tr.lengths[i] == 8000 and tr.meta["n_padded"] == 1
    assert np.all(tr.x[i, 8000:] == 0)  # zero-padded at the end, never stretched
    w = GSC_V2_WORDS.index("yes")
    assert np.array_equal(tr.x[i, :8000], (np.arange(8000) % 200 - 100 + w).astype(np.int16))
    assert "_background_noise_" not in " ".join(tr.ids)
    assert [tr.classes[k] for k in va.y] == ["no", "up"] and te.classes[te.y[0]] == "go"
    assert set(tr.ids).isdisjoint(va.ids) and set(tr.ids).isdisjoint(te.ids)
    # cached second load is identical
    tr2 = load_task("gsc35", root=root, split="train")
    assert "cache" in tr2.meta and np.array_equal(tr.x, tr2.x) and list(tr.ids) == list(tr2.ids)


@pytest.mark.parametrize("breakage, message", [
    ("no_test_list", "missing split file"),
    ("no_val_list", "missing split file"),
    ("bad_folder", "bad label: folder 'foo'"),
    ("bad_list_word", "bad label 'foo'"),
    ("listed_missing", "missing on disk"),
    ("malformed_entry", "malformed entry"),
    ("in_both_lists", "in both validation_list.txt and testing_list.txt"),
    ("missing_word", "word folder(s) missing: zero"),
    ("long_clip", "longer than 16000"),
    ("stray_file", "unexpected file"),
])
def test_gsc_layout_errors(tmp_path, tmp_cache, breakage, message):
    root = tmp_path / "sc"
    names = _gsc_tree(root, GSC_V2_WORDS, val=["no"], test=["go"])
    if breakage == "no_test_list":
        (root / "testing_list.txt").unlink()
    elif breakage == "no_val_list":
        (root / "validation_list.txt").unlink()
    elif breakage == "bad_folder":
        (root / "foo").mkdir()
    elif breakage == "bad_list_word":
        (root / "testing_list.txt").write_text("foo/00000000_nohash_0.wav\n")
    elif breakage == "listed_missing":
        (root / "testing_list.txt").write_text("go/deadbeef_nohash_0.wav\n")
    elif breakage == "malformed_entry":
        (root / "testing_list.txt").write_text("go deadbeef.wav\n")
    elif breakage == "in_both_lists":
        (root / "testing_list.txt").write_text(names["no"] + "\n")
    elif breakage == "missing_word":
        import shutil
        shutil.rmtree(root / "zero")
    elif breakage == "long_clip":
        write_wav(root / names["yes"], np.zeros(16001, dtype=np.int16))
    elif breakage == "stray_file":
        (root / "yes" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as e:
        load_task("gsc35", root=root, split="train")
    assert message in str(e.value)


def test_gsc_missing_root_names_layout(tmp_path):
    with pytest.raises(DataError) as e:
        load_task("gsc35", root=tmp_path / "nope")
    assert "does not exist" in str(e.value) and "validation_list.txt" in str(e.value)
    with pytest.raises(DataError) as e:
        load_task("gsc35")
    assert "needs root=" in str(e.value)


def test_gsc_which_set_is_speaker_disjoint():
    a = [gsc_which_set(f"{w}/0123abcd_nohash_{k}.wav") for w in ("yes", "no", "up") for k in range(5)]
    assert len(set(a)) == 1
    sets = [gsc_which_set(f"yes/{i:08x}_nohash_0.wav") for i in range(3000)]
    frac = {s: sets.count(s) / len(sets) for s in ("train", "val", "test")}
    assert 0.07 < frac["val"] < 0.13 and 0.07 < frac["test"] < 0.13
    assert speaker_id("right/bb05582b_nohash_3.wav") == "bb05582b" and speaker_id("yes/tst_000001.wav") is None


# --------------------------------------------------------------------------------------------------
# fixtures (committed; always available)
# --------------------------------------------------------------------------------------------------

def test_gsc12_fixture():
    ds = load_task("gsc12", root="fixture", split="test")
    assert ds.x.shape == (24, 16000) and ds.x.dtype == np.int16
    assert ds.classes == KWS12_CLASSES
    assert np.bincount(ds.y, minlength=12).tolist() == [2] * 12
    assert np.all(ds.lengths == 16000) and ds.meta["split"] == "test"
    assert "Warden" in ds.meta["citation"] and ds.meta["licence"] == "CC BY 4.0"
    # int16 exactly as stored: compare with the raw data chunk of one file
    from data.core import FIXTURES
    raw = (FIXTURES / "gsc12" / "mlperf_tiny_kws_test" / ds.ids[0]).read_bytes()
    assert np.array_equal(ds.x[0], np.frombuffer(raw[44:], dtype="<i2"))
    assert np.abs(ds.x[ds.y != KWS12_CLASSES.index("_silence_")].astype(np.int32)).max() > 1000  # real speech
    with pytest.raises(DataError, match="test"):
        load_task("gsc12", root="fixture", split="train")


def test_gsc_v1_fixture_splits_by_lists():
    parts = {s: load_task("gsc_v1_sample", root="fixture", split=s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [4, 4, 4]
    assert parts["train"].classes == GSC_V1_WORDS and len(GSC_V1_WORDS) == 30
    assert parts["train"].meta["n_padded"] == 3 and parts["train"].meta["n_listed_absent"] > 0
    spk = {s: {speaker_id(i) for i in parts[s].ids} for s in parts}
    assert spk["train"].isdisjoint(spk["val"]) and spk["train"].isdisjoint(spk["test"])
    assert spk["val"].isdisjoint(spk["test"])
    for s, ds in parts.items():
        assert all(gsc_which_set(i) == s for i in ds.ids)  # the official lists follow the hash rule
        padded = ds.lengths < 16000
        for k in np.flatnonzero(padded):
            assert np.all(ds.x[k, ds.lengths[k]:] == 0)


def _kws_tree(root, rows, wavs=None):
    d = root / "mlperf_tiny_kws_test"
    d.mkdir(parents=True)
    (d / "y_labels_original.csv").write_text("\n".join(rows) + "\n")
    for rel in wavs or []:
        (d / rel).parent.mkdir(exist_ok=True)
        write_wav(d / rel, np.zeros(16000, dtype=np.int16))
    return d


@pytest.mark.parametrize("rows, wavs, message", [
    (["tst_000000_Stop_7.bin, 12, 12"], ["stop/tst_000000.wav"], "bad label 12"),
    (["tst_000000_Stop_7.bin, 12, 6"], ["right/tst_000000.wav"], "disagrees with label 6"),
    (["tst_000000_Stop_7.bin, 12, x"], ["stop/tst_000000.wav"], "bad label"),
    (["tst_000000_Stop_7.bin, 10, 7"], ["stop/tst_000000.wav"], "class count 10"),
    (["tst_000000_Stop_7.bin, 12"], ["stop/tst_000000.wav"], "expected 3 or 4"),
    (["stop_000000.bin, 12, 7"], ["stop/tst_000000.wav"], "malformed name"),
    (["tst_000000_Stop_7.bin, 12, 7"], [], "listed in y_labels_original.csv but missing"),
    (["tst_000000_Stop_7.bin, 12, 7"], ["stop/tst_000000.wav", "stop/tst_000001.wav"], "not listed"),
    (["tst_000000_Stop_7.bin, 12, 7"], ["stop/tst_000000.wav", "maybe/tst_000001.wav"], "bad label: folder 'maybe'"),
])
def test_kws12_malformed(tmp_path, tmp_cache, rows, wavs, message):
    _kws_tree(tmp_path, rows, wavs)
    with pytest.raises(DataError) as e:
        load_mlperf_kws(tmp_path)
    assert message in str(e.value)


def test_kws12_missing_label_file(tmp_path):
    (tmp_path / "mlperf_tiny_kws_test").mkdir()
    with pytest.raises(DataError, match="missing label file"):
        load_mlperf_kws(tmp_path)


def test_kws12_short_clip_is_error(tmp_path, tmp_cache):
    d = _kws_tree(tmp_path, ["tst_000000_Stop_7.bin, 12, 7"], ["stop/tst_000000.wav"])
    write_wav(d / "stop" / "tst_000000.wav", np.zeros(15000, dtype=np.int16))
    with pytest.raises(DataError, match="exactly 16000"):
        load_mlperf_kws(tmp_path)


def test_kws12_speaker_split_with_original_names(tmp_path, tmp_cache):
    """With a 4th csv column naming the original GSC file, the split is speaker-disjoint."""
    rows, wavs = [], []
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(2**32):08x}" for _ in range(60)]
    for k in range(300):
        lab = k % 12
        word = ["Down", "Go", "Left", "No", "Off", "On", "Right", "Stop", "Up", "Yes", "Silence", "Unknown"][lab]
        orig = "" if lab == 10 else f", {KWS12_CLASSES[lab].strip('_')}/{speakers[k % 60]}_nohash_{k % 3}.wav"
        rows.append(f"tst_{k:06d}_{word}_{lab}.bin, 12, {lab}{orig}")
        wavs.append(f"{KWS12_CLASSES[lab]}/tst_{k:06d}.wav")
    _kws_tree(tmp_path, rows, wavs)
    ds = load_mlperf_kws(tmp_path)
    parts = split_kws12(ds)
    assert sum(len(p) for p in parts.values()) == 300
    ids = [set(p.ids) for p in parts.values()]
    assert ids[0].isdisjoint(ids[1]) and ids[0].isdisjoint(ids[2]) and ids[1].isdisjoint(ids[2])
    spk = {s: {x for x in p.meta["speakers"] if x} for s, p in parts.items()}
    assert spk["train"].isdisjoint(spk["val"]) and spk["train"].isdisjoint(spk["test"])
    assert spk["val"].isdisjoint(spk["test"])
    assert all(p.meta["speaker_disjoint"] for p in parts.values())
    assert len(parts["train"]) > len(parts["val"])
    again = split_kws12(load_mlperf_kws(tmp_path))
    assert all(list(again[s].ids) == list(parts[s].ids) for s in parts)  # deterministic


# --------------------------------------------------------------------------------------------------
# real shared archives (skipped where ../shared/data is absent)
# --------------------------------------------------------------------------------------------------

def _need(name):
    return pytest.mark.skipif(not (shared_dir() / name).is_file(),
                              reason=f"real data archive {shared_dir() / name} not present")


@_need("gsc_v2_kws12_test1000.tar.gz")
def test_gsc12_real_archive():
    ds = load_task("gsc12", split="test")
    assert ds.x.shape == (1000, 16000) and ds.x.dtype == np.int16
    counts = np.bincount(ds.y, minlength=12)
    assert counts.sum() == 1000 and counts.min() >= 70 and counts.max() <= 92
    assert np.all(ds.lengths == 16000)
    # bit-exact against the archive member itself
    with tarfile.open(shared_dir() / "gsc_v2_kws12_test1000.tar.gz") as tf:
        raw = tf.extractfile("mlperf_tiny_kws_test/" + ds.ids[3]).read()
    assert np.array_equal(ds.x[3], np.frombuffer(raw[44:], dtype="<i2"))
    # the shared csv has no speaker ids: a speaker-disjoint split must refuse, loudly
    with pytest.raises(DataError, match="speaker ids unknown"):
        load_task("gsc12", split="train", resplit="speaker")
    parts = {s: load_task("gsc12", split=s, resplit="clip") for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 1000
    assert set(parts["train"].ids).isdisjoint(parts["val"].ids)
    assert set(parts["train"].ids).isdisjoint(parts["test"].ids)
    assert set(parts["val"].ids).isdisjoint(parts["test"].ids)
    assert parts["test"].meta["speaker_disjoint"] is False
    assert np.bincount(parts["val"].y, minlength=12).min() >= 6


@_need("gsc_v1_sample300.tar.gz")
def test_gsc_v1_sample_real_archive():
    parts = {s: load_task("gsc_v1_sample", split=s) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 300
    assert sum(p.meta["n_padded"] for p in parts.values()) == 21
    assert np.bincount(np.concatenate([p.y for p in parts.values()]), minlength=30).tolist() == [10] * 30
    spk = {s: {speaker_id(i) for i in p.ids} for s, p in parts.items()}
    assert spk["train"].isdisjoint(spk["val"]) and spk["train"].isdisjoint(spk["test"])
    assert spk["val"].isdisjoint(spk["test"])


@_need("gsc_v2_split_lists.tar.gz")
def test_gsc_v2_official_lists():
    from data import unpack_archive
    d = unpack_archive(shared_dir() / "gsc_v2_split_lists.tar.gz") / "speech_commands_v0.02"
    test = _read_split_list(d / "testing_list.txt", GSC_V2_WORDS)
    val = _read_split_list(d / "validation_list.txt", GSC_V2_WORDS)
    assert len(test) == 11005 and len(val) == 9981
    assert {e.split("/")[0] for e in test} == set(GSC_V2_WORDS)
    assert {speaker_id(e) for e in test}.isdisjoint({speaker_id(e) for e in val})
    assert all(gsc_which_set(e) == "test" for e in test[::50]) and all(gsc_which_set(e) == "val" for e in val[::50])
