"""Bit-accurate NumPy model of mGRADE-HW, its float64 reference, and switched-capacitor non-idealities.

    from sim import Network, NoiseModel
    net = Network(bundle)                               # the exact integer contract (README, spec/)
    res = net.run(x, lengths=None, trace=True)          # whole sequences (B, T, d_in) or (B, T) tokens
    res.logits, res.step_logits, res.saturations, res.trace, res.predictions
    st = net.init_state(batch)                          # streaming: the same bits, one step at a time
    st, step_logits = net.step(st, x_t); net.readout(st)

    chip = Network(bundle, noise=NoiseModel.default(seed=3))   # one drawn chip (static errors)
    chip.run(x, seed=0)                                 # dynamic noise (kT/C, comparators) from seed

    from sim import Reference, deviation                # float64 reference; distance of the fixed point

Modules: ``network`` (Network, Result, State: the one integer engine, for NumPy and torch arrays),
``mingru`` (gate code, SC state update, comparator), ``delayline`` (ring buffers and the sparse
convolution), ``quant`` (array namespaces, counted requantisation, exact float64 GEMM), ``noise``
(non-idealities), ``reference``; trace and saturation names come from :mod:`spec.names`.
"""
from spec.names import LAYER_TRACE_NAMES, saturation_names, trace_names

from .network import Network, Result, State, work_dtype
from .noise import ChargeInjection, Chip, Comparator, Leakage, Mismatch, NoiseModel, ReferenceLevels, Thermal
from .reference import Reference, ReferenceResult, deviation, float_params

__all__ = ["LAYER_TRACE_NAMES", "saturation_names", "trace_names", "Network", "Result", "State", "work_dtype",
           "ChargeInjection", "Chip", "Comparator", "Leakage", "Mismatch", "NoiseModel", "ReferenceLevels", "Thermal",
           "Reference", "ReferenceResult", "deviation", "float_params"]
