"""Estimated MIR labels of an audio clip: tempo, beats, downbeats, key and chords (librosa + numpy).

    from llark.annotate import annotate, classic_key, classic_tempo
    labels = annotate(wave, sample_rate)   # {"tempo": {"value": 95.7, "tool": ..., "version": ...}, "key": ...}
    classic_key(wave, sample_rate)         # "F# minor": the classic-MIR key baseline of the evaluation
    classic_tempo(wave, sample_rate)       # 95.7: the classic-MIR tempo baseline

Values follow docs/data-formats.md: seconds from the start of the wave, keys as "F# minor", chords
in mir_eval syntax ("F#:min", "N"), tempo in BPM. Every label is a dict {"value", "tool", "version",
"method"}: tool "llark.annotate/librosa" (this module's methods on librosa's features and beat
tracker), version librosa's, method a short description. LLark annotated with madmom's trained
networks; the madmom package here only imports after patching another library's internals, so
these are classic signal-processing estimates. benchmarks/annotator_accuracy.py measures them.

Methods, and where they fail:
- beats, tempo: librosa's dynamic-programming beat tracker (Ellis 2007) on the onset-strength
  envelope, with a wider tempo prior than librosa's default (TempoPrior), midpoints added when the
  tracker followed every other pulse (add_skipped_pulses), no trimming of the clip's first and last
  seconds, and times moved one frame earlier (beat_seconds). The tempo is 60 over the mean interval
  of the steady beats, finer than the tempogram's lag grid (~2 % at 120 BPM). The main error is the
  metrical level: half or double, and 2:3 in 3/4 and 6/8 (the dotted-quarter beat of a 6/8 is
  rarely found): the gap between tempo Acc1 and Acc2.
- downbeats: a meter and phase estimate. Each beat gets an accent: chroma change (harmony tends to
  change on the bar line), bass onset and overall onset at the beat, each z-scored across the clip.
  Of 2, 3 or 4 beats per bar and every phase, the one whose beats carry the highest mean accent over
  the others wins. Limits: one meter per clip, only as right as the beats (a wrong beat level gives
  a wrong bar), 2 and 4 are often confused, pick-ups and syncopated harmony move the phase, and
  fewer than two bars of beats give no estimate.
- key: the clip's mean CQT chroma correlated with the 24 rotations of three published major/minor
  profiles (Krumhansl-Kessler, Temperley's Kostka-Payne, Albrecht-Shanahan); the key with the highest
  mean correlation wins. Each set alone fails somewhere: KK named the parallel major on minor
  cadences played by bright (overtone-rich) sounds (MIREX 0.94 over 192 cadences, the others 1.0),
  Temperley and Albrecht-Shanahan (which expect harmonic minor) the relative major on natural-minor
  songs (0.86 against KK's 0.91 over 144 rendered songs); the mean scored 1.0 and 0.93 there, and
  0.91 on 72 corpus clips (KK 0.80, Temperley 0.86, A-S 0.89). Modal tunes (dorian, mixolydian) are
  forced into major or minor.
- chords: 24 major/minor triad templates and N, cosine similarity to beat-synchronous chroma of the
  log-compressed CQT above C3 (chord_chroma says why), smoothed with a Viterbi path whose
  self-transition is favoured (chords last several beats). Chords change only on tracked beats;
  sevenths and other qualities come out as a triad; beat segments 40 dB below the clip's loudest are N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np
import soxr

from llark.audio import peak_normalise
from llark.corpus.theory import KEYS_24  # C..B major, then C..B minor, spelled as usual (Db major, C# minor)

SAMPLE_RATE = 22050  # librosa's defaults (hop, CQT range, tempo prior) are tuned for this rate
HOP = 512  # 23 ms frames
TOOL = "llark.annotate/librosa"

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# (major, minor) weights of the 12 pitch classes from the tonic up, as published.
KEY_PROFILES = {
    "krumhansl-kessler": (  # probe-tone ratings, Krumhansl & Kessler 1982
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (  # Kostka-Payne corpus, Temperley 2007
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "albrecht-shanahan": (  # Albrecht & Shanahan 2013
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
}
DEFAULT_PROFILE = "ensemble"

# Chord smoothing: similarities become log-likelihoods with this sharpness; a change of chord costs
# log(CHORD_STAY / ((1 - CHORD_STAY) / 24)) against staying.
CHORD_LOG_GAIN = 10.0  # chord chroma is computed on log(1 + gain * |CQT| / max) ...
CHORD_LOWEST_OCTAVE = 2  # ... of the CQT octaves from C3 up (octave 0 is C1)
CHORD_SHARPNESS = 20.0
CHORD_STAY = 0.6
N_SIMILARITY = 0.55  # a segment must match a triad better than this (cosine) to get a chord
QUIET_DB = -40.0  # beat segments this far below the clip's loudest are "N"

# Weights of the beat accents for the downbeat estimate (chroma change leads: it is the cue that
# separates bar lines from strong beats inside the bar).
ACCENT_WEIGHTS = {"chroma_change": 1.0, "bass_onset": 0.5, "onset": 0.25}
METERS = (4, 3, 2)  # tried in this order; the first wins ties
MIN_BARS = 2

# Beat tracking: librosa weighs its tempogram with a prior over tempo; its default is a log-normal
# around 120 BPM with a one-octave spread. We spread it over two octaves and cut it to 50-200 BPM, so
# slow and fast pieces keep their own beat level more often while ties (a click track's every-beat and
# every-other-beat periodicities are equally strong) still go to the level nearer 120. On the generated
# corpus (tempos 50-200) this raised tempo Acc1/Acc2 from 0.54/0.72 to 0.64/0.89 (72 clips; on 144
# clips of a corpus not used for tuning, librosa's defaults 0.56/0.84, ours 0.61/0.88); a flat prior
# over the range reached 0.60/0.90 but halved click tracks at 120 BPM.
TEMPO_PRIOR_CENTRE, TEMPO_PRIOR_OCTAVES, TEMPO_RANGE = 120.0, 2.0, (50.0, 200.0)

# The tempogram cannot tell a pulse from every other pulse when both are equally strong (a click
# track): if the onsets halfway between the tracked beats are this strong (median, relative to the
# beats'), the tracker followed every other pulse and the midpoints are beats too.
MIDPOINT_RATIO = 0.8


class TempoPrior:
    """Log-normal tempo prior (in octaves around a centre BPM), zero outside TEMPO_RANGE; librosa's
    beat_track(prior=...) only calls .logpdf(bpm)."""

    def logpdf(self, bpm: np.ndarray) -> np.ndarray:
        bpm = np.asarray(bpm, dtype=float)
        octaves = np.log2(np.maximum(bpm, 1e-9) / TEMPO_PRIOR_CENTRE) / TEMPO_PRIOR_OCTAVES
        inside = (bpm >= TEMPO_RANGE[0]) & (bpm <= TEMPO_RANGE[1])
        return np.where(inside, -0.5 * octaves**2, -np.inf)


@dataclass
class ClipAnalysis:
    """Frame-level features shared by every estimator (computed once per clip)."""

    duration: float  # seconds
    onset: np.ndarray  # [frames] onset strength, all mel bands
    bass_onset: np.ndarray  # [frames] onset strength of the mel bands below 200 Hz
    key_chroma: np.ndarray  # [12] mean CQT chroma (energy-weighted)
    chord_chroma: np.ndarray  # [12, frames] chroma of the log-compressed CQT above C3
    beat_frames: np.ndarray  # tracked beats, frame indices
    grid_tempo: float  # librosa's tempogram estimate, BPM


def _label(value: Any, method: str) -> dict[str, Any]:
    return {"value": value, "tool": TOOL, "version": librosa.__version__, "method": method}


def prepare(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at SAMPLE_RATE, peak 1.0 (the features are then level-independent); silence is an error."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono wave of shape [samples], got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError("wave contains NaN or inf")
    if sample_rate != SAMPLE_RATE:
        wave = soxr.resample(wave, sample_rate, SAMPLE_RATE).astype(np.float32)
    return peak_normalise(wave, "wave")


def onsets_and_beats(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(onset strength, bass onset strength, beat frames, tempogram tempo) of a prepared wave."""
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, hop_length=HOP, n_mels=128)
    mel_db = librosa.power_to_db(mel)
    bass_bands = int(np.sum(librosa.mel_frequencies(n_mels=128, fmax=SAMPLE_RATE / 2) < 200.0))
    onset = librosa.onset.onset_strength(S=mel_db, sr=SAMPLE_RATE, hop_length=HOP)
    bass_onset = librosa.onset.onset_strength(S=mel_db[:bass_bands], sr=SAMPLE_RATE, hop_length=HOP)
    # trim=False: librosa's own trimming drops the first and last ~2 s of beats of a clip cut from
    # the middle of a piece; only beats in silence at the edges are dropped, below.
    grid_tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=SAMPLE_RATE, hop_length=HOP, trim=False,
                                                prior=TempoPrior())
    beats = add_skipped_pulses(onset, np.asarray(beats, dtype=int))
    frame_db = librosa.power_to_db(mel.sum(axis=0), ref=np.max)
    loud = np.flatnonzero(frame_db > QUIET_DB)
    if len(loud):
        beats = beats[(beats >= loud[0] - 1) & (beats <= loud[-1] + 1)]
    return onset, bass_onset, beats, float(np.atleast_1d(grid_tempo)[0])


def add_skipped_pulses(onset: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Beats with the midpoints between them added when those carry onsets nearly as strong as the
    beats (MIDPOINT_RATIO) and the doubled tempo stays within TEMPO_RANGE."""
    if len(beats) < 4:
        return beats
    period = float(np.median(np.diff(beats))) * HOP / SAMPLE_RATE
    middles = (beats[:-1] + beats[1:]) // 2

    def strength(frames: np.ndarray) -> float:
        return float(np.median([onset[max(0, f - 2): f + 3].max() for f in frames]))

    if 120.0 / period > TEMPO_RANGE[1] or strength(middles) < MIDPOINT_RATIO * max(strength(beats), 1e-9):
        return beats
    return np.sort(np.concatenate([beats, middles]))


def constant_q(y: np.ndarray) -> np.ndarray:
    """|CQT| of a prepared wave, 7 octaves from C1 at 3 bins per semitone (librosa's chroma_cqt layout)."""
    return np.abs(librosa.cqt(y, sr=SAMPLE_RATE, hop_length=HOP, n_bins=7 * 36, bins_per_octave=36))


def key_chroma(cqt: np.ndarray) -> np.ndarray:
    """[12] energy-weighted mean chroma: loud passages, where the harmony is, count most."""
    return librosa.feature.chroma_cqt(C=cqt, sr=SAMPLE_RATE, bins_per_octave=36, norm=None).mean(axis=1)


def chord_chroma(cqt: np.ndarray) -> np.ndarray:
    """[12, frames] chroma of log(1 + 10 |CQT| / max) from C3 (131 Hz) up.

    Below C3 sit the bass notes, whose overtones (the 5th harmonic is a major third) turned minor
    triads into major ones, and the bass drum, which the CQT's second-long low windows smear into a
    flat chroma; the compression keeps loud roots from drowning the third."""
    upper = cqt[CHORD_LOWEST_OCTAVE * 36:]
    compressed = np.log1p(CHORD_LOG_GAIN * upper / max(float(upper.max()), 1e-12))
    return librosa.feature.chroma_cqt(C=compressed, sr=SAMPLE_RATE, bins_per_octave=36, norm=None,
                                      fmin=librosa.note_to_hz(f"C{1 + CHORD_LOWEST_OCTAVE}"))


def analyse(wave: np.ndarray, sample_rate: int) -> ClipAnalysis:
    """Onset envelopes, chroma and beats of a clip."""
    y = prepare(wave, sample_rate)
    onset, bass_onset, beats, grid_tempo = onsets_and_beats(y)
    cqt = constant_q(y)
    frames = min(cqt.shape[1], len(onset))
    return ClipAnalysis(
        duration=len(y) / SAMPLE_RATE, onset=onset[:frames], bass_onset=bass_onset[:frames],
        key_chroma=key_chroma(cqt), chord_chroma=chord_chroma(cqt[:, :frames]),
        beat_frames=beats[beats < frames], grid_tempo=grid_tempo,
    )


def beat_seconds(frames: np.ndarray) -> np.ndarray:
    """Times of beat frames, one frame earlier: librosa's onset envelope peaks one frame (23 ms) after
    an impulsive onset (measured on click tracks), and beats sit on the envelope's peaks."""
    times = librosa.frames_to_time(np.asarray(frames) - 1, sr=SAMPLE_RATE, hop_length=HOP)
    return np.round(np.maximum(times, 0.0), 3)


# ---- tempo -------------------------------------------------------------------------------------

def tempo_from_beats(beat_times: np.ndarray, fallback: float) -> float:
    """60 / mean inter-beat interval of the steady beats (within 15 % of the median interval).

    The mean over many intervals is not tied to the frame grid the way one tempogram lag is.
    """
    intervals = np.diff(beat_times)
    if len(intervals) < 3:
        return fallback
    steady = intervals[np.abs(intervals / np.median(intervals) - 1.0) < 0.15]
    return 60.0 / float(steady.mean()) if len(steady) >= 3 else fallback


# ---- downbeats -----------------------------------------------------------------------------------

def beat_chroma(chroma: np.ndarray, beat_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean chroma between consecutive boundaries [0, beats..., end]: ([12, segments], boundary frames)."""
    bounds = np.unique(np.concatenate([[0], beat_frames[beat_frames < chroma.shape[1]], [chroma.shape[1]]]))
    segments = np.stack([chroma[:, a:b].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    return segments, bounds


def zscore(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std, ignoring NaN; zeros for a constant or all-NaN x."""
    if np.isnan(x).all():
        return np.zeros_like(x)
    spread = np.nanstd(x)
    return (x - np.nanmean(x)) / spread if spread > 1e-9 else np.zeros_like(x)


def beat_accents(analysis: ClipAnalysis) -> np.ndarray:
    """One accent per beat: weighted z-scores of chroma change, bass onset and onset at the beat."""
    beats = analysis.beat_frames
    segments, bounds = beat_chroma(analysis.chord_chroma, beats)
    unit = segments / np.maximum(np.linalg.norm(segments, axis=0), 1e-9)
    change = np.full(len(beats), np.nan)
    for j, frame in enumerate(beats):
        after = np.searchsorted(bounds, frame, side="right") - 1  # the segment that starts at this beat
        if after >= 1:
            change[j] = 1.0 - float(unit[:, after - 1] @ unit[:, after])

    def peak_near(envelope: np.ndarray) -> np.ndarray:
        return np.array([envelope[max(0, b - 2): b + 3].max() for b in beats])

    accent = (ACCENT_WEIGHTS["chroma_change"] * zscore(change) + ACCENT_WEIGHTS["bass_onset"] * zscore(
        peak_near(analysis.bass_onset)) + ACCENT_WEIGHTS["onset"] * zscore(peak_near(analysis.onset)))
    return np.nan_to_num(accent, nan=0.0)


def phase_contrasts(accents: np.ndarray, beats_per_bar: int) -> np.ndarray:
    """[beats_per_bar]: for each phase, the mean accent on every beats_per_bar-th beat from it minus the
    mean on the other beats (needs more than beats_per_bar accents)."""
    on = np.zeros(len(accents), dtype=bool)
    scores = np.empty(beats_per_bar)
    for phase in range(beats_per_bar):
        on[:] = False
        on[phase::beats_per_bar] = True
        scores[phase] = accents[on].mean() - accents[~on].mean()
    return scores


def meter_and_phase(accents: np.ndarray) -> tuple[int, int] | None:
    """(beats per bar, index of the first downbeat) with the largest accent contrast; None below two bars."""
    best, best_score = None, -np.inf
    for meter in METERS:
        if len(accents) < MIN_BARS * meter:
            continue
        for phase, score in enumerate(phase_contrasts(accents, meter)):
            if score > best_score + 1e-9:
                best, best_score = (meter, phase), score
    return best


# ---- key -----------------------------------------------------------------------------------------

def key_correlations(mean_chroma: np.ndarray, profile: str) -> np.ndarray:
    """[24] Pearson correlations of the chroma with the profile rotated to C..B major, then C..B minor."""
    major, minor = (np.asarray(p, dtype=float) for p in KEY_PROFILES[profile])
    candidates = np.stack([np.roll(major, t) for t in range(12)] + [np.roll(minor, t) for t in range(12)])
    candidates = (candidates - candidates.mean(axis=1, keepdims=True)) / candidates.std(axis=1, keepdims=True)
    x = np.asarray(mean_chroma, dtype=float)
    if x.std() < 1e-12:
        raise ValueError("flat chroma: no pitch content to estimate a key from")
    return candidates @ ((x - x.mean()) / x.std()) / 12.0


def key_from_chroma(mean_chroma: np.ndarray, profile: str = DEFAULT_PROFILE) -> tuple[str, float]:
    """("F# minor", score) of the best of the 24 keys; `profile` is one of KEY_PROFILES or "ensemble"
    (the sum of the correlations with all of them)."""
    names = list(KEY_PROFILES) if profile == "ensemble" else [profile]
    score = sum(key_correlations(mean_chroma, name) for name in names) / len(names)
    best = int(np.argmax(score))
    return KEYS_24[best].name, float(score[best])


# ---- chords --------------------------------------------------------------------------------------

CHORD_NAMES = [f"{p}:maj" for p in PITCH_CLASSES] + [f"{p}:min" for p in PITCH_CLASSES] + ["N"]


def _triad_templates() -> np.ndarray:
    """[24, 12] unit vectors: root, third (4 or 3 semitones up) and fifth."""
    rows = []
    for third in (4, 3):
        for root in range(12):
            row = np.zeros(12)
            row[[root, (root + third) % 12, (root + 7) % 12]] = 1.0
            rows.append(row / np.linalg.norm(row))
    return np.stack(rows)


def viterbi_sticky(log_emission: np.ndarray, stay: float) -> np.ndarray:
    """Most likely state path [T] for log_emission [states, T] when each step stays with prob `stay`
    and moves to any other state uniformly. O(states * T), since the best move is shared by all states."""
    states, steps = log_emission.shape
    log_stay, log_move = np.log(stay), np.log((1.0 - stay) / (states - 1))
    score = log_emission[:, 0].copy()
    back = np.zeros((states, steps), dtype=int)
    for t in range(1, steps):
        best_from = int(np.argmax(score))
        moved = score[best_from] + log_move
        stays = score + log_stay
        back[:, t] = np.where(stays >= moved, np.arange(states), best_from)
        score = np.maximum(stays, moved) + log_emission[:, t]
    path = np.zeros(steps, dtype=int)
    path[-1] = int(np.argmax(score))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = back[path[t], t]
    return path


def chords_from_chroma(chroma: np.ndarray, beat_frames: np.ndarray, duration: float) -> list[dict[str, Any]]:
    """[{"start", "end", "chord"}] covering [0, duration), one decision per beat, merged."""
    segments, bounds = beat_chroma(chroma, beat_frames)
    energy = segments.sum(axis=0)
    quiet = 10 * np.log10(np.maximum(energy, 1e-12) / max(energy.max(), 1e-12)) < QUIET_DB
    unit = segments / np.maximum(np.linalg.norm(segments, axis=0), 1e-9)
    similarity = np.vstack([_triad_templates() @ unit, np.full((1, unit.shape[1]), N_SIMILARITY)])
    similarity[-1, quiet] = 1.0  # silence: N beats any triad
    path = viterbi_sticky(CHORD_SHARPNESS * similarity, CHORD_STAY)
    times = beat_seconds(bounds)  # chords change on the reported beats
    times[0], times[-1] = 0.0, duration
    chords: list[dict[str, Any]] = []
    for state, start, end in zip(path, times[:-1], times[1:]):
        if chords and chords[-1]["chord"] == CHORD_NAMES[state]:
            chords[-1]["end"] = round(float(end), 3)
        else:
            chords.append({"start": round(float(start), 3), "end": round(float(end), 3), "chord": CHORD_NAMES[state]})
    return chords


# ---- all labels ----------------------------------------------------------------------------------

def annotate(wave: np.ndarray, sample_rate: int) -> dict[str, dict[str, Any]]:
    """Every label this module estimates for one clip (those it cannot estimate are left out)."""
    analysis = analyse(wave, sample_rate)
    labels: dict[str, dict[str, Any]] = {}
    beats = analysis.beat_frames
    times = beat_seconds(beats)
    if len(beats) >= 2:
        labels["tempo"] = _label(round(tempo_from_beats(times, analysis.grid_tempo), 2),
                                 "60 / mean steady interval of the beats")
        labels["beats"] = _label(times.tolist(),
                                 "librosa.beat.beat_track, tempo prior 50-200 BPM, skipped pulses added")
        meter = meter_and_phase(beat_accents(analysis))
        if meter is not None:
            per_bar, first = meter
            labels["downbeats"] = _label(times[first::per_bar].tolist(),
                                         "beat accents (chroma change, bass onset, onset), 2-4 beats per bar")
            labels["downbeats"]["beats_per_bar"] = per_bar
    if analysis.key_chroma.std() > 1e-12:
        labels["key"] = _label(key_from_chroma(analysis.key_chroma)[0],
                               f"mean CQT chroma x key profiles ({DEFAULT_PROFILE}: {', '.join(KEY_PROFILES)})")
        labels["chords"] = _label(chords_from_chroma(analysis.chord_chroma, beats, analysis.duration),
                                  "triad templates on beat-synchronous log-CQT chroma, sticky Viterbi")
    return labels


def classic_key(wave: np.ndarray, sample_rate: int, profile: str = DEFAULT_PROFILE) -> str:
    """Key of a clip ("F# minor") from its mean CQT chroma: the classic-MIR baseline of the evaluation."""
    return key_from_chroma(key_chroma(constant_q(prepare(wave, sample_rate))), profile)[0]


def classic_tempo(wave: np.ndarray, sample_rate: int) -> float:
    """Tempo of a clip in BPM from librosa's beat tracker: the classic-MIR baseline of the evaluation."""
    _, _, beats, grid_tempo = onsets_and_beats(prepare(wave, sample_rate))
    return round(tempo_from_beats(beat_seconds(beats), grid_tempo), 2)
