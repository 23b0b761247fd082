"""The weight-free MIR-feature encoder: the CPU default, since no pretrained weights can be downloaded.

Each group is computed at its own hop and pooled to exactly 25 frames per second:

| channels                     | group     | what it carries                                        |
|------------------------------|-----------|--------------------------------------------------------|
| 0 .. n_mels-1                | log-mel   | timbre and register: instruments, texture, dynamics    |
| n_mels .. n_mels+11          | chroma    | CQT chroma (C, C#, ..., B), max-normalised per frame:  |
|                              |           | key, mode, chords                                      |
| n_mels+12                    | onset     | log onset strength: note attacks, rhythm density       |
| n_mels+13                    | rms       | frame level in dB / 80 (after peak normalisation)      |
| n_mels+14 .. end             | tempogram | local autocorrelation tempogram resampled to           |
|                              |           | `tempo_bins` log-spaced BPM values in [min_bpm, max_bpm]: |
|                              |           | beat and bar periodicities, so tempo and meter         |

    encoder = MIRFeatureEncoder()                      # 22.05 kHz, 64 mels, 96 tempo bins: dim 174
    features = encoder.encode(wave)                    # [round(25 * seconds), 174]
    python benchmarks/encode.py                        # real-time factor per core
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import librosa
import numpy as np

from llark.encoders import FRAME_RATE, frames_for, pool_to_frames


@dataclass
class MIRFeatureEncoder:
    sample_rate: int = 22050
    n_mels: int = 64
    tempo_bins: int = 96  # 2.4 % apart between 30 and 300 BPM: finer than tempo Acc1's 4 % tolerance
    min_bpm: float = 30.0
    max_bpm: float = 300.0
    tempogram_seconds: float = 6.0  # autocorrelation window: long enough for a bar of 3/4 at 60 BPM

    name = "mir"
    frame_rate = FRAME_RATE
    spectral_hop = 512
    onset_hop = 256  # finer than the spectral hop: lag resolution sets tempo precision

    @property
    def dim(self) -> int:
        return self.n_mels + 12 + 2 + self.tempo_bins

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    def encode(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float32)
        frames = frames_for(len(wave), self.sample_rate)
        if frames < 1:
            raise ValueError(f"{len(wave)} samples is shorter than one 25 fps frame")
        groups = [self._log_mel(wave), self._chroma(wave), *self._onset_and_level(wave), self._tempogram(wave)]
        return np.concatenate([pool_to_frames(g, frames) for g in groups], axis=1)

    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [self.encode(wave) for wave in waves]

    def _log_mel(self, wave: np.ndarray) -> np.ndarray:
        power = librosa.feature.melspectrogram(y=wave, sr=self.sample_rate, n_fft=2048, hop_length=self.spectral_hop,
                                               n_mels=self.n_mels)
        decibels = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
        return ((np.maximum(decibels, -100.0) + 50.0) / 50.0).T  # about [-1, 1.5]

    def _chroma(self, wave: np.ndarray) -> np.ndarray:
        return librosa.feature.chroma_cqt(y=wave, sr=self.sample_rate, hop_length=self.spectral_hop).T

    def _onset_and_level(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        onset = librosa.onset.onset_strength(y=wave, sr=self.sample_rate, hop_length=self.spectral_hop)
        rms = librosa.feature.rms(y=wave, hop_length=self.spectral_hop)[0]
        level = np.maximum(librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5), -80.0) / 80.0
        return np.log1p(onset)[:, None], level[:, None]

    def bpm_axis(self) -> np.ndarray:
        return np.geomspace(self.min_bpm, self.max_bpm, self.tempo_bins)

    def _tempogram(self, wave: np.ndarray) -> np.ndarray:
        onset = librosa.onset.onset_strength(y=wave, sr=self.sample_rate, hop_length=self.onset_hop)
        onset_rate = self.sample_rate / self.onset_hop
        window = int(round(self.tempogram_seconds * onset_rate))
        autocorrelation = librosa.feature.tempogram(onset_envelope=onset, sr=self.sample_rate, hop_length=self.onset_hop,
                                                    win_length=window)  # [lag, frame]
        # BPM b is a period of 60/b seconds = onset_rate*60/b lags; interpolate between neighbouring lags.
        lags = onset_rate * 60.0 / self.bpm_axis()
        below = np.floor(lags).astype(int)
        weight = (lags - below)[:, None]
        rows = (1 - weight) * autocorrelation[below] + weight * autocorrelation[np.minimum(below + 1, window - 1)]
        return np.clip(rows, 0.0, None).T
