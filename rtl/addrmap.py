"""Run-time configuration address map, generated from :func:`spec.arch.tensor_specs`.

Weights, biases and delays are not baked into the Verilog: they are written at run time through
the ``cfg`` port (a :class:`CfgBus`: ``addr``, ``data``, ``en``), so one Verilator build serves any
bundle of the same :class:`~spec.arch.Arch` and :class:`~spec.arch.Formats`. A map made with
``preload=tensors`` also bakes those tensors into the memories' initial contents
(:meth:`AddressMap.image`, at the words and lanes :meth:`AddressMap.writes` writes them), so the
design starts with the bundle loaded and needs no configuration writes (slow event-driven
simulators; the ``cfg`` port still works).

Every tensor lives in one wide memory whose word holds ``simd`` elements per *lane* (the lane is
the output channel the element belongs to; ``simd`` the input columns its projection takes per
cycle, :class:`rtl.microarch.Microarch`, 1 by default), written one element at a time::

    addr = tensor_id << (WORD_BITS + LANE_BITS) | word << LANE_BITS | slot

========================= ======= ==========================================================
tensor shape              lanes   element ``[j, i]`` -> (word, slot)
========================= ======= ==========================================================
matrix ``(R, N)``         H or C  ``(j // lanes * N/simd + i // simd, j % lanes * simd + i % simd)``
vector ``(R,)``           H or C  ``(j // lanes, j % lanes)``
``enc.table (V, H)``      H       ``(token, channel)``
========================= ======= ==========================================================

The decoder (``out.*``) has ``C`` lanes, everything else ``H``, over the projection's row passes
(``Microarch.<projection>_passes``: ``C / readout_passes``, ``H / proj_passes``, ...); the
normalisation's ``g`` and ``b`` have ``H / chan_passes`` (one word per group of channels it takes
per cycle). Rows beyond the lane count
(the mixer's ``E = expand * H`` rows, every projection's rows beyond its lanes) are further
*passes*, stored after each other. One read
gives every lane's ``simd`` weights of one column group (slot ``lane * simd + k`` holds column
``group * simd + k``); with ``simd = 1`` the slot is the lane.
This module is the only place that knows the map: the RTL decodes it and the testbenches
encode bundles with :meth:`AddressMap.writes`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from spec.arch import Arch, Formats, TensorSpec, tensor_specs
from spec.fixedpoint import Format

from .microarch import Microarch

#: The :class:`~rtl.microarch.Microarch` field that folds the matrix of a block (``enc.w`` -> ``enc``).
_FOLD_OF = {"enc": "enc", "conv": "taps", "rnn": "proj", "mix": "mix", "out": "readout"}

__all__ = ["AddressMap", "MemEntry", "CfgBus", "delay_format"]


def delay_format(arch: Arch) -> Format:
    """Delays are unsigned integers of :attr:`spec.arch.Arch.delay_bits` bits."""
    return Format(False, arch.delay_bits, 0)


@dataclasses.dataclass(frozen=True)
class MemEntry:
    """Where one tensor lives: memory of ``depth`` words x ``lanes * simd`` elements of ``fmt``."""

    tid: int
    spec: TensorSpec
    fmt: Format
    lanes: int
    depth: int
    lane_axis: int
    simd: int = 1           # columns per word and lane (matrices of a folded projection)

    @property
    def slots(self) -> int:
        """Elements per memory word: ``lanes * simd``."""
        return self.lanes * self.simd

    @property
    def name(self) -> str:
        return self.spec.name

    def locate(self) -> tuple[np.ndarray, np.ndarray]:
        """``(word, slot)`` of every element, arrays shaped like the tensor (the slot is the lane
        when ``simd`` is 1)."""
        shape = self.spec.shape
        if len(shape) == 1:
            j = np.arange(shape[0])
            return j // self.lanes, j % self.lanes
        r, n = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        if self.lane_axis == 1:                     # embedding table: word = token, lane = channel
            return r, n
        s = self.simd
        return (r // self.lanes) * (shape[1] // s) + n // s, (r % self.lanes) * s + n % s


class CfgBus(wiring.Signature):
    """Configuration write bus: one element per cycle when ``en`` is high (no back-pressure)."""

    def __init__(self, addr_width: int, data_width: int):
        super().__init__({"addr": Out(unsigned(addr_width)), "data": Out(unsigned(data_width)),
                          "en": Out(1)})


class AddressMap:
    """The configuration address map of one architecture (see the module docstring)."""

    def __init__(self, arch: Arch, fmts: Formats, *, preload=None, micro: Microarch | None = None):
        self.arch, self.fmts = arch, fmts
        self.micro = (micro or Microarch()).check(arch)     # how the RTL reads the weights
        self.preload = preload          # tensors (a bundle's, or a dict) baked into the memories, or None
        H, C = arch.hidden, arch.n_classes
        self.entries: dict[str, MemEntry] = {}
        for tid, s in enumerate(tensor_specs(arch)):
            fmt = delay_format(arch) if s.role == "delay" else getattr(fmts, s.role)
            lanes = C if s.name.startswith("out.") else H
            block = s.name.split(".")[-2]
            if block == "norm":             # the normalisation takes H / chan_passes channels per cycle
                lanes = H // self.micro.chan_passes
            elif block in _FOLD_OF and s.name != "enc.table":     # a projection's lanes: rows / row passes
                lanes //= getattr(self.micro, _FOLD_OF[block] + "_passes")
            simd = 1
            if s.name == "enc.table":
                lane_axis, depth = 1, s.shape[0]
            elif len(s.shape) == 1:
                lane_axis, depth = 0, -(-s.shape[0] // lanes)
            else:
                simd = getattr(self.micro, _FOLD_OF[s.name.split(".")[-2]])
                lane_axis, depth = 0, -(-s.shape[0] // lanes) * (s.shape[1] // simd)
            self.entries[s.name] = MemEntry(tid, s, fmt, lanes, depth, lane_axis, simd)
        self.lane_bits = ceil_log2(max(e.slots for e in self.entries.values()))
        self.word_bits = ceil_log2(max(e.depth for e in self.entries.values()))
        self.tid_bits = max(1, ceil_log2(len(self.entries)))
        self.addr_width = self.tid_bits + self.word_bits + self.lane_bits
        self.data_width = max(e.fmt.bits for e in self.entries.values())

    def __getitem__(self, name: str) -> MemEntry:
        return self.entries[name]

    def signature(self) -> CfgBus:
        return CfgBus(self.addr_width, self.data_width)

    def address(self, name: str, word, lane):
        e = self.entries[name]
        return (e.tid << (self.word_bits + self.lane_bits)) | (np.asarray(word) << self.lane_bits) | np.asarray(lane)

    def image(self, name: str, tensor) -> np.ndarray:
        """Contents of the memory of tensor ``name`` holding ``tensor`` (codes): ``(depth, lanes)``
        int64 (``slots`` = ``lanes * simd``), every element at the (word, slot) :meth:`writes` writes it
        to, unused slots 0."""
        e = self.entries[name]
        img = np.zeros((e.depth, e.slots), np.int64)
        word, lane = e.locate()
        img[word, lane] = np.asarray(tensor, np.int64)
        return img

    def writes(self, tensors) -> tuple[np.ndarray, np.ndarray]:
        """All configuration writes of a bundle (or a dict of tensors): ``(addr, data)`` uint64 arrays.

        ``data`` is the element's code in two's complement, ``data_width`` bits.
        """
        addrs, datas = [], []
        mask = (1 << self.data_width) - 1
        for name, e in self.entries.items():
            a = np.asarray(tensors[name], dtype=np.int64)
            word, lane = e.locate()
            addrs.append(self.address(name, word, lane).reshape(-1).astype(np.uint64))
            datas.append((a.reshape(-1) & mask).astype(np.uint64))
        return np.concatenate(addrs), np.concatenate(datas)
