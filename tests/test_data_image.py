"""LRA Image (CIFAR-10 grayscale) and Pathfinder: loaders, LRA's grayscale rule, the generator, errors."""
import tarfile

import numpy as np
import pytest
from PIL import Image

from data import DataError, load_task, shared_dir
from data.core import FIXTURES
from data.image import CIFAR10_CLASSES, load_cifar10, rgb_to_gray_lra
from data.pathfinder import (
    _one_image,
    generate_pathfinder,
    load_pathfinder,
    markers_connected,
    params_for,
    write_pathfinder_files,
)


@pytest.fixture
def tmp_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MGRADE_DATA_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------

def test_gray_is_tf_rgb_to_grayscale():
    px = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]], np.uint8)
    want = [int(np.float32(g) * np.float32(255.5)) for g in
            (np.float32(c[0] / 255) * np.float32(0.2989) + np.float32(c[1] / 255) * np.float32(0.5870)
             + np.float32(c[2] / 255) * np.float32(0.1140) for c in px.astype(np.float32))]
    got = rgb_to_gray_lra(px)
    assert got.dtype == np.uint8 and got.tolist() == want
    assert got.tolist()[:5] == [255, 0, 76, 149, 29]
    with pytest.raises(DataError):
        rgb_to_gray_lra(px.astype(np.float32))


def test_cifar_fixture():
    tr = load_task("image", root="fixture", split="train")
    va = load_task("image", root="fixture", split="val")
    te = load_task("image", root="fixture", split="test")
    assert tr.x.shape == (90, 1024) and va.x.shape == (10, 1024) and te.x.shape == (20, 1024)
    assert tr.x.dtype == np.uint8 and tr.classes == CIFAR10_CLASSES
    assert np.bincount(va.y).tolist() == [1] * 10 and set(tr.ids).isdisjoint(va.ids)
    rgb = np.asarray(Image.open(FIXTURES / "image" / "cifar10_jpeg" / te.ids[5]))
    assert np.array_equal(te.x[5], rgb_to_gray_lra(rgb).reshape(-1))  # row-major flatten
    col = load_task("image", root="fixture", split="test", gray=False)
    assert col.x.shape == (20, 1024, 3) and np.array_equal(col.x[5], rgb.reshape(1024, 3))


def _cifar_tree(root, n=1):
    for c in CIFAR10_CLASSES:
        for s in ("train", "test"):
            d = root / "cifar10_jpeg" / s / c
            d.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(d / f"{k:04d}.jpg", quality=75)
    return root / "cifar10_jpeg"


@pytest.mark.parametrize("breakage, message", [
    ("truncated", "truncated or corrupt"),
    ("size", "image size 16x16, expected 32x32"),
    ("mode", "image mode 'L', expected 'RGB'"),
    ("folder", "bad label: folder 'unicorn'"),
    ("name", "unexpected file"),
    ("missing_class", "missing class folder"),
])
def test_cifar_malformed(tmp_path, tmp_cache, breakage, message):
    d = _cifar_tree(tmp_path)
    f = d / "test" / "cat" / "0000.jpg"
    if breakage == "truncated":
        f.write_bytes(f.read_bytes()[:200])
    elif breakage == "size":
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(f)
    elif breakage == "mode":
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(f)
    elif breakage == "folder":
        (d / "test" / "unicorn").mkdir()
    elif breakage == "name":
        (d / "test" / "cat" / "notes.txt").write_text("x")
    elif breakage == "missing_class":
        import shutil
        shutil.rmtree(d / "test" / "cat")
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, split="test")
    assert message in str(e.value)


def _py_batches(root, n=20, seed=0):
    import pickle
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        out[name] = (data, labels)
    return d, out


def test_cifar_python_batches(tmp_path):
    d, batches = _py_batches(tmp_path)
    tr = load_cifar10(tmp_path, split="train")
    va = load_cifar10(tmp_path, split="val")
    te = load_cifar10(tmp_path, split="test", gray=False)
    assert len(tr) == 90 and len(va) == 10 and len(te) == 20           # LRA: train[:90%] / train[90%:]
    data, labels = batches["test_batch"]
    assert np.array_equal(te.x[3], data[3].reshape(3, 1024).T) and te.y[3] == labels[3]  # planar -> (1024, 3)
    data5, _ = batches["data_batch_5"]
    rgb = data5[-1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(va.x[-1], rgb_to_gray_lra(rgb).reshape(-1)) and va.ids[-1] == "data_batch_5:19"


@pytest.mark.parametrize("breakage, message", [
    ("missing", "missing CIFAR-10 batch"),
    ("truncated", "truncated or corrupt CIFAR-10 batch"),
    ("label", "bad label 10"),
    ("shape", "expected uint8 (n, 3072)"),
])
def test_cifar_python_batches_malformed(tmp_path, breakage, message):
    import pickle
    d, _ = _py_batches(tmp_path)
    f = d / "data_batch_3"
    if breakage == "missing":
        f.unlink()
    elif breakage == "truncated":
        f.write_bytes(f.read_bytes()[:1000])
    elif breakage == "label":
        f.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    elif breakage == "shape":
        f.write_bytes(pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, split="train")
    assert message in str(e.value) and "data_batch_3" in str(e.value)


@pytest.mark.skipif(not (shared_dir() / "lra_image_cifar10_jpeg.tar.gz").is_file(),
                    reason="real data archive lra_image_cifar10_jpeg.tar.gz not present")
def test_cifar_real_archive():
    ds = load_task("image", split="test", limit=200)
    assert ds.x.shape == (200, 1024) and ds.x.dtype == np.uint8 and len(set(ds.y)) == 10
    with tarfile.open(shared_dir() / "lra_image_cifar10_jpeg.tar.gz") as tf:
        rgb = np.asarray(Image.open(tf.extractfile("cifar10_jpeg/" + ds.ids[0])))
    assert np.array_equal(ds.x[0], rgb_to_gray_lra(rgb).reshape(-1))


# --------------------------------------------------------------------------------------------------
# Pathfinder
# --------------------------------------------------------------------------------------------------

def test_pathfinder_generator_balance_determinism():
    a, ya = generate_pathfinder(12, seed=4, difficulty="easy", progress=False)
    b, yb = generate_pathfinder(12, seed=4, difficulty="easy", progress=False)
    c, _ = generate_pathfinder(12, seed=5, difficulty="easy", progress=False)
    assert a.shape == (12, 32, 32) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(ya, yb) and not np.array_equal(a, c)
    assert ya.sum() == 6                                   # exactly balanced
    h, yh = generate_pathfinder(6, seed=4, difficulty="hard", progress=False)
    for x in (a, h):
        assert np.all(x.max(axis=(1, 2)) == 255) and np.all(x[:, 0, :] == 0)  # 1-px padding stays black
    # two 14-dash contours plus distractors cover more than two 6-dash ones
    assert (h >= 64).sum(axis=(1, 2)).min() > 100 and (h >= 64).sum() / 6 > (a >= 64).sum() / 12


def test_pathfinder_chunks_slices_and_workers(monkeypatch):
    """A split generated alone, or by several processes, is the same images as that slice of the whole set."""
    import data.pathfinder as pf
    monkeypatch.setattr(pf, "CHUNK", 3)
    whole, y = generate_pathfinder(10, seed=7, difficulty="easy", progress=False, workers=1)
    two, y2 = generate_pathfinder(10, seed=7, difficulty="easy", progress=False, workers=2)
    part, yp = generate_pathfinder(10, seed=7, difficulty="easy", progress=False, workers=1, start=4, stop=8)
    assert np.array_equal(whole, two) and np.array_equal(y, y2)
    assert np.array_equal(part, whole[4:8]) and np.array_equal(yp, y[4:8]) and y.sum() == 5
    with pytest.raises(DataError, match="start <= stop"):
        generate_pathfinder(10, seed=7, start=8, stop=4)


@pytest.mark.parametrize("label", [0, 1])
def test_pathfinder_label_matches_pixels(label):
    rng = np.random.default_rng(label)
    for diff in ("easy", "hard"):
        p = params_for(diff)
        for _ in range(4):
            img, info = _one_image(label, p, rng)
            assert markers_connected(img, info["origin"], info["terminal"]) == bool(label)
            assert info["n_distractors"] >= 1


def test_pathfinder_fixture_and_lra_layout(tmp_path):
    parts = {s: load_task("pathfinder", root="fixture", split=s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in parts] == [16, 2, 2]
    assert parts["train"].x.shape == (16, 1024) and parts["train"].x.dtype == np.uint8
    assert parts["train"].meta["folder"] == "curv_contour_length_14"
    easy = load_task("pathfinder", root="fixture", split="train", difficulty="easy")
    assert easy.meta["folder"] == "curv_baseline"
    # write -> load round trip in LRA's layout keeps pixels, labels and order
    imgs, y = generate_pathfinder(10, seed=1, difficulty="easy", progress=False)
    base = write_pathfinder_files(tmp_path, imgs, y, difficulty="easy", per_folder=4)
    assert (base / "imgs" / "2" / "sample_1.png").is_file() and (base / "metadata" / "2.npy").is_file()
    line = (base / "metadata" / "0.npy").read_text().splitlines()[0].split()
    assert line[:2] == ["imgs/0", "sample_0.png"] and line[3] == str(y[0])
    got = [load_pathfinder(tmp_path, split=s, difficulty="easy") for s in ("train", "val", "test")]
    assert np.array_equal(np.concatenate([g.x for g in got]), imgs.reshape(10, -1))
    assert np.array_equal(np.concatenate([g.y for g in got]), y)
    # a real .npy (np.save of the string array, as snakes2.py writes it) is read too
    rows = np.array([ln.split() for ln in (base / "metadata" / "0.npy").read_text().splitlines()])
    np.save(base / "metadata" / "0.npy", rows)
    assert np.array_equal(load_pathfinder(tmp_path, split="train", difficulty="easy").y, got[0].y)


def test_pathfinder_generated_task():
    ds = load_task("pathfinder", split="test", limit=6, difficulty="easy", seed=2)
    assert ds.x.shape == (6, 1024) and ds.meta["source"].startswith("generated") and ds.y.sum() == 3


@pytest.mark.parametrize("breakage, message", [
    ("label", "bad label '2'"),
    ("fields", "expected at least 4 fields"),
    ("missing", "listed in 0.npy:1 but missing"),
    ("empty", "empty image file"),
    ("size", "image size 16x16"),
    ("mode", "image mode 'RGB', expected 'L'"),
    ("corrupt", "truncated or corrupt"),
    ("no_metadata", "missing metadata folder"),
])
def test_pathfinder_malformed(tmp_path, breakage, message):
    imgs, y = generate_pathfinder(4, seed=1, difficulty="easy", progress=False)
    base = write_pathfinder_files(tmp_path, imgs, y, difficulty="easy")
    meta = base / "metadata" / "0.npy"
    img = base / "imgs" / "0" / "sample_0.png"
    lines = meta.read_text().splitlines()
    if breakage == "label":
        lines[0] = lines[0].replace(f" 0 {y[0]} ", " 0 2 ")
        meta.write_text("\n".join(lines))
    elif breakage == "fields":
        meta.write_text("imgs/0 sample_0.png\n")
    elif breakage == "missing":
        img.unlink()
    elif breakage == "empty":
        img.write_bytes(b"")
    elif breakage == "size":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)
    elif breakage == "mode":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    elif breakage == "corrupt":
        img.write_bytes(img.read_bytes()[:30])
    elif breakage == "no_metadata":
        import shutil
        shutil.rmtree(base / "metadata")
    with pytest.raises(DataError) as e:
        load_pathfinder(tmp_path, split="train", difficulty="easy")
    assert message in str(e.value)
    if breakage == "empty":
        ds = load_pathfinder(tmp_path, split="train", difficulty="easy", skip_empty=True)
        assert ds.meta["n_skipped_empty"] == 1 and len(ds) == 2
