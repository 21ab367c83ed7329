"""Bit-accurate NumPy model of mGRADE-HW (``Network``), its float64 reference and SC non-idealities.

    from sim import Network
    net = Network(bundle)                      # exact integer contract (README, spec/)
    res = net.run(x, lengths=None, trace=True) # whole sequences: res.logits, res.step_logits, ...
    st = net.init_state(batch); st, l = net.step(st, x_t); net.readout(st)   # streaming, same bits
"""
from .network import LAYER_TRACE_NAMES, Network, Result, State, saturation_names, trace_names
from .noise import (ChargeInjection, Chip, Comparator, Leakage, Mismatch, NoiseModel, ReferenceLevels,
                    Thermal)
from .reference import Reference, ReferenceResult, deviation, float_params

__all__ = [n for n in dir() if not n.startswith("_")]
