"""A probe task whose answer is a deterministic function of the features, to show the audio path is wired.

Each clip's features have 8 "instrument" channels; one carries clearly more energy than the others,
and the answer names it. A model that reads its audio answers nearly always; with features shuffled
across clips it falls to chance (1/8). Used by tests, benchmarks and `make demo`.

    records = probe_records(num_clips=400, audio_dim=16, seed=0)
"""

from __future__ import annotations

import random

import numpy as np

from llark.shards import ClipRecord

PROBE_WORDS = ("piano", "violin", "flute", "drums", "trumpet", "cello", "guitar", "organ")
PROBE_QUESTIONS = (
    "Which instrument is loudest in this clip?",
    "What is the most prominent instrument here?",
    "Name the instrument that stands out the most.",
)
PROBE_ANSWER = "The loudest instrument is the {word}."


def probe_features(loudest: int, frames: int, audio_dim: int, rng: np.random.Generator) -> np.ndarray:
    """[frames, audio_dim]: channel `loudest` of the first 8 carries ~1.0, the others 0.1-0.5, plus noise."""
    if audio_dim < len(PROBE_WORDS):
        raise ValueError(f"audio_dim must be at least {len(PROBE_WORDS)}, got {audio_dim}")
    energies = rng.uniform(0.1, 0.5, len(PROBE_WORDS))
    energies[loudest] = 1.0
    features = rng.normal(0.0, 0.1, (frames, audio_dim))
    features[:, : len(PROBE_WORDS)] += energies
    return features.astype(np.float32)


def probe_records(
    num_clips: int, audio_dim: int, seed: int, min_frames: int = 8, max_frames: int = 24, split: str = "train"
) -> list[ClipRecord]:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    records = []
    for index in range(num_clips):
        loudest = int(rng.integers(len(PROBE_WORDS)))
        frames = int(rng.integers(min_frames, max_frames + 1))
        word = PROBE_WORDS[loudest]
        questions = pick.sample(PROBE_QUESTIONS, 2)
        records.append(
            ClipRecord(
                clip_id=f"probe-{split}{index:05d}-start0.000-end{frames / 25:.3f}",
                features=probe_features(loudest, frames, audio_dim, rng),
                meta={"split": split, "labels": {"loudest": word}},
                qa=[{"question": q, "answer": PROBE_ANSWER.format(word=word), "family": "mir_qa"} for q in questions],
            )
        )
    return records
