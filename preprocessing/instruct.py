"""Write instruction data (Q/A pairs in LLark's families) for every clip of a clips.jsonl.

    python preprocessing/instruct.py --clips data/pipeline/clips.jsonl --out data/pipeline/qa.jsonl
    python preprocessing/instruct.py --clips ... --out ... --mir-per-clip 6 --captions 1 --reasoning 1 --seed 0
    python preprocessing/instruct.py --clips ... --out ... --backend llm \\
        --base-url http://127.0.0.1:8000/v1 --model NAME          # key, if any, in $OPENAI_API_KEY

The template backend works offline and is deterministic (same seed and clip, same pairs). The llm
backend sends each clip's labels as JSON to any OpenAI-compatible endpoint. Both go through LLark's
filters (banned phrases in answers, questions about inaudible facts); the drops are counted.

Re-running keeps the clips already in --out and does only the missing ones; finished clips are
appended to <out>.partial as they complete, so an interrupted run resumes where it stopped. The
final file is written atomically, in clips.jsonl order. To regenerate with other settings, delete
--out first. Clips that fail (bad labels, no audible facts, an LLM that never answers validly) are
listed with the reason in <out stem>.failures.jsonl; the rest are written and the counts printed.
The exit status is 1 only when clips failed and none has Q/A, so a pipeline goes on past a few bad clips.
One run at a time per --out: a second one started while the first writes stops with status 2, naming the
file (llark.jsonl.sole_writer: a lock on <out>.lock, dropped when the first run ends however it ends).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from llark.instructions import TemplateGenerator, filter_pairs, read_clips
from llark.jsonl import as_sole_writer, write_jsonl_atomic
from llark.llm_client import ChatClient, LLMConfig, LLMError, LLMGenerator


def read_finished(path: Path, torn_tail_ok: bool) -> dict[str, list[dict[str, str]]]:
    """clip_id -> pairs already written. A torn last line of the .partial file (a crash) is ignored."""
    if not path.is_file():
        return {}
    finished, lines = {}, path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            finished[row["clip_id"]] = row["qa"]
        except (json.JSONDecodeError, KeyError, TypeError):
            if torn_tail_ok and number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a {{clip_id, qa}} line; delete the file to start over") from None
    return finished


def build_backend(args: argparse.Namespace) -> Any:
    counts = dict(mir_per_clip=args.mir_per_clip, captions=args.captions, reasoning=args.reasoning,
                  transcriptions=args.transcriptions, seed=args.seed)
    if args.backend == "template":
        return TemplateGenerator(**counts)
    if not args.base_url or not args.model:
        raise SystemExit("--backend llm needs --base-url and --model")
    config = LLMConfig(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, timeout_s=args.timeout,
                       max_retries=args.retries, backoff_s=args.backoff, temperature=args.temperature, seed=args.seed)
    return LLMGenerator(ChatClient(config), attempts=args.attempts, **counts)


def instruct_clips(backend: Any, todo: list[tuple[int, dict]], sink: TextIO, args: argparse.Namespace
                   ) -> tuple[dict[str, list[dict[str, str]]], list[dict[str, Any]], Counter]:
    """Pairs for each clip of `todo`, appended to `sink` as they finish; (new pairs, failures, drop counts)."""
    new, failures, dropped, unreachable = {}, [], Counter(), 0
    for number, clip in tqdm(todo, desc="instruct", unit="clip", disable=args.no_progress):
        try:
            pairs, drops = filter_pairs(backend.generate(clip))
            dropped += drops
            if not pairs:
                raise ValueError("no Q/A pairs (no audible facts in the labels, or every pair was filtered)")
        except Exception as err:  # recorded per clip; the run goes on (DESIGN §5.6)
            failures.append({"clip_id": clip["clip_id"], "line": number,
                             "error": f"{args.clips}:{number}: {type(err).__name__}: {err}"})
            # A dead endpoint would otherwise cost every remaining clip its full retry schedule.
            unreachable = unreachable + 1 if isinstance(err, LLMError) else 0
            if unreachable >= args.give_up_after:
                print(f"[instruct] stopping: {unreachable} clips in a row failed at the endpoint", file=sys.stderr)
                break
            continue
        unreachable = 0
        new[clip["clip_id"]] = pairs
        sink.write(json.dumps({"clip_id": clip["clip_id"], "qa": pairs}) + "\n")
        sink.flush()  # a crash loses at most the clip in flight
    return new, failures, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", choices=("template", "llm"), default="template")
    parser.add_argument("--mir-per-clip", type=int, default=6)
    parser.add_argument("--captions", type=int, default=1)
    parser.add_argument("--reasoning", type=int, default=1)
    parser.add_argument("--transcriptions", type=int, default=1, help="per clip that has an ABC tune")
    parser.add_argument("--seed", type=int, default=0)
    llm = parser.add_argument_group("llm backend")
    llm.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    llm.add_argument("--model")
    llm.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    llm.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    llm.add_argument("--retries", type=int, default=4, help="retries per request (connection errors, 429, 5xx)")
    llm.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds; doubles each time")
    llm.add_argument("--attempts", type=int, default=3, help="requests per clip until the reply validates")
    llm.add_argument("--temperature", type=float, default=0.7)
    llm.add_argument("--give-up-after", type=int, default=10,
                     help="stop when this many clips in a row found the endpoint unreachable or failing")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if min(args.mir_per_clip, args.captions, args.reasoning, args.transcriptions) < 0:
        parser.error("pair counts must be >= 0")
    return as_sole_writer(args.out, lambda out: write_pairs(out, args))


def write_pairs(out: Path, args: argparse.Namespace) -> int:
    """Pairs for the clips of --clips not yet in `out` (or its .partial file), then `out` written atomically."""
    partial = out.with_name(out.name + ".partial")
    failures_file = out.with_name(out.stem + ".failures.jsonl")
    try:
        clips = read_clips(args.clips)
        finished = {**read_finished(out, torn_tail_ok=False), **read_finished(partial, torn_tail_ok=True)}
    except (OSError, ValueError) as err:  # a ClipsFormatError or a damaged earlier output, named by file:line
        print(f"error: {err}", file=sys.stderr)
        return 2
    backend = build_backend(args)

    wanted = {clip["clip_id"] for _, clip in clips}
    kept = sum(clip_id in finished for clip_id in wanted)
    todo = [(number, clip) for number, clip in clips if clip["clip_id"] not in finished]
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a") as sink:
        new, failures, dropped = instruct_clips(backend, todo, sink, args)
    finished.update(new)

    rows = [{"clip_id": clip["clip_id"], "qa": finished[clip["clip_id"]]} for _, clip in clips
            if clip["clip_id"] in finished]
    write_jsonl_atomic(out, rows)
    partial.unlink()
    if failures:
        write_jsonl_atomic(failures_file, failures)
    elif failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run would mislead
    seconds = time.perf_counter() - started
    families = Counter(pair["family"] for row in rows for pair in row["qa"])
    summary = {"clips": len(clips), "kept": kept, "generated": len(new), "failed": len(failures),
               "not_tried": len(todo) - len(new) - len(failures),
               "stale_removed": len(set(finished) - wanted), "pairs": sum(families.values()),
               "families": dict(sorted(families.items())), "dropped": dict(sorted(dropped.items())),
               "clips_per_s": round((len(todo) / seconds) if seconds > 0 else 0.0, 1)}
    print(json.dumps(summary) + (f"  (failures in {failures_file})" if failures else ""), file=sys.stderr)
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    sys.exit(main())
