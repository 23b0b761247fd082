"""Run the audio pipeline stages in order for a small corpus: one command from nothing to shards.

    python preprocessing/run_pipeline.py --out data/small --generated 60 --tunes 30
    python preprocessing/run_pipeline.py --out data/demo --generated 800 --tunes 300 --augment --workers 2
    python preprocessing/run_pipeline.py --out data/demo-FluidR3_GM --generated 800 --tunes 300 --augment \
        --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --splits test     # the same test pieces, other instruments

Stages (each its own script, each skipping work it already did, so a re-run resumes):
  make_corpus.py  -> <out>/corpus/tracks.jsonl, audio/, midi/
  crop_clips.py   -> <out>/clips.jsonl
  encode.py       -> <out>/features/CLIP_ID.npy
  annotate.py     -> <out>/annotations.jsonl      (estimated labels; skipped with --no-annotate)
  instruct.py     -> <out>/qa.jsonl
  make_shards.py  -> <out>/shards/{train,val,test}-NNNNNN.tar + manifest.json
Prints the wall time of every stage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stage(name: str, script: str, *args: object) -> float:
    print(f"\n[pipeline] {name}: {script} {' '.join(map(str, args))}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / script), *map(str, args)], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--generated", type=int, default=60, help="generated pieces")
    parser.add_argument("--tunes", type=int, default=30, help="real tunes from music21's ABC collections")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=24.0,
                        help="track length; at most ~24 s keeps each track (and a tune's ABC) inside one 25 s clip")
    parser.add_argument("--augment", action="store_true", help="gain, reverb, noise and EQ on the rendered audio")
    parser.add_argument("--soundfont", default="", help="General MIDI .sf2 to render with (default: make_corpus's TimGM6mb)")
    parser.add_argument("--train-soundfont", action="append", default=[], metavar="SF2",
                        help="another .sf2 a train-split piece may be rendered with (make_corpus.py; repeatable)")
    parser.add_argument("--midi", default="", metavar="DIR",
                        help="also every MIDI file under DIR, labelled by what it states (make_corpus.py --midi)")
    parser.add_argument("--midi-split", default="", choices=("", "train", "val", "test"),
                        help="put every --midi file in this split (default: by a hash of its track id)")
    parser.add_argument("--splits", default="", help="build only these splits, e.g. test (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="processes for rendering and encoding")
    parser.add_argument("--no-annotate", action="store_true", help="skip estimating labels with the annotator")
    parser.add_argument("--shard-mb", type=float, default=512.0)
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="an MIR encoder setting for encode.py (repeatable), e.g. rhythm=true")
    args = parser.parse_args(argv)

    out = Path(args.out)
    corpus = ["--out", out / "corpus", "--generated", args.generated, "--tunes", args.tunes, "--seed", args.seed,
              "--seconds", args.seconds, "--workers", args.workers]
    corpus += ["--soundfont", args.soundfont] if args.soundfont else []
    corpus += [part for soundfont in args.train_soundfont for part in ("--train-soundfont", soundfont)]
    corpus += ["--midi", args.midi] if args.midi else []
    corpus += ["--midi-split", args.midi_split] if args.midi_split else []
    corpus += ["--splits", args.splits] if args.splits else []
    times = {"corpus": stage("corpus", "make_corpus.py", *corpus, *(["--augment"] if args.augment else []))}
    times["crop"] = stage("crop", "crop_clips.py", "--tracks", out / "corpus" / "tracks.jsonl", "--out", out / "clips.jsonl")
    times["encode"] = stage("encode", "encode.py", "--clips", out / "clips.jsonl", "--out", out / "features",
                            "--workers", args.workers, *[part for pair in args.setting for part in ("--setting", pair)])
    shard_args = []
    if not args.no_annotate:
        times["annotate"] = stage("annotate", "annotate.py", "--clips", out / "clips.jsonl",
                                  "--out", out / "annotations.jsonl")
        shard_args = ["--annotations", out / "annotations.jsonl"]
    times["instruct"] = stage("instruct", "instruct.py", "--clips", out / "clips.jsonl", "--out", out / "qa.jsonl",
                              "--seed", args.seed)
    times["shards"] = stage("shards", "make_shards.py", "--clips", out / "clips.jsonl", "--qa", out / "qa.jsonl",
                            "--features", out / "features", "--out", out / "shards", "--shard-mb", args.shard_mb,
                            *shard_args)
    print("\n[pipeline] stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
          + f"; total {sum(times.values()):.1f} s; shards in {out / 'shards'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
