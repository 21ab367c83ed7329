"""Weight memories written at run time through the configuration bus; initially zero, or holding
the tensors of the address map's ``preload`` (:meth:`rtl.addrmap.AddressMap.image`)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Value
from amaranth.lib import data
from amaranth.lib.memory import Memory

from .addrmap import AddressMap
from .fixed import shape_of

__all__ = ["weight_memory"]


def weight_memory(m: Module, amap: AddressMap, name: str, cfg, rd_addr=None):
    """Add the memory that holds tensor ``name`` to ``m``; return its lane-array read data.

    The memory has ``depth`` words of ``slots`` (``lanes * simd``) elements
    (``ArrayLayout(fmt, slots)``; slot ``lane * simd + k`` holds column ``k`` of the word's column
    group, :class:`rtl.addrmap.AddressMap`), one write port driven by the configuration bus
    ``cfg`` (element granularity: the address's lane field selects one slot) and one
    asynchronous read port at ``rd_addr`` (a register file: the value is available in the cycle
    the address is presented, which keeps the MAC sequencers free of read latency). The initial
    contents are zero, or with ``amap.preload`` that tensor's :meth:`~rtl.addrmap.AddressMap.image`.
    Returns a :class:`amaranth.lib.data.View` indexable by slot.
    """
    e = amap[name]
    layout = data.ArrayLayout(shape_of(e.fmt), e.slots)
    init = [] if amap.preload is None else amap.image(name, amap.preload[name]).tolist()
    mem = Memory(shape=layout, depth=e.depth, init=init)
    m.submodules["mem_" + name.replace(".", "_")] = mem
    wp = mem.write_port(granularity=1)
    lane = cfg.addr[:amap.lane_bits] if amap.lane_bits else Value.cast(0)
    word = cfg.addr[amap.lane_bits:amap.lane_bits + amap.word_bits]
    tid = cfg.addr[amap.lane_bits + amap.word_bits:]
    hit = cfg.en & (tid == e.tid)
    elem = cfg.data[:e.fmt.bits]
    m.d.comb += [
        wp.addr.eq(word),
        wp.data.eq(elem.replicate(e.slots)),
        wp.en.eq(Mux(hit, 1 << lane, 0)),
    ]
    rp = mem.read_port(domain="comb")
    if rd_addr is not None:
        m.d.comb += rp.addr.eq(rd_addr)
    return rp.data
