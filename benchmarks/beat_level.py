"""How often does the beat-level model put the beat at the labelled tempo, on clips it was not fitted on?

    python benchmarks/beat_level.py --jobs 2                  # the demo corpus (make demo): every split
    python benchmarks/beat_level.py --clips data/x/clips.jsonl --model other.json --limit 300

For every clip with a labelled tempo it tracks the beat as the MIR encoder does (librosa), describes the
rhythm there, and asks the beat-level model (llark/encoders/beat_level.py) which ratio of the tracked tempo
the beat is: the corrected beat is right where it lies within 4 % of the labelled tempo (tempo Acc1 of the
corrected beat, the level the rhythm group and the meter tags are measured at). Printed per split and per
group of clips as evaluate.py groups them (generated pieces or tunes; with drums or without), beside
librosa's tracked beat. The demo's corpus is none of the fit's.

On the demo corpus (2 cores, about 2.5 min), the fit shipped on 2026-12-06 (boosted trees, 8885 clips)
against the one before it (a logistic regression, 2291 clips; the figures its file gave):

    | split | clips | shipped | before | librosa |
    |---|---|---|---|---|
    | train | 1713 | 0.891 | 0.828 | 0.564 |
    | val | 196 | 0.888 | 0.842 | 0.571 |
    | test | 191 | 0.869 | 0.812 | 0.524 |

By group, the shipped fit: the clips with drums train / val / test 0.960 / 0.968 / 0.968, those without
(generated pieces and tunes) 0.825 / 0.814 / 0.771: a drum part marks the beat; without one, the beat the
labels name is often not the one the notes make plain (docs/demo-experiments.md, "Twice the clips again").
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one thread per worker: --jobs sets the parallelism

import numpy as np  # noqa: E402

from llark.clips import map_clip_files  # noqa: E402
from llark.encoders.beat_level import SHIPPED, BeatLevelModel, describe_tracked  # noqa: E402
from llark.evaluation.converters import clip_groups  # noqa: E402

ACC1_TOLERANCE = 0.04


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="data/demo/clips.jsonl")
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--limit", type=int, default=0, help="at most this many clips (0: all)")
    args = parser.parse_args(argv)
    model = BeatLevelModel.load(args.model)
    try:
        rows, failures = map_clip_files(describe_tracked, [args.clips], lambda c: bool((c.get("labels") or {}).get("tempo")),
                                        "a labelled tempo", args.jobs, args.limit)
    except ValueError as err:
        parser.error(str(err))
    if not rows:
        raise SystemExit(f"{args.clips}: none of the clips could be described")

    descriptors = np.stack([d for _, (d, _) in rows])
    tracked = np.array([bpm for _, (_, bpm) in rows])
    labelled = np.array([float(c["labels"]["tempo"]) for c, _ in rows])
    corrected = np.abs(tracked * model.ratios(descriptors) / labelled - 1) <= ACC1_TOLERANCE
    librosa = np.abs(tracked / labelled - 1) <= ACC1_TOLERANCE
    parts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (clip, _) in enumerate(rows):
        for part in ("all", *clip_groups(clip)):  # as evaluate.py groups a corpus's clips
            parts[(clip.get("split", "none"), part)].append(index)
    print(f"beat at the labelled tempo (within {ACC1_TOLERANCE:.0%}), {args.model}:")
    print("| split | clips | corrected (beat-level model) | librosa's beat |\n|---|---|---|---|")
    for (split, part), members in sorted(parts.items()):
        label = split if part == "all" else f"{split}, {part}"
        print(f"| {label} | {len(members)} | {corrected[members].mean():.3f} | {librosa[members].mean():.3f} |")
    if failures:
        print(f"{len(failures)} clip(s) skipped (above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
