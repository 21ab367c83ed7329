"""The weight bundle: the one file that carries a trained network to sim/ and rtl/.

File format (``.npz`` as ``numpy.savez`` writes it, without pickles):

* ``__header__``: UTF-8 JSON, stored as a uint8 array, with
  ``{"format": "mgrade-hw-bundle", "version": 1, "gate_scale": GATE_SCALE, "arch": {...},
  "formats": {...}, "tensors": {name: {"shape": [...], "role": ..., "dtype": ..., "sha256": ...}},
  "meta": {...}}``.
* one integer array per tensor of :func:`spec.arch.tensor_specs`, named as there.

:func:`load_bundle` validates everything and raises one :class:`BundleError` that names the
file, the tensor and the problem. Nothing is clipped, cast or reshaped silently. It treats the
file as hostile: each member's ``.npy`` header is checked against the header table and the
architecture before its data is read, and every size is bounded, so a small crafted file cannot
make it allocate gigabytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import reprlib
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from .arch import GATE_SCALE, Arch, ArchError, Formats, TensorSpec, check_formats, tensor_specs
from .fixedpoint import FormatError, storage_dtype

__all__ = ["Bundle", "BundleError", "load_bundle", "save_bundle", "BUNDLE_VERSION", "random_bundle"]

BUNDLE_FORMAT = "mgrade-hw-bundle"
BUNDLE_VERSION = 1
_HEADER = "__header__"
_NPY = ".npy"
#: Limits on what a file may declare, far above any real bundle (the shipped ones hold < 100k
#: weights in < 30 members, with 12 KB of JSON) so that a crafted file cannot exhaust memory.
_MAX_HEADER = 1 << 20        # bytes of header JSON
_MAX_NPY_HEADER = 1 << 14    # bytes of one member's .npy header (numpy writes 128)
_MAX_MEMBERS = 4096
_MAX_ELEMENTS = 1 << 25      # weights over all tensors
_MAX_ITEMSIZE = 8            # widest integer dtype
_MAX_INT_DIGITS = 100        # digits of one JSON integer
_REEXPORT = "re-export the bundle with `python -m models.export`"


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
                          f"(hidden={arch.hidden}, layers={arch.layers}, mix={arch.mix!r}, norm={arch.norm!r}); "
                          f"{_REEXPORT}")
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
        a = a.astype(dt, order="C")  # the loader refuses Fortran-order members
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
    """Read and validate a bundle; raises :class:`BundleError` naming what is wrong.

    The file is untrusted: every size is checked against the architecture before it is read,
    so a small crafted file cannot make the loader allocate more than the network needs.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise BundleError(f"{where}: no such bundle file (export one with `python -m models.export`)")
    if not path.is_file():
        raise BundleError(f"{where}: is not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            members = _members(zf, where)
            header = _read_header(zf, members, where)
            arch, fmts, entries, meta = _parse_header(header, where)
            specs = _specs(arch, members, entries, where)
            tensors = {s.name: _read_tensor(zf, members[s.name], s, entries[s.name], where) for s in specs}
    # zipfile's own refusals: damaged structures, "zip file version 9.7", names that are not UTF-8
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, UnicodeDecodeError) as e:
        raise BundleError(f"{where}: not a readable .npz bundle (truncated or damaged?): {e}; {_REEXPORT}") from None
    validate(arch, fmts, tensors, where=where)
    return Bundle(arch, fmts, tensors, meta)


def _members(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """Zip members by array name, refusing what ``numpy.savez`` never writes.

    Duplicate names matter because zipfile silently keeps the last one, so a checker and a
    reader could see different tensors; encryption and exotic compression are refused up front
    because zipfile reports them with RuntimeError / NotImplementedError.
    """
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise BundleError(f"{where}: {len(infos)} zip members, more than the {_MAX_MEMBERS} a bundle may hold; "
                          f"{_REEXPORT}")
    dup = sorted(n for n, k in Counter(zf.namelist()).items() if k > 1)
    if dup:
        raise BundleError(f"{where}: duplicate zip member name(s) {reprlib.repr(dup)}; which copy counts is "
                          f"ambiguous, so the file is refused; {_REEXPORT}")
    for i in infos:
        if not i.filename.endswith(_NPY) or i.flag_bits & 0x1 or \
                i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(f"{where}: zip member {reprlib.repr(i.filename)} is not a plain or deflated, "
                              f"unencrypted .npy array as numpy.savez writes; {_REEXPORT}")
    return {i.filename[:-len(_NPY)]: i for i in infos}


def _read_header(zf: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], where: str) -> bytes:
    """The raw JSON of the ``__header__`` member, at most ``_MAX_HEADER`` bytes."""
    if _HEADER not in members:
        raise BundleError(f"{where}: no {_HEADER!r} entry; this .npz is not an mGRADE-HW bundle")

    def check(shape: tuple, fortran: bool, dtype: np.dtype) -> None:
        if dtype != np.uint8 or len(shape) != 1:
            raise BundleError(f"{where}: header entry must be a 1-D uint8 array of at most {_MAX_HEADER} bytes, "
                              f"not {dtype}{list(shape)}; {_REEXPORT}")
    return _read_member(zf, members[_HEADER], _HEADER, _MAX_HEADER, check, where).tobytes()


def _parse_header(raw: bytes, where: str) -> tuple[Arch, Formats, dict, dict]:
    """Architecture, formats, tensor table and meta of a decoded header, each type-checked."""
    header = _decode_json(raw, where)
    _check_identity(header, where)
    try:
        arch = Arch.from_json(header.get("arch"))
        fmts = Formats.from_json(header.get("formats"))
    except ValueError as e:  # ArchError, FormatError, or int() of an over-long digit string
        raise BundleError(f"{where}: {_clip(e)}") from None
    entries = header.get("tensors")
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise BundleError(f"{where}: header has no 'tensors' table of objects; {_REEXPORT}")
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise BundleError(f"{where}: header 'meta' must be an object")
    return arch, fmts, entries, meta


def _decode_json(raw: bytes, where: str) -> Any:
    """Strict JSON: refuse what ``json`` accepts but no bundle holds (NaN, Infinity, 1e999,
    giant integers, nesting deeper than the interpreter's recursion limit)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float,
                          parse_int=_short_int)
    except RecursionError:
        raise BundleError(f"{where}: header is not valid UTF-8 JSON: nested too deeply to parse; "
                          f"{_REEXPORT}") from None
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError and the refusals below
        raise BundleError(f"{where}: header is not valid UTF-8 JSON: {_clip(e)}; {_REEXPORT}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (bundle headers hold finite numbers only)")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"number {_clip(text, 40)} is out of range for a float")
    return x


def _short_int(text: str) -> int:
    """Refuse giant integers ourselves: Python's own limit (4300 digits) depends on the interpreter
    and its settings, and converting a long digit string costs quadratic time."""
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits (more than {_MAX_INT_DIGITS})")
    return int(text)


def _check_identity(header: Any, where: str) -> None:
    """Format, version and gate scale, compared by type too (``True == 1``, ``1.0 == 1``)."""
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: header does not declare format {BUNDLE_FORMAT!r}")
    ver = header.get("version")
    if type(ver) is not int or ver != BUNDLE_VERSION:
        raise BundleError(f"{where}: bundle version {reprlib.repr(ver)} is not supported (this code reads version "
                          f"{BUNDLE_VERSION}); re-export it with this version of models.export")
    if header.get("gate_scale") != GATE_SCALE:
        raise BundleError(f"{where}: gate scale {reprlib.repr(header.get('gate_scale'))} differs from the pinned "
                          f"{GATE_SCALE!r}")


def _specs(arch: Arch, members: Mapping[str, Any], entries: Mapping[str, Any], where: str) -> list[TensorSpec]:
    """The architecture's tensors, once the header table and the zip members list exactly them
    and their total size is sane (the sizes come from the file, so they are bounded here)."""
    if arch.layers > _MAX_MEMBERS:  # tensor_specs makes a list entry per layer
        raise BundleError(f"{where}: arch.layers={arch.layers} needs more tensors than a bundle may hold")
    specs = tensor_specs(arch)
    need = [s.name for s in specs]
    missing = [n for n in need if n not in entries]
    if missing:
        raise BundleError(f"{where}: missing tensor(s) {reprlib.repr(missing)} required by the architecture; "
                          f"{_REEXPORT}")
    extra = sorted(set(entries) - set(need))
    if extra:
        raise BundleError(f"{where}: header lists tensor(s) {reprlib.repr(extra)} not used by the architecture "
                          f"(hidden={arch.hidden}, layers={arch.layers}, mix={arch.mix!r}, norm={arch.norm!r}); "
                          f"{_REEXPORT}")
    stray = sorted(set(members) - set(need) - {_HEADER})
    if stray:
        raise BundleError(f"{where}: array(s) {reprlib.repr(stray)} are not listed in the header; {_REEXPORT}")
    absent = [n for n in need if n not in members]
    if absent:
        raise BundleError(f"{where}: tensor(s) {reprlib.repr(absent)} listed in the header are missing from the "
                          f"file; {_REEXPORT}")
    n = sum(math.prod(s.shape) for s in specs)
    if n > _MAX_ELEMENTS:
        raise BundleError(f"{where}: the architecture needs {_clip(n, 40)} weights, more than the {_MAX_ELEMENTS} "
                          f"this loader accepts")
    return specs


def _read_tensor(zf: zipfile.ZipFile, info: zipfile.ZipInfo, spec: TensorSpec, entry: Mapping[str, Any],
                 where: str) -> np.ndarray:
    """One tensor, its .npy header checked against the header table and ``spec`` before reading."""
    name = spec.name
    if entry.get("shape") != list(spec.shape):
        raise BundleError(f"{where}: tensor {name!r} has shape {reprlib.repr(entry.get('shape'))} in the header "
                          f"table, the architecture needs {spec.shape} ({spec.doc})")

    def check(shape: tuple, fortran: bool, dtype: np.dtype) -> None:
        if dtype.kind not in "iu":
            raise BundleError(f"{where}: tensor {name!r} has dtype {dtype}; integer codes expected; {_REEXPORT}")
        if str(dtype) != entry.get("dtype") or shape != spec.shape:
            raise BundleError(f"{where}: tensor {name!r}: stored dtype/shape {dtype}{list(shape)} disagree with "
                              f"the header entry {reprlib.repr(entry)}; {_REEXPORT}")
        if fortran:
            raise BundleError(f"{where}: tensor {name!r} is stored in Fortran order; bundles hold C-order "
                              f"arrays; {_REEXPORT}")
    a = _read_member(zf, info, name, math.prod(spec.shape) * _MAX_ITEMSIZE, check, where)
    if entry.get("sha256") != _sha(a):
        raise BundleError(f"{where}: tensor {name!r}: checksum mismatch; the file was modified or damaged")
    return a


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, limit: int,
                 check: Callable[[tuple, bool, np.dtype], None], where: str) -> np.ndarray:
    """One .npy member in two bounded reads: its header, which ``check`` vets before any data is
    read, then exactly the bytes that shape and dtype need. ``limit`` bounds the data bytes
    before the member is opened, so what the file claims never sets the allocation."""
    if info.file_size > limit + _MAX_NPY_HEADER:
        raise BundleError(f"{where}: member {what!r} declares {info.file_size} bytes, more than its contents "
                          f"may need ({limit} + header); {_REEXPORT}")
    with zf.open(info) as f:
        shape, fortran, dtype, start = _npy_header(f, what, where)
        check(shape, fortran, dtype)
        n = math.prod(shape) * dtype.itemsize
        if info.file_size != start + n:
            raise BundleError(f"{where}: member {what!r} declares {info.file_size - start} data bytes, its "
                              f"{dtype}{list(shape)} array needs {n}; the file is damaged; {_REEXPORT}")
        data = _read_exact(f, n, what, where)
    return np.frombuffer(bytearray(data), dtype).reshape(shape)


def _npy_header(f: IO[bytes], what: str, where: str) -> tuple[tuple, bool, np.dtype, int]:
    """Shape, Fortran flag, dtype and data offset of a .npy stream, via numpy's public readers.

    Their failure modes are not documented (ValueError, SyntaxError, tokenize and zip errors all
    occur), so any exception here means an unreadable member.
    """
    try:
        version = npformat.read_magic(f)
        readers = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f".npy format version {version} (bundles use 1.0 or 2.0)")
        shape, fortran, dtype = readers[version](f, max_header_size=_MAX_NPY_HEADER)
        return shape, fortran, dtype, f.tell()
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise BundleError(f"{where}: member {what!r} has an unreadable .npy header: {_clip(e)}; "
                          f"{_REEXPORT}") from None


def _read_exact(f: IO[bytes], n: int, what: str, where: str) -> bytes:
    """Exactly ``n`` bytes; zipfile checks the member's CRC once the last byte is read."""
    try:
        data = f.read(n)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise BundleError(f"{where}: member {what!r} is corrupt ({e}); the file is damaged; {_REEXPORT}") from None
    if len(data) != n:
        raise BundleError(f"{where}: member {what!r} ends after {len(data)} of {n} data bytes (truncated); "
                          f"{_REEXPORT}")
    return data


def _clip(x: object, n: int = 300) -> str:
    """``str(x)`` cut to ``n`` characters: messages quote file content, which may be huge."""
    s = str(x)
    return s if len(s) <= n else s[:n] + "..."


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
