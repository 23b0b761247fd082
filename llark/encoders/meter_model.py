"""Which meter? Gradient-boosted trees over the rhythm group's descriptors, fitted once on a corpus of its own.

    python preprocessing/fit_meter_model.py --clips data/levelfit/clips.jsonl --jobs 2   # writes meter_model.json
                                                        # (the shipped fit: three corpora, the script's docstring)
    model = MeterModel.load()                           # the shipped fit (llark/encoders/meter_model.json)
    model.probabilities(descriptors)                    # [10]: one per label_targets.METERS, for 96 descriptors

The rhythm group describes a segment at the beat the beat-level model names (llark/encoders/beat_level.py):
how the onsets, the bass and the harmony repeat at multiples of that beat. Which meter they describe is
not a linear function of them: a logistic regression on a clip's descriptors, trained on the demo's train
split, reads its test meters at 0.81, where these trees read 0.86, and 0.96 on the clips whose beat the
encoder tracks at the labelled tempo (benchmarks/meter_model.py; with the fits before 2026-12-06, 0.75
against 0.78 and 0.92: docs/demo-experiments.md). The encoder's `meter_tags` group is
these trees' probability of each meter for each segment (the rhythm group's segments: one for a 25 s
clip), repeated on every frame, so the LM is handed what the trees read.

The trees are scikit-learn's HistGradientBoostingClassifier (200 stages of one tree of at most 15 leaves per
meter), stored as JSON arrays with how they were made and applied with numpy alone (llark/encoders/
boosted_trees.py, shared with the beat-level model): the fit checks that the stored trees give
scikit-learn's own decision values. Like the instrument tagger, they are fitted on a corpus none of whose
pieces the demo trains or is scored on (preprocessing/fit_meter_model.py): fitted on the LM's own training
clips, they would be right about nearly every one of them, and the LM would trust them more than they
deserve on new audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llark.encoders.boosted_trees import STAGES, BoostedTrees, fit_trees, read_model_file, write_model_file
from llark.label_targets import METERS

SHIPPED = Path(__file__).with_name("meter_model.json")


class MeterModelError(ValueError):
    """A meter model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class MeterModel:
    trees: BoostedTrees  # classes: the meters it was fitted on, each in METERS
    provenance: dict[str, Any] = field(default_factory=dict)  # how it was fitted (corpus, counts, accuracy)

    @property
    def meters(self) -> tuple[str, ...]:
        return self.trees.classes

    def probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        """[len(METERS)] float32: each meter's probability, 0 for those it was not fitted on ([rows, len(METERS)]
        for [rows, features])."""
        probabilities = self.trees.probabilities(descriptors)
        out = np.zeros(probabilities.shape[:-1] + (len(METERS),), np.float32)
        out[..., [METERS.index(m) for m in self.meters]] = probabilities
        return out

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> MeterModel:
        path = Path(path)
        model = cls(*read_model_file(path, "meter model", "preprocessing/fit_meter_model.py", MeterModelError))
        unknown = [m for m in model.meters if m not in METERS]
        if unknown:
            raise MeterModelError(f"{path}: meters {unknown} are not in label_targets.METERS")
        return model

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the trees (not the provenance): what encoder records keep
        (`MIRFeatureEncoder.fitted`), so features of two fits are never mixed."""
        return self.trees.fingerprint()

    def save(self, path: str | Path) -> None:
        write_model_file(path, self.trees, self.provenance)


@lru_cache(maxsize=1)
def load_shipped() -> MeterModel:
    """The shipped model, loaded once per process (the encoder asks for it on every clip)."""
    return MeterModel.load(SHIPPED)


def fit(descriptors: np.ndarray, meters: list[str], stages: int = STAGES, seed: int = 0,
        provenance: dict[str, Any] | None = None) -> MeterModel:
    """Gradient-boosted trees (llark/encoders/boosted_trees.py) from rhythm descriptors [clips, features] to meter
    labels (each in METERS)."""
    unknown = sorted({m for m in meters if m not in METERS})
    if unknown:
        raise ValueError(f"meters {unknown} are not in label_targets.METERS")
    if len(set(meters)) < 2:
        raise ValueError(f"a meter model needs clips of two or more meters, got {sorted(set(meters))}")
    return MeterModel(fit_trees(descriptors, list(meters), stages, seed=seed), dict(provenance or {}))
