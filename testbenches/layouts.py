"""Packing and unpacking of the top's stream payloads and trace port (bit-exact, in bulk).

A payload is a :class:`amaranth.lib.data.StructLayout`; :func:`fields` flattens it into
``name -> (offset, element width, count, signed)`` and :func:`unpack` decodes many payloads at
once (one per time step) into int64 arrays with NumPy bit operations, so a testbench reads a
whole step's result with one simulator access and decodes a whole sequence in one go.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["fields", "unpack", "pack_ints", "nbits"]


def fields(layout: data.StructLayout, prefix: str = "", base: int = 0) -> dict[str, tuple[int, int, int, bool]]:
    out = {}
    for name, f in layout:
        key = prefix + name
        shape = f.shape
        if isinstance(shape, data.StructLayout):
            out.update(fields(shape, key + ".", base + f.offset))
        elif isinstance(shape, data.ArrayLayout):
            el = Shape.cast(shape.elem_shape)
            out[key] = (base + f.offset, el.width, shape.length, el.signed)
        else:
            s = Shape.cast(shape)
            out[key] = (base + f.offset, s.width, 0, s.signed)
    return out


def nbits(layout) -> int:
    return Shape.cast(layout).width


def _bits(values, width: int) -> np.ndarray:
    nbytes = (width + 7) // 8
    buf = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    b = np.frombuffer(buf, dtype=np.uint8).reshape(len(values), nbytes)
    return np.unpackbits(b, axis=1, bitorder="little")[:, :width]


def unpack(values, layout, *, words: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Decode payloads (Python ints, or a ``(N, n32)`` uint32 word array) into int64 arrays:
    ``(N,)`` for scalars, ``(N, count)`` for arrays."""
    width = nbits(layout)
    if words is not None:
        b = np.ascontiguousarray(words.astype("<u4")).view(np.uint8).reshape(len(words), -1)
        bits = np.unpackbits(b, axis=1, bitorder="little")[:, :width]
    else:
        bits = _bits(values, width)
    out = {}
    for key, (off, w, count, sgn) in fields(layout).items():
        n = max(count, 1)
        sl = bits[:, off:off + w * n].reshape(len(bits), n, w).astype(np.int64)
        v = (sl << np.arange(w, dtype=np.int64)).sum(axis=2)
        if sgn:
            v = np.where(v >= (1 << (w - 1)), v - (1 << w), v)
        out[key] = v if count else v[:, 0]
    return out


def pack_ints(layout, columns: dict[str, np.ndarray]) -> list[int]:
    """Encode per-step field values into payload ints (the inverse of :func:`unpack`)."""
    fl = fields(layout)
    n = len(next(iter(columns.values())))
    vals = [0] * n
    for key, arr in columns.items():
        off, w, count, _ = fl[key]
        arr = np.asarray(arr, dtype=np.int64).reshape(n, max(count, 1)) & ((1 << w) - 1)
        for e in range(arr.shape[1]):
            sh = off + e * w
            col = arr[:, e].tolist()
            vals = [v | (int(c) << sh) for v, c in zip(vals, col, strict=True)]
    return vals
