"""Fit the MIR encoder's instrument tagger (llark/encoders/instrument_tagger.py) on a corpus with labelled instruments.

    # the shipped fit: the pieces of the beat-level model's corpus's first part (1800 generated pieces of seed 1,
    # none of them in the demo's splits, and 491 train-split tunes) and 207 real compositions orchestrated three
    # times (make_score_midi.py --for-tagger --seed 1, 2, 3; make_corpus.py --midi), every track rendered with
    # make_corpus.py --formant-shift 3 (README, "The instrument tags", has the commands), then
    python preprocessing/fit_instrument_tagger.py --clips data/tagfit/clips.jsonl \
        --clips data/tagfit-scores1/clips.jsonl --clips data/tagfit-scores2/clips.jsonl \
        --clips data/tagfit-scores3/clips.jsonl --steps 6000 --jobs 2
    python preprocessing/fit_instrument_tagger.py --clips data/x/clips.jsonl --out /tmp/tagger.safetensors --steps 200
    # the same pieces rendered with two soundfonts (make_corpus.py --soundfont); a track is held out in both
    python preprocessing/fit_instrument_tagger.py --clips data/levelfit/clips.jsonl --clips data/levelfit-gm/clips.jsonl

For every clip with labelled instruments it computes the MIR encoder's log-mel group (64 bands, 25 fps:
`MIRFeatureEncoder.log_mel_frames`), holds out a tenth of the tracks (by a hash of the track id), trains
the CNN on the rest (`--steps` batches of 16 random 6 s crops) and scores the held-out clips with
evaluate.py's instrument metric (micro-F1 over classes; the classes above 0.3 and above 0.5). The model
trained on nine tenths is the one written: its held-out figures, stored in its provenance, describe it
exactly. `--midi-share S` draws the clips made from MIDI files (the real compositions) for a share S of the crops
whatever their number, so more orchestrations of them add variety without weighing more (docs/demo-experiments.md,
"Five more ways to fit the tagger"). A clip whose audio cannot be read is reported and skipped; the count is printed
at the end. Do not fit on a corpus whose pieces you train the LM on or evaluate on (the module's docstring says why).

On the shipped corpus (2 cores): log-mel of 2912 clips in 41-55 s, 6000 steps in 24 min (12-14 min at
`--width 16`, the fit before 2026-12-07's eighth session: README, "The instrument tags").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one thread per worker while the log-mel is computed

import numpy as np  # noqa: E402
import torch  # noqa: E402

from llark.audio import load_audio  # noqa: E402
from llark.clips import map_clip_files  # noqa: E402
from llark.encoders.instrument_tagger import SHIPPED, WIDTH, fit, micro_f1  # noqa: E402
from llark.encoders.mir import MIRFeatureEncoder  # noqa: E402
from llark.label_targets import MISSING, encode_label_targets  # noqa: E402

HELD_OUT_EVERY = 10  # one track in ten (by a hash of its id) is held out and scored


def log_mel(job: tuple[str, dict]) -> np.ndarray | str:
    root, clip = job
    encoder = MIRFeatureEncoder()
    try:
        wave = load_audio(os.path.join(root, clip["audio"]), encoder.sample_rate, clip["start"], clip["end"], normalise=True)
        return encoder.log_mel_frames(wave)
    except ValueError as err:  # llark.audio's errors name the file
        return f"{clip['clip_id']}: {err}"


def held_out(track_id: str) -> bool:
    return zlib.crc32(track_id.encode()) % HELD_OUT_EVERY == 0


def share_weights(chosen: np.ndarray, share: float) -> np.ndarray:
    """Each clip's weight (summing to 1) when the `chosen` clips (a boolean per clip) are drawn for `share` of the
    crops and the others for the rest, each clip of a group alike."""
    return np.where(chosen, share / chosen.sum(), (1.0 - share) / (~chosen).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True, action="append",
                        help="clips.jsonl with labels.instruments; audio paths are relative to its folder. Repeatable: "
                             "the clips of every file are pooled, and a held-out track is held out in each")
    parser.add_argument("--out", default=str(SHIPPED), help="the tagger's safetensors (default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the log-mel")
    parser.add_argument("--steps", type=int, default=6000, help="training batches of 16 crops (the shipped fit's)")
    parser.add_argument("--midi-share", type=float, default=0.0,
                        help="draw this share of the training crops from the clips made from MIDI files "
                             "(make_corpus.py --midi: the real compositions) and the rest from the others, each clip "
                             "of a group alike (0: every clip alike, whatever its source)")
    parser.add_argument("--width", type=int, default=WIDTH,
                        help=f"the first block's channels; the others are 2, 4 and 6 times it (default {WIDTH}, the "
                             "shipped fit's: 487k weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads while training")
    parser.add_argument("--limit", type=int, default=0, help="at most this many clips (0: all)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.midi_share < 1.0:
        parser.error(f"--midi-share {args.midi_share}: a share of the crops is at least 0 and below 1")
    if args.width < 1:
        parser.error(f"--width {args.width}: a block needs at least one channel")

    started = time.time()
    try:
        rows, failures = map_clip_files(log_mel, args.clips, lambda c: bool((c.get("labels") or {}).get("instruments")),
                                        "labelled instruments", args.jobs, args.limit)
    except ValueError as err:
        parser.error(str(err))
    if not rows:
        print(f"error: none of the clips of {', '.join(args.clips)} could be read", file=sys.stderr)
        return 1
    targets = np.stack([encode_label_targets(c["labels"])["target_instruments"] for c, _ in rows])
    known = (targets != MISSING).all(axis=1)
    held = np.array([held_out(c.get("track_id", c["clip_id"])) for c, _ in rows], dtype=bool)
    taught, scored = known & ~held, known & held
    if not taught.any() or not scored.any():
        print(f"error: {int(taught.sum())} clips to train on and {int(scored.sum())} to score; both must be some "
              f"({len(failures)} unreadable)", file=sys.stderr)
        return 1
    print(f"log-mel in {time.time() - started:.0f} s; training on {int(taught.sum())} clips, scoring {int(scored.sum())}",
          flush=True)

    weights = None
    if args.midi_share:
        from_midi = np.array([c.get("source") == "midi" for c, _ in rows], dtype=bool)[taught]
        if from_midi.all() or not from_midi.any():
            parser.error(f"--midi-share {args.midi_share}: needs clips made from MIDI files ({int(from_midi.sum())}) "
                         f"and others ({int((~from_midi).sum())}) to train on")
        weights = share_weights(from_midi, args.midi_share)

    torch.set_num_threads(args.threads)
    mels = [m for _, m in rows]
    started = time.time()
    tagger = fit([m for m, t in zip(mels, taught) if t], targets[taught], args.steps, seed=args.seed,
                 log_every=max(1, args.steps // 10), weights=weights, width=args.width)
    seconds = time.time() - started
    probabilities = np.stack([tagger.probabilities(m) for m, s in zip(mels, scored) if s])
    scores = {f"held_out_micro_f1_{threshold}": round(micro_f1(probabilities, targets[scored], threshold), 4)
              for threshold in (0.3, 0.5)}
    encoder = MIRFeatureEncoder()
    tagger.provenance = {"clips": ", ".join(args.clips), "read": len(rows), "skipped": len(failures),
                         "trained_on": int(taught.sum()), "held_out": int(scored.sum()), **scores,
                         "steps": args.steps, "midi_share": args.midi_share, "seed": args.seed,
                         "train_seconds": round(seconds),
                         "encoder": {"sample_rate": encoder.sample_rate, "n_mels": encoder.n_mels}}
    tagger.save(args.out)
    print(f"held-out micro-F1 ({int(scored.sum())} clips): {scores['held_out_micro_f1_0.3']:.3f} above 0.3, "
          f"{scores['held_out_micro_f1_0.5']:.3f} above 0.5; trained in {seconds:.0f} s")
    print(f"tagger: {Path(args.out)}" + (f"; {len(failures)} clip(s) skipped (above)" if failures else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
