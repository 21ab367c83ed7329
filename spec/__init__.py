"""The fixed-point contract shared by models/, sim/ and rtl/: formats, architecture, bundle."""
from .arch import (
    DEFAULT_FORMATS,
    GATE_SCALE,
    Arch,
    ArchError,
    Formats,
    TensorSpec,
    acc_bound,
    acc_frac,
    check_formats,
    gate_code,
    gate_format,
    memory_footprint,
    minimalist_arch,
    tensor_specs,
)
from .bundle import BUNDLE_VERSION, Bundle, BundleError, load_bundle, random_bundle, save_bundle
from .fixedpoint import Format, FormatError, Rounding, quantize_real, requantize, round_shift, saturate
from .presets import PRESETS, Preset

__all__ = ["DEFAULT_FORMATS", "GATE_SCALE", "Arch", "ArchError", "Formats", "TensorSpec", "acc_bound", "acc_frac",
           "check_formats", "gate_code", "gate_format", "memory_footprint", "minimalist_arch", "tensor_specs",
           "BUNDLE_VERSION", "Bundle", "BundleError", "load_bundle", "random_bundle", "save_bundle",
           "Format", "FormatError", "Rounding", "quantize_real", "requantize", "round_shift", "saturate",
           "PRESETS", "Preset"]
