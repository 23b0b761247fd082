"""Audio input: read a span of an audio file, mix to mono, resample with soxr; clip windows and ids.

    wave = load_audio("song.flac", sample_rate=22050, start=30.0, end=55.0)   # float32 mono
    wave = load_audio("voice-memo.m4a", sample_rate=22050)                    # AAC: decoded by ffmpeg (PyAV)
    for start, end in clip_windows(audio_info("song.flac").duration, mode="all"):
        print(clip_id("song", start, end))                                   # song-start0.000-end25.000

libsndfile (soundfile) reads WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF and the like sample-exactly. What it
cannot read (AAC/M4A, WMA, audio in MP4/WebM/MKV) is decoded with ffmpeg's decoders through PyAV (the
`av` package, in the `preprocess` extra), if installed; its length comes from the container's header.
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
LIBSNDFILE, FFMPEG = "libsndfile", "ffmpeg"  # AudioInfo.decoder
# A container's duration is a header figure (AAC pads its last frame): reading to the end may give up to
# this much less than it promised without the file being called truncated.
FFMPEG_LENGTH_SLACK_SECONDS = 0.1
SEEK_MARGIN_SECONDS = 0.5  # ffmpeg seeks this much before a span: codecs that overlap frames need the one before
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
    decoder: str = LIBSNDFILE  # FFMPEG for what libsndfile cannot read

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts, checked: the file exists, decodes, has samples and a supported rate."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableAudio(f"{path}: audio file not found")
    try:
        header = soundfile.info(str(path))
        info = AudioInfo(path, header.samplerate, header.channels, header.frames)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        info = _ffmpeg_info(path, libsndfile_error=str(err))
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise UnsupportedSampleRate(
            f"{path}: sample rate {info.sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if info.frames <= 0:
        raise EmptyAudio(f"{path}: the file holds no samples")
    declared = _declared_wav_bytes(path)
    if declared is not None and declared[0] > declared[1]:
        raise TruncatedAudio(f"{path}: the WAV header declares {declared[0]} bytes of samples, the file holds {declared[1]}")
    return info


def _import_av(path: Path, libsndfile_error: str):
    try:
        import av  # optional (the preprocess extra): only files libsndfile cannot read need it
    except ImportError:
        raise UnreadableAudio(f"{path}: not a readable audio file for libsndfile ({libsndfile_error}); AAC/M4A, WMA "
                              f"and audio in video containers need PyAV: pip install av") from None
    return av


def _ffmpeg_info(path: Path, libsndfile_error: str) -> AudioInfo:
    """Header facts from ffmpeg (PyAV) for a file libsndfile cannot read."""
    av = _import_av(path, libsndfile_error)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UnreadableAudio(f"{path}: no audio stream (libsndfile: {libsndfile_error})")
            stream = container.streams.audio[0]
            if stream.duration is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                raise UnreadableAudio(f"{path}: the container does not say how long its audio is")
            return AudioInfo(path, int(stream.rate), int(stream.channels), int(round(seconds * stream.rate)), FFMPEG)
    except av.FFmpegError as err:
        raise UnreadableAudio(f"{path}: not a readable audio file (libsndfile: {libsndfile_error}; ffmpeg: {err})") from None


def _ffmpeg_read(info: AudioInfo, first: int, last: int) -> np.ndarray:
    """Samples [first, last) of a file libsndfile cannot read, as float32 [frames, channels], decoded by ffmpeg.

    Seeks to SEEK_MARGIN_SECONDS before `first` and places every decoded frame by its timestamp, so a span
    holds the same samples as that span of a decode from the start.
    """
    import av

    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.audio[0]
            seek_seconds = first / info.sample_rate - SEEK_MARGIN_SECONDS
            if seek_seconds > 0:
                container.seek(int(seek_seconds / stream.time_base), stream=stream)  # to the frame at or before
            # float32 interleaved at the file's own rate, whatever the codec's sample format (s16, fltp, ...)
            to_float = av.AudioResampler(format="flt", rate=info.sample_rate)
            chunks, position, decoded_until = [], None, 0
            for frame in container.decode(stream):
                if position is None:  # the first frame's timestamp places the decode in the file
                    position = round(float(frame.pts * frame.time_base) * info.sample_rate) if frame.pts is not None else 0
                    decoded_until = position
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray().reshape(-1, info.channels))
                    decoded_until += converted.samples
                if decoded_until >= last:
                    break
            else:  # the end of the file: what the converter still holds
                chunks += [converted.to_ndarray().reshape(-1, info.channels) for converted in to_float.resample(None)]
    except av.FFmpegError as err:
        raise TruncatedAudio(f"{info.path}: ffmpeg could not decode samples {first}-{last}: truncated or corrupt ({err})") from None
    decoded = np.concatenate(chunks) if chunks else np.zeros((0, info.channels), np.float32)
    position = position or 0
    return decoded[max(0, first - position): max(0, last - position)]


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
    if info.decoder == FFMPEG:
        wave = _ffmpeg_read(info, first, last)
        slack = int(FFMPEG_LENGTH_SLACK_SECONDS * info.sample_rate) if last == info.frames else 0
    else:
        try:
            wave, _ = soundfile.read(str(info.path), start=first, stop=last, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise TruncatedAudio(f"{info.path}: could not decode samples {first}-{last}: truncated or corrupt ({err})") from None
        slack = 0
    if len(wave) < last - first - slack:
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
