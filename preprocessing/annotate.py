"""Annotate every clip of a clips.jsonl with estimated tempo, beats, downbeats, key and chords.

    python preprocessing/annotate.py --clips data/pipeline/clips.jsonl --out data/pipeline/annotations.jsonl
    python preprocessing/annotate.py --clips data/pipeline/clips.jsonl --out data/pipeline/annotations.jsonl --workers 2

Exactly each clip's span [start, end) of its audio is read (at 22050 Hz) and annotated with
llark.annotate; times are seconds from the clip's start. Each label records its tool and version
(docs/data-formats.md, annotations.jsonl).

Resumable: clip ids already in --out are skipped. Finished clips are appended to <out>.partial as
they complete, so an interrupted run loses nothing; at the end --out is rewritten atomically (temp
file, then rename) with the old and the new rows, and the .partial file is removed. Clips that fail
(unreadable or silent audio ...) are listed with the error in <out stem>.failures.jsonl, the run goes
on, and the next run retries them. One run at a time per --out: a second one started while the first
writes stops with status 2, naming the file (llark.jsonl.sole_writer). The first clip of each worker
pays librosa's numba start-up (a few seconds; ~35 s the very first time on a machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from llark.annotate import SAMPLE_RATE, annotate
from llark.audio import load_audio
from llark.jsonl import as_sole_writer, read_jsonl, resolve_path, write_jsonl_atomic


def annotate_clip(task: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """{"row": annotations row} or {"failure": {...}} for one clip; never raises (runs in workers)."""
    clip, clips_file = task
    try:
        wave = load_audio(resolve_path(clip["audio"], clips_file), SAMPLE_RATE, start=clip.get("start"),
                          end=clip.get("end"))
        return {"row": {"clip_id": clip["clip_id"], "annotations": annotate(wave, SAMPLE_RATE)}}
    except Exception as err:  # recorded per clip; the run goes on
        error = f"{type(err).__name__}: {err}"
        return {"failure": {"clip_id": clip["clip_id"], "audio": clip["audio"], "error": error}}


def done_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(clip id, raw line) of an annotations file; a line cut short by a crash (only ever the last line
    of a .partial file) is skipped."""
    if not path.exists():
        return
    with path.open() as f:
        for line in f:
            try:
                yield json.loads(line)["clip_id"], line if line.endswith("\n") else line + "\n"
            except (json.JSONDecodeError, KeyError, TypeError):
                continue


def end_cut_line(path: Path) -> None:
    """Finish a last line that a crash cut short, so rows appended next start on their own line."""
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")


def merge(out: Path, partial: Path) -> int:
    """Rewrite `out` atomically as its rows plus the partial file's new ones; returns the row count."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    seen: set[str] = set()
    with tmp.open("w") as f:
        for source in (out, partial):
            for clip_id, line in done_lines(source):
                if clip_id not in seen:
                    seen.add(clip_id)
                    f.write(line)
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    return len(seen)


def results(todo: list[tuple[dict[str, Any], str]], workers: int) -> Iterator[dict[str, Any]]:
    """annotate_clip over `todo` in order, in `workers` processes when there is more than one."""
    if workers > 1 and len(todo) > 1:
        with multiprocessing.Pool(min(workers, len(todo))) as pool:
            yield from pool.imap(annotate_clip, todo)
    else:
        yield from map(annotate_clip, todo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True, help="clips.jsonl (crop_clips.py)")
    parser.add_argument("--out", required=True, help="annotations.jsonl to write or extend")
    parser.add_argument("--workers", type=int, default=1, help="processes (each uses about one core)")
    args = parser.parse_args(argv)
    return as_sole_writer(args.out, lambda out: annotate_into(out, args))


def annotate_into(out: Path, args: argparse.Namespace) -> int:
    """Annotations for the clips of --clips not yet in `out` (or its .partial file), then `out` rewritten."""
    partial = out.with_name(out.name + ".partial")
    failures_file = out.with_name(out.stem + ".failures.jsonl")
    clips = read_jsonl(args.clips, required=("clip_id", "audio"))
    done = {clip_id for source in (out, partial) for clip_id, _ in done_lines(source)}
    todo, queued = [], set()
    for clip in clips:
        if clip["clip_id"] not in done and clip["clip_id"] not in queued:
            queued.add(clip["clip_id"])
            todo.append((clip, args.clips))

    failures, annotated, started = [], 0, time.perf_counter()
    end_cut_line(partial)
    with partial.open("a") as sink:
        for result in tqdm(results(todo, args.workers), total=len(todo), desc="annotate", unit="clip"):
            if "row" in result:
                sink.write(json.dumps(result["row"]) + "\n")
                sink.flush()  # a crash keeps every finished clip
                annotated += 1
            else:
                failures.append(result["failure"])
    total = merge(out, partial)
    if failures:
        write_jsonl_atomic(failures_file, failures)
    elif failures_file.exists():
        failures_file.unlink()  # a list from an earlier run would name clips that are now done
    seconds = time.perf_counter() - started
    rate = f" ({annotated / seconds:.2f} clips/s)" if annotated else ""
    print(f"[annotate] {annotated} clips annotated{rate}, "
          f"{len({c['clip_id'] for c in clips} & done)} already done, {len(failures)} failed"
          + (f" (see {failures_file})" if failures else "") + f"; {out} holds {total} clips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
