"""PyTorch side of mGRADE-HW: the float and hardware-aware mGRADE model, training, export.

* :class:`models.mgrade.MGRADE`: the network for a :class:`spec.arch.Arch`; float mode, then
  :meth:`~models.mgrade.MGRADE.quantize` for hardware-aware training; in ``eval()`` the quantised
  model runs ``sim``'s integer engine on torch tensors (:meth:`~models.mgrade.MGRADE.run_integer`),
  the same code as ``sim/``.
* :mod:`models.export`: ``bundle_from_model``, ``model_from_bundle``, ``python -m models.export``.
* :mod:`models.train`: ``python -m models.train --task ...``.
"""
from .export import bundle_from_model, model_from_bundle
from .mgrade import MGRADE

__all__ = ["MGRADE", "bundle_from_model", "model_from_bundle"]
