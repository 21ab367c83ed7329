"""``MacLanes``: the time-multiplexed multiply-accumulate array every projection is built on."""
from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Module, Mux, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.fixedpoint import Format

from .fixed import align_bias

__all__ = ["MacLanes", "column_sequencer", "column_cycles", "pass_sequencer", "Schedule", "projection_sequencer",
           "pass_cycles", "pass_results", "broadcast_columns", "column_group", "group_view", "adder_tree"]


class MacLanes(wiring.Component):
    """``lanes`` parallel exact multiply-accumulators, one per output channel, each taking
    ``simd`` input columns per cycle.

    Each cycle with ``en`` high, lane ``j`` does ``acc[j] += x[j] * w[j]`` (``simd`` 1), or
    ``acc[j] += sum_k x[j][k] * w[j][k]`` (``simd`` > 1: ``simd`` multipliers and an adder tree);
    with ``load`` high it starts over from ``init[j]`` (an aligned bias). A matrix-vector product
    of ``R <= lanes`` rows and ``N`` columns takes ``N / simd`` cycles: the sequencer broadcasts the
    column group ``v[i*simd .. i*simd+simd-1]`` to every lane's ``x`` and presents the weights of
    those columns. The accumulator shape is exact (sized by :func:`spec.arch.acc_bound` for all
    ``N`` columns; every partial sum is bounded by the same bound, and Amaranth's products and sums
    widen), so no rounding or wrapping happens inside a sum, whatever ``simd``.

    Members
    -------
    x, w : In(ArrayLayout)      operands per lane (per lane and column of the group if ``simd`` > 1).
    init : In(ArrayLayout)      value loaded by ``load``.
    load, en : In(1)            ``load`` has priority.
    acc : Out(ArrayLayout)      the accumulators (registers).
    """

    def __init__(self, lanes: int, x_shape: ShapeLike, w_shape: ShapeLike, acc_shape: ShapeLike, simd: int = 1):
        self.lanes, self.simd = lanes, simd
        if simd > 1:
            x_shape, w_shape = data.ArrayLayout(x_shape, simd), data.ArrayLayout(w_shape, simd)
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
            if self.simd == 1:
                prod = self.x[j] * self.w[j]
            else:
                prod = adder_tree([self.x[j][k] * self.w[j][k] for k in range(self.simd)])
            with m.If(self.load):
                m.d.sync += self.acc[j].eq(self.init[j])
            with m.Elif(self.en):
                m.d.sync += self.acc[j].eq(self.acc[j] + prod)
        return m


def adder_tree(terms: list) -> Value:
    """The exact sum of ``terms`` as a balanced tree of adders (depth ``ceil(log2(n))``)."""
    terms = [Value.cast(t) for t in terms]
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
    return terms[0]


def column_group(vec, i: ValueLike, simd: int):
    """Columns ``i*simd .. i*simd+simd-1`` of the vector ``vec`` (an ``ArrayLayout`` view): ``vec[i]``
    for ``simd`` 1, else a view of ``simd`` elements (one ``N/simd``-way selection of the group)."""
    if simd == 1:
        return vec[i]
    lay = data.ArrayLayout(vec.shape().elem_shape, simd)
    return data.View(lay, vec.as_value().word_select(i, lay.size))


def group_view(vec, i: ValueLike, n: int):
    """Elements ``i*n .. i*n+n-1`` of the vector ``vec`` (an ``ArrayLayout`` view) as a view of
    ``n`` elements (also for ``n`` 1); assignable."""
    lay = data.ArrayLayout(vec.shape().elem_shape, n)
    return data.View(lay, vec.as_value().word_select(i, lay.size))


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


def pass_sequencer(m: Module, start: ValueLike, done: Signal, n: int, passes: int):
    """The sequencer of a product of ``n`` column groups made in ``passes`` row passes (fewer
    lanes than rows, :class:`rtl.microarch.Microarch` ``*_passes``); ``passes`` 1 is
    :func:`column_sequencer`.

    The ``start`` cycle loads pass 0's biases; pass ``p`` runs ``n`` cycles (``running``, ``i`` =
    ``0 .. n-1``); after each pass but the last comes one ``store`` cycle, in which the caller
    stores the pass's sums (:func:`pass_results`) and loads pass ``p + 1``'s biases (drive
    ``load`` from ``start | store``, bias word ``Mux(start, 0, p + 1)``); ``done`` is high in the
    cycle after the last pass's last column (the last pass's sums are in the accumulators):
    ``passes * (n + 1) + 1`` cycles from ``start`` to ``done`` inclusive (:func:`pass_cycles`).
    Returns ``(i, p, running, store)``."""
    i = Signal(range(max(n, 2)), name="i")
    p = Signal(range(max(passes, 2)), name="p")
    running = Signal(name="running")
    store = Signal(name="store")
    last = p == passes - 1
    with m.If(start):
        m.d.sync += [running.eq(1), i.eq(0), p.eq(0)]
    with m.Elif(running):
        m.d.sync += i.eq(i + 1)
        with m.If(i == n - 1):
            m.d.sync += [running.eq(0), store.eq(~last)]
    with m.Elif(store):
        m.d.sync += [store.eq(0), running.eq(1), i.eq(0), p.eq(p + 1)]
    m.d.sync += done.eq(running & (i == n - 1) & last)
    return i, p, running, store


class Schedule(NamedTuple):
    """What :func:`projection_sequencer` gives a projection: the column group ``i``, the pass ``p``
    and ``store`` (None with one pass), ``running``, the weight-memory word ``word`` of group ``i``
    of pass ``p``, the bias word ``bias_word`` and the lanes' ``load`` (None: from ``start``)."""

    i: Signal
    p: Signal | None
    running: Signal
    store: Signal | None
    word: ValueLike
    bias_word: ValueLike
    load: ValueLike | None


def projection_sequencer(m: Module, start: ValueLike, done: Signal, n: int, passes: int) -> Schedule:
    """The sequencer of a projection of ``n`` column groups: :func:`column_sequencer` with one row
    pass (the original design's logic, unchanged), else :func:`pass_sequencer` with pass ``p``'s
    weights in words ``p n .. p n + n - 1`` and its biases in word ``p`` (loaded at ``start`` and
    in each ``store`` cycle), as :class:`rtl.addrmap.AddressMap` lays them out."""
    if passes == 1:
        i, running = column_sequencer(m, start, done, n)
        return Schedule(i, None, running, None, i, 0, None)
    i, p, running, store = pass_sequencer(m, start, done, n, passes)
    return Schedule(i, p, running, store, p * n + i, Mux(start, 0, p + 1), start | store)


def pass_cycles(n: int, passes: int = 1) -> int:
    """Cycles of :func:`pass_sequencer` from ``start`` to ``done`` inclusive: ``passes (n + 1) + 1``
    (:func:`column_cycles` for one pass)."""
    return passes * (n + 1) + 1


def pass_results(m: Module, out, live: list, p, store, start, sat_live=None, name: str = "res"):
    """Drive ``out`` (an ``ArrayLayout`` view of ``passes * len(live)`` rows) from a projection made
    in row passes: the rows of pass ``q`` < last are stored into registers in its ``store`` cycle
    (``live``: the lanes' results, from the accumulators), the last pass's rows are ``live``.
    With ``sat_live`` (the lanes' saturation flag), returns the flag of all rows so far: a register
    of the stored passes' flags (cleared at ``start``) or the live one."""
    n = len(live)
    passes = len(out) // n
    for q in range(passes - 1):
        reg = Signal(data.ArrayLayout(out.shape().elem_shape, n), name=f"{name}_pass{q}")
        with m.If(store & (p == q)):
            m.d.sync += [reg[j].eq(live[j]) for j in range(n)]
        m.d.comb += [out[q * n + j].eq(reg[j]) for j in range(n)]
    m.d.comb += [out[(passes - 1) * n + j].eq(live[j]) for j in range(n)]
    if sat_live is None:
        return None
    sticky = Signal(name=f"{name}_sat")
    with m.If(start):
        m.d.sync += sticky.eq(0)
    with m.Elif(store & sat_live):
        m.d.sync += sticky.eq(1)
    return sticky | sat_live


def column_cycles(n: int) -> int:
    """Cycles of :func:`column_sequencer` from ``start`` to ``done`` inclusive: the ``start``
    (bias load) cycle, ``n`` column cycles and the ``done`` cycle."""
    return 1 + n + 1


def broadcast_columns(m: Module, mac: MacLanes, x: ValueLike, w, b, *, bias: Format, f_acc: int,
                      start: ValueLike, running: ValueLike, load: ValueLike | None = None) -> None:
    """Wire ``mac`` for the product ``W v + b`` while column group ``i`` is presented.

    Every lane gets the broadcast element ``x = v[i]`` (``simd`` 1) or group ``x =``
    :func:`column_group` ``(v, i, simd)`` and its own weights ``w[lane]`` (``w[lane*simd + k]``: the
    slots of word ``i`` read from the weight memory, :class:`rtl.addrmap.AddressMap`); ``start``
    loads the bias ``b[lane]`` (format ``bias``) aligned to the accumulator's ``f_acc`` fraction
    bits (``load`` instead, if given: :func:`pass_sequencer`'s ``start | store``), ``running``
    accumulates. With :func:`column_sequencer` this is the whole datapath of a projection.
    """
    s = mac.simd
    for c in range(mac.lanes):
        ws = [mac.w[c].eq(w[c])] if s == 1 else [mac.w[c][k].eq(w[c * s + k]) for k in range(s)]
        m.d.comb += [mac.x[c].eq(x), *ws, mac.init[c].eq(align_bias(b[c], bias, f_acc))]
    m.d.comb += [mac.load.eq(start if load is None else load), mac.en.eq(running)]
