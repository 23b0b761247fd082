"""Crop every track of a tracks.jsonl into 25 s clips with labels cut to each clip's span.

    python preprocessing/crop_clips.py --tracks data/corpus/tracks.jsonl --out data/pipeline/clips.jsonl
    python preprocessing/crop_clips.py --tracks my/tracks.jsonl --out my/clips.jsonl --mode all

--mode first: one clip from the start of each track; --mode all: every full 25 s window. A track
shorter than 25 s (but at least --min-seconds) gives one clip of its whole length. Tracks that
cannot be read are listed with the reason in <out stem>.failures.jsonl; the rest are cropped.
Re-running rewrites the same clips.jsonl (it is cheap and deterministic).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from llark.clips import clips_of_track
from llark.jsonl import read_jsonl, write_jsonl_atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", choices=("first", "all"), default="first")
    parser.add_argument("--clip-seconds", type=float, default=25.0)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    tracks = read_jsonl(args.tracks, required=("track_id", "audio"))
    clips, failures = [], []
    for track in tqdm(tracks, desc="crop", unit="track"):
        try:
            clips += clips_of_track(track, args.tracks, args.out, args.mode, args.clip_seconds, args.min_seconds)
        except (OSError, ValueError) as err:
            failures.append({"track_id": track["track_id"], "error": f"{type(err).__name__}: {err}"})
    write_jsonl_atomic(args.out, clips)
    failures_file = Path(args.out).with_name(Path(args.out).stem + ".failures.jsonl")
    if failures:
        write_jsonl_atomic(failures_file, failures)
    print(f"[crop] {len(clips)} clips from {len(tracks) - len(failures)} tracks, {len(failures)} failed"
          + (f" (see {failures_file})" if failures else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
