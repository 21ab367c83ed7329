"""LRA Image: CIFAR-10 as sequences of 1024 grayscale pixels (uint8), from CIFAR-10 as JPEG files.

Grayscale conversion = LRA's: `tf.image.rgb_to_grayscale` on the uint8 image, then `tf.cast(..., int32)`
(LRA feeds the integer pixels 0..255 to an embedding; its `normalize` flag, off for LRA, would divide by
255). For uint8 input that TF op computes, in float32,
    g = (R/255)*0.2989 + (G/255)*0.5870 + (B/255)*0.1140,   pixel = trunc(g * 255.5)
(`convert_image_dtype` to float32 and back to uint8); `rgb_to_gray_lra` does exactly that in NumPy
(possible last-bit differences only from float32 summation order, at exact .0 boundaries).
Pixels are flattened row-major (x[i, 32*r + c]), LRA's sequence order.

The shared archive holds CIFAR-10 re-encoded as JPEG (quality 75; grey error about 4/255 against the
lossless originals): results on it are close to, not identical with, LRA's. JPEGs are decoded with
Pillow. Citation: A. Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', 2009.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .core import (
    DataError,
    Dataset,
    cached_dataset,
    class_counts,
    holdout_mask,
    limit_index,
    require_dir,
    tree_fingerprint,
)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CITATION = ("A. Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', 2009; "
            "LRA Image: Y. Tay et al., 'Long Range Arena', ICLR 2021")
LAYOUT = """  <root>/cifar10_jpeg/{train,test}/<class>/NNNN.jpg   (or <root> = the cifar10_jpeg folder itself)
  class in airplane automobile bird cat deer dog frog horse ship truck; 32x32 RGB
  or the official python version: <root>/cifar-10-batches-py/data_batch_1..5, test_batch"""
_GRAY_W = np.asarray([0.2989, 0.5870, 0.1140], dtype=np.float32)
_NAME_RE = re.compile(r"^\d+\.(jpg|jpeg|png)$", re.I)


def rgb_to_gray_lra(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint8 (...): tf.image.rgb_to_grayscale on uint8 input, emulated in float32."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise DataError(f"rgb_to_gray_lra needs uint8 (..., 3), got {rgb.dtype} {rgb.shape}")
    f = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    g = f[..., 0] * _GRAY_W[0] + f[..., 1] * _GRAY_W[1] + f[..., 2] * _GRAY_W[2]
    return (g * np.float32(255.5)).astype(np.uint8)


def _cifar_root(root: Path) -> Path:
    if (root / "cifar10_jpeg").is_dir():
        root = root / "cifar10_jpeg"
    return require_dir(root, "CIFAR-10 (JPEG layout)", LAYOUT)


def list_cifar(root: Path, split: str) -> tuple[list[str], np.ndarray]:
    d = root / split
    if not d.is_dir():
        raise DataError(f"{d}: missing folder; expected layout:\n{LAYOUT}")
    for sub in d.iterdir():
        if sub.is_dir() and sub.name not in CIFAR10_CLASSES:
            raise DataError(f"{sub}: bad label: folder {sub.name!r} is not a CIFAR-10 class")
    rel, y = [], []
    for c, name in enumerate(CIFAR10_CLASSES):
        cd = d / name
        if not cd.is_dir():
            raise DataError(f"{cd}: missing class folder; expected layout:\n{LAYOUT}")
        files = []
        for f in cd.iterdir():
            if f.name.startswith("."):
                continue
            if not _NAME_RE.match(f.name):
                raise DataError(f"{f}: unexpected file (expected NNNN.jpg)")
            files.append(f.name)
        files.sort(key=lambda s: (int(s.split(".")[0]), s))
        rel += [f"{split}/{name}/{fn}" for fn in files]
        y += [c] * len(files)
    return rel, np.asarray(y, dtype=np.int64)


def decode_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != mode:
                raise DataError(f"{path}: image mode {im.mode!r}, expected {mode!r} (no silent conversion)")
            if im.size != size:
                raise DataError(f"{path}: image size {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]} "
                                f"(nothing is resized)")
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: cannot decode image: truncated or corrupt ({e})") from None


PY_LAYOUT = """  <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch   (the official 'python version',
  pickled dicts with b'data' (10000, 3072) uint8, channel-planar R, G, B, and b'labels')"""


def _read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official CIFAR-10 python batch -> (rgb (n, 32, 32, 3) uint8, labels (n,)).
    The official files are pickles: only open copies you trust."""
    import pickle
    if not path.is_file():
        raise DataError(f"missing CIFAR-10 batch {path}; expected layout:\n{PY_LAYOUT}")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path}: truncated or corrupt CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"{path}: not a CIFAR-10 batch (a dict with b'data' and b'labels')")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (n, 3072)")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: bad label {int(labels.max() if labels.max() > 9 else labels.min())} (must be 0..9)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_cifar_py(root: Path, split: str, gray: bool, limit, source_note) -> Dataset:
    if split == "test":
        files = ["test_batch"]
    else:
        files = [f"data_batch_{i}" for i in range(1, 6)]
    parts = [_read_py_batch(root / f) for f in files]
    rgb = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    ids = [f"{f}:{i}" for f, p in zip(files, parts, strict=True) for i in range(len(p[1]))]
    if split != "test":
        n_train = int(round(len(y) * 0.9))
        sl = slice(0, n_train) if split == "train" else slice(n_train, None)
        rgb, y, ids = rgb[sl], y[sl], ids[sl]
    sel = limit_index(len(y), limit)
    rgb, y, ids = rgb[sel], y[sel], [ids[i] for i in sel]
    x = rgb_to_gray_lra(rgb).reshape(len(y), 1024) if gray else rgb.reshape(len(y), 1024, 3)
    meta = {"task": "image", "source": source_note or str(root.resolve()), "split": split, "n": len(y),
            "class_counts": class_counts(y, CIFAR10_CLASSES),
            "pixels": ("uint8 grayscale, tf.image.rgb_to_grayscale of the uint8 RGB (LRA), row-major"
                       if gray else "uint8 RGB, row-major"),
            "split_rule": "LRA: train = first 90 % of the training batches in order, val = last 10 %",
            "format": "official CIFAR-10 python batches (lossless)",
            "limit": limit, "licence": "research use, cite (Krizhevsky 2009)", "citation": CITATION}
    return Dataset(x, y, np.full(len(y), 1024, dtype=np.int64), list(CIFAR10_CLASSES),
                   np.asarray(ids, dtype=str), meta)


def load_cifar10(root: Path | str, split: str = "train", gray: bool = True, val_pct: float = 10.0,
                 limit: int | None = None, cache: bool = True, source_note: str | None = None) -> Dataset:
    """CIFAR-10 for LRA Image. x: (N, 1024) uint8 grayscale (gray=True) or (N, 1024, 3) uint8 RGB.

    Two layouts: the JPEG tree (see LAYOUT; the shared archive) and the official python batches
    (see PY_LAYOUT; lossless, what a full CIFAR-10 download holds).
    Splits: 'test' = the 10,000 test images; 'train'/'val' divide the 50,000 training images as LRA does
    (90 % / 10 %). Python batches: exactly LRA's rule (first 45,000 / last 5,000 in batch order, as
    tfds's train[:90%] / train[90%:]). JPEG tree (order not the original): class-stratified, the last
    `val_pct` % of each class in file order form 'val' (5,000), the rest 'train' (45,000).
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root)
    py = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    if (py / "batches.meta").is_file() or (py / "test_batch").is_file() or (py / "data_batch_1").is_file():
        return _load_cifar_py(py, split, gray, limit, source_note)
    root = _cifar_root(root)
    rel, y = list_cifar(root, "test" if split == "test" else "train")
    if split != "test":
        keep = holdout_mask(y, val_pct, split)
        rel = [r for r, k in zip(rel, keep, strict=True) if k]
        y = y[keep]
    sel = limit_index(len(rel), limit)
    rel = [rel[i] for i in sel]
    y = y[sel]

    def build() -> Dataset:
        rgb = np.zeros((len(rel), 32, 32, 3), dtype=np.uint8)
        it = rel
        if len(rel) > 5000:
            from tqdm import tqdm
            it = tqdm(rel, desc=f"decoding CIFAR-10 {split}", unit="img", leave=False)
        for i, r in enumerate(it):
            rgb[i] = decode_image(root / r, "RGB", (32, 32))
        x = rgb_to_gray_lra(rgb).reshape(len(rel), 1024) if gray else rgb.reshape(len(rel), 1024, 3)
        meta = {"task": "image", "source": source_note or str(root.resolve()), "split": split, "n": len(rel),
                "class_counts": class_counts(y, CIFAR10_CLASSES),
                "pixels": ("uint8 grayscale, tf.image.rgb_to_grayscale of the uint8 RGB (LRA), row-major"
                           if gray else "uint8 RGB, row-major"),
                "split_rule": f"val = last {val_pct:g}% of each class of the training images (file order)",
                "jpeg_note": "decoded from JPEG (quality 75) with Pillow; not the lossless CIFAR-10 bytes",
                "limit": limit, "licence": "research use, cite (Krizhevsky 2009)", "citation": CITATION}
        return Dataset(x, y, np.full(len(rel), 1024, dtype=np.int64), list(CIFAR10_CLASSES),
                       np.asarray(rel, dtype=str), meta)

    if limit is not None or not cache:
        return build()
    key = {"root": str(root.resolve()), "split": split, "gray": gray, "val_pct": val_pct,
           "tree": tree_fingerprint(root, rel)}
    return cached_dataset("image", key, build)
