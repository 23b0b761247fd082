"""Encode every clip of a clips.jsonl into features/CLIP_ID.npy (float16 [round(25 * seconds), D]).

    python preprocessing/encode.py --clips data/pipeline/clips.jsonl --out data/pipeline/features
    python preprocessing/encode.py --clips ... --out ... --encoder mir --setting n_mels=64 --workers 2

The encoder's name and settings go to <out>/encoder.json; re-running with other settings into the
same folder is refused (features of two encoders must never mix). Finished clips are skipped, so an
interrupted run resumes. Clips that fail (unreadable, silent, too short) are listed with the reason
in <out>/failures.jsonl; the others are encoded, and the count is printed. The bookkeeping is
llark/extraction.py's; `extract_features.py` is the same over audio shards or on a Ray cluster.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

from llark.config import EncoderConfig
from llark.encoders import Encoder, build_encoder
from llark.extraction import (ClipJob, EncoderMismatch, ExtractionRun, encode_batch, encode_jobs, encoder_record,
                              jobs_from_clips, limit_threads, setting_pair)

_encoder: Encoder | None = None  # one per worker process, built once by _init_worker
_out: Path | None = None


def _init_worker(config: EncoderConfig, out: Path) -> None:
    """Build this process's encoder; with several worker processes each keeps to one thread."""
    global _encoder, _out
    _encoder, _out = build_encoder(config), out
    limit_threads(1)


def _encode_chunk(jobs: list[ClipJob]) -> list[dict[str, Any]]:
    return encode_batch(_encoder, jobs, _out)


def _pool_rows(config: EncoderConfig, out: Path, jobs: list[ClipJob], workers: int, batch_size: int) -> Iterator[dict]:
    chunks = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(config, out)) as pool:
        for rows in pool.map(_encode_chunk, chunks):
            yield from rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True)
    parser.add_argument("--out", required=True, help="features folder")
    parser.add_argument("--encoder", default="mir")
    parser.add_argument("--setting", type=setting_pair, action="append", default=[], metavar="KEY=VALUE",
                        help="encoder setting (repeat)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4, help="clips per encode_batch call (and per worker task)")
    args = parser.parse_args(argv)

    config = EncoderConfig(name=args.encoder, settings=dict(args.setting))
    out = Path(args.out)
    encoder = build_encoder(config)  # the main process keeps its threads when it encodes alone
    try:
        run = ExtractionRun(out, jobs_from_clips(args.clips), encoder_record(encoder), desc="encode")
    except EncoderMismatch as err:
        raise SystemExit(f"error: {err}") from None
    rows: Iterable[dict] = (_pool_rows(config, out, run.todo, args.workers, args.batch_size) if args.workers > 1
                            else encode_jobs(encoder, run.todo, out, args.batch_size))
    for row in rows:
        run.add(row)
    print(f"[encode] {run.finish().line()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
