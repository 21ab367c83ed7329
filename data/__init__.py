"""Data layer of mGRADE-HW: real data sets where they can be had, generators where LRA generates.

Entry point: `load_task(name, root=None, split='train', limit=None, **options) -> Dataset`
(see `data.load.DATASETS` and data/README.md). Every loader returns integer arrays
(int16 PCM audio, uint8 pixels, int16 token ids), never resamples, rescales or cuts silently, and
raises `DataError` (a ValueError) naming the file and the problem on malformed input.
Nothing here downloads anything.
"""
from .asc import ASC_WORDS, load_asc, read_pcm16
from .core import DataError, Dataset, cache_dir, shared_dir, unpack_archive
from .image import load_cifar10, rgb_to_gray_lra
from .listops import generate_listops, generate_listops_files, load_listops
from .load import DATASETS, load_task
from .pathfinder import generate_pathfinder, load_pathfinder, write_pathfinder_files
from .speech import (
    GSC_V1_WORDS,
    GSC_V2_WORDS,
    KWS12_CLASSES,
    gsc_which_set,
    load_mlperf_kws,
    load_speech_commands,
    speaker_id,
    split_kws12,
)
from .text import load_aan, load_imdb
from .wav import read_wav, write_wav

__all__ = [
    "DataError", "Dataset", "DATASETS", "load_task", "cache_dir", "shared_dir", "unpack_archive",
    "GSC_V1_WORDS", "GSC_V2_WORDS", "KWS12_CLASSES", "gsc_which_set", "load_mlperf_kws",
    "load_speech_commands", "speaker_id", "split_kws12",
    "generate_listops", "generate_listops_files", "load_listops", "load_aan", "load_imdb",
    "load_cifar10", "rgb_to_gray_lra", "generate_pathfinder", "load_pathfinder", "write_pathfinder_files",
    "read_wav", "write_wav", "ASC_WORDS", "load_asc", "read_pcm16",
]
