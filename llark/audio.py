"""Audio input: read any soundfile-supported file, mix to mono, resample with soxr.

    wave = load_audio("song.flac", sample_rate=44100)   # float32 mono in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        wave, native_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from None
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: samples contain NaN or inf")
    if native_rate != sample_rate:
        mono = soxr.resample(mono, native_rate, sample_rate)
    return mono.astype(np.float32)
