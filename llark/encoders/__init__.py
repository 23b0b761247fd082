"""The encoder interface: audio waveform -> features [T, D] at exactly 25 frames per second.

Every encoder has `name`, `sample_rate`, `dim`, `frame_rate`, `settings()` and
`encode(wave) -> float32 [round(25 * seconds), dim]`, where `wave` is mono, peak-normalised audio at
`sample_rate`, and `encode_batch(waves) -> list of [T_i, dim]` (a GPU encoder runs the batch at once;
the others loop). A checkpoint records which encoder (and its settings) produced its training features
(`encoder.name`, `encoder.settings` in config.json), so `llark ask --audio` encodes new audio the
same way through `encode_file`.

    encoder = build_encoder(EncoderConfig(name="mir"))
    features = encode_file(encoder, "song.flac", start=0.0, end=25.0)   # [625, encoder.dim]
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from llark.audio import load_audio
from llark.config import EncoderConfig

FRAME_RATE = 25.0


class Encoder(Protocol):
    name: str
    sample_rate: int
    dim: int
    frame_rate: float

    def settings(self) -> dict[str, Any]:
        """Everything needed to rebuild an identical encoder (stored in checkpoints)."""
        ...

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """Mono peak-normalised float waveform at `sample_rate` -> float32 [round(25 * seconds), dim]."""
        ...

    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Several waveforms (any lengths) -> their features, as `encode` gives them one by one."""
        ...


class NoEncoderConfigured(RuntimeError):
    """The checkpoint was trained on precomputed features and names no encoder for raw audio."""


LONG_WINDOW = 8  # rows per output frame from which pool_to_frames sums pieces, not every row


def frames_for(num_samples: int, sample_rate: int, frame_rate: float = FRAME_RATE) -> int:
    return int(round(frame_rate * num_samples / sample_rate))


def pool_to_frames(values: np.ndarray, frames: int) -> np.ndarray:
    """Adaptive average pooling of [N, D] along time to [frames, D] (frame i averages rows
    floor(i*N/frames) .. ceil((i+1)*N/frames)-1, as torch's adaptive_avg_pool1d does), summed in float64.

    Two ways to the same sums, whichever is cheaper: a cumulative sum over every row when the windows
    are a few rows long (the encoder pooling its groups to 25 fps), and np.add.reduceat over the
    pieces between window edges when they are long (the training loader averaging 25 frames into
    each audio token: 0.56 ms a clip against 2.6 ms, measured on 618 x 342 float16 rows)."""
    values = np.asarray(values)
    count = len(values)
    if count == 0 or frames <= 0:
        raise ValueError(f"cannot pool {count} rows to {frames} frames")
    starts = (np.arange(frames) * count) // frames
    ends = -((-(np.arange(1, frames + 1)) * count) // frames)  # ceil division
    if count < LONG_WINDOW * frames:
        cumulative = np.cumsum(values, axis=0, dtype=np.float64)
        first, last = starts, ends
    else:  # neighbouring windows share at most a boundary row: sum each piece between edges once
        edges = np.union1d(starts, ends)  # sorted; the last edge is count
        cumulative = np.cumsum(np.add.reduceat(values, edges[:-1], axis=0, dtype=np.float64), axis=0)
        first, last = np.searchsorted(edges, starts), np.searchsorted(edges, ends)
    cumulative = np.concatenate([np.zeros((1, values.shape[1])), cumulative])
    return ((cumulative[last] - cumulative[first]) / (ends - starts)[:, None]).astype(np.float32)


def _mir_class() -> type:
    from llark.encoders.mir import MIRFeatureEncoder

    return MIRFeatureEncoder


def _jukebox_class() -> type:
    from llark.encoders.jukebox import JukeboxEncoder

    return JukeboxEncoder


# name -> the encoder's dataclass, imported only when that encoder is asked for.
ENCODER_CLASSES: dict[str, Callable[[], type]] = {"mir": _mir_class, "jukebox": _jukebox_class}


def _encoder_class(name: str) -> type:
    if name not in ENCODER_CLASSES:
        raise KeyError(f"unknown encoder {name!r}; known: {sorted(ENCODER_CLASSES)}")
    return ENCODER_CLASSES[name]()


def changed_settings(name: str, recorded: dict[str, Any], configured: dict[str, Any]) -> list[str]:
    """The settings in which two settings dicts of encoder `name` differ, one left out counting as its
    default: features recorded before a setting existed (or a config that leaves it out) match its default
    value. Reads the defaults off the encoder's dataclass, without building it (Jukebox loads weights).
    Settings the encoder does not record (`unrecorded_settings`: where and how fast, e.g. Jukebox's device)
    do not change the features and are not compared."""
    cls = _encoder_class(name)
    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default
                for f in fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}
    unrecorded = set(getattr(cls, "unrecorded_settings", ()))
    return sorted(key for key in {*recorded, *configured} - unrecorded
                  if recorded.get(key, defaults.get(key)) != configured.get(key, defaults.get(key)))


def fitted_models(name: str, settings: dict[str, Any]) -> dict[str, str]:
    """The fitted models (name -> fingerprint) that features of encoder `name` with `settings` depend on
    beyond the settings themselves (the MIR encoder's beat-level fit), read without building the encoder
    (Jukebox loads weights); {} for an encoder with none, and for encoder.name=none."""
    if name == "none":
        return {}
    fitted = getattr(_encoder_class(name), "fitted", None)
    return fitted(settings) if fitted else {}


def build_encoder(cfg: EncoderConfig) -> Encoder:
    if cfg.name == "none":
        raise NoEncoderConfigured(
            "no encoder configured: this checkpoint was trained on precomputed features (encoder.name=none), "
            "so it cannot encode audio files; pass a features .npy file instead"
        )
    return _encoder_class(cfg.name)(**dict(cfg.settings))


def channel_groups(cfg: EncoderConfig, dim: int, setting: str) -> dict[str, tuple[int, int]]:
    """The encoder's channel groups, name -> [start, stop), for a model setting that names them (`setting`,
    in errors): only an encoder with channel groups (the MIR encoder; Jukebox's channels have none), and
    only one that makes `dim` channels (model.audio_dim)."""
    if cfg.name == "none" or not hasattr(_encoder_class(cfg.name), "groups"):
        raise ValueError(f"{setting} needs an encoder with channel groups (mir), not encoder.name={cfg.name}")
    encoder = build_encoder(cfg)
    if encoder.dim != dim:
        raise ValueError(f"encoder {cfg.name} makes {encoder.dim} channels, model.audio_dim is {dim}")
    return encoder.groups()


def channel_gains(cfg: EncoderConfig, group_gains: dict[str, float], dim: int) -> np.ndarray:
    """float32 [dim]: each channel's gain, `group_gains[group]` on the channels of that encoder group and 1
    elsewhere (model.audio_group_gains). Reads the encoder's groups only when there are gains."""
    gains = np.ones(dim, np.float32)
    if not group_gains:
        return gains
    groups = channel_groups(cfg, dim, "model.audio_group_gains")
    for name, gain in group_gains.items():
        if name not in groups:
            raise ValueError(f"model.audio_group_gains names {name!r}, not a channel group of encoder {cfg.name} "
                             f"{cfg.settings}; its groups: {sorted(groups)}")
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise ValueError(f"model.audio_group_gains.{name} must be a number > 0, got {gain!r}")
        start, stop = groups[name]
        gains[start:stop] = gain
    return gains


def channel_families(cfg: EncoderConfig, families: list[list[str]], dim: int) -> list[list[int]]:
    """Each family's channel indices, in order (model.projector_families: lists of the encoder's group
    names, read by the grouped projector). Every group of the encoder is in exactly one family.

        channel_families(cfg.encoder, [["log_mel", "timbre"], ["chroma"], ["onset", "rms", "rhythm", "clip_tempogram"]], 402)
    """
    groups = channel_groups(cfg, dim, "model.projector_families")
    named = [name for family in families for name in family]
    unknown = sorted(set(named) - set(groups))
    if unknown:
        raise ValueError(f"model.projector_families names {unknown}, not channel groups of encoder {cfg.name} "
                         f"{cfg.settings}; its groups: {sorted(groups)}")
    repeated = sorted({name for name in named if named.count(name) > 1})
    missing = [name for name in groups if name not in named]
    if repeated or missing or not all(families):
        raise ValueError(f"model.projector_families must put each of the encoder's groups {list(groups)} in exactly one "
                         f"non-empty family; repeated: {repeated}, missing: {missing}, got {families}")
    return [[channel for name in family for channel in range(*groups[name])] for family in families]


def encode_file(encoder: Encoder, path: str | Path, start: float | None = None, end: float | None = None,
                min_seconds: float = 1.0) -> np.ndarray:
    """Features of [start, end) of an audio file: mono, resampled, peak-normalised, encoded."""
    wave = load_audio(path, encoder.sample_rate, start=start, end=end, normalise=True, min_seconds=min_seconds)
    return encoder.encode(wave)
