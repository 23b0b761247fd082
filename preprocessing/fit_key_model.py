"""Fit the MIR encoder's key model (llark/encoders/key_model.py) on a corpus with labelled keys.

    # the shipped fit: the instrument tagger's pieces without its formant shift (README, "The instrument tags":
    # data/levelfit, 2291 clips of generated pieces and train-split tunes, and data/tagscores1-3, the three
    # orchestrations of 207 real compositions), then
    python preprocessing/fit_key_model.py --clips data/levelfit/clips.jsonl --clips data/tagscores1/clips.jsonl \
        --clips data/tagscores2/clips.jsonl --clips data/tagscores3/clips.jsonl --jobs 2
    python preprocessing/fit_key_model.py --clips data/x/clips.jsonl --out /tmp/key.json

For every clip whose key is one of the 24 major and minor keys it computes the chroma statistics as the
MIR encoder's `key_tags` group does (the clip as one segment, as the encoder describes a 25 s clip). Before
the final fit the model is cross-validated by track (five folds): the MIREX weighted score and the accuracy
on clips no fold was fitted on are printed, for the generated pieces, the tunes and the other sources (MIDI
files: real compositions) apart, and stored in the model's provenance. A clip whose audio cannot be read is
reported and skipped; the count is printed at the end. Do not fit on a corpus whose pieces you train the LM
on or evaluate on: fitted on the LM's own training clips, the tags would be right about more of them than of
new audio, and the LM would learn to trust them more than they deserve.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one thread per worker: --jobs sets the parallelism

import mir_eval  # noqa: E402
import numpy as np  # noqa: E402

from llark.clips import clip_wave, folds_by_track, map_clip_files  # noqa: E402
from llark.corpus.theory import KEYS_24  # noqa: E402
from llark.encoders.key_model import SHIPPED, fit  # noqa: E402
from llark.encoders.mir import MIRFeatureEncoder  # noqa: E402
from llark.label_targets import MISSING, key_target  # noqa: E402

FOLDS = 5
L2 = 1e-3  # on the profiles' squared sum; the fit's 170 weights barely need it, but it keeps them finite


def labelled_key(clip: dict) -> int:
    """The clip's key as key_class numbers it, or MISSING where it has none of the 24 (a mode, none at all)."""
    return key_target((clip.get("labels") or {}).get("key"))


def describe(job: tuple[str, dict]) -> np.ndarray | str:
    root, clip = job
    encoder = MIRFeatureEncoder(tempo_bins=0)
    wave = clip_wave(root, clip, encoder.sample_rate)
    return wave if isinstance(wave, str) else encoder.key_statistics(wave)


def mirex_scores(predicted: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each clip's MIREX weighted score (1 the same key, 0.5 a fifth, 0.3 relative, 0.2 parallel; mir_eval); 0 where
    no key was predicted (-1: a corpus of one track has no fold to fit the others on)."""
    return np.array([mir_eval.key.weighted_score(KEYS_24[k].name, KEYS_24[p].name) if p >= 0 else 0.0
                     for p, k in zip(predicted, keys)])


def cross_validated_keys(statistics: np.ndarray, keys: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Each clip's likeliest key from a model fitted on the other folds (folds by track)."""
    folds = folds_by_track(tracks, FOLDS)
    predicted = np.full(len(keys), -1)
    for k in range(FOLDS):
        held, taught = folds == k, folds != k
        if held.any() and taught.any():
            predicted[held] = fit(statistics[taught], keys[taught], L2).scores(statistics[held]).argmax(axis=-1)
    return predicted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True, action="append",
                        help="clips.jsonl with labels.key; audio paths are relative to its folder (repeatable)")
    parser.add_argument("--out", default=str(SHIPPED), help="the model's JSON (default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--limit", type=int, default=0, help="at most this many clips of each file (0: all)")
    args = parser.parse_args(argv)

    try:
        rows, failures = map_clip_files(describe, args.clips, lambda c: labelled_key(c) != MISSING,
                                        "a labelled key, one of the 24 major and minor keys", args.jobs, args.limit)
    except ValueError as err:
        parser.error(str(err))
    return fit_described(rows, failures, args.clips, args.out)


def source_group(clip: dict) -> str:
    source = clip.get("source", "")
    return source if source in ("generated", "midi") else "tunes"


def fit_described(rows: list[tuple[dict, np.ndarray]], failures: list[str], clips_files: list[str], out: str) -> int:
    """Cross-validate, fit and write the model from (clip, statistics) rows; prints what it did. Returns the exit
    status."""
    if not rows:
        print(f"error: none of the clips of {', '.join(clips_files)} could be described", file=sys.stderr)
        return 1
    statistics = np.stack([s for _, s in rows]).astype(np.float64)
    keys = np.array([labelled_key(c) for c, _ in rows])
    tracks = np.array([c.get("track_id", c["clip_id"]) for c, _ in rows])
    groups = np.array([source_group(c) for c, _ in rows])

    predicted = cross_validated_keys(statistics, keys, tracks)
    scores = mirex_scores(predicted, keys)
    report = {"all": scores}
    report.update({group: scores[groups == group] for group in ("generated", "tunes", "midi") if (groups == group).any()})
    cross_validated = {name: {"mirex": round(float(s.mean()), 4), "accuracy": round(float((s == 1.0).mean()), 4),
                              "clips": int(len(s))} for name, s in report.items()}
    modes = Counter("minor" if k >= 12 else "major" for k in keys)
    provenance = {
        "clips": ", ".join(clips_files), "described": len(rows), "skipped": len(failures), "modes": dict(modes),
        "sources": dict(Counter(groups.tolist())), "cross_validated": cross_validated, "l2": L2,
        "encoder": {"sample_rate": MIRFeatureEncoder().sample_rate},
    }
    fit(statistics, keys, L2, provenance=provenance).save(out)
    print(f"keys: {len(rows)} clips, " + ", ".join(f"{mode} {n}" for mode, n in sorted(modes.items())))
    print(f"key (cross-validated, {FOLDS} folds by track): " + ", ".join(
        f"{name} MIREX {v['mirex']:.3f} accuracy {v['accuracy']:.3f} ({v['clips']})" for name, v in cross_validated.items()))
    print(f"model: {Path(out)}" + (f"; {len(failures)} clip(s) skipped (above)" if failures else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
