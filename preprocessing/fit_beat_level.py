"""Fit the MIR encoder's beat-level model (llark/encoders/beat_level.py) on a corpus with labelled tempi.

    # the shipped fit: 7200 generated pieces of their own seeds (none of the demo's pieces), augmented as the
    # demo, and the train-split tunes of seed-1 and seed-2 draws (1685 usable; no tune of the demo's val or test)
    python preprocessing/make_corpus.py --out data/levelfit/corpus --generated 1800 --tunes 0 --seed 1 \
        --seconds 24 --augment --workers 2
    python preprocessing/make_corpus.py --out data/levelfit/corpus --generated 1800 --tunes 600 --seed 1 \
        --seconds 24 --augment --workers 2 --splits train
    python preprocessing/make_corpus.py --out data/levelfit2/corpus --generated 5400 --tunes 0 --seed 2 \
        --seconds 24 --augment --workers 2
    python preprocessing/make_corpus.py --out data/tunes2/corpus --generated 0 --tunes 1500 --seed 2 \
        --seconds 24 --augment --workers 2 --splits train
    # then crop_clips.py --tracks data/X/corpus/tracks.jsonl --out data/X/clips.jsonl for each X, and
    python preprocessing/fit_beat_level.py --clips data/levelfit/clips.jsonl --clips data/levelfit2/clips.jsonl \
        --clips data/tunes2/clips.jsonl --jobs 2

For every clip with a labelled tempo it tracks the beat as the MIR encoder does (librosa, llark.annotate's
tempo prior), describes the rhythm at those beats and notes which ratio of the tracked tempo the label is
(LEVEL_RATIOS; clips at none of them are left out of the fit and counted). Then gradient-boosted trees
learn the ratio from the descriptors. Before the final fit they are cross-validated by track (five folds):
the tempo Acc1 of the tracked beat and of the corrected one on clips no fold was fitted on are printed and
stored in the model's provenance. A level with fewer than --min-clips clips is left out of the fit and its
cross-validation, and named, as fit_meter_model.py leaves out a rare meter: boosting's log loss can diverge on a
class that rare (the shipped corpus's rarest level, 3, has 78 clips and does not). A clip whose audio cannot be
read is reported and skipped; the count is printed at the end. Do not fit on a corpus whose pieces you evaluate
on. Refit the meter model after (preprocessing/fit_meter_model.py): it reads the descriptors at the level this
model names.

On the shipped corpus (2 cores): descriptors of 8885 clips in about 15 min, each fit about 10 s.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one thread per worker: --jobs sets the parallelism

import numpy as np  # noqa: E402

from llark.clips import folds_by_track, map_clip_files  # noqa: E402
from llark.encoders.beat_level import LEVEL_RATIOS, SHIPPED, describe_tracked, fit, level_of  # noqa: E402
from llark.encoders.mir import MIRFeatureEncoder  # noqa: E402

FOLDS = 5
ACC1_TOLERANCE = 0.04
MIN_CLIPS = 50  # fewer clips at a level than this, and it is left out (the docstring says why)


def cross_validated_ratios(descriptors: np.ndarray, levels: np.ndarray, tracks: np.ndarray,
                           usable: np.ndarray) -> np.ndarray:
    """Each clip's predicted ratio from a model fitted on the other folds' usable clips (folds by track)."""
    folds = folds_by_track(tracks, FOLDS)
    ratios = np.ones(len(tracks))
    for k in range(FOLDS):
        held, taught = folds == k, (folds != k) & usable
        if held.any() and len(np.unique(levels[taught])) >= 2:
            model = fit(descriptors[taught], levels[taught])
            ratios[held] = model.ratios(descriptors[held])
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True, action="append",
                        help="clips.jsonl with labels.tempo; audio paths are relative to its folder (repeatable)")
    parser.add_argument("--out", default=str(SHIPPED), help="the model's JSON (default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--limit", type=int, default=0, help="at most this many clips of each file (0: all)")
    parser.add_argument("--min-clips", type=int, default=MIN_CLIPS,
                        help="a level with fewer usable clips is left out of the fit (the docstring says why)")
    args = parser.parse_args(argv)

    try:
        rows, failures = map_clip_files(describe_tracked, args.clips, lambda c: bool((c.get("labels") or {}).get("tempo")),
                                        "a labelled tempo", args.jobs, args.limit)
    except ValueError as err:
        parser.error(str(err))
    return fit_described(rows, failures, args.clips, args.out, args.min_clips)


def fit_described(rows: list[tuple[dict, tuple[np.ndarray, float]]], failures: list[str], clips_files: list[str],
                  out: str, min_clips: int) -> int:
    """Cross-validate, fit and write the model from (clip, (descriptors, tracked BPM)) rows; prints what it did.
    Returns the exit status."""
    if not rows:
        print(f"error: none of the clips of {', '.join(clips_files)} could be described", file=sys.stderr)
        return 1

    descriptors = np.stack([d for _, (d, _) in rows])
    tracked = np.array([bpm for _, (_, bpm) in rows])
    labelled = np.array([float(c["labels"]["tempo"]) for c, _ in rows])
    found = [level_of(gold, bpm) for gold, bpm in zip(labelled, tracked)]
    at_none = sum(level is None for level in found)
    levels = np.array([level if level is not None else -1 for level in found])
    counts = Counter(LEVEL_RATIOS[level] for level in levels if level >= 0)
    left_out = {ratio: n for ratio, n in sorted(counts.items()) if n < min_clips}
    if left_out:
        print(f"left out, fewer than {min_clips} clips each: " + ", ".join(f"{r:.3g} {n}" for r, n in left_out.items()))
        counts = Counter({ratio: n for ratio, n in counts.items() if ratio not in left_out})
    usable = np.array([level >= 0 and LEVEL_RATIOS[level] in counts for level in levels])
    if len(counts) < 2:
        print(f"error: the labelled beat is at {len(counts)} level(s) of the tracked one with {min_clips} clips or "
              "more; a fit needs two or more (--min-clips sets the bar)", file=sys.stderr)
        return 1

    tracks = np.array([c.get("track_id", c["clip_id"]) for c, _ in rows])
    generated = np.array([c.get("source") == "generated" for c, _ in rows])
    ratios = cross_validated_ratios(descriptors, levels, tracks, usable)
    acc1 = lambda bpm: float(np.mean(np.abs(bpm / labelled - 1) <= ACC1_TOLERANCE))  # noqa: E731
    corrected_right = np.abs(tracked * ratios / labelled - 1) <= ACC1_TOLERANCE
    by_source = {name: round(float(corrected_right[part].mean()), 4)
                 for name, part in (("generated", generated), ("other sources", ~generated)) if part.any()}
    encoder = MIRFeatureEncoder(rhythm=True)
    provenance = {
        "clips": ", ".join(clips_files), "described": len(rows), "skipped": len(failures), "fitted": int(usable.sum()),
        "levels": {f"{ratio:.4g}": counts[ratio] for ratio in LEVEL_RATIOS},
        **({"left_out_levels": {f"{ratio:.4g}": n for ratio, n in left_out.items()}} if left_out else {}),
        "tracked_tempo_acc1": round(acc1(tracked), 4), "cross_validated_tempo_acc1": round(acc1(tracked * ratios), 4),
        "cross_validated_tempo_acc1_by_source": by_source,
        "encoder": {"sample_rate": encoder.sample_rate, "n_mels": encoder.n_mels},
    }
    model = fit(descriptors[usable], levels[usable], provenance=provenance)
    model.save(out)
    print("labelled / tracked beat: " + ", ".join(f"{ratio:.3g} {n}" for ratio, n in sorted(counts.items()))
          + f"; at none of them {at_none}")
    print(f"tempo Acc1 over {len(rows)} clips: tracked {provenance['tracked_tempo_acc1']:.3f}, "
          f"corrected (cross-validated, {FOLDS} folds by track) {provenance['cross_validated_tempo_acc1']:.3f} ("
          + ", ".join(f"{name} {value:.3f}" for name, value in by_source.items()) + ")")
    print(f"model: {Path(out)}" + (f"; {len(failures)} clip(s) skipped (above)" if failures else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
