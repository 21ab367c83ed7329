"""Verilog of a component, right in every standard simulator from time 0 (Verilog-2005 text).

``amaranth.back.verilog.convert`` runs Yosys ``proc -nomux``, which leaves every combinational
``m.d.comb`` switch as a process that ``write_verilog`` emits as ``always @*`` with a ``case``.
An ``always @*`` first runs when one of its inputs changes, so ``write_verilog`` adds a dummy
``reg ... = 0`` read inside each block: under Verilog-2005 scheduling a declaration initializer
is an event at time 0 and wakes the block. Under SystemVerilog scheduling (IEEE 1800, how
SystemVerilog simulators, ``iverilog -g2012`` among them, read the same file) initializers run
before any process starts, no event reaches the block, and what it drives stays X until an input
changes: the top's ``i.ready`` (driven by an FSM whose state already holds its reset value) stayed
X through reset, so a testbench saw no transfer while the design took the sample.

:func:`convert` runs the same flow with ``proc`` (with ``proc_mux``): every combinational process
becomes word-level ``$mux``/``$pmux`` cells, which ``write_verilog`` emits as continuous
assignments (``assign``, the ``$pmux`` through a ``function``). Continuous assignments are
evaluated at time 0 in both scheduling models, so every output and control signal is defined
from time 0 (registers and memories keep their declaration and ``initial`` initial values). The
text has no ``always @*`` at all (checked here); it is Verilog-2005, read unchanged by Verilator,
``iverilog -g2005`` and ``iverilog -g2012``. ``write_verilog`` runs without ``-norename``: with
``proc_mux`` the ``$pmux`` functions carry internal ``$``-names that Yosys would print unescaped,
so Yosys' own ``_N_`` names replace the internal names; every named Amaranth signal keeps its name.
"""
from __future__ import annotations

from amaranth.back import rtlil

__all__ = ["convert", "YOSYS_SCRIPT"]

_ATTRS = "-remove generator -remove top -remove src -remove amaranth.hierarchy -remove amaranth.decoding"

#: The Yosys passes between the RTLIL and ``write_verilog`` (Amaranth's, with ``proc`` in place of
#: ``proc -nomux``).
YOSYS_SCRIPT = ["proc -norom", "memory_collect", f"attrmap {_ATTRS}", f"attrmap -modattr {_ATTRS}",
                "write_verilog"]


def convert(component, name: str) -> str:
    """Verilog text of ``component`` (a ``lib.wiring`` component) with toplevel ``name``; no source
    locations (the text depends only on the design)."""
    from amaranth._toolchain.yosys import find_yosys
    il = rtlil.convert(component, name=name, emit_src=False)
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    text = yosys.run(["-q", "-"], "\n".join([f"read_rtlil <<rtlil\n{il}\nrtlil", *YOSYS_SCRIPT]),
                     ignore_warnings=True)
    if "always @*" in text:
        raise RuntimeError(f"{name}: Yosys left a combinational process (always @*) in the Verilog")
    return text
