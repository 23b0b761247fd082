"""Which metrical level is the beat? A small fitted model that corrects librosa's tracked beat level.

    python preprocessing/fit_beat_level.py --clips data/levelfit/clips.jsonl --out /tmp/level.json   # (the shipped
                                                       # fit: three corpora, the script's docstring)
    model = BeatLevelModel.load()                      # the shipped fit (llark/encoders/beat_level.json)
    model.ratio(descriptors)                           # 1.5: the beat is 3:2 of the tracked one

librosa's tracker finds a pulse, but not always the one a score calls the beat: on the demo corpus it
beat at the labelled tempo on 56 % of the clips, at half or twice it on 28 %, at 3:2 or 2:3 on 7 %
(benchmarks/meter_ceiling.py). The rhythm group measures everything as multiples of the tracked beat,
so a 4/4 tracked at half its tempo reads as a 2/4, and the meter follows the level. Measured at the
labelled tempo (librosa's tracker given that tempo), the descriptors read the meter of the val clips at
0.93 with a logistic regression, against 0.75 at the tracked level.

This model reads the rhythm descriptors at the tracked beat (the tracked tempo, the autocorrelations at
multiples of the beat, the bar contrasts: how the pulse divides and groups) and names the ratio of the
labelled beat to the tracked one among LEVEL_RATIOS; the MIR encoder (`beat_level=True`) then tracks
again at that tempo and describes the rhythm there. It is gradient-boosted trees (llark/encoders/
boosted_trees.py: 200 stages of one tree of at most 15 leaves per ratio), fitted by
preprocessing/fit_beat_level.py on a corpus of its own and stored as JSON beside this file, with how it was
made. That corpus is 7200 pieces generated with other seeds than the demo's (1800 of seed 1, 5400 of seed 2;
none of them in the demo's splits) and the real tunes seed-1 and seed-2 draws put in the train split (1685;
the split is a hash of the title, so no tune of the demo's val or test splits is among them). Fitted there,
the level is right on 0.89 of the demo's train clips, where a logistic regression on the first 2291 of those
clips (the fit shipped until 2026-12-06) was right on 0.83: the level is learnt from data, and more of it
helped, up to about 8k clips (twice as many again did not: the pieces without drums, right on about 0.83 of
them against 0.96 with drums, do not say which beat their label names; docs/demo-experiments.md). Only numpy
is needed to apply it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llark.encoders.boosted_trees import BoostedTrees, fit_trees, read_model_file, write_model_file

# Labelled beat / tracked beat: thirds and halves of a compound beat, quarter against dotted quarter...
LEVEL_RATIOS = (1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 2.0, 3.0)
LEVEL_NAMES = ("1/3", "1/2", "2/3", "3/4", "1", "4/3", "3/2", "2", "3")  # the trees' classes, as the model file names them
LEVEL_TOLERANCE = 0.04  # a clip whose labelled tempo is within 4 % of a ratio of the tracked one teaches that ratio
SHIPPED = Path(__file__).with_name("beat_level.json")


class BeatLevelError(ValueError):
    """A beat-level model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class BeatLevelModel:
    trees: BoostedTrees  # classes: the LEVEL_NAMES of the ratios the fit was taught
    provenance: dict[str, Any] = field(default_factory=dict)  # how it was fitted (corpus, counts, accuracy)

    def ratio(self, descriptors: np.ndarray) -> float:
        """The labelled beat's tempo over the tracked one, for one clip's rhythm descriptors."""
        return LEVEL_RATIOS[LEVEL_NAMES.index(self.trees.predict(descriptors))]

    def ratios(self, rows: np.ndarray) -> np.ndarray:
        """`ratio` for every row of [clips, features] at once."""
        return np.array([LEVEL_RATIOS[LEVEL_NAMES.index(name)] for name in self.trees.predict(rows)])

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> BeatLevelModel:
        path = Path(path)
        model = cls(*read_model_file(path, "beat-level model", "preprocessing/fit_beat_level.py", BeatLevelError))
        unknown = [name for name in model.trees.classes if name not in LEVEL_NAMES]
        if unknown:
            raise BeatLevelError(f"{path}: ratios {unknown} are not among LEVEL_NAMES {list(LEVEL_NAMES)}")
        return model

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the trees (not the provenance): what encoder records keep
        (`MIRFeatureEncoder.fitted`), so features of two fits are never mixed."""
        return self.trees.fingerprint()

    def save(self, path: str | Path) -> None:
        write_model_file(path, self.trees, self.provenance)


@lru_cache(maxsize=1)
def load_shipped() -> BeatLevelModel:
    """The shipped model, loaded once per process (the encoder asks for it on every clip)."""
    return BeatLevelModel.load(SHIPPED)


def describe_tracked(job: tuple[str, dict]) -> tuple[np.ndarray, float] | str:
    """A `map_clips` worker: one clip's rhythm descriptors at librosa's tracked beat and that beat's tempo, as
    the MIR encoder measures them before this model corrects the level (what `fit` learns from and
    benchmarks/beat_level.py scores), or why its audio could not be read."""
    from llark.audio import load_audio  # here, not above: llark.encoders.mir imports this module
    from llark.encoders.mir import MIRFeatureEncoder

    root, clip = job
    encoder = MIRFeatureEncoder(rhythm=True)
    try:
        wave = load_audio(os.path.join(root, clip["audio"]), encoder.sample_rate, clip["start"], clip["end"], normalise=True)
    except ValueError as err:  # llark.audio's errors name the file
        return f"{clip['clip_id']}: {err}"
    return encoder.tracked_rhythm(wave)


def level_of(labelled_bpm: float, tracked_bpm: float) -> int | None:
    """The index in LEVEL_RATIOS of labelled / tracked, or None where it is none of them (within LEVEL_TOLERANCE)."""
    if labelled_bpm <= 0 or tracked_bpm <= 0:
        return None
    errors = np.abs(np.log(labelled_bpm / tracked_bpm / np.asarray(LEVEL_RATIOS)))
    best = int(np.argmin(errors))
    return best if errors[best] < np.log1p(LEVEL_TOLERANCE) else None


def fit(descriptors: np.ndarray, levels: np.ndarray, seed: int = 0,
        provenance: dict[str, Any] | None = None) -> BeatLevelModel:
    """Gradient-boosted trees (llark/encoders/boosted_trees.py) from rhythm descriptors [clips, features] to level
    indices [clips] into LEVEL_RATIOS; a level no clip taught is never named."""
    names = [LEVEL_NAMES[level] for level in np.asarray(levels, dtype=int)]
    return BeatLevelModel(fit_trees(descriptors, names, seed=seed), dict(provenance or {}))
