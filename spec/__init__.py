"""The fixed-point contract shared by models/, sim/ and rtl/: formats, architecture, bundle."""
from .fixedpoint import Format, FormatError, Rounding, quantize_real, requantize, round_shift, saturate
from .arch import (GATE_SCALE, Arch, ArchError, Formats, DEFAULT_FORMATS, TensorSpec, acc_bound, acc_frac,
                   check_formats, gate_code, gate_format, memory_footprint, minimalist_arch, tensor_specs)
from .bundle import BUNDLE_VERSION, Bundle, BundleError, load_bundle, random_bundle, save_bundle

__all__ = [n for n in dir() if not n.startswith("_")]
