"""Strict reader and writer of 16-bit PCM WAV files (the Speech Commands format).

`read_wav` parses the RIFF chunks itself, so that every problem is named precisely: not RIFF/WAVE,
no `fmt ` or `data` chunk, a compressed or float format, the wrong sample rate, sample width or channel
count, a data chunk that claims more bytes than the file holds (truncated file), an odd number of data
bytes. It returns the samples as int16 exactly as stored (value = pcm / 32768, the s16f15 input
format of the project): nothing is resampled, rescaled, mixed down or cut.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .core import DataError

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_KSDATAFORMAT_SUBTYPE_PCM = bytes.fromhex("0100000000001000800000aa00389b71")


def parse_wav(data: bytes, name: str = "<bytes>") -> tuple[int, int, int, bytes]:
    """Return (sample_rate, channels, bits_per_sample, pcm_bytes) of a PCM WAV, or raise DataError."""
    if len(data) < 12:
        raise DataError(f"{name}: truncated WAV file ({len(data)} bytes, shorter than the RIFF header)")
    riff, riff_size, wave = struct.unpack("<4sI4s", data[:12])
    if riff != b"RIFF" or wave != b"WAVE":
        raise DataError(f"{name}: not a RIFF/WAVE file (header {data[:12]!r})")
    if riff_size + 8 > len(data):
        raise DataError(f"{name}: truncated WAV file: RIFF header announces {riff_size + 8} bytes, "
                        f"file has {len(data)}")
    pos, end = 12, riff_size + 8
    fmt = None
    pcm = None
    while pos + 8 <= end:
        cid, csize = struct.unpack("<4sI", data[pos:pos + 8])
        body = pos + 8
        if body + csize > len(data):
            raise DataError(f"{name}: truncated WAV file: chunk {cid!r} announces {csize} bytes, "
                            f"only {len(data) - body} remain")
        if cid == b"fmt ":
            if csize < 16:
                raise DataError(f"{name}: 'fmt ' chunk too short ({csize} bytes)")
            tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", data[body:body + 16])
            if tag == WAVE_FORMAT_EXTENSIBLE and csize >= 40 and data[body + 24:body + 40] == _KSDATAFORMAT_SUBTYPE_PCM:
                tag = WAVE_FORMAT_PCM
            if tag != WAVE_FORMAT_PCM:
                raise DataError(f"{name}: WAV format tag 0x{tag:04x} is not integer PCM (0x0001)")
            if block_align != channels * ((bits + 7) // 8):
                raise DataError(f"{name}: inconsistent 'fmt ' chunk: block_align {block_align} for "
                                f"{channels} channel(s) of {bits} bits")
            fmt = (rate, channels, bits)
        elif cid == b"data":
            if fmt is None:
                raise DataError(f"{name}: 'data' chunk before the 'fmt ' chunk")
            pcm = data[body:body + csize]
        pos = body + csize + (csize & 1)  # chunks are word aligned
    if fmt is None:
        raise DataError(f"{name}: no 'fmt ' chunk")
    if pcm is None:
        raise DataError(f"{name}: no 'data' chunk")
    return fmt[0], fmt[1], fmt[2], pcm


def read_wav(path: Path | str, rate: int = 16000, channels: int = 1, bits: int = 16,
             max_samples: int | None = None) -> np.ndarray:
    """Samples of a PCM WAV as int16, checking rate, channel count and width; never converts.

    max_samples: longer files raise DataError (nothing is cut)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    r, c, b, pcm = parse_wav(data, str(path))
    if r != rate:
        raise DataError(f"{path}: sample rate {r} Hz, expected {rate} Hz (nothing is resampled)")
    if b != bits:
        raise DataError(f"{path}: sample width {b} bits, expected {bits}-bit PCM")
    if c != channels:
        raise DataError(f"{path}: {c} channels, expected {channels} (mono)")
    frame = c * (b // 8)
    if len(pcm) % frame:
        raise DataError(f"{path}: data chunk of {len(pcm)} bytes is not a whole number of "
                        f"{frame}-byte frames (truncated or corrupt)")
    x = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    if c > 1:
        x = x.reshape(-1, c)
    if max_samples is not None and len(x) > max_samples:
        raise DataError(f"{path}: {len(x)} samples, longer than {max_samples} "
                        f"({max_samples / rate:g} s); clips are never truncated")
    return x


def write_wav(path: Path | str, samples: np.ndarray, rate: int = 16000) -> Path:
    """Write int16 samples ((T,) mono or (T, C)) as a canonical 44-byte-header PCM WAV."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise DataError(f"write_wav: samples must be int16, got {x.dtype}")
    channels = 1 if x.ndim == 1 else x.shape[1]
    pcm = x.astype("<i2").tobytes()
    hdr = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, WAVE_FORMAT_PCM,
                      channels, rate, rate * channels * 2, channels * 2, 16, b"data", len(pcm))
    path = Path(path)
    path.write_bytes(hdr + pcm + (b"\0" if len(pcm) & 1 else b""))
    return path
