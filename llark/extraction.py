"""Feature extraction over many clips: list the jobs, skip finished clips, encode in batches, write
each features file atomically, record failures, report progress and throughput; on one machine or
with `llark.extraction_ray` on a Ray cluster (`preprocessing/extract_features.py` is the command line).

    encoder = build_encoder(EncoderConfig(name="mir"))
    summary = extract(encoder, jobs_from_clips("data/pipeline/clips.jsonl"), "data/pipeline/features")
    summary = extract(encoder, jobs_from_shards(["data/audio/audio-*.tar"]), "data/features")

Inputs:
- a clips.jsonl: one {"clip_id", "audio", "start", "end"} per line (what `crop_clips.py` writes);
  `audio` is relative to the jsonl file.
- audio shards: uncompressed webdataset-style tar files. A clip is one `<key>.<ext>` audio member
  (ext: flac, wav, mp3, ogg) plus an optional `<key>.json` member {"clip_id", "start", "end"} (all
  optional; start/end in seconds within the member, default the whole member). The key is the
  member's path up to the first dot of its file name (webdataset's rule); the clip id is the json's
  `clip_id`, else the key with `%2E` read back as a dot (`llark.shards.clip_key`). Other members are
  ignored.

The features folder (what `make_shards.py` reads):
- `<clip_id>.npy`: float16 [round(25 * seconds), dim], plain .npy. It is written under a hidden temp
  name and renamed, so a file under its final name is always whole; a run removes temp files that a
  crash left behind, so one run per folder at a time.
- `encoder.json`: {name, settings, dim, frame_rate}; a run with any other encoder is refused.
- `failures.jsonl`: {clip_id, audio, error_type, error} of the clips that failed in the latest run
  (removed when none did). Failed clips have no features file, so every run retries them.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import yaml
from tqdm import tqdm

from llark.audio import AudioError, TruncatedAudio, load_audio
from llark.encoders import Encoder, changed_settings, fitted_models, frames_for
from llark.jsonl import read_jsonl, resolve_path, write_json_atomic, write_jsonl_atomic
from llark.shards import clip_id_from_key

AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg")
MIN_SECONDS = 1.0  # as encode_file: a shorter span is too little music to describe
TEMP_MARK = ".tmp-"
# Failures of one clip: audio errors are ValueErrors, missing files OSErrors, and torch kernels raise
# RuntimeError (CUDA out-of-memory included). Anything else is a bug and stops the run; rerun resumes.
CLIP_ERRORS = (OSError, ValueError, RuntimeError)


class EncoderMismatch(ValueError):
    """The features folder holds features of another encoder (or of an unknown one)."""


@dataclass(frozen=True)
class ClipJob:
    """One clip to encode: a span of an audio file, or of an audio member of a tar shard."""

    clip_id: str
    audio: str  # the audio file, or the shard
    start: float | None = None
    end: float | None = None
    member: str | None = None  # the shard member; its bytes are read at `offset` without scanning the tar
    offset: int = 0
    size: int = 0

    @property
    def source(self) -> str:
        return f"{self.audio}:{self.member}" if self.member else self.audio

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> ClipJob:
        return ClipJob(**json.loads(text))


# --- jobs --------------------------------------------------------------------------------------


def jobs_from_clips(path: str | Path) -> list[ClipJob]:
    rows = read_jsonl(path, required=("clip_id", "audio", "start", "end"))
    return checked_jobs([ClipJob(str(r["clip_id"]), str(resolve_path(r["audio"], path)), float(r["start"]),
                                 float(r["end"])) for r in rows])


def jobs_from_shards(patterns: Sequence[str]) -> list[ClipJob]:
    paths = sorted({path for pattern in patterns for path in glob.glob(pattern)})
    if not paths:
        raise FileNotFoundError(f"no shard matches {list(patterns)}")
    return checked_jobs([job for path in paths for job in shard_jobs(Path(path))])


def shard_jobs(shard: Path) -> list[ClipJob]:
    """The clips of one audio shard (layout in the module docstring)."""
    audio: dict[str, tarfile.TarInfo] = {}
    meta: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(shard, "r:") as tar:  # "r:": offsets into the file only mean something uncompressed
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, _, ext = name.partition(".")
                key = f"{folder}/{stem}" if folder else stem
                if ext.lower() in AUDIO_EXTENSIONS:
                    if key in audio:
                        raise ValueError(f"{shard}: key {key!r} has two audio members")
                    audio[key] = member
                elif ext == "json":
                    meta[key] = _member_json(tar, member, shard)
    except tarfile.TarError as err:
        raise ValueError(f"{shard}: not a readable uncompressed tar ({err})") from None
    jobs = []
    for key, member in audio.items():
        info = meta.get(key, {})
        start, end = (None if info.get(k) is None else float(info[k]) for k in ("start", "end"))
        jobs.append(ClipJob(str(info.get("clip_id", clip_id_from_key(key))), str(shard), start, end, member.name,
                            member.offset_data, member.size))
    return jobs


def _member_json(tar: tarfile.TarFile, member: tarfile.TarInfo, shard: Path) -> dict[str, Any]:
    handle = tar.extractfile(member)
    try:
        value = json.loads(handle.read()) if handle else None
    except json.JSONDecodeError as err:
        raise ValueError(f"{shard}:{member.name}: not valid JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{shard}:{member.name}: expected a JSON object")
    for key in ("start", "end"):
        if value.get(key) is not None and not isinstance(value[key], (int, float)):
            raise ValueError(f"{shard}:{member.name}: {key} must be seconds (a number), got {value[key]!r}")
    return value


def checked_jobs(jobs: list[ClipJob]) -> list[ClipJob]:
    """Each clip id names one file: no duplicates, no path separators, no hidden names (temp files are)."""
    seen: dict[str, ClipJob] = {}
    for job in jobs:
        if not job.clip_id or "/" in job.clip_id or job.clip_id.startswith("."):
            raise ValueError(f"{job.source}: clip id {job.clip_id!r} cannot name a features file")
        if job.clip_id in seen:
            raise ValueError(f"clip id {job.clip_id!r} appears twice: {seen[job.clip_id].source} and {job.source}")
        seen[job.clip_id] = job
    return jobs


# --- the features folder -----------------------------------------------------------------------


def feature_path(out: Path, clip_id: str) -> Path:
    return out / f"{clip_id}.npy"


def is_finished(path: Path, dim: int | None) -> bool:
    """A whole [T, dim] .npy is there (only its header is read: mmap)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, or truncated / not .npy (not ours: ours are renamed whole)
        return False
    return array.ndim == 2 and array.shape[0] > 0 and (dim is None or array.shape[1] == dim)


def write_features(path: Path, features: np.ndarray) -> None:
    """float16 .npy under a hidden temp name, flushed to disk, then renamed: the final name is always whole."""
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with tmp.open("wb") as f:
            np.save(f, features.astype(np.float16), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # still there only if writing failed


def remove_stray_temps(out: Path) -> int:
    strays = list(out.glob(f".*.npy{TEMP_MARK}*"))
    for path in strays:
        path.unlink()
    return len(strays)


def encoder_record(encoder: Encoder) -> dict[str, Any]:
    settings = encoder.settings()
    record = {"name": encoder.name, "settings": settings, "dim": encoder.dim, "frame_rate": encoder.frame_rate,
              "fitted": fitted_models(encoder.name, settings)}
    return json.loads(json.dumps(record))  # as it reads back from encoder.json (tuples become lists)


def same_encoder(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two encoder records describe the same features: a setting one of them leaves out (a
    folder encoded before the setting existed) counts as its default; the fitted models they depend on
    (`fitted`, by fingerprint) must be the same, one left out counting as none."""
    return ((a["name"], a["dim"], a["frame_rate"]) == (b["name"], b["dim"], b["frame_rate"])
            and not changed_settings(a["name"], a["settings"], b["settings"])
            and a.get("fitted", {}) == b.get("fitted", {}))


def encoder_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How two encoder records differ, in words for an error message: another encoder, the settings that
    changed, the dims, or the fitted models (a refit with the same settings)."""
    if a["name"] != b["name"]:
        return f"another encoder ({a['name']}, not {b['name']})"
    changed = changed_settings(a["name"], a["settings"], b["settings"])
    if changed:
        return f"changed: {', '.join(changed)}"
    if a.get("fitted", {}) != b.get("fitted", {}):
        return (f"another fit of its fitted models ({a.get('fitted') or 'none recorded'}, not "
                f"{b.get('fitted') or 'none'}: e.g. llark/encoders/beat_level.json or instrument_tagger.safetensors refitted)")
    return f"{a['dim']} dims at {a['frame_rate']} fps, not {b['dim']} at {b['frame_rate']}"


def check_encoder_record(out: Path, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The folder's encoder record: written if new, refused if another encoder's; returned as stored."""
    path = out / "encoder.json"
    if not path.exists():
        if any(out.glob("*.npy")):
            raise EncoderMismatch(f"{path}: missing, but {out} holds .npy features of an unknown encoder; "
                                  "use another --out")
        if record is not None:
            write_json_atomic(path, record)
        return record
    existing = json.loads(path.read_text())
    if record is not None and not same_encoder(existing, record):
        raise EncoderMismatch(f"{path}: features here come from {existing['name']} {existing['settings']}, "
                              f"not {record['name']} {record['settings']} ({encoder_difference(existing, record)}); "
                              "use another --out")
    return existing


# --- encoding ----------------------------------------------------------------------------------


def load_clip(job: ClipJob, sample_rate: int) -> np.ndarray:
    """Mono, resampled to `sample_rate`, peak-normalised: what encoders expect (as encode_file)."""
    if job.member is None:
        return load_audio(job.audio, sample_rate, start=job.start, end=job.end, normalise=True, min_seconds=MIN_SECONDS)
    with open(job.audio, "rb") as f:
        f.seek(job.offset)
        data = f.read(job.size)
    if len(data) != job.size:
        raise TruncatedAudio(f"{job.source}: the shard ends inside this member ({len(data)} of {job.size} bytes)")
    # A temp copy, because load_audio reads spans from disk and checks WAV headers against the file size.
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / f"clip{Path(job.member).suffix}"
        copy.write_bytes(data)
        try:
            return load_audio(copy, sample_rate, start=job.start, end=job.end, normalise=True, min_seconds=MIN_SECONDS)
        except AudioError as err:
            raise type(err)(str(err).replace(str(copy), job.source)) from None  # name the member, not the copy


def encode_jobs(encoder: Encoder, jobs: Sequence[ClipJob], out: Path, batch_size: int = 8) -> Iterator[dict[str, Any]]:
    for first in range(0, len(jobs), batch_size):
        yield from encode_batch(encoder, jobs[first:first + batch_size], out)


def encode_batch(encoder: Encoder, jobs: Sequence[ClipJob], out: Path) -> list[dict[str, Any]]:
    """Load, encode together, write; one status row per job. A clip that fails is a row, not an abort."""
    rows: dict[str, dict[str, Any]] = {}
    loaded: list[tuple[ClipJob, np.ndarray]] = []
    for job in jobs:
        try:
            loaded.append((job, load_clip(job, encoder.sample_rate)))
        except CLIP_ERRORS as err:
            rows[job.clip_id] = failed(job, err)
    for (job, wave), result in zip(loaded, _encode_waves(encoder, [wave for _, wave in loaded])):
        if isinstance(result, Exception):
            rows[job.clip_id] = failed(job, result)
            continue
        try:
            write_features(feature_path(out, job.clip_id), _checked(result, len(wave), encoder))
            rows[job.clip_id] = {"clip_id": job.clip_id, "status": "done", "seconds": len(wave) / encoder.sample_rate}
        except CLIP_ERRORS as err:
            rows[job.clip_id] = failed(job, err)
    return [rows[job.clip_id] for job in jobs]


def _encode_waves(encoder: Encoder, waves: list[np.ndarray]) -> list[np.ndarray | Exception]:
    if not waves:
        return []
    try:
        results = encoder.encode_batch(waves)
    except CLIP_ERRORS as err:
        if len(waves) == 1:
            return [err]
        # One bad clip must not fail its neighbours: encode them one by one to find it.
        return [result for wave in waves for result in _encode_waves(encoder, [wave])]
    if len(results) != len(waves):
        raise TypeError(f"{encoder.name}.encode_batch returned {len(results)} results for {len(waves)} waves")
    return list(results)


def _checked(features: np.ndarray, samples: int, encoder: Encoder) -> np.ndarray:
    expected = (frames_for(samples, encoder.sample_rate, encoder.frame_rate), encoder.dim)
    if features.shape != expected:
        raise ValueError(f"{encoder.name} gave features of shape {features.shape}, expected {expected}")
    half = features.astype(np.float16)
    if not np.isfinite(half).all():
        raise ValueError(f"{encoder.name} gave features with NaN or inf (or beyond float16's range)")
    return half


def failed(job: ClipJob, err: BaseException) -> dict[str, Any]:
    return {"clip_id": job.clip_id, "status": "failed", "seconds": 0.0, "audio": job.source,
            "error_type": type(err).__name__, "error": f"{type(err).__name__}: {err}"}


def setting_pair(text: str) -> tuple[str, Any]:
    """`key=value` from the command line (`--setting n_mels=32`); the value is YAML, so 32 is an int."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value)


def limit_threads(threads: int) -> None:
    """Keep torch, BLAS and OpenMP to `threads`, so N workers use N cores, not N x N. Call it after
    building the encoder: torch is limited if the encoder uses it (importing it otherwise costs ~2.5 s)."""
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    threadpool_limits(threads)


# --- one run: bookkeeping, and the two ways to run it ------------------------------------------


@dataclass
class RunSummary:
    total: int
    skipped: int
    done: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def line(self) -> str:
        wall = max(self.wall_seconds, 1e-9)
        return (f"{self.done} encoded, {self.skipped} already done, {self.failed} failed in {self.wall_seconds:.1f} s"
                f" ({(self.done + self.failed) / wall:.2f} clips/s, {self.audio_seconds / wall:.1f} s of audio per s)")


class ExtractionRun:
    """The bookkeeping of one run into a features folder: what is left, progress, failures, summary.

        run = ExtractionRun(out, jobs, encoder_record(encoder))   # record None: the workers check it
        for row in encode_jobs(encoder, run.todo, out):
            run.add(row)
        print(run.finish().line())
    """

    def __init__(self, out: str | Path, jobs: list[ClipJob], record: dict[str, Any] | None, desc: str = "extract",
                 progress: bool = True):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        stored = check_encoder_record(self.out, record)
        self.stray_temps = remove_stray_temps(self.out)
        dim = stored["dim"] if stored else None
        self.todo = [job for job in jobs if not is_finished(feature_path(self.out, job.clip_id), dim)]
        self.summary = RunSummary(total=len(jobs), skipped=len(jobs) - len(self.todo))
        self.failures: list[dict[str, Any]] = []
        self._started = time.perf_counter()
        self._bar = tqdm(total=len(self.todo), desc=desc, unit="clip", disable=not progress)

    def add(self, row: dict[str, Any]) -> None:
        if row["status"] == "done":
            self.summary.done += 1
            self.summary.audio_seconds += row["seconds"]
        else:
            self.summary.failed += 1
            self.failures.append({key: row[key] for key in ("clip_id", "audio", "error_type", "error")})
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(1)
        self._bar.set_postfix(failed=self.summary.failed, realtime=f"{self.summary.audio_seconds / elapsed:.1f}x")

    def finish(self) -> RunSummary:
        """Close the bar and write failures.jsonl as this run saw it (removed when nothing failed)."""
        self._bar.close()
        self.summary.wall_seconds = time.perf_counter() - self._started
        path = self.out / "failures.jsonl"
        if self.failures:
            write_jsonl_atomic(path, sorted(self.failures, key=lambda row: row["clip_id"]))
        else:
            path.unlink(missing_ok=True)
        return self.summary


def extract(encoder: Encoder, jobs: list[ClipJob], out: str | Path, batch_size: int = 8, progress: bool = True,
            desc: str = "extract") -> RunSummary:
    """One process: encode every unfinished clip of `jobs` into `out`."""
    run = ExtractionRun(out, jobs, encoder_record(encoder), desc, progress)
    for row in encode_jobs(encoder, run.todo, run.out, batch_size):
        run.add(row)
    return run.finish()
