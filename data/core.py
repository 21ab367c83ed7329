"""Common pieces of the data layer: the `Dataset` record, `DataError`, where data lives, and the cache.

Where data lives
----------------
* **shared archives** (real public data, read where they lie, never copied into the repository):
  ``$MGRADE_SHARED_DATA`` if set, else ``<repo>/../shared/data``.
* **cache** (unpacked archives, decoded ``.npy`` arrays): ``$MGRADE_DATA_CACHE`` if set, else
  ``~/.cache/mgrade-hw`` (outside the repository; if you point the cache into the repository, use
  ``<repo>/data_cache``, which is git-ignored).
* **fixtures** (a few MB committed with the code, same formats as the public sets): ``data/fixtures``.

Nothing here downloads anything.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CACHE_VERSION = 2  # bump when a decoder or generator changes what it returns
SYSTEM_TAR_MIN_MEMBERS = 1000  # archives with more members are unpacked by the system tar (faster)


class DataError(ValueError):
    """Malformed or missing data. The message names the file and the problem."""


@dataclass
class Dataset:
    """A whole split of one task, as integer NumPy arrays.

    x        (N, T) or (N, T, d) integer array (int16 PCM audio, uint8 pixels, int16 token ids); for the
             retrieval task (N, 2, T) (the two documents of each pair).
    y        (N,) int64 class labels, indices into `classes`.
    lengths  (N,) int64 true length of each sequence before padding ((N, 2) for retrieval).
    classes  class names, `classes[y[i]]` is the name of example i.
    ids      (N,) str: where each example came from (file path relative to the data root, or
             'file.tsv:line'); used for traceability and group-disjoint splits.
    meta     source, split, counts, protocol notes, licence and citation.
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    classes: list[str]
    ids: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.y)
        if len(self.x) != n or len(self.lengths) != n or len(self.ids) != n:
            raise DataError(f"Dataset arrays disagree in length: x {len(self.x)}, y {n}, "
                            f"lengths {len(self.lengths)}, ids {len(self.ids)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index, **meta_updates) -> "Dataset":
        """The examples at `index` (an int array or boolean mask), in that order; meta counts updated."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        meta = dict(self.meta)
        meta.update(meta_updates)
        meta["n"] = int(len(index))
        meta["class_counts"] = class_counts(self.y[index], self.classes)
        return Dataset(self.x[index], self.y[index], self.lengths[index], list(self.classes),
                       self.ids[index], meta)


def class_counts(y: np.ndarray, classes: list[str]) -> dict[str, int]:
    c = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    return {name: int(c[i]) for i, name in enumerate(classes)}


def parse_options(items) -> dict:
    """Loader options from ``KEY=VALUE`` strings (``--data-opt``): values become int, float,
    None/True/False (``none``/``true``/``false``) or stay strings. A string alone is one item."""
    if isinstance(items, str):
        items = [items]
    out = {}
    for it in items:
        k, eq, v = str(it).partition("=")
        if not eq:
            raise ValueError(f"--data-opt needs KEY=VALUE, got {it!r}")
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        else:
            v = {"none": None, "true": True, "false": False}.get(v.lower(), v)
        out[k] = v
    return out


def limit_index(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a deterministic pseudo-random subset of `limit` of `n` items, in ascending order
    (so a limited load keeps the file order and draws from every class)."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    idx = np.random.default_rng(seed).permutation(n)[:limit]
    return np.sort(idx)


def holdout_mask(y: np.ndarray, val_pct: float, split: str) -> np.ndarray:
    """Boolean mask of the examples of ``split`` ('val' or anything else = train) when the last
    ``val_pct`` % of each class (in file order) is held out for validation. Small sets (fixtures)
    still get one val example per class that has two or more."""
    keep = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_val = int(round(len(idx) * val_pct / 100))
        if val_pct > 0 and len(idx) >= 2:
            n_val = max(1, n_val)
        keep[idx[len(idx) - n_val:] if split == "val" else idx[: len(idx) - n_val]] = True
    return keep


# --------------------------------------------------------------------------------------------------
# locations
# --------------------------------------------------------------------------------------------------

def shared_dir() -> Path:
    """Folder of the shared real-data archives (may not exist)."""
    env = os.environ.get("MGRADE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """Cache folder (created on first use): $MGRADE_DATA_CACHE, else ~/.cache/mgrade-hw.

    Outside the repository by default: nothing cached can be committed by accident, and unpacking
    50,000 small files there was 5x faster than inside the work tree on the development machine."""
    env = os.environ.get("MGRADE_DATA_CACHE")
    d = Path(env) if env else Path.home() / ".cache" / "mgrade-hw"
    d.mkdir(parents=True, exist_ok=True)
    return d


def shared_archive(name: str) -> Path:
    """Path of a shared archive, or a DataError saying where it was looked for."""
    p = shared_dir() / name
    if not p.is_file():
        raise DataError(
            f"shared archive {p} not found (set MGRADE_SHARED_DATA to the folder that holds {name}, "
            f"pass root=<path to the unpacked data set>, or root='fixture' for the small committed set)")
    return p


def require_dir(root: Path | str, what: str, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what}: data root {root} does not exist or is not a folder; expected layout:\n{layout}")
    return root


# --------------------------------------------------------------------------------------------------
# unpacking archives
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _lock(path: Path):
    """Exclusive inter-process lock (parallel test workers unpack or cache the same data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover  (not POSIX)
            pass
        yield


def _fingerprint_file(p: Path) -> dict:
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def unpack_archive(archive: Path | str, progress: bool = True) -> Path:
    """Unpack a .tar.gz once into `cache_dir()/unpacked/<name>/` and return that folder.

    A stamp file records the archive's path, size and mtime; a changed archive is unpacked again.
    Unpacking goes to a temporary folder first, so an interrupted unpack leaves nothing half done.
    Members with absolute paths, '..', links or devices are refused.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"archive {archive} not found")
    name = archive.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    dest = cache_dir() / "unpacked" / name
    stamp = dest / ".unpacked.json"
    fp = _fingerprint_file(archive)
    with _lock(dest.parent / f".{name}.lock"):
        return _unpack_locked(archive, name, dest, stamp, fp, progress)


@contextlib.contextmanager
def _staged_dir(dest: Path, prefix: str):
    """A fresh folder beside ``dest`` to fill; when the block succeeds it replaces ``dest`` in one
    rename, when it fails it is removed: readers never see a half-written ``dest``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _unpack_locked(archive: Path, name: str, dest: Path, stamp: Path, fp: dict, progress: bool) -> Path:
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == fp:
                return dest
        except (OSError, json.JSONDecodeError):
            pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _staged_dir(dest, f".{name}-") as tmp:
        try:
            tf = tarfile.open(archive, "r:*")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{archive}: not a readable tar archive ({e})") from e
        with tf:
            try:
                members = tf.getmembers()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # truncated gzip -> EOFError
                raise DataError(f"{archive}: truncated or corrupt archive ({type(e).__name__}: {e})") from e
            for m in members:
                mp = Path(m.name)
                if mp.is_absolute() or ".." in mp.parts or not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: refusing unsafe member {m.name!r}")
            tar_bin = shutil.which("tar")
            if tar_bin and len(members) > SYSTEM_TAR_MIN_MEMBERS:
                # the system tar is ~5x faster than tarfile on archives of many small files; the members
                # were checked above, and ownership/permissions from the archive are not applied
                bar = None
                if progress:
                    try:
                        from tqdm import tqdm
                        bar = tqdm(total=len(members), desc=f"unpacking {archive.name}", unit="file", leave=False)
                    except ImportError:  # pragma: no cover
                        pass
                with tempfile.TemporaryFile("w+") as errf:
                    proc = subprocess.Popen([tar_bin, "-xvf", str(archive), "-C", str(tmp), "--no-same-owner",
                                             "--no-same-permissions"], stdout=subprocess.PIPE, stderr=errf,
                                            text=True)
                    for _line in proc.stdout:  # one line per member extracted
                        if bar is not None:
                            bar.update(1)
                    rc = proc.wait()
                    errf.seek(0)
                    err = errf.read()
                if rc != 0:
                    raise DataError(f"{archive}: tar failed ({err.strip()[:300]})")
                if bar is not None:
                    bar.close()
            else:
                it = members
                if progress:
                    try:
                        from tqdm import tqdm
                        it = tqdm(members, desc=f"unpacking {archive.name}", unit="file", leave=False,
                                  disable=len(members) < 2000)
                    except ImportError:  # pragma: no cover
                        pass
                for m in it:
                    try:
                        tf.extract(m, tmp, set_attrs=False,
                                   **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
                    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                        raise DataError(f"{archive}: truncated or corrupt member {m.name!r} ({e})") from e
        (tmp / ".unpacked.json").write_text(json.dumps(fp))
    return dest


# --------------------------------------------------------------------------------------------------
# decoded-array cache
# --------------------------------------------------------------------------------------------------

def cached_dataset(task: str, key: dict[str, Any], build: Callable[[], Dataset], use_cache: bool = True) -> Dataset:
    """Return `build()`, cached as .npy files under `cache_dir()/arrays/<task>/<hash of key>/`.

    `key` must name everything the result depends on (source fingerprint, split, parameters).
    """
    if not use_cache:
        return build()
    key = dict(key, _cache_version=CACHE_VERSION, _task=task)
    h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    d = cache_dir() / "arrays" / task / h
    with _lock(d.parent / f".{h}.lock"):
        if (d / "meta.json").is_file():
            try:
                meta = json.loads((d / "meta.json").read_text())
                ds = Dataset(np.load(d / "x.npy"), np.load(d / "y.npy"), np.load(d / "lengths.npy"),
                             meta.pop("_classes"), np.load(d / "ids.npy"), meta)
                ds.meta.pop("_key", None)
                ds.meta["cache"] = str(d)
                return ds
            except (OSError, ValueError, KeyError):
                shutil.rmtree(d, ignore_errors=True)
        ds = build()
        with _staged_dir(d, f".{h}-") as tmp:
            np.save(tmp / "x.npy", ds.x)
            np.save(tmp / "y.npy", ds.y)
            np.save(tmp / "lengths.npy", ds.lengths)
            np.save(tmp / "ids.npy", np.asarray(ds.ids, dtype=str))
            (tmp / "meta.json").write_text(json.dumps(dict(ds.meta, _classes=list(ds.classes), _key=key),
                                                      indent=1, default=str))
    ds.meta["cache"] = str(d)
    return ds


def tree_fingerprint(root: Path, files: list[str]) -> str:
    """Hash of (relative path, size, mtime) of `files` under `root`: the cache key of a user's data tree."""
    h = hashlib.sha1(str(root.resolve()).encode())
    for rel in files:
        st = (root / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def pad_sequences(seqs: list[np.ndarray], length: int, dtype, pad: int = 0) -> np.ndarray:
    out = np.full((len(seqs), length), pad, dtype=dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
