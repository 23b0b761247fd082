"""Audio input: read a span of any soundfile-supported file, mix to mono, resample with soxr; clip windows and ids.

    wave = load_audio("song.flac", sample_rate=22050, start=30.0, end=55.0)   # float32 mono
    for start, end in clip_windows(audio_info("song.flac").duration, mode="all"):
        print(clip_id("song", start, end))                                   # song-start0.000-end25.000

Only the requested span is read from disk, so hour-long files are never loaded whole. Every
problem raises a subclass of `AudioError` whose message names the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000
CLIP_SECONDS = 25.0
SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than any real recording's noise floor


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


class UnreadableAudio(AudioError):
    """Missing, not audio, or in a format libsndfile cannot decode."""


class TruncatedAudio(AudioError):
    """The file holds fewer (or undecodable) samples than its header promises: truncated or corrupt."""


class EmptyAudio(AudioError):
    pass


class UnsupportedSampleRate(AudioError):
    pass


class NonFiniteAudio(AudioError):
    pass


class SilentAudio(AudioError):
    pass


class TooShortAudio(AudioError):
    pass


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts, checked: the file exists, decodes, has samples and a supported rate."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableAudio(f"{path}: audio file not found")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise UnreadableAudio(f"{path}: not a readable audio file ({err})") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise UnsupportedSampleRate(
            f"{path}: sample rate {info.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if info.frames <= 0:
        raise EmptyAudio(f"{path}: the file holds no samples")
    declared = _declared_wav_bytes(path)
    if declared is not None and declared[0] > declared[1]:
        raise TruncatedAudio(f"{path}: the WAV header declares {declared[0]} bytes of samples, the file holds {declared[1]}")
    return AudioInfo(path, info.samplerate, info.channels, info.frames)


def _declared_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(bytes the RIFF 'data' chunk declares, bytes present) for WAV files; None for other formats.

    libsndfile quietly shortens a truncated WAV to what is there, so the header is checked here.
    """
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                return (length, size - f.tell()) if length != 0xFFFFFFFF else None  # 0xFFFFFFFF: streamed WAV
            f.seek(length + (length & 1), 1)


def load_audio(
    path: str | Path,
    sample_rate: int,
    start: float | None = None,
    end: float | None = None,
    normalise: bool = False,
    min_seconds: float = 0.0,
) -> np.ndarray:
    """Mono float32 samples of [start, end) seconds (the whole file by default) at `sample_rate`.

    `normalise` scales the peak to 1.0 (and then refuses silence); `min_seconds` refuses spans
    shorter than that.
    """
    info = audio_info(path)
    first = 0 if start is None else int(round(start * info.sample_rate))
    last = info.frames if end is None else min(info.frames, int(round(end * info.sample_rate)))
    if first < 0 or first >= last:
        raise TooShortAudio(f"{info.path}: span [{start}, {end}) s is empty (the file lasts {info.duration:.3f} s)")
    try:
        wave, _ = soundfile.read(str(info.path), start=first, stop=last, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise TruncatedAudio(f"{info.path}: could not decode samples {first}-{last}: truncated or corrupt ({err})") from None
    if len(wave) < last - first:
        raise TruncatedAudio(f"{info.path}: read {len(wave)} of {last - first} samples; the file is truncated")
    mono = wave.mean(axis=1)
    if not np.isfinite(mono).all():
        raise NonFiniteAudio(f"{info.path}: samples contain NaN or inf")
    seconds = len(mono) / info.sample_rate
    if seconds < min_seconds:
        raise TooShortAudio(f"{info.path}: {seconds:.3f} s of audio, fewer than the minimum {min_seconds} s")
    if info.sample_rate != sample_rate:
        mono = soxr.resample(mono, info.sample_rate, sample_rate).astype(np.float32)
    if normalise:
        mono = peak_normalise(mono, str(info.path))
    return mono


def peak_normalise(wave: np.ndarray, where: str, silence_peak: float = SILENCE_PEAK) -> np.ndarray:
    """Scale so the largest absolute sample is 1.0; silence is an error, not a division by ~0."""
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak < silence_peak:
        raise SilentAudio(f"{where}: silent (peak {peak:.2e} below {silence_peak:.0e})")
    return (wave / peak).astype(np.float32)


def clip_windows(
    duration: float, clip_seconds: float = CLIP_SECONDS, mode: str = "first", min_seconds: float = 5.0
) -> list[tuple[float, float]]:
    """[start, end) windows of a track: `first` one crop from 0, `all` every full window.

    A track shorter than `clip_seconds` gives one window of its whole length when that is at least
    `min_seconds`, and none otherwise.
    """
    if mode not in ("first", "all"):
        raise ValueError(f"mode must be 'first' or 'all', got {mode!r}")
    if duration < clip_seconds:
        return [(0.0, round(duration, 3))] if duration >= min_seconds else []
    count = 1 if mode == "first" else int(math.floor(duration / clip_seconds + 1e-9))
    return [(round(i * clip_seconds, 3), round((i + 1) * clip_seconds, 3)) for i in range(count)]


CLIP_ID = re.compile(r"^(?P<track>.+)-start(?P<start>\d+\.\d{3})-end(?P<end>\d+\.\d{3})$")


def clip_id(track_id: str, start: float, end: float) -> str:
    """`{track_id}-start{s:.3f}-end{e:.3f}`: the id says which window of which track."""
    return f"{track_id}-start{start:.3f}-end{end:.3f}"


def parse_clip_id(value: str) -> tuple[str, float, float]:
    match = CLIP_ID.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a clip id of the form TRACK-startS.SSS-endE.EEE")
    return match.group("track"), float(match.group("start")), float(match.group("end"))
