"""On-disk cache of sweep results, keyed by content hashes.

A result is stored as ``<root>/<key[:2]>/<key>.json`` where ``key`` is the SHA-256 of a canonical
JSON description of everything the result depends on:

* the bundle's content (:func:`bundle_digest`: architecture, formats and every tensor's codes;
  the free-form meta is left out: it does not change a single bit of the result),
* the evaluation data (:attr:`analysis.data.EvalData.digest`: inputs, labels, lengths),
* the noise model (every field of every non-ideality) and the seed,
* the evaluation parameters (batch size),
* the code that computes it (:func:`code_digest`: the sources of ``spec/``, ``sim/`` and
  ``analysis/evaluate.py``), so that a change to the model invalidates what it computed.

The root is ``$MGRADE_SWEEP_CACHE`` if set, else ``<repo>/.cache/sweeps`` (git-ignored).
Writes are atomic (temporary file + rename), so parallel workers and interrupted runs never leave
a half-written entry; an unreadable entry counts as a miss and is recomputed.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .settings import REPO

__all__ = ["Cache", "cache_root", "canonical", "key_of", "bundle_digest", "array_digest", "code_digest",
           "tree_digest"]

#: Bump when the meaning of a cached value changes.
CACHE_VERSION = 1


def cache_root() -> Path:
    env = os.environ.get("MGRADE_SWEEP_CACHE")
    return Path(env) if env else REPO / ".cache" / "sweeps"


def canonical(obj: Any) -> Any:
    """A JSON-able, deterministic form of ``obj`` (dataclasses carry their class name; floats keep
    their exact ``repr``; NumPy scalars and arrays become Python values)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d = {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"__class__": type(obj).__name__, **d}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__array__": array_digest(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return repr(obj)
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(f"cannot build a cache key from {type(obj).__name__}: {obj!r}")


def key_of(**parts: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``parts`` (plus the cache version)."""
    text = json.dumps(canonical(dict(parts, _cache_version=CACHE_VERSION)), sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(a: np.ndarray) -> str:
    """Hash of an integer array's values and shape (independent of its storage dtype)."""
    a = np.asarray(a)
    h = hashlib.sha256(str(a.shape).encode())
    h.update(np.ascontiguousarray(a.astype(np.int64) if a.dtype.kind in "iub" else a).tobytes())
    return h.hexdigest()


def bundle_digest(bundle) -> str:
    """Hash of what a bundle computes: arch, formats and tensor values (not its meta)."""
    h = hashlib.sha256()
    h.update(json.dumps({"arch": bundle.arch.to_json(), "formats": bundle.formats.to_json()},
                        sort_keys=True).encode())
    for name in sorted(bundle.tensors):
        h.update(name.encode() + b"\0" + array_digest(bundle.tensors[name]).encode())
    return h.hexdigest()


_CODE_DIGEST: str | None = None


def code_digest() -> str:
    """Hash of the sources that determine a result: ``spec/*.py``, ``sim/*.py``, ``analysis/evaluate.py``."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        files = sorted((REPO / "spec").glob("*.py")) + sorted((REPO / "sim").glob("*.py")) + \
            [REPO / "analysis" / "evaluate.py"]
        h = hashlib.sha256()
        for f in files:
            if f.exists():
                h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


def tree_digest(*folders: str) -> str:
    """Hash of every file under ``folders`` (relative to the repository; ``__pycache__`` left out):
    the code, and the committed data, that a result computed from them depends on."""
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted((REPO / folder).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class Cache:
    """A folder of JSON results. ``hits`` and ``misses`` count :meth:`get` outcomes.

    ``Cache(None)`` uses :func:`cache_root`; ``Cache(False)`` is a disabled cache (always a miss,
    never writes)."""

    def __init__(self, root: str | os.PathLike | None | bool = None) -> None:
        self.enabled = root is not False
        self.root = cache_root() if root in (None, True) else (Path(root) if self.enabled else None)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            self.misses += 1
            return None
        p = self.path(key)
        try:
            value = json.loads(p.read_text())
            if not isinstance(value, dict) or value.get("_key") != key:
                raise ValueError("entry does not match its key")
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        if not self.enabled:
            return
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(dict(value, _key=key), fh)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def __contains__(self, key: str) -> bool:
        return self.enabled and self.path(key).is_file()

    def __repr__(self) -> str:
        return f"Cache({self.root}, hits={self.hits}, misses={self.misses})"
