"""LRA Text (byte-level IMDB sentiment) and LRA Retrieval (byte-level AAN citation pairs).

Byte vocabulary (LRA's `tfds.deprecated.text.ByteTextEncoder`): token id = byte value + 1 (1..256),
id 0 = padding; vocabulary size 257; ids stored as int16. The text is taken as the raw bytes of the
file (UTF-8; invalid UTF-8 is an error, as LRA's tfds pipeline decodes text first).

Length protocol (explicit, never silent): LRA Text cuts every review to its first 4K bytes
(`max_len=4096` here, as in common LRA re-implementations); the number of reviews that were longer is
recorded in meta['n_truncated'] (and their ids in meta['truncated_ids']). `max_len=None` keeps every
review whole and pads to the longest. LRA Retrieval: each document cut to `max_len=4000` bytes
(LRA: 4K per document, 8K per pair), counted likewise.

IMDB: A. Maas et al., 'Learning Word Vectors for Sentiment Analysis', ACL 2011 (research use; cite).
AAN: D. Radev et al., 'The ACL Anthology Network Corpus', 2013; LRA: Tay et al., ICLR 2021.
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

PAD = 0
VOCAB_SIZE = 257
IMDB_CLASSES = ["neg", "pos"]
LRA_TEXT_MAX_LEN = 4096
LRA_RETRIEVAL_MAX_LEN = 4000
IMDB_CITATION = ("A. Maas et al., 'Learning Word Vectors for Sentiment Analysis', ACL 2011; "
                 "LRA Text: Y. Tay et al., 'Long Range Arena', ICLR 2021")
AAN_CITATION = ("D. Radev et al., 'The ACL Anthology Network Corpus', Language Resources and Evaluation 2013; "
                "LRA Retrieval: Y. Tay et al., 'Long Range Arena', ICLR 2021")

IMDB_LAYOUT = """  <root>/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt   (or <root> = the aclImdb folder itself)
  ratings: neg 1..4, pos 7..10"""

AAN_LAYOUT = """\
  <root>/new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv, new_aan_pairs.test.tsv   (LRA lra_release/tsv_data)
  each line, no header: <label 0/1><TAB><id1><TAB><id2><TAB><text1><TAB><text2>"""

_REVIEW_RE = re.compile(r"^(\d+)_(\d+)\.txt$")


def encode_bytes(b: bytes) -> np.ndarray:
    """LRA byte encoding: id = byte + 1 (0 is padding)."""
    return np.frombuffer(b, dtype=np.uint8).astype(np.int16) + 1


def decode_ids(ids) -> bytes:
    a = np.asarray(ids)
    return (a[a > 0] - 1).astype(np.uint8).tobytes()


def _fit(seqs: list[np.ndarray], max_len: int | None, dtype=np.int16):
    """Pad (and, by the explicit max_len protocol, cut) to max_len; returns x, lengths, truncated index."""
    full = np.asarray([len(s) for s in seqs], dtype=np.int64)
    T = int(full.max()) if max_len is None else int(max_len)
    truncated = np.flatnonzero(full > T)
    x = np.zeros((len(seqs), T), dtype=dtype)
    for i, s in enumerate(seqs):
        s = s[:T]
        x[i, : len(s)] = s
    return x, np.minimum(full, T), full, truncated


# --------------------------------------------------------------------------------------------------
# IMDB (LRA Text)
# --------------------------------------------------------------------------------------------------

def _imdb_root(root: Path) -> Path:
    if (root / "aclImdb").is_dir():
        root = root / "aclImdb"
    return require_dir(root, "IMDB (aclImdb)", IMDB_LAYOUT)


def list_imdb(root: Path, split: str) -> tuple[list[str], np.ndarray]:
    """Relative paths and labels (0 neg, 1 pos) of one aclImdb split, sorted by (label, numeric id)."""
    rel, y = [], []
    for label, name in enumerate(IMDB_CLASSES):
        d = root / split / name
        if not d.is_dir():
            raise DataError(f"{d}: missing folder; expected layout:\n{IMDB_LAYOUT}")
        items = []
        for f in d.iterdir():
            if f.name.startswith("."):
                continue
            m = _REVIEW_RE.match(f.name)
            if not m:
                raise DataError(f"{f}: unexpected file name (expected <id>_<rating>.txt)")
            rating = int(m.group(2))
            ok = 1 <= rating <= 4 if label == 0 else 7 <= rating <= 10
            if not ok:
                raise DataError(f"{f}: bad label: rating {rating} in the {name!r} folder "
                                f"(neg must be 1..4, pos 7..10)")
            items.append((int(m.group(1)), f.name))
        items.sort()
        rel += [f"{split}/{name}/{fn}" for _, fn in items]
        y += [label] * len(items)
    if not rel:
        raise DataError(f"{root / split}: no reviews")
    return rel, np.asarray(y, dtype=np.int64)


def load_imdb(root: Path | str, split: str = "train", max_len: int | None = LRA_TEXT_MAX_LEN,
              limit: int | None = None, val: str | None = None, val_pct: float = 10.0, cache: bool = True,
              source_note: str | None = None) -> Dataset:
    """Byte-level IMDB reviews (LRA Text). x: (N, max_len) int16 ids (byte+1, 0 pad), y: 0 neg / 1 pos.

    split 'train' (25,000) or 'test' (25,000). IMDB has no validation split and LRA validates on the
    test set; 'val' therefore needs an explicit choice:
      val='lra'      -> the test set (LRA's protocol);
      val='holdout'  -> a class-stratified `val_pct` % of train (the last reviews of each class in id
                        order); load split='train' with val='holdout' as well to get the rest.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if val not in (None, "lra", "holdout"):
        raise DataError(f"val must be None, 'lra' or 'holdout', got {val!r}")
    if split == "val" and val is None:
        raise DataError("IMDB has no validation split: pass val='lra' (LRA validates on the test set) or "
                        "val='holdout' (a held-out part of train; load train with val='holdout' too)")
    if max_len is not None and max_len <= 0:
        raise DataError(f"max_len must be positive or None, got {max_len}")
    root = _imdb_root(Path(root))
    src_split = "test" if split == "test" or (split == "val" and val == "lra") else "train"
    rel, y = list_imdb(root, src_split)
    if src_split == "train" and val == "holdout":
        keep = holdout_mask(y, val_pct, split)
        rel = [r for r, k in zip(rel, keep, strict=True) if k]
        y = y[keep]
    sel = limit_index(len(rel), limit)
    rel = [rel[i] for i in sel]
    y = y[sel]
    if not rel:
        raise DataError(f"{root}: split {split!r} is empty")

    def build() -> Dataset:
        seqs = []
        for r in rel:
            b = (root / r).read_bytes()
            try:
                b.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{root / r}: not valid UTF-8 text ({e})") from None
            if not b:
                raise DataError(f"{root / r}: empty review")
            seqs.append(encode_bytes(b))
        x, lengths, full, trunc = _fit(seqs, max_len)
        meta = {"task": "text", "source": source_note or str(root.resolve()), "split": split,
                "source_split": src_split, "val_protocol": val, "n": len(rel),
                "class_counts": class_counts(y, IMDB_CLASSES),
                "vocab": "byte-level: id = byte + 1 (1..256), 0 = pad; size 257", "pad_id": PAD,
                "max_len": int(x.shape[1]), "truncation": (f"first {max_len} bytes (LRA protocol)"
                                                           if max_len is not None else "none"),
                "n_truncated": int(len(trunc)), "truncated_ids": [rel[i] for i in trunc],
                "full_length_max": int(full.max()), "full_length_mean": float(full.mean()),
                "order": "sorted by (label, review id)", "limit": limit,
                "licence": "research use, cite (Maas et al. 2011)", "citation": IMDB_CITATION}
        return Dataset(x, y, lengths, list(IMDB_CLASSES), np.asarray(rel, dtype=str), meta)

    if limit is not None or not cache:
        return build()
    key = {"root": str(root.resolve()), "split": split, "val": val, "val_pct": val_pct, "max_len": max_len,
           "tree": tree_fingerprint(root, rel)}
    return cached_dataset("text", key, build)


# --------------------------------------------------------------------------------------------------
# AAN (LRA Retrieval)
# --------------------------------------------------------------------------------------------------

AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


def read_aan_tsv(path: Path) -> list[tuple[int, str, str, bytes, bytes, int]]:
    """Rows as (label, id1, id2, text1 bytes, text2 bytes, line number)."""
    if not path.is_file():
        raise DataError(f"missing AAN file {path}; expected layout:\n{AAN_LAYOUT}")
    rows = []
    data = path.read_bytes()
    for i, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line:
            continue
        parts = line.split(b"\t")
        if len(parts) != 5:
            raise DataError(f"{path}:{i}: expected 5 tab-separated fields (label, id1, id2, text1, text2), "
                            f"got {len(parts)}")
        try:
            lab = float(parts[0])
        except ValueError:
            raise DataError(f"{path}:{i}: bad label {parts[0][:20]!r} (must be 0 or 1)") from None
        if lab not in (0.0, 1.0):
            raise DataError(f"{path}:{i}: bad label {parts[0].decode(errors='replace')!r} (must be 0 or 1)")
        for t in (parts[3], parts[4]):
            try:
                t.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{i}: text is not valid UTF-8 ({e})") from None
        rows.append((int(lab), parts[1].decode(), parts[2].decode(), parts[3], parts[4], i))
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def load_aan(root: Path | str, split: str = "train", max_len: int | None = LRA_RETRIEVAL_MAX_LEN,
             limit: int | None = None, synthetic: bool = False) -> Dataset:
    """AAN document pairs (LRA Retrieval). x: (N, 2, max_len) int16 byte ids, lengths (N, 2),
    y: 1 if the two papers are linked by a citation, else 0. Each document is cut to max_len bytes
    (LRA: 4000) and the cut is counted in meta['n_truncated_docs']; max_len=None pads to the longest."""
    if split not in AAN_FILES:
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root)
    if not root.exists():
        raise DataError(f"AAN data root {root} does not exist; expected layout:\n{AAN_LAYOUT}")
    path = root if root.is_file() else root / AAN_FILES[split]
    rows = read_aan_tsv(path)
    sel = limit_index(len(rows), limit)
    rows = [rows[i] for i in sel]
    docs = [encode_bytes(r[3]) for r in rows] + [encode_bytes(r[4]) for r in rows]
    xd, ld, full, trunc = _fit(docs, max_len)
    n = len(rows)
    x = np.stack([xd[:n], xd[n:]], axis=1)
    lengths = np.stack([ld[:n], ld[n:]], axis=1)
    y = np.asarray([r[0] for r in rows], dtype=np.int64)
    classes = ["unrelated", "citation"]
    meta = {"task": "retrieval", "source": str(path.resolve()), "split": split, "n": n,
            "class_counts": class_counts(y, classes), "pairs": [(r[1], r[2]) for r in rows],
            "vocab": "byte-level: id = byte + 1 (1..256), 0 = pad; size 257", "pad_id": PAD,
            "max_len": int(x.shape[2]), "n_truncated_docs": int(len(trunc)),
            "truncation": f"each document cut to its first {max_len} bytes (LRA protocol)" if max_len else "none",
            "layout": "x[:, 0] = text1, x[:, 1] = text2", "limit": limit,
            "synthetic": synthetic, "citation": AAN_CITATION}
    ids = np.asarray([f"{path.name}:{r[5]}" for r in rows], dtype=str)
    return Dataset(x, y, lengths, classes, ids, meta)
