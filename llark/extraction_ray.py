"""Feature extraction on a Ray cluster (Ray Data, the `ray` extra): an actor pool over the clips
that `llark.extraction` lists, each actor building the encoder once; the driver keeps the books.

    ray.init()                                   # or ray.init(address="auto") on a cluster
    summary = extract_with_ray(partial(build_encoder, config), jobs_from_shards(["audio-*.tar"]), out,
                               RayOptions(actors=8, gpus_per_actor=1, cpus_per_actor=4))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from llark.encoders import Encoder
from llark.extraction import (ClipJob, ExtractionRun, RunSummary, check_encoder_record, encode_batch, encoder_record,
                              limit_threads)


@dataclass
class RayOptions:
    actors: int = 1  # the actor pool's size; each builds the encoder once
    cpus_per_actor: float = 1.0  # fractional is fine (on a 2-core box, 0.5 leaves room for Ray's own tasks)
    gpus_per_actor: float = 0.0
    batch_size: int = 8


class RayEncoderActor:
    """One Ray actor: builds the encoder once, then encodes batches of jobs and writes their files."""

    def __init__(self, build: Callable[[], Encoder], out: str, threads: int):
        self.encoder = build()
        limit_threads(threads)
        self.out = Path(out)
        # The driver does not build the encoder (it may have no GPU), so the record is checked here.
        check_encoder_record(self.out, encoder_record(self.encoder))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = encode_batch(self.encoder, [ClipJob.from_json(text) for text in batch["job"]], self.out)
        return {"status": np.array([json.dumps(row) for row in rows])}


def extract_with_ray(build: Callable[[], Encoder], jobs: list[ClipJob], out: str | Path, options: RayOptions,
                     progress: bool = True) -> RunSummary:
    """Ray Data: an actor pool encodes the unfinished clips; this driver collects their status rows.

    Call `ray.init(...)` first. `build` is pickled to the actors (e.g. `partial(build_encoder, config)`);
    `out` must be a folder that every node sees. The driver never builds the encoder, so encoder.json is
    checked by the actors as they start: a run with nothing left to do starts none and checks nothing.
    """
    import ray.data

    run = ExtractionRun(out, jobs, None, "extract (ray)", progress)
    if run.todo:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours shows throughput and failures
        # Jobs travel as JSON text: Arrow would otherwise guess column types from None-filled fields.
        dataset = ray.data.from_items([{"job": job.to_json()} for job in run.todo])
        actor_args = {"build": build, "out": str(run.out), "threads": max(1, round(options.cpus_per_actor))}
        statuses = dataset.map_batches(
            RayEncoderActor, fn_constructor_kwargs=actor_args, batch_size=options.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(options.actors, len(run.todo))),
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor)
        for row in statuses.iter_rows():  # streamed: progress moves as batches finish
            run.add(json.loads(row["status"]))
    return run.finish()
