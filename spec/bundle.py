"""The weight bundle: the one file that carries a trained network to sim/ and rtl/.

File format (``.npz``, written without pickles, read with ``allow_pickle=False``):

* ``__header__``: UTF-8 JSON, stored as a uint8 array, with
  ``{"format": "mgrade-hw-bundle", "version": 1, "gate_scale": GATE_SCALE, "arch": {...},
  "formats": {...}, "tensors": {name: {"shape": [...], "role": ..., "dtype": ..., "sha256": ...}},
  "meta": {...}}``.
* one integer array per tensor of :func:`spec.arch.tensor_specs`, named as there.

:func:`load_bundle` validates everything and raises one :class:`BundleError` that names the
file, the tensor and the problem. Nothing is clipped, cast or reshaped silently.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .arch import GATE_SCALE, Arch, ArchError, Formats, check_formats, tensor_specs
from .fixedpoint import FormatError, storage_dtype

__all__ = ["Bundle", "BundleError", "load_bundle", "save_bundle", "BUNDLE_VERSION", "random_bundle"]

BUNDLE_FORMAT = "mgrade-hw-bundle"
BUNDLE_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER = 1 << 20


class BundleError(ValueError):
    """A weight bundle is missing, corrupt, or inconsistent with its architecture."""


@dataclasses.dataclass
class Bundle:
    """Architecture + formats + integer tensors (+ free-form metadata: task, split, accuracy)."""

    arch: Arch
    formats: Formats
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self.arch, self.formats, self.tensors, where="bundle")

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def layer(self, i: int) -> dict[str, np.ndarray]:
        """The tensors of layer ``i`` without their ``layers.i.`` prefix."""
        p = f"layers.{i}."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def validate(arch: Arch, fmts: Formats, tensors: Mapping[str, Any], *, where: str) -> None:
    try:
        check_formats(arch, fmts)
    except (ArchError, FormatError) as e:
        raise BundleError(f"{where}: {e}") from None
    specs = tensor_specs(arch)
    names = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in tensors]
    if missing:
        raise BundleError(f"{where}: missing tensor(s) {missing} required by the architecture")
    extra = sorted(set(tensors) - names)
    if extra:
        raise BundleError(f"{where}: unexpected tensor(s) {extra} not used by the architecture "
                          f"(hidden={arch.hidden}, layers={arch.layers}, mix={arch.mix!r}, norm={arch.norm!r})")
    for s in specs:
        a = tensors[s.name]
        if not isinstance(a, np.ndarray):
            raise BundleError(f"{where}: tensor {s.name!r} is a {type(a).__name__}, expected a numpy array")
        if a.dtype.kind not in "iu":
            raise BundleError(f"{where}: tensor {s.name!r} has dtype {a.dtype}; integer codes expected")
        if tuple(a.shape) != s.shape:
            raise BundleError(f"{where}: tensor {s.name!r} has shape {tuple(a.shape)}, "
                              f"the architecture needs {s.shape} ({s.doc})")
        lo, hi = s.bounds(arch, fmts)
        if a.size:
            bad = np.argwhere((a < lo) | (a > hi))
            if len(bad):
                idx = tuple(int(i) for i in bad[0])
                what = f"delay range 0..{arch.d_max}" if s.role == "delay" else \
                    f"{getattr(fmts, s.role).name} range [{lo}, {hi}]"
                raise BundleError(f"{where}: tensor {s.name!r}: value {int(a[idx])} at index {idx} is outside "
                                  f"the {what} ({len(bad)} value(s) out of range); re-export the bundle")


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` to ``path`` (``.npz``); returns the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    entries = {}
    for s in tensor_specs(bundle.arch):
        a = bundle.tensors[s.name]
        dt = np.dtype(np.int16) if s.role == "delay" else storage_dtype(getattr(bundle.formats, s.role))
        a = a.astype(dt)
        arrays[s.name] = a
        entries[s.name] = {"shape": list(a.shape), "role": s.role, "dtype": str(a.dtype), "sha256": _sha(a)}
    header = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "gate_scale": GATE_SCALE,
              "arch": bundle.arch.to_json(), "formats": bundle.formats.to_json(),
              "tensors": entries, "meta": bundle.meta}
    arrays[_HEADER] = np.frombuffer(json.dumps(header, indent=1, sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)
    return path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle; raises :class:`BundleError` naming what is wrong."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise BundleError(f"{where}: no such bundle file (export one with `python -m models.export`)")
    if not path.is_file():
        raise BundleError(f"{where}: is not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise BundleError(f"{where}: member {bad!r} is corrupt (CRC mismatch); the file is damaged")
        npz = np.load(path, allow_pickle=False)
    except BundleError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise BundleError(f"{where}: not a readable .npz bundle (truncated or not a bundle?): {e}") from None
    with npz:
        if _HEADER not in npz.files:
            raise BundleError(f"{where}: no {_HEADER!r} entry; this .npz is not an mGRADE-HW bundle")
        try:
            raw = npz[_HEADER]
        except Exception as e:  # zlib errors, bad npy headers
            raise BundleError(f"{where}: header entry is unreadable: {e}") from None
        if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_HEADER:
            raise BundleError(f"{where}: header entry must be a 1-D uint8 array of at most {_MAX_HEADER} bytes")
        try:
            header = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{where}: header is not valid UTF-8 JSON: {e}") from None
        if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{where}: header does not declare format {BUNDLE_FORMAT!r}")
        ver = header.get("version")
        if ver != BUNDLE_VERSION:
            raise BundleError(f"{where}: bundle version {ver!r} is not supported (this code reads version "
                              f"{BUNDLE_VERSION}); re-export it with this version of models.export")
        if header.get("gate_scale") != GATE_SCALE:
            raise BundleError(f"{where}: gate scale {header.get('gate_scale')!r} differs from the pinned "
                              f"{GATE_SCALE!r}")
        try:
            arch = Arch.from_json(header.get("arch"))
            fmts = Formats.from_json(header.get("formats"))
        except (ArchError, FormatError) as e:
            raise BundleError(f"{where}: {e}") from None
        entries = header.get("tensors")
        if not isinstance(entries, dict):
            raise BundleError(f"{where}: header has no 'tensors' table")
        meta = header.get("meta", {})
        if not isinstance(meta, dict):
            raise BundleError(f"{where}: header 'meta' must be an object")
        stray = sorted(set(npz.files) - set(entries) - {_HEADER})
        if stray:
            raise BundleError(f"{where}: array(s) {stray} are not listed in the header")
        tensors: dict[str, np.ndarray] = {}
        for name, ent in entries.items():
            if name not in npz.files:
                raise BundleError(f"{where}: tensor {name!r} is listed in the header but missing from the file")
            try:
                a = npz[name]
            except Exception as e:
                raise BundleError(f"{where}: tensor {name!r} is unreadable (truncated?): {e}") from None
            if not isinstance(ent, dict) or ent.get("dtype") != str(a.dtype) or \
                    list(ent.get("shape", [])) != list(a.shape):
                raise BundleError(f"{where}: tensor {name!r}: stored dtype/shape {a.dtype}{list(a.shape)} "
                                  f"disagree with the header entry {ent!r}")
            if ent.get("sha256") != _sha(a):
                raise BundleError(f"{where}: tensor {name!r}: checksum mismatch; the file was modified or damaged")
            tensors[name] = a
    validate(arch, fmts, tensors, where=where)
    return Bundle(arch, fmts, tensors, meta)


def random_bundle(arch: Arch, fmts: Formats | None = None, *, seed: int = 0, scale: float = 0.5,
                  meta: dict | None = None) -> Bundle:
    """A valid bundle with random weights (for tests and for RTL work before training).

    Weights are drawn so that activations stay in range most of the time: each weight's real
    value is ~N(0, scale / sqrt(fan_in)), then quantised with saturation.
    """
    from .fixedpoint import quantize_real

    fmts = fmts or Formats()
    rng = np.random.default_rng(seed)
    tensors = {}
    for s in tensor_specs(arch):
        if s.role == "delay":
            # distinct delays per channel, sorted; delay 0 always present when taps allow
            d = np.stack([np.sort(rng.choice(arch.d_max + 1, size=arch.taps, replace=False))
                          for _ in range(arch.hidden)])
            tensors[s.name] = d.astype(np.int64)
            continue
        fmt = getattr(fmts, s.role)
        fan_in = s.shape[-1] if len(s.shape) == 2 else 1
        if s.name.endswith("norm.g"):
            v = 1.0 + 0.1 * rng.standard_normal(s.shape)
        elif s.role == "bias":
            v = 0.1 * rng.standard_normal(s.shape)
        elif s.name == "enc.table":
            v = 0.5 * rng.standard_normal(s.shape)
        else:
            v = rng.standard_normal(s.shape) * scale / np.sqrt(fan_in)
        q, _ = quantize_real(v, fmt)
        tensors[s.name] = q
    return Bundle(arch, fmts, tensors, dict(meta or {"source": f"random_bundle(seed={seed})"}))
