"""Write an evaluation manifest (the questions evaluate.py asks, with gold answers) from a data layout.

    # our own pipeline's test clips: key, tempo, meter, instruments (+ genre, ABC where labelled)
    python preprocessing/make_eval_manifest.py clips --clips data/pipeline/clips.jsonl \\
        --features data/pipeline/features --out data/eval/test.jsonl
    # GiantSteps key / tempo, LLark-style on a 25 s crop from 30 s
    python preprocessing/make_eval_manifest.py giantsteps-key --root datasets/giantsteps-key-dataset \\
        --out data/eval/giantsteps-key.jsonl
    python preprocessing/make_eval_manifest.py giantsteps-tempo --root datasets/giantsteps-tempo-dataset \\
        --v2 --out data/eval/giantsteps-tempo.jsonl
    # GTZAN genre, first 25 s of each 30 s track
    python preprocessing/make_eval_manifest.py gtzan --root datasets/gtzan --out data/eval/gtzan.jsonl
    # any CSV with path,label[,start,end,question,id,options] columns
    python preprocessing/make_eval_manifest.py csv --csv my/labels.csv --task genre --out data/eval/mine.jsonl
    # MIDI files (real compositions, say) rendered with a soundfont; gold answers from what each file states
    python preprocessing/make_eval_manifest.py midi --root scores/ --soundfont data/soundfonts/FluidR3_GM.sf2 \\
        --out data/eval/scores.jsonl

    python evaluate.py --checkpoint CKPT --manifest data/eval/gtzan.jsonl --out results/gtzan

Manifest lines: {"id", "question", "task", "gold", "audio", "start", "end"
                 [, "features"][, "options"][, "groups"]};
paths are relative to the manifest's folder. Our clips' rows carry groups ("generated" or "tunes", from the
clip's source; "drums" or "no drums" where its instruments are labelled), which evaluate.py also scores on
their own. Items that cannot be converted (missing audio, malformed annotation) are listed with the reason
in <out stem>.failures.jsonl; the rest are written. Questions an item has no gold answer for (a MIDI file
without a key signature) are listed with the reason in <out stem>.skipped.jsonl.
`<subcommand> --help` describes each layout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from llark.evaluation.converters import (CLIP_LABELS, TASKS, Conversion, clips_manifest, csv_manifest,
                                         giantsteps_key_manifest, giantsteps_tempo_manifest, gtzan_manifest,
                                         midi_manifest)
from llark.jsonl import write_jsonl_atomic


def _add_crop(parser: argparse.ArgumentParser, start: float, end: float) -> None:
    parser.add_argument("--start", type=float, default=start, help=f"crop start in seconds (default {start:g})")
    parser.add_argument("--end", type=float, default=end,
                        help=f"crop end in seconds (default {end:g}); a track shorter than --end is judged "
                             "on its opening of the same length instead")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="layout", required=True, metavar="LAYOUT")

    clips = sub.add_parser("clips", help="llark clips.jsonl (our pipeline's output)",
                           description="One question per task for every clip of a split whose labels hold it; "
                                       "id = clip_id; span = the clip's own start/end.")
    clips.add_argument("--clips", required=True, help="clips.jsonl written by preprocessing/crop_clips.py")
    clips.add_argument("--split", default="test", help="split to convert (default test; 'all' for every clip)")
    clips.add_argument("--tasks", default=",".join(CLIP_LABELS),
                       help=f"comma list among {','.join(CLIP_LABELS)} (default all; genre and "
                            "abc_transcription only where labels.genre / labels.abc exist)")
    clips.add_argument("--features", default=None,
                       help="folder of CLIP_ID.npy from encode.py; rows then also carry 'features'")

    for name, what in (("giantsteps-key", "key"), ("giantsteps-tempo", "tempo")):
        note = ("annotations/key/{id}.LOFI.key holding e.g. 'Eb minor' ('d min', 'D:minor' are accepted)"
                if what == "key" else "annotations[_v2]/tempo/{id}.LOFI.bpm holding a number")
        layout = sub.add_parser(name, help=f"GiantSteps {what} data set",
                                description=f"ROOT/audio/{{id}}.LOFI.mp3 and ROOT/{note}. LLark scored a crop "
                                            "from 30 s; the default is the 25 s crop 30-55 s.")
        layout.add_argument("--root", required=True, help=f"the giantsteps-{what}-dataset folder")
        _add_crop(layout, 30.0, 55.0)
        if what == "tempo":
            layout.add_argument("--v2", action="store_true", help="use annotations_v2/ (corrected tempi)")

    gtzan = sub.add_parser("gtzan", help="GTZAN genre collection",
                           description="ROOT/genres/{genre}/{genre}.000NN.wav or .au; the folder is the gold genre.")
    gtzan.add_argument("--root", required=True, help="folder holding genres/")
    gtzan.add_argument("--genres-dir", default="genres", help="name of the genres folder under ROOT (default genres)")
    _add_crop(gtzan, 0.0, 25.0)

    table = sub.add_parser("csv", help="a CSV with path and label columns",
                           description="Header with 'path' and 'label', optional 'start', 'end', 'question', 'id' "
                                       "and 'options' (JSON object, for mcq). Relative paths are relative to the "
                                       "CSV. Instrument labels: a JSON list or names separated by ';'.")
    table.add_argument("--csv", required=True)
    table.add_argument("--task", required=True, choices=TASKS)
    _add_crop(table, 0.0, 25.0)

    scores = sub.add_parser("midi", help="MIDI files rendered with a soundfont",
                            description="Every .mid/.midi file under ROOT (in subfolders too): its crop rendered "
                                        "with --soundfont to FLAC, asked about the key (its key signature), the "
                                        "meter (its time signature), the tempo (in beats of that meter: the "
                                        "dotted quarter of 6/8) and the instruments playing in the crop (General "
                                        "MIDI names, 'Drums' for channel 10). A label the file does not state, or "
                                        "that changes within the crop, is not asked (<out stem>.skipped.jsonl).")
    scores.add_argument("--root", required=True, help="folder of MIDI files")
    scores.add_argument("--soundfont", required=True, help="the .sf2 to render with")
    scores.add_argument("--audio-dir", default=None, help="where the FLAC renderings go (default: audio/ beside --out)")
    scores.add_argument("--sample-rate", type=int, default=22050, help="of the renderings (default 22050)")
    _add_crop(scores, 0.0, 25.0)

    for layout in sub.choices.values():
        layout.add_argument("--out", required=True, help="manifest to write (JSON lines)")
        layout.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def convert(args: argparse.Namespace) -> Conversion:
    progress = not args.no_progress
    if args.layout == "clips":
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        return clips_manifest(args.clips, args.out, args.split, tasks, args.features, progress)
    if args.layout == "giantsteps-key":
        return giantsteps_key_manifest(args.root, args.out, args.start, args.end, progress)
    if args.layout == "giantsteps-tempo":
        return giantsteps_tempo_manifest(args.root, args.out, args.start, args.end, args.v2, progress)
    if args.layout == "gtzan":
        return gtzan_manifest(args.root, args.out, args.start, args.end, args.genres_dir, progress)
    if args.layout == "midi":
        return midi_manifest(args.root, args.out, args.soundfont, args.start, args.end, args.audio_dir,
                             args.sample_rate, progress)
    return csv_manifest(args.csv, args.out, args.task, args.start, args.end, progress)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        conv = convert(args)
    except (OSError, ValueError) as err:  # LayoutError, a missing file, a bad option: no item can convert
        print(f"[manifest] error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_jsonl_atomic(out, conv.rows)
    for listed, suffix in ((conv.failures, ".failures.jsonl"), (conv.skipped, ".skipped.jsonl")):
        listing = out.with_name(out.stem + suffix)
        if listed:
            write_jsonl_atomic(listing, listed)
        elif listing.exists():
            listing.unlink()  # a stale list from an earlier run would mislead
    failures_file = out.with_name(out.stem + ".failures.jsonl")
    tasks = ", ".join(f"{task} {n}" for task, n in sorted(Counter(row["task"] for row in conv.rows).items()))
    print(f"[manifest] {len(conv.rows)} questions ({tasks or 'none'}) "
          f"written to {out}; {len(conv.failures)} items failed"
          + (f" (see {failures_file})" if conv.failures else ""), file=sys.stderr)
    if conv.skipped:
        reasons = Counter(f"{row['task']}: {row['reason']}" for row in conv.skipped)
        print(f"[manifest] {len(conv.skipped)} questions not asked, for want of a gold answer ("
              + "; ".join(f"{reason} x{n}" for reason, n in reasons.most_common())
              + f"; see {out.with_name(out.stem + '.skipped.jsonl')})", file=sys.stderr)
    return 0 if conv.rows else 1  # an empty manifest is always a mistake worth a non-zero exit


if __name__ == "__main__":
    sys.exit(main())
