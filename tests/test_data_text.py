"""LRA Text (byte-level IMDB) and LRA Retrieval (AAN TSV): vocabulary, explicit truncation, errors."""
import tarfile

import numpy as np
import pytest

from data import DataError, load_task, shared_dir
from data.core import FIXTURES
from data.text import decode_ids, encode_bytes, load_aan, load_imdb


@pytest.fixture
def tmp_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))


def test_byte_vocabulary():
    b = bytes(range(256))
    ids = encode_bytes(b)
    assert ids.dtype == np.int16 and ids.min() == 1 and ids.max() == 256  # id = byte + 1, 0 = pad
    assert decode_ids(np.concatenate([ids, np.zeros(5, np.int16)])) == b


def test_imdb_fixture_values_and_truncation_count():
    tr = load_task("text", root="fixture", split="train")
    te = load_task("text", root="fixture", split="test")
    assert tr.x.shape == (8, 4096) and tr.x.dtype == np.int16 and tr.classes == ["neg", "pos"]
    assert tr.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and len(te) == 6
    root = FIXTURES / "text" / "aclImdb"
    for i, rel in enumerate(tr.ids):
        raw = (root / rel).read_bytes()
        n = min(len(raw), 4096)
        assert tr.lengths[i] == n
        assert decode_ids(tr.x[i]) == raw[:n] and np.all(tr.x[i, n:] == 0)
    long = [r for r in tr.ids if (root / r).stat().st_size > 4096]
    assert tr.meta["n_truncated"] == len(long) == 2 and sorted(tr.meta["truncated_ids"]) == sorted(long)
    assert "LRA" in tr.meta["truncation"]
    whole = load_task("text", root="fixture", split="train", max_len=None)
    assert whole.meta["n_truncated"] == 0 and whole.x.shape[1] == max((root / r).stat().st_size for r in tr.ids)


def test_imdb_val_needs_an_explicit_protocol():
    with pytest.raises(DataError, match="no validation split"):
        load_task("text", root="fixture", split="val")
    lra = load_task("text", root="fixture", split="val", val="lra")
    assert list(lra.ids) == list(load_task("text", root="fixture", split="test").ids)
    hv = load_task("text", root="fixture", split="val", val="holdout")
    ht = load_task("text", root="fixture", split="train", val="holdout")
    assert set(hv.ids).isdisjoint(ht.ids) and len(hv) + len(ht) == 8 and set(hv.y) == {0, 1}


def _imdb_tree(root, files):
    for rel, content in files.items():
        p = root / "aclImdb" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    for s in ("train", "test"):
        for lab in ("pos", "neg"):
            (root / "aclImdb" / s / lab).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize("files, message", [
    ({"train/pos/1_3.txt": b"good"}, "bad label: rating 3 in the 'pos' folder"),
    ({"train/neg/1_8.txt": b"bad"}, "bad label: rating 8 in the 'neg' folder"),
    ({"train/neg/review.txt": b"bad"}, "unexpected file name"),
    ({"train/neg/1_2.txt": b"\xff\xfe bad"}, "not valid UTF-8"),
    ({"train/neg/1_2.txt": b""}, "empty review"),
])
def test_imdb_malformed(tmp_path, tmp_cache, files, message):
    _imdb_tree(tmp_path, dict({"train/pos/0_9.txt": b"fine"}, **files))
    with pytest.raises(DataError) as e:
        load_imdb(tmp_path, split="train")
    assert message in str(e.value)


def test_imdb_missing_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_imdb(tmp_path / "nope")
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DataError, match="missing folder"):
        load_imdb(tmp_path)


def test_retrieval_fixture_is_synthetic_aan_format():
    ds = load_task("retrieval", root="fixture", split="train")
    assert ds.x.shape == (8, 2, 4000) and ds.x.dtype == np.int16 and ds.lengths.shape == (8, 2)
    assert ds.y.tolist() == [0, 1] * 4 and ds.meta["synthetic"] is True
    assert ds.meta["n_truncated_docs"] == 1 and ds.lengths.max() == 4000
    line = (FIXTURES / "retrieval" / "new_aan_pairs.train.tsv").read_bytes().split(b"\n")[1].split(b"\t")
    assert decode_ids(ds.x[1, 0]) == line[3] and decode_ids(ds.x[1, 1]) == line[4]
    assert ds.meta["pairs"][1] == (line[1].decode(), line[2].decode())
    assert len(load_task("retrieval", root="fixture", split="val")) == 4
    with pytest.raises(DataError, match="needs root="):
        load_task("retrieval")


@pytest.mark.parametrize("content, message", [
    (b"1\ta\tb\ttext one\n", "expected 5 tab-separated fields"),
    (b"2\ta\tb\tx\ty\n", "bad label '2'"),
    (b"yes\ta\tb\tx\ty\n", "bad label"),
    (b"1\ta\tb\t\xff\ty\n", "not valid UTF-8"),
    (b"\n", "no examples"),
])
def test_aan_malformed(tmp_path, content, message):
    (tmp_path / "new_aan_pairs.train.tsv").write_bytes(content)
    with pytest.raises(DataError) as e:
        load_aan(tmp_path, split="train")
    assert message in str(e.value)
    with pytest.raises(DataError, match="missing AAN file"):
        load_aan(tmp_path, split="test")


@pytest.mark.skipif(not (shared_dir() / "lra_text_aclImdb.tar.gz").is_file(),
                    reason="real data archive lra_text_aclImdb.tar.gz not present")
def test_imdb_real_archive():
    ds = load_task("text", split="test", limit=300)
    assert ds.x.shape == (300, 4096) and set(ds.y) == {0, 1}
    assert 0 < ds.meta["n_truncated"] < 60  # about 2.7 % of IMDB reviews exceed 4096 bytes
    with tarfile.open(shared_dir() / "lra_text_aclImdb.tar.gz") as tf:
        raw = tf.extractfile("aclImdb/" + ds.ids[7]).read()
    assert decode_ids(ds.x[7]) == raw[:4096]
