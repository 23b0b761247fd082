"""Encode clips into <out>/CLIP_ID.npy (float16 [round(25 * seconds), D]) on one machine or a Ray cluster.

One machine (the CPU MIR encoder, over a clips.jsonl):
    python preprocessing/extract_features.py --clips data/pipeline/clips.jsonl --out data/pipeline/features

One GPU (Jukebox over audio shards; the encoder moves to the GPU only when told):
    python preprocessing/extract_features.py --shards 'data/audio/audio-*.tar' --out data/features/jukebox \\
        --encoder jukebox --setting vqvae=ckpt/vqvae.pth.tar --setting prior=ckpt/prior_level_2.pth.tar \\
        --setting layer=36 --setting device=cuda --batch-size 4

Ray cluster (one GPU actor per GPU; --out and the shards on a filesystem every node mounts):
    ray start --head                                  # on each other node: ray start --address HEAD_IP:6379
    python preprocessing/extract_features.py --shards '/shared/audio/audio-*.tar' --out /shared/features/jukebox \\
        --encoder jukebox --setting vqvae=... --setting prior=... --setting layer=36 --setting device=cuda \\
        --ray --ray-address auto --actors 8 --gpus-per-actor 1 --cpus-per-actor 4 --batch-size 4

Ray on this machine (a local cluster; on 2 cores declare fractional CPUs or Ray stalls):
    python preprocessing/extract_features.py --clips data/pipeline/clips.jsonl --out data/pipeline/features \\
        --ray --actors 2 --cpus-per-actor 0.5

Audio shards are uncompressed tars of `<key>.flac|wav|mp3|ogg` plus an optional `<key>.json`
{"clip_id", "start", "end"} (see llark/extraction.py). Finished clips are skipped, so an interrupted
run resumes; failures go to <out>/failures.jsonl; <out>/encoder.json refuses mixing encoders.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from llark.config import EncoderConfig
from llark.encoders import build_encoder
from llark.extraction import (ClipJob, EncoderMismatch, RunSummary, extract, jobs_from_clips, jobs_from_shards,
                             setting_pair)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--clips", help="clips.jsonl (clip_id, audio, start, end)")
    source.add_argument("--shards", nargs="+", metavar="GLOB", help="audio shard tars (quote the glob)")
    parser.add_argument("--out", required=True, help="features folder")
    parser.add_argument("--encoder", default="mir")
    parser.add_argument("--setting", type=setting_pair, action="append", default=[], metavar="KEY=VALUE",
                        help="encoder setting (repeat)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per encode_batch call")
    parser.add_argument("--no-progress", action="store_true")
    ray_args = parser.add_argument_group("Ray")
    ray_args.add_argument("--ray", action="store_true", help="run on Ray Data (pip install 'ray[data]')")
    ray_args.add_argument("--ray-address", default=None,
                          help="an existing cluster ('auto', HOST:6379); default: start a local one")
    ray_args.add_argument("--actors", type=int, default=1, help="encoder actors (each builds the encoder once)")
    ray_args.add_argument("--cpus-per-actor", type=float, default=1.0, help="may be fractional")
    ray_args.add_argument("--gpus-per-actor", type=float, default=0.0)
    args = parser.parse_args(argv)

    config = EncoderConfig(name=args.encoder, settings=dict(args.setting))
    jobs = jobs_from_clips(args.clips) if args.clips else jobs_from_shards(args.shards)
    try:
        if args.ray:
            summary = _run_ray(args, config, jobs)
        else:
            summary = extract(build_encoder(config), jobs, args.out, args.batch_size, progress=not args.no_progress)
    except EncoderMismatch as err:
        raise SystemExit(f"error: {err}") from None
    print(f"[extract] {summary.line()}; failures in {args.out}/failures.jsonl" if summary.failed
          else f"[extract] {summary.line()}", file=sys.stderr)
    return 0


def _run_ray(args: argparse.Namespace, config: EncoderConfig, jobs: list[ClipJob]) -> RunSummary:
    import ray

    from llark.extraction_ray import RayOptions, extract_with_ray

    if not ray.is_initialized():
        ray.init(address=args.ray_address, include_dashboard=False)
    options = RayOptions(actors=args.actors, cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor,
                         batch_size=args.batch_size)
    try:
        return extract_with_ray(partial(build_encoder, config), jobs, args.out, options, progress=not args.no_progress)
    except ray.exceptions.RayError as err:
        # Actors check encoder.json as they start; Ray reports a failed start as ActorDiedError, with the
        # actor's own error only in its text. Say it plainly.
        refused = [line for line in str(err).splitlines() if f"{EncoderMismatch.__name__}:" in line]
        if refused:
            raise SystemExit(f"error: {refused[-1].split(': ', 1)[-1]}") from None
        raise


if __name__ == "__main__":
    sys.exit(main())
