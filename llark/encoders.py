"""The encoder interface: audio waveform -> features [T, D] at a fixed frame rate.

Every encoder has `name`, `sample_rate`, `dim`, `frame_rate` and `encode(wave) -> [T, D]`. A
checkpoint records which encoder (and its settings) produced its training features in
`config.json` (`encoder.name`, `encoder.settings`), so `llark ask --audio` encodes new audio the same
way. Encoders register a builder in `ENCODER_BUILDERS` under their name.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from llark.config import EncoderConfig


class Encoder(Protocol):
    name: str
    sample_rate: int
    dim: int
    frame_rate: float

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """Mono float waveform at `sample_rate` -> float32 [round(frame_rate * seconds), dim]."""
        ...


class NoEncoderConfigured(RuntimeError):
    """The checkpoint was trained on precomputed features and names no encoder for raw audio."""


# name -> builder(settings) ; filled by the encoder modules (the MIR-feature and Jukebox encoders).
ENCODER_BUILDERS: dict[str, Callable[[dict], Encoder]] = {}


def build_encoder(cfg: EncoderConfig) -> Encoder:
    if cfg.name == "none":
        raise NoEncoderConfigured(
            "no encoder configured: this checkpoint was trained on precomputed features (encoder.name=none), "
            "so it cannot encode audio files; pass a features .npy file instead"
        )
    if cfg.name not in ENCODER_BUILDERS:
        raise KeyError(f"unknown encoder {cfg.name!r}; known: {sorted(ENCODER_BUILDERS)}")
    return ENCODER_BUILDERS[cfg.name](cfg.settings)
