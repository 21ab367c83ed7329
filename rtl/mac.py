"""``MacLanes``: the time-multiplexed multiply-accumulate array every projection is built on."""
from __future__ import annotations

from amaranth.hdl import Module, ShapeLike, Signal, ValueLike
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.fixedpoint import Format

from .fixed import align_bias

__all__ = ["MacLanes", "column_sequencer", "column_cycles", "broadcast_columns"]


class MacLanes(wiring.Component):
    """``lanes`` parallel exact multiply-accumulators, one per output channel.

    Each cycle with ``en`` high, lane ``j`` does ``acc[j] += x[j] * w[j]``; with ``load`` high it
    starts over from ``init[j]`` (an aligned bias). A matrix-vector product of ``R <= lanes`` rows
    and ``N`` columns takes ``N`` cycles: the sequencer broadcasts ``v[i]`` to every lane's ``x``
    and presents weight column ``i``. The accumulator shape is exact (sized by
    :func:`spec.arch.acc_bound`), so no rounding or wrapping happens inside a sum.

    Members
    -------
    x, w : In(ArrayLayout)      operands per lane.
    init : In(ArrayLayout)      value loaded by ``load``.
    load, en : In(1)            ``load`` has priority.
    acc : Out(ArrayLayout)      the accumulators (registers).
    """

    def __init__(self, lanes: int, x_shape: ShapeLike, w_shape: ShapeLike, acc_shape: ShapeLike):
        self.lanes = lanes
        super().__init__({
            "x": In(data.ArrayLayout(x_shape, lanes)),
            "w": In(data.ArrayLayout(w_shape, lanes)),
            "init": In(data.ArrayLayout(acc_shape, lanes)),
            "load": In(1),
            "en": In(1),
            "acc": Out(data.ArrayLayout(acc_shape, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        for j in range(self.lanes):
            with m.If(self.load):
                m.d.sync += self.acc[j].eq(self.init[j])
            with m.Elif(self.en):
                m.d.sync += self.acc[j].eq(self.acc[j] + self.x[j] * self.w[j])
        return m


def column_sequencer(m: Module, start: ValueLike, done: Signal, n: int) -> tuple[Signal, Signal]:
    """The sequencer of an ``n``-column product on :class:`MacLanes` (encoder, gate/candidate, readout).

    The ``start`` cycle loads the biases (the caller drives ``load`` from ``start``); then ``running``
    is high for ``n`` cycles while the column index ``i`` counts ``0 .. n-1`` (drive ``en`` from
    ``running`` and present column ``i``); ``done`` (a register) is high in the cycle after the last
    column, when the accumulators hold the finished sums: :func:`column_cycles` (``n + 2``) cycles
    from ``start`` to ``done`` inclusive. Returns ``(i, running)``.
    """
    i = Signal(range(max(n, 2)), name="i")
    running = Signal(name="running")
    with m.If(start):
        m.d.sync += [running.eq(1), i.eq(0)]
    with m.Elif(running):
        m.d.sync += i.eq(i + 1)
        with m.If(i == n - 1):
            m.d.sync += running.eq(0)
    m.d.sync += done.eq(running & (i == n - 1))
    return i, running


def column_cycles(n: int) -> int:
    """Cycles of :func:`column_sequencer` from ``start`` to ``done`` inclusive: the ``start``
    (bias load) cycle, ``n`` column cycles and the ``done`` cycle."""
    return 1 + n + 1


def broadcast_columns(m: Module, mac: MacLanes, x: ValueLike, w, b, *, bias: Format, f_acc: int,
                      start: ValueLike, running: ValueLike) -> None:
    """Wire ``mac`` for the product ``W v + b`` while column ``i`` is presented.

    Every lane gets the broadcast element ``x = v[i]`` and its own weight ``w[lane]`` (the row of
    column ``i`` read from the weight memory); ``start`` loads the bias ``b[lane]`` (format ``bias``)
    aligned to the accumulator's ``f_acc`` fraction bits, ``running`` accumulates. With
    :func:`column_sequencer` this is the whole datapath of a projection.
    """
    for c in range(mac.lanes):
        m.d.comb += [mac.x[c].eq(x), mac.w[c].eq(w[c]), mac.init[c].eq(align_bias(b[c], bias, f_acc))]
    m.d.comb += [mac.load.eq(start), mac.en.eq(running)]
