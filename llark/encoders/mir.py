"""The weight-free MIR-feature encoder: the CPU default, since no pretrained weights can be downloaded.

Each group is computed at its own hop and pooled to exactly 25 frames per second:

| channels                     | group     | what it carries                                        |
|------------------------------|-----------|--------------------------------------------------------|
| 0 .. n_mels-1                | log-mel   | timbre and register: instruments, texture, dynamics    |
| n_mels .. n_mels+11          | chroma    | CQT chroma (C, C#, ..., B), max-normalised per frame:  |
|                              |           | key, mode, chords                                      |
| n_mels+12                    | onset     | log onset strength: note attacks, rhythm density       |
| n_mels+13                    | rms       | frame level in dB / 80 (after peak normalisation)      |
| n_mels+14 .. +tempo_bins-1   | tempogram | local autocorrelation tempogram resampled to           |
|                              |           | `tempo_bins` log-spaced BPM values in [min_bpm, max_bpm]: |
|                              |           | beat and bar periodicities, so tempo and meter         |
| then RHYTHM_DIM (96)         | rhythm    | opt-in (`rhythm=True`): beat-relative descriptors, below: |
|                              |           | the tracked tempo, and meter                           |
| then n_mels + 8              | timbre    | opt-in (`timbre=True`): per mel band, the spread of the |
|                              |           | log-mel over the surrounding second (attacks, vibrato,  |
|                              |           | tremolo, note changes), spectral contrast in 7 bands and |
|                              |           | log spectral flatness (tonal or noisy): instruments     |
| then clip_tempo_bins         | clip      | opt-in (`clip_tempo_bins > 0`): the onset envelope's    |
|                              | tempogram | autocorrelation over the whole segment (below), read at |
|                              |           | log-spaced BPM values in [min_bpm, max_bpm]: tempo      |
| then interval_bins           | intervals | opt-in (`interval_bins > 0`): each frame's log CQT       |
|                              |           | correlated with itself shifted by 1..interval_bins thirds |
|                              |           | of a semitone: which intervals its partials are apart,  |
|                              |           | whatever the pitch (below): instruments                 |
| then 46                      | instrument| opt-in (`instrument_tags=True`): the shipped CNN's       |
|                              | tags      | probability of each instrument class, read off the      |
|                              |           | log-mel group per segment (llark/encoders/              |
|                              |           | instrument_tagger.py): instruments                      |
| then 10                      | meter tags| opt-in (`meter_tags=True`, with `beat_level`): the       |
|                              |           | shipped trees' probability of each meter of             |
|                              |           | label_targets.METERS, read off each segment's rhythm    |
|                              |           | descriptors (llark/encoders/meter_model.py): meter      |
| then 24                      | key tags  | opt-in (`key_tags=True`): the shipped key model's        |
|                              |           | probability of each key (label_targets.key_class's       |
|                              |           | order), read off each segment's chroma statistics        |
|                              |           | (llark/encoders/key_model.py): key                       |

`tempo_bins=0` leaves the local tempogram out, for the clip tempogram in its place (the demo's 482 dims with the
instrument, meter and key tags, README).

The tempogram says which periods are strong, but not which of them is the beat and which the bar: a
6/8 and a 3/4 at the same eighth-note rate have the same peaks. The rhythm group tracks the beat
(librosa's tracker with llark.annotate's tempo prior) and measures everything as a multiple of the
tracked beat period P, so the descriptors of a meter look alike at every tempo. Over each segment of
at most `rhythm_seconds` (one for a 25 s clip), repeated on every frame of the segment:

| width | descriptor                                                                                   |
|-------|----------------------------------------------------------------------------------------------|
| 25    | the tracked tempo: a soft one-hot over 25 log-spaced BPM values in 40-240                    |
| 13    | autocorrelation of the onset envelope at m*P, m in BEAT_MULTIPLES (1/4 .. 8): subdivision    |
|       | (1/3 for compound, 1/2 and 1/4 for simple meters) and bar periods (2, 3, 4, 6 beats)         |
| 13    | the same for the bass onset envelope (mel bands below 200 Hz): bass notes mark bar lines     |
| 13    | the same for chroma novelty over half a beat: harmony changes at bar lines                   |
| 12    | accent contrast for bars of 2, 3, 4 and 6 beats (best phase) of three per-beat accents:      |
|       | chroma change, bass onset, onset                                                             |
| 8     | mean cosine similarity of beat-synchronous chroma 1..8 beats apart                           |
| 11    | onset autocorrelation at k*P/12, k = 1..11: the shape of the subdivision                     |
| 1     | log2 of the strongest chroma-novelty period in 0.8-6 s over P: beats per bar                 |

On the demo corpus, benchmarks/feature_probe.py's linear probe reads the meter at 0.61 with this group
and 0.35 without it, the tempo (Acc1) at 0.64 and 0.52.

librosa's tracker often beats at another level than the score's beat (half or twice it, 3:2 or 2:3),
and at a wrong level every descriptor is measured against the wrong period: a 4/4 tracked at half its
tempo reads as a 2/4. With `beat_level=True` the group is measured at the level a small fitted model
names instead (llark/encoders/beat_level.py: gradient-boosted trees from the descriptors at the tracked
beat to the ratio of the labelled beat to it, fitted on a corpus of its own; the beat tracked again at
that tempo). On the demo corpus's train clips the corrected beat is at the labelled tempo (within 4 %) on
0.89 of them against 0.56 for librosa's (0.83 with the logistic regression shipped before 2026-12-06, which
lifted a logistic probe's val meter from 0.750 to 0.827; benchmarks/meter_ceiling.py).

The clip tempogram is there because the local one is blurred: a 6 s window holds a few beats, so its
peaks are broad, and averaging 25 frames into a token blurs them again. One autocorrelation over the
whole segment (25 s: 50 beats at 120 BPM) has sharp peaks, and each BPM value reads its maximum within
one bin's step either side, so a peak between two values shows in both. It is scaled so its highest
value is 1 and repeated on every frame of the segment, like the rhythm group. A probe trained like the
label heads on the demo corpus (val, two seeds) read tempo Acc1 0.79-0.81 and Acc2 0.90-0.91 with it in
place of the local tempogram, 0.72-0.73 and 0.82-0.84 with the local one, and the key 0.02-0.03 worse
(README, the CPU encoder).

The timbre group is there because the LM sees one token per second, the average of 25 frames: a
band's mean level survives that averaging, but how much it moves within the second does not, and
that movement (a plucked note's decay, a bowed note's swell, drum hits) tells instruments apart.
The spread is measured over a one-second window around every frame, so the average keeps it.

The interval group is there because an instrument's partials stand at the same intervals above every
note it plays (a harmonic series at an octave, an octave and a fifth, two octaves...; a clarinet's
low register has little at the octave; a bell's partials are not harmonic), so how a frame's
spectrum correlates with itself shifted along a log-frequency axis describes the instruments apart
from the pitches played. The log-mel's band means mix each instrument's envelope over the pitches it
plays; the correlation, taken before any averaging, keeps it. It reuses the chroma's CQT (36 bins per
octave from C1, 7 octaves), so it costs two FFTs per frame. benchmarks/feature_probe.py's logistic
probes on the demo corpus's clip means and spreads (val, 196 clips) read instrument micro-F1 0.681
with 120 lags next to the 402 channels and 0.632 without them (macro-F1 0.425 and 0.377); the
trained model gained less (docs/demo-experiments.md, "How the recipe was chosen", rows 36-39).

    encoder = MIRFeatureEncoder()                      # 22.05 kHz, 64 mels, 96 tempo bins: dim 174
    features = encoder.encode(wave)                    # [round(25 * seconds), 174]
    MIRFeatureEncoder(rhythm=True)                     # 270: the same 174 channels, then the rhythm group
    MIRFeatureEncoder(rhythm=True, timbre=True)        # 342: then the timbre group
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156)   # 402
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True)   # 402
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                      instrument_tags=True)                                                           # 448
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                      instrument_tags=True, meter_tags=True)                                          # 458
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                      instrument_tags=True, meter_tags=True, key_tags=True)                           # 482: the demo's
    MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, interval_bins=120)   # 522
    MIRFeatureEncoder().groups()["chroma"]           # (64, 76): channels 64..75 (model.audio_group_gains)
    python benchmarks/encode.py                        # real-time factor per core
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import librosa
import numpy as np
from scipy.ndimage import uniform_filter1d

from llark.annotate import MIN_BARS, TempoPrior, phase_contrasts, zscore
from llark.encoders import FRAME_RATE, frames_for, pool_to_frames
from llark.encoders.beat_level import load_shipped as load_beat_level
from llark.encoders.instrument_tagger import load_shipped as load_instrument_tagger
from llark.encoders.key_model import key_statistics
from llark.encoders.key_model import load_shipped as load_key_model
from llark.encoders.meter_model import load_shipped as load_meter_model
from llark.label_targets import INSTRUMENT_CLASSES, METERS

BEAT_MULTIPLES = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4, 6, 8)
BAR_BEATS = (2, 3, 4, 6)  # bar lengths, in tracked beats, whose accent contrast is measured
SIMILARITY_LAGS = 8  # beat-synchronous chroma similarity 1..8 beats apart
SUBDIVISIONS = 12  # onset autocorrelation at k * P / 12
TRACKED_TEMPO_AXIS = np.geomspace(40.0, 240.0, 25)  # 7.8 % apart
RHYTHM_DIM = len(TRACKED_TEMPO_AXIS) + 3 * len(BEAT_MULTIPLES) + 3 * len(BAR_BEATS) + SIMILARITY_LAGS + SUBDIVISIONS - 1 + 1
BASS_HZ = 200.0
PEAK_TOLERANCE = 0.04  # autocorrelation read as the maximum within 4 % of the lag: tempo drift and rounding
CONTRAST_BANDS = 6  # librosa's spectral contrast: 6 octave bands above 200 Hz and the one below (7 values)
SPREAD_SECONDS = 1.0  # the log-mel spread is measured over this window: one LM audio token's span
CQT_BINS_PER_OCTAVE = 36  # librosa's chroma_cqt defaults (from C1, 7 octaves): the CQT is computed once for
CQT_OCTAVES = 7           # the chroma and the interval group, and the chroma is the one chroma_cqt makes
ONSET_MELS = 128  # the mel bands librosa's onset_strength(y=...) reads (melspectrogram's default)
INTERVAL_FLOOR_DB = 60.0  # the interval group reads each frame's CQT down to this far below its peak


@dataclass
class MIRFeatureEncoder:
    sample_rate: int = 22050
    n_mels: int = 64
    tempo_bins: int = 96  # 2.4 % apart between 30 and 300 BPM: finer than tempo Acc1's 4 % tolerance
    min_bpm: float = 30.0
    max_bpm: float = 300.0
    tempogram_seconds: float = 6.0  # autocorrelation window: long enough for a bar of 3/4 at 60 BPM
    rhythm: bool = False  # the beat-relative rhythm group (RHYTHM_DIM channels)
    rhythm_seconds: float = 30.0  # longer input is described in segments of at most this length
    timbre: bool = False  # the timbre group (n_mels + 8 channels)
    clip_tempo_bins: int = 0  # the clip tempogram group (0: none); 156 puts its BPM values 1.5 % apart
    interval_bins: int = 0  # the interval group (0: none): lags 1..interval_bins of 1/36 octave; 120 spans 3.3 octaves
    beat_level: bool = False  # the rhythm group at the beat level llark/encoders/beat_level.json names, not librosa's
    instrument_tags: bool = False  # the instrument tagger's class probabilities (llark/encoders/instrument_tagger.py)
    meter_tags: bool = False  # the meter model's probabilities over the rhythm descriptors (llark/encoders/meter_model.py)
    key_tags: bool = False  # the key model's probabilities over the chroma statistics (llark/encoders/key_model.py)

    name = "mir"
    frame_rate = FRAME_RATE
    spectral_hop = 512
    onset_hop = 256  # finer than the spectral hop: lag resolution sets tempo precision; half of it (_fine_spectrum)

    def __post_init__(self) -> None:
        if self.tempo_bins < 0 or self.clip_tempo_bins < 0:
            raise ValueError(f"tempo_bins and clip_tempo_bins must be >= 0 (0 leaves the group out), got "
                             f"{self.tempo_bins} and {self.clip_tempo_bins}")
        if not 0 <= self.interval_bins < CQT_BINS_PER_OCTAVE * CQT_OCTAVES:
            raise ValueError(f"interval_bins must be in [0, {CQT_BINS_PER_OCTAVE * CQT_OCTAVES}) (0 leaves the group "
                             f"out; lags beyond the CQT's bins are not measured), got {self.interval_bins}")
        if self.beat_level:
            if not self.rhythm:
                raise ValueError("beat_level=True corrects the rhythm group's beat: it needs rhythm=True")
            fitted_on = load_beat_level().provenance.get("encoder")
            if fitted_on != {"sample_rate": self.sample_rate, "n_mels": self.n_mels}:
                raise ValueError(f"the beat-level model (llark/encoders/beat_level.json) was fitted on descriptors of "
                                 f"{fitted_on}, not sample_rate={self.sample_rate}, n_mels={self.n_mels}: refit it "
                                 f"(preprocessing/fit_beat_level.py) or set beat_level=False")
        if self.instrument_tags and load_instrument_tagger().n_mels != self.n_mels:
            raise ValueError(f"the instrument tagger (llark/encoders/instrument_tagger.safetensors) reads "
                             f"{load_instrument_tagger().n_mels} mel bands, not n_mels={self.n_mels}: refit it "
                             f"(preprocessing/fit_instrument_tagger.py) or set instrument_tags=False")
        if self.meter_tags:
            if not self.beat_level:
                raise ValueError("meter_tags=True reads the rhythm descriptors at the fitted beat level, as the meter "
                                 "model was fitted on them: it needs rhythm=True and beat_level=True")
            fitted_on = load_meter_model().provenance.get("encoder")
            if fitted_on != {"sample_rate": self.sample_rate, "n_mels": self.n_mels}:
                raise ValueError(f"the meter model (llark/encoders/meter_model.json) was fitted on descriptors of "
                                 f"{fitted_on}, not sample_rate={self.sample_rate}, n_mels={self.n_mels}: refit it "
                                 f"(preprocessing/fit_meter_model.py) or set meter_tags=False")
            if load_meter_model().provenance.get("beat_level") != load_beat_level().fingerprint():
                raise ValueError("the meter model (llark/encoders/meter_model.json) was fitted on descriptors at another "
                                 "beat-level fit than llark/encoders/beat_level.json: refit it "
                                 "(preprocessing/fit_meter_model.py) or set meter_tags=False")
        if self.key_tags:
            fitted_on = load_key_model().provenance.get("encoder")
            if fitted_on != {"sample_rate": self.sample_rate}:
                raise ValueError(f"the key model (llark/encoders/key_model.json) was fitted on chroma of {fitted_on}, "
                                 f"not sample_rate={self.sample_rate}: refit it (preprocessing/fit_key_model.py) or "
                                 "set key_tags=False")

    @property
    def dim(self) -> int:
        return list(self.groups().values())[-1][1]  # the last group's stop

    def groups(self) -> dict[str, tuple[int, int]]:
        """Each channel group's [start, stop) in the features, in order (the table above): what
        model.audio_group_gains names."""
        widths = {"log_mel": self.n_mels, "chroma": 12, "onset": 1, "rms": 1, "tempogram": self.tempo_bins,
                  "rhythm": RHYTHM_DIM if self.rhythm else 0, "timbre": self.n_mels + CONTRAST_BANDS + 2 if self.timbre else 0,
                  "clip_tempogram": self.clip_tempo_bins, "intervals": self.interval_bins,
                  "instrument_tags": len(INSTRUMENT_CLASSES) if self.instrument_tags else 0,
                  "meter_tags": len(METERS) if self.meter_tags else 0, "key_tags": 24 if self.key_tags else 0}
        bounds, start = {}, 0
        for name, width in widths.items():
            if width:
                bounds[name] = (start, start + width)
                start += width
        return bounds

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def fitted(settings: dict[str, Any]) -> dict[str, str]:
        """The fitted models the features of these settings depend on, by fingerprint: {"beat_level": ...}
        with `beat_level` (the shipped fit: llark/encoders/beat_level.json), {"instrument_tagger": ...} with
        `instrument_tags` (llark/encoders/instrument_tagger.safetensors), {"meter_model": ...} with `meter_tags`
        (llark/encoders/meter_model.json), {"key_model": ...} with `key_tags` (llark/encoders/key_model.json). A refit
        changes a group with the settings unchanged, so encoder records keep this beside them
        (llark.encoders.fitted_models), and features of two fits are refused as another encoder's."""
        fitted = {"beat_level": load_beat_level().fingerprint()} if settings.get("beat_level") else {}
        if settings.get("instrument_tags"):
            fitted["instrument_tagger"] = load_instrument_tagger().fingerprint()
        if settings.get("meter_tags"):
            fitted["meter_model"] = load_meter_model().fingerprint()
        if settings.get("key_tags"):
            fitted["key_model"] = load_key_model().fingerprint()
        return fitted

    def encode(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float32)
        frames = frames_for(len(wave), self.sample_rate)
        if frames < 1:
            raise ValueError(f"{len(wave)} samples is shorter than one 25 fps frame")
        # One STFT, shared by the log-mel, onset, rhythm and timbre groups and the CQT's tuning estimate;
        # at the onset hop when a tempogram reads the fine onset (`_fine_spectrum`).
        fine_onset_mel = None
        if self.tempo_bins or self.clip_tempo_bins:
            magnitude, fine_onset_mel = self._fine_spectrum(wave)
        else:
            magnitude = self._magnitude(wave)
        mel_power = self._mel_power(magnitude)  # shared by the log-mel and rhythm groups
        cqt = self._cqt(wave, magnitude)  # shared by the chroma and interval groups
        chroma = self._chroma(cqt)
        decibels = self._decibels(mel_power)  # shared by the log-mel and timbre groups
        # every other fine frame, copied into the row-major order the mel at the spectral hop would have
        onset_mel = None if fine_onset_mel is None else np.ascontiguousarray(fine_onset_mel[:, ::2])
        onset, level = self._onset_and_level(wave, magnitude, onset_mel)
        groups = [self._log_mel(decibels), chroma, onset, level]
        fine_onset = None if fine_onset_mel is None else self._fine_onset(fine_onset_mel)
        if self.tempo_bins:
            groups.append(self._tempogram(fine_onset))
        meter_tags = None
        if self.rhythm:
            groups.append(self._rhythm(mel_power, chroma))
            if self.meter_tags:
                meter_tags = self._meter_tags(groups[-1])
        if self.timbre:
            groups.append(self._timbre(magnitude, decibels))
        if self.clip_tempo_bins:
            groups.append(self._clip_tempogram(fine_onset))
        if self.interval_bins:
            groups.append(self._intervals(cqt))
        features = np.concatenate([pool_to_frames(g, frames) for g in groups], axis=1)
        if self.instrument_tags:  # read off the log-mel group as the LM would see it, at 25 fps
            features = np.concatenate([features, self._instrument_tags(features[:, : self.n_mels])], axis=1)
        if meter_tags is not None:
            features = np.concatenate([features, pool_to_frames(meter_tags, frames)], axis=1)
        if self.key_tags:
            features = np.concatenate([features, pool_to_frames(self._key_tags(chroma, onset, level), frames)], axis=1)
        return features

    def log_mel_frames(self, wave: np.ndarray) -> np.ndarray:
        """[frames, n_mels]: the log-mel group alone at 25 fps, the same numbers as `encode`'s first n_mels
        channels: what the instrument tagger reads (preprocessing/fit_instrument_tagger.py fits it on these)."""
        wave = np.asarray(wave, dtype=np.float32)
        log_mel = self._log_mel(self._decibels(self._mel_power(self._magnitude(wave))))
        return pool_to_frames(log_mel, frames_for(len(wave), self.sample_rate))

    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [self.encode(wave) for wave in waves]

    def _magnitude(self, wave: np.ndarray) -> np.ndarray:
        return np.abs(librosa.stft(wave, n_fft=2048, hop_length=self.spectral_hop))

    def _fine_spectrum(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The STFT magnitude at the spectral hop (`_magnitude`) and the onset's 128-band mel power at the
        onset hop, from one STFT at the onset hop. Both hops frame the wave centred and the spectral hop
        is twice the onset hop, so every other fine frame is a spectral frame: the same magnitudes, bit for
        bit, as a second STFT at the spectral hop, and the onset read off their mel to float32 rounding (the
        BLAS may sum every other column in another order: tests/test_encoders.py), in 0.86 of the encoder's
        time (benchmarks/encode.py, README)."""
        fine = np.abs(librosa.stft(wave, n_fft=2048, hop_length=self.onset_hop))
        onset_mel = librosa.feature.melspectrogram(S=fine**2, sr=self.sample_rate, n_mels=ONSET_MELS)
        return np.asfortranarray(fine[:, ::2]), onset_mel  # in the order librosa.stft returns it

    def _mel_power(self, magnitude: np.ndarray) -> np.ndarray:
        return librosa.feature.melspectrogram(S=magnitude**2, sr=self.sample_rate, n_mels=self.n_mels)

    def _decibels(self, mel_power: np.ndarray) -> np.ndarray:
        return librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=None)

    def _log_mel(self, decibels: np.ndarray) -> np.ndarray:
        return ((np.maximum(decibels, -100.0) + 50.0) / 50.0).T  # about [-1, 1.5]

    def _cqt(self, wave: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
        """[bins, frames] CQT magnitude, exactly as librosa's chroma_cqt computes it from a wave: tuned to the
        wave's estimated tuning (librosa.cqt's own default assumes A440). `magnitude` is the wave's STFT
        (`_magnitude`): the tuning estimate reads the same STFT that librosa.cqt(tuning=None) would compute
        again for it (n_fft 2048, hop 512), so the result is the same, one STFT cheaper."""
        tuning = librosa.estimate_tuning(S=magnitude, sr=self.sample_rate, bins_per_octave=CQT_BINS_PER_OCTAVE)
        return np.abs(librosa.cqt(wave, sr=self.sample_rate, hop_length=self.spectral_hop, tuning=tuning,
                                  n_bins=CQT_BINS_PER_OCTAVE * CQT_OCTAVES, bins_per_octave=CQT_BINS_PER_OCTAVE))

    def _chroma(self, cqt: np.ndarray) -> np.ndarray:
        return librosa.feature.chroma_cqt(C=cqt, sr=self.sample_rate, hop_length=self.spectral_hop,
                                          bins_per_octave=CQT_BINS_PER_OCTAVE, n_octaves=CQT_OCTAVES).T

    def _intervals(self, cqt: np.ndarray) -> np.ndarray:
        """[spectral frames, interval_bins]: each frame's dB CQT (down to INTERVAL_FLOOR_DB below its peak,
        mean removed) correlated with itself shifted by 1..interval_bins bins, over its value at no shift."""
        decibels = librosa.amplitude_to_db(cqt, ref=1.0, amin=1e-6)
        level = np.maximum(decibels - decibels.max(axis=0, keepdims=True), -INTERVAL_FLOOR_DB)
        level -= level.mean(axis=0, keepdims=True)
        bins = len(level)
        spectrum = np.fft.rfft(level, 2 * bins, axis=0)  # zero-padded: shifts do not wrap around
        correlation = np.fft.irfft(np.abs(spectrum) ** 2, axis=0)[: self.interval_bins + 1]
        return (correlation[1:] / np.maximum(correlation[:1], 1e-9)).T.astype(np.float32)

    def _onset_and_level(self, wave: np.ndarray, magnitude: np.ndarray,
                         onset_mel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Onset strength and level at the spectral hop. The onset is librosa's onset_strength(y=wave) (a
        128-band mel spectrogram in dB), its mel computed from the wave's STFT `magnitude` rather than a
        second STFT of the same wave, or given (`onset_mel`, from `_fine_spectrum`): the same numbers."""
        if onset_mel is None:
            onset_mel = librosa.feature.melspectrogram(S=magnitude**2, sr=self.sample_rate, n_mels=ONSET_MELS)
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(onset_mel), sr=self.sample_rate,
                                             hop_length=self.spectral_hop)
        rms = librosa.feature.rms(y=wave, hop_length=self.spectral_hop)[0]
        level = np.maximum(librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5), -80.0) / 80.0
        return np.log1p(onset)[:, None], level[:, None]

    def bpm_axis(self) -> np.ndarray:
        return np.geomspace(self.min_bpm, self.max_bpm, self.tempo_bins)

    def _fine_onset(self, onset_mel: np.ndarray) -> np.ndarray:
        """Onset strength at the onset hop, for both tempograms: librosa's onset_strength(y=wave) at that hop,
        from its mel power (`_fine_spectrum`)."""
        return librosa.onset.onset_strength(S=librosa.power_to_db(onset_mel), sr=self.sample_rate,
                                            hop_length=self.onset_hop)

    def _tempogram(self, onset: np.ndarray) -> np.ndarray:
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

    def _clip_tempogram(self, onset: np.ndarray) -> np.ndarray:
        """[onset frames, clip_tempo_bins]: each segment's onset autocorrelation on each of its frames."""
        onset_rate = self.sample_rate / self.onset_hop
        axis = np.geomspace(self.min_bpm, self.max_bpm, self.clip_tempo_bins)
        step = (self.max_bpm / self.min_bpm) ** (1 / max(1, self.clip_tempo_bins - 1))  # one bin, as a ratio
        lags = onset_rate * 60.0 / axis
        low, high = np.floor(lags / step).astype(int), np.ceil(lags * step).astype(int) + 1
        rows = np.zeros((len(onset), self.clip_tempo_bins), np.float32)
        for start, end in self._segments(len(onset), onset_rate):
            r = _autocorrelation(onset[start:end])
            values = np.clip([r[a: min(b, len(r))].max() if a < len(r) else 0.0 for a, b in zip(low, high)], 0.0, None)
            peak = values.max()
            rows[start:end] = values / peak if peak > 0 else 0.0
        return rows

    def _segments(self, count: int, rate: float) -> list[tuple[int, int]]:
        """(start, end) frames of the equal segments, at most rhythm_seconds long, that `count` frames at
        `rate` per second are described in by the clip-level groups (rhythm, clip tempogram)."""
        segment = max(1, int(round(self.rhythm_seconds * rate)))
        bounds = np.linspace(0, count, max(1, -(-count // segment)) + 1).round().astype(int)
        return list(zip(bounds[:-1], bounds[1:]))

    def _instrument_tags(self, log_mel: np.ndarray) -> np.ndarray:
        """[frames, classes]: each segment's instrument probabilities (the shipped tagger) on each of its frames."""
        rows = np.zeros((len(log_mel), len(INSTRUMENT_CLASSES)), np.float32)
        for start, end in self._segments(len(log_mel), FRAME_RATE):
            rows[start:end] = load_instrument_tagger().probabilities(log_mel[start:end])
        return rows

    def _meter_tags(self, rhythm: np.ndarray) -> np.ndarray:
        """[spectral frames, len(METERS)]: each segment's meter probabilities (the shipped trees over the segment's
        rhythm descriptors, `rhythm` as `_rhythm` returns them) on each of its frames."""
        rows = np.zeros((len(rhythm), len(METERS)), np.float32)
        for start, end in self._segments(len(rhythm), self.sample_rate / self.spectral_hop):
            rows[start:end] = load_meter_model().probabilities(rhythm[start])
        return rows

    def key_statistics(self, wave: np.ndarray) -> np.ndarray:
        """[len(key_model.STATISTICS), 12]: the chroma statistics of the whole wave as one segment, as the key tags
        read those of a clip no longer than rhythm_seconds (preprocessing/fit_key_model.py fits on them)."""
        wave = np.asarray(wave, dtype=np.float32)
        magnitude = self._magnitude(wave)
        chroma = self._chroma(self._cqt(wave, magnitude))
        onset, level = self._onset_and_level(wave, magnitude)
        count = min(len(chroma), len(onset), len(level))
        return key_statistics(chroma[:count], onset[:count, 0], level[:count, 0], self.sample_rate / self.spectral_hop)

    def _key_tags(self, chroma: np.ndarray, onset: np.ndarray, level: np.ndarray) -> np.ndarray:
        """[spectral frames, 24]: each segment's key probabilities (the shipped key model over the segment's chroma
        statistics, `key_statistics`) on each of its frames."""
        rate = self.sample_rate / self.spectral_hop
        count = min(len(chroma), len(onset), len(level))  # the groups' spectral frames, which may differ by one
        rows = np.zeros((len(chroma), 24), np.float32)
        for start, end in self._segments(count, rate):
            statistics = key_statistics(chroma[start:end], onset[start:end, 0], level[start:end, 0], rate)
            rows[start:end] = load_key_model().probabilities(statistics)
        rows[count:] = rows[count - 1] if count else 0.0
        return rows

    def _timbre(self, magnitude: np.ndarray, decibels: np.ndarray) -> np.ndarray:
        """[spectral frames, n_mels + 8]: log-mel spread over SPREAD_SECONDS, spectral contrast, log flatness."""
        window = max(2, int(round(SPREAD_SECONDS * self.sample_rate / self.spectral_hop)))
        local_mean = uniform_filter1d(decibels, window, axis=1, mode="nearest")
        local_square = uniform_filter1d(decibels**2, window, axis=1, mode="nearest")
        spread = np.sqrt(np.maximum(local_square - local_mean**2, 0.0)) / 20.0  # dB / 20: about [0, 1]
        contrast = librosa.feature.spectral_contrast(S=magnitude, sr=self.sample_rate, n_bands=CONTRAST_BANDS) / 50.0
        flatness = np.log10(librosa.feature.spectral_flatness(S=magnitude, amin=1e-10))[0] / 5.0
        return np.concatenate([spread, contrast, flatness[None]], axis=0).T

    def _rhythm(self, mel_power: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """[spectral frames, RHYTHM_DIM]: each segment's descriptors on each of its frames."""
        onset, bass, chroma = self._rhythm_envelopes(mel_power, chroma)
        rate = self.sample_rate / self.spectral_hop
        rows = np.zeros((len(onset), RHYTHM_DIM), np.float32)
        for start, end in self._segments(len(onset), rate):
            rows[start:end] = self._rhythm_descriptors(onset[start:end], bass[start:end], chroma[start:end], rate)
        return rows

    def _rhythm_envelopes(self, mel_power: np.ndarray, chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Onset strength, bass onset strength and chroma, on the same spectral frames."""
        mel_db = librosa.power_to_db(mel_power)
        bass_bands = max(1, int(np.sum(librosa.mel_frequencies(n_mels=self.n_mels, fmax=self.sample_rate / 2) < BASS_HZ)))
        onset = librosa.onset.onset_strength(S=mel_db, sr=self.sample_rate, hop_length=self.spectral_hop)
        bass = librosa.onset.onset_strength(S=mel_db[:bass_bands], sr=self.sample_rate, hop_length=self.spectral_hop)
        count = min(len(onset), len(chroma))
        return onset[:count], bass[:count], chroma[:count]

    def rhythm_descriptors(self, wave: np.ndarray, beat_seconds: np.ndarray | None = None) -> np.ndarray:
        """[RHYTHM_DIM]: the rhythm group's descriptors of the whole wave as one segment, measured against
        librosa's tracked beats (as `encode` does) or, given `beat_seconds`, against those beats.

            MIRFeatureEncoder().rhythm_descriptors(wave, beat_seconds=clip["labels"]["beats"])   # the gold beats

        benchmarks/meter_ceiling.py compares the two: how much of the meter the tracked beat level costs.
        """
        onset, bass, chroma = self._wave_rhythm_envelopes(wave)
        rate = self.sample_rate / self.spectral_hop
        if beat_seconds is None:
            return self._rhythm_descriptors(onset, bass, chroma, rate)
        beats = np.round(np.asarray(beat_seconds, dtype=float) * rate).astype(int)
        beats = beats[(beats >= 0) & (beats < len(onset))]
        tempo = 60.0 * rate / float(np.median(np.diff(beats))) if len(beats) >= 2 else 0.0
        return self._descriptors_at_beats(onset, bass, chroma, rate, beats, tempo)

    def _rhythm_descriptors(self, onset: np.ndarray, bass: np.ndarray, chroma: np.ndarray, rate: float) -> np.ndarray:
        """The descriptors of one segment (module docstring), measured against its tracked beats; with
        `beat_level`, against the beats tracked again at the level the beat-level model names."""
        descriptors, tracked_bpm = self._tracked_descriptors(onset, bass, chroma, rate)
        if not self.beat_level:
            return descriptors
        bpm = tracked_bpm * load_beat_level().ratio(descriptors)
        _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=self.sample_rate, hop_length=self.spectral_hop,
                                           trim=False, bpm=bpm)
        return self._descriptors_at_beats(onset, bass, chroma, rate, np.asarray(beats, dtype=int), bpm)

    def _tracked_descriptors(self, onset: np.ndarray, bass: np.ndarray, chroma: np.ndarray,
                             rate: float) -> tuple[np.ndarray, float]:
        """The descriptors at librosa's tracked beats, and the tempo they measure against (BPM)."""
        tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=self.sample_rate, hop_length=self.spectral_hop,
                                               trim=False, prior=TempoPrior())
        beats, tempo = np.asarray(beats, dtype=int), float(np.atleast_1d(tempo)[0])
        return self._descriptors_at_beats(onset, bass, chroma, rate, beats, tempo), 60.0 * rate / _beat_period(beats, rate, tempo)

    def tracked_rhythm(self, wave: np.ndarray) -> tuple[np.ndarray, float]:
        """The whole wave's rhythm descriptors at librosa's tracked beats (as one segment) and the tracked
        tempo in BPM: what the beat-level model reads (preprocessing/fit_beat_level.py fits it on these)."""
        onset, bass, chroma = self._wave_rhythm_envelopes(wave)
        return self._tracked_descriptors(onset, bass, chroma, self.sample_rate / self.spectral_hop)

    def _wave_rhythm_envelopes(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_rhythm_envelopes` of a whole wave (for the one-segment descriptors above)."""
        wave = np.asarray(wave, dtype=np.float32)
        magnitude = self._magnitude(wave)
        return self._rhythm_envelopes(self._mel_power(magnitude), self._chroma(self._cqt(wave, magnitude)))

    def _descriptors_at_beats(self, onset: np.ndarray, bass: np.ndarray, chroma: np.ndarray, rate: float,
                              beats: np.ndarray, tempo: float) -> np.ndarray:
        """The descriptors of one segment against the given beat frames (tempo in BPM: the period when
        fewer than 4 beats are given)."""
        period = _beat_period(beats, rate, tempo)
        tracked = np.exp(-0.5 * (np.log(60.0 * rate / period / TRACKED_TEMPO_AXIS) / np.log(1.078)) ** 2)

        unit = chroma.T / np.maximum(np.linalg.norm(chroma.T, axis=0), 1e-9)  # [12, frames]
        half = max(1, int(round(period / 2)))
        novelty = np.concatenate([np.zeros(half), 1.0 - (unit[:, half:] * unit[:, :-half]).sum(axis=0)])
        periodicity = [_autocorrelation(x) for x in (onset, bass, novelty)]
        at_multiples = [_peak_near(r, m * period) for r in periodicity for m in BEAT_MULTIPLES]

        contrasts, similarity = np.zeros(3 * len(BAR_BEATS)), np.zeros(SIMILARITY_LAGS)
        if len(beats) >= 4:
            spans = list(zip(beats[:-1], beats[1:]))
            per_beat = np.stack([chroma[a:b].mean(axis=0) for a, b in spans], axis=1)  # [12, beats - 1]
            per_beat /= np.maximum(np.linalg.norm(per_beat, axis=0), 1e-9)
            change = np.concatenate([[0.0], 1.0 - (per_beat[:, 1:] * per_beat[:, :-1]).sum(axis=0)])
            peaks = [np.array([x[max(0, a - 2): a + 3].max() for a, _ in spans]) for x in (bass, onset)]
            accents = [zscore(a) for a in (change, *peaks)]
            contrasts = np.array([phase_contrasts(a, bar).max() if len(a) >= MIN_BARS * bar else 0.0  # best phase
                                  for a in accents for bar in BAR_BEATS])
            similarity = np.array([(per_beat[:, k:] * per_beat[:, :-k]).sum(axis=0).mean() if per_beat.shape[1] > k else 0.0
                                   for k in range(1, SIMILARITY_LAGS + 1)])
        subdivision = [_interpolate(periodicity[0], k * period / SUBDIVISIONS) for k in range(1, SUBDIVISIONS)]
        lags = np.arange(int(0.8 * rate), min(len(novelty) - 1, int(6.0 * rate)))
        bar_ratio = np.log2(lags[np.argmax(periodicity[2][lags])] / period) if len(lags) else 0.0
        return np.concatenate([tracked, at_multiples, contrasts, similarity, subdivision, [bar_ratio]]).astype(np.float32)


def _beat_period(beats: np.ndarray, rate: float, tempo: float) -> float:
    """The beat period in frames: the median interval of the beats, or the tempo's when fewer than 4 are given."""
    return float(np.median(np.diff(beats))) if len(beats) >= 4 else 60.0 * rate / max(tempo, 1.0)


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """Autocorrelation of the mean-removed signal over lags 0..len-1, 1 at lag 0 (0 for a constant)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    spectrum = np.fft.rfft(x, 2 * len(x))
    r = np.fft.irfft(spectrum * np.conj(spectrum))[: len(x)]
    return r / r[0] if r[0] > 1e-12 else np.zeros_like(r)


def _interpolate(r: np.ndarray, lag: float) -> float:
    below = int(np.floor(lag))
    if below + 1 >= len(r):
        return 0.0
    weight = lag - below
    return float((1 - weight) * r[below] + weight * r[below + 1])


def _peak_near(r: np.ndarray, lag: float) -> float:
    low, high = int(np.floor(lag * (1 - PEAK_TOLERANCE))), int(np.ceil(lag * (1 + PEAK_TOLERANCE))) + 1
    return float(r[low: min(high, len(r))].max()) if low < len(r) else 0.0

