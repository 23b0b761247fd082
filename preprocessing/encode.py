"""Encode every clip of a clips.jsonl into features/CLIP_ID.npy (float16 [round(25 * seconds), D]).

    python preprocessing/encode.py --clips data/pipeline/clips.jsonl --out data/pipeline/features
    python preprocessing/encode.py --clips ... --out ... --encoder mir --setting n_mels=64 --workers 2

The encoder's name and settings go to <out>/encoder.json; re-running with other settings into the
same folder is refused (features of two encoders must never mix). Finished clips are skipped, so an
interrupted run resumes. Clips that fail (unreadable, silent, too short) are listed with the reason
in <out>/failures.jsonl; the others are encoded, and the count is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from llark.config import EncoderConfig
from llark.encoders import Encoder, build_encoder, encode_file
from llark.jsonl import read_jsonl, resolve_path, write_json_atomic, write_jsonl_atomic

_encoder: Encoder | None = None  # one per worker process, built once by _init_worker


def _init_worker(config: EncoderConfig, threads: int | None = 1) -> None:
    """Build this process's encoder; with several worker processes each keeps to one thread."""
    global _encoder
    if threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)  # numpy's BLAS and OpenMP pools, so N workers use N cores, not N x N
    _encoder = build_encoder(config)


def _encode_one(job: tuple[str, str, float, float, str]) -> tuple[str, float, str | None]:
    clip_id, audio, start, end, target = job
    try:
        features = encode_file(_encoder, audio, start=start, end=end)
    except (OSError, ValueError) as err:
        return clip_id, 0.0, f"{type(err).__name__}: {err}"
    tmp = f"{target}.tmp-{os.getpid()}.npy"
    np.save(tmp, features.astype(np.float16), allow_pickle=False)
    os.replace(tmp, target)
    return clip_id, end - start, None


def check_encoder_record(out: Path, encoder: Encoder) -> None:
    record = {"name": encoder.name, "settings": encoder.settings(), "dim": encoder.dim, "frame_rate": encoder.frame_rate}
    path = out / "encoder.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != record:
            raise SystemExit(f"{path}: features here come from {existing['name']} {existing['settings']}, "
                             f"not {record['name']} {record['settings']}; use another --out")
    else:
        write_json_atomic(path, record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True)
    parser.add_argument("--out", required=True, help="features folder")
    parser.add_argument("--encoder", default="mir")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE", help="encoder setting")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    settings = {}
    for item in args.setting:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    config = EncoderConfig(name=args.encoder, settings=settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _init_worker(config, threads=None)  # the main process keeps its threads when it encodes alone
    check_encoder_record(out, _encoder)

    clips = read_jsonl(args.clips, required=("clip_id", "audio", "start", "end"))
    jobs = [(c["clip_id"], str(resolve_path(c["audio"], args.clips)), float(c["start"]), float(c["end"]),
             str(out / f"{c['clip_id']}.npy")) for c in clips]
    todo = [job for job in jobs if not Path(job[4]).exists()]
    failures, seconds = [], 0.0
    started = time.perf_counter()
    if args.workers > 1:
        pool = ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(config,))
        results = pool.map(_encode_one, todo, chunksize=4)
    else:
        pool, results = None, map(_encode_one, todo)
    progress = tqdm(results, total=len(todo), desc="encode", unit="clip")
    for clip_id, clip_seconds, error in progress:
        seconds += clip_seconds
        if error:
            failures.append({"clip_id": clip_id, "error": error})
        progress.set_postfix(realtime=f"{seconds / max(time.perf_counter() - started, 1e-9):.1f}x")
    if pool is not None:
        pool.shutdown()
    if failures:
        write_jsonl_atomic(out / "failures.jsonl", failures)
    print(f"[encode] {len(todo) - len(failures)} encoded, {len(jobs) - len(todo)} already done, {len(failures)} failed"
          f" ({seconds:.0f} s of audio in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
