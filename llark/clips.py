"""Tracks -> 25 s clips whose labels describe exactly the clip's span (LLark labelled whole tracks; we don't).

    clips = clips_of_track(track, "data/corpus/tracks.jsonl", "data/pipeline/clips.jsonl", mode="first")
"""

from __future__ import annotations

import os
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llark.audio import CLIP_SECONDS, audio_info, clip_id, clip_windows, load_audio
from llark.jsonl import read_jsonl, relative_path, resolve_path

# Labels that hold for the whole piece, so for any span of it.
PIECE_LABELS = ("key", "tempo", "meter", "instruments", "genre", "dynamics", "melody_instrument")
TIME_LISTS = ("beats", "downbeats")
ABC_TOLERANCE = 0.05  # seconds: the clip must start at the tune's start and reach its last note


def crop_labels(labels: dict[str, Any], start: float, end: float, covers_whole_track: bool) -> dict[str, Any]:
    """Labels of [start, end): times re-zeroed to `start` and cut to the span; `abc` only for whole tunes."""
    cropped = {k: labels[k] for k in PIECE_LABELS if k in labels}
    for name in TIME_LISTS:
        if name in labels:
            cropped[name] = [round(t - start, 4) for t in labels[name] if start <= t < end]
    if "chords" in labels:
        cropped["chords"] = [
            {"start": round(max(c["start"], start) - start, 4), "end": round(min(c["end"], end) - start, 4),
             "chord": c["chord"]}
            for c in labels["chords"] if c["end"] > start and c["start"] < end
        ]
    if "abc" in labels and covers_whole_track:
        cropped["abc"] = labels["abc"]
    return cropped


def clips_of_track(
    track: dict[str, Any],
    tracks_file: str | Path,
    clips_file: str | Path,
    mode: str = "first",
    clip_seconds: float = CLIP_SECONDS,
    min_seconds: float = 5.0,
) -> list[dict[str, Any]]:
    """Clip records (docs/data-formats.md) of one tracks.jsonl line."""
    audio = resolve_path(track["audio"], tracks_file)
    duration = float(track["duration"]) if "duration" in track else audio_info(audio).duration
    labels = track.get("labels", {})
    # A tune's ABC is the answer of a transcription question only if the clip holds all of it.
    music_end = float(labels.get("music_end", duration))
    clips = []
    for start, end in clip_windows(duration, clip_seconds, mode, min_seconds):
        covers = start <= ABC_TOLERANCE and end >= music_end - ABC_TOLERANCE
        clips.append({
            "clip_id": clip_id(track["track_id"], start, end),
            "track_id": track["track_id"],
            "audio": relative_path(audio, clips_file),
            "start": start,
            "end": end,
            **{k: track[k] for k in ("split", "source", "licence", "provenance") if k in track},
            "labels": crop_labels(labels, start, end, covers),
        })
    return clips


def clip_wave(root: str, clip: dict, sample_rate: int) -> np.ndarray | str:
    """A clips.jsonl line's span of its audio (relative to `root`), mono at `sample_rate` and peak-normalised, or a
    message naming the clip and why it could not be read: what a `map_clips` worker returns for it."""
    try:
        return load_audio(os.path.join(root, clip["audio"]), sample_rate, clip["start"], clip["end"], normalise=True)
    except ValueError as err:  # llark.audio's errors name the file
        return f"{clip['clip_id']}: {err}"


def map_clips(worker: Callable[[tuple[str, dict]], Any], clips: list[dict], root: str,
              jobs: int) -> tuple[list[tuple[dict, Any]], list[str]]:
    """`worker((root, clip))` for every clip in `jobs` processes (the fit scripts' and benchmarks' loop over a
    clips.jsonl); a worker returns a message string for a clip it could not read. Returns the (clip, result)
    pairs that worked and the messages, each printed to stderr as "skipped: ..." so a batch goes on and counts.

        rows, failures = map_clips(describe, clips, os.path.dirname(os.path.abspath(clips_path)), jobs=2)
    """
    with Pool(jobs) as pool:
        results = pool.map(worker, [(root, clip) for clip in clips], chunksize=8)
    failures = [result for result in results if isinstance(result, str)]
    for message in failures:
        print(f"  skipped: {message}", file=sys.stderr)
    return [(clip, result) for clip, result in zip(clips, results) if not isinstance(result, str)], failures


def map_clip_files(worker: Callable[[tuple[str, dict]], Any], paths: list[str], wanted: Callable[[dict], bool],
                   what: str, jobs: int, limit: int = 0) -> tuple[list[tuple[dict, Any]], list[str]]:
    """`map_clips` over the clips of several clips.jsonl files that `wanted` keeps (at most `limit` of each, 0:
    all), each file's audio relative to its own folder: the same pieces rendered with several soundfonts, say.
    A file with no such clip raises ValueError naming it and `what` the clips should have.

        rows, failures = map_clip_files(describe, ["a/clips.jsonl", "b/clips.jsonl"], has_meter, "a labelled meter", 2)
    """
    rows: list[tuple[dict, Any]] = []
    failures: list[str] = []
    for path in paths:
        clips = [clip for clip in read_jsonl(path) if wanted(clip)]
        clips = clips[:limit] if limit else clips
        if not clips:
            raise ValueError(f"{path}: no clip has {what}")
        print(f"{path}: {len(clips)} clips with {what}; {jobs} process(es)", flush=True)
        done, unreadable = map_clips(worker, clips, os.path.dirname(os.path.abspath(path)), jobs)
        rows, failures = rows + done, failures + unreadable
    return rows, failures


def folds_by_track(tracks: np.ndarray, folds: int) -> np.ndarray:
    """Each clip's fold (0..folds-1) for cross-validation: whole tracks are dealt to folds in a seeded shuffle, so
    no track has clips on both sides of a fold."""
    order = np.random.default_rng(0).permutation(np.unique(tracks))
    fold_of_track = {track: k % folds for k, track in enumerate(order)}
    return np.array([fold_of_track[t] for t in tracks])
