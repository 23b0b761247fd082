"""The embedded default, end to end on CPU: corpus -> clips -> features -> Q/A -> shards -> train tiny in two
stages -> evaluate on the held-out test split (baselines and audio ablations) -> answer questions -> summary.

    make demo                              # sets up .venv, then runs this
    python -m llark.demo                   # the same, with the defaults below
    python -m llark.demo --generated 200 --tunes 60 --listen-steps 200 --steps 150    # a quicker, weaker run
    python -m llark.demo --config configs/tiny-rhythm.yaml --data data/demo-rhythm --run runs/demo-rhythm \
        --listen-topics key,mode,chords,meter,tempo --listen-steps 2000     # rhythm features, 3x the steps

The corpus is encoded with the config's encoder settings (encoder.settings), so each config needs its
own --data folder: encode.py refuses to mix features of two encoders in one.

Training is a two-stage curriculum. A from-scratch LM first learns the answer formats, which it can do
without its audio, and on a CPU budget it stays there. So stage 1 ("listen") trains only on the MIR
questions whose answers the chroma decides (topics key, mode, chords): there the loss cannot fall
without reading the audio tokens. Stage 2 starts from those weights (train.init_from) and trains on
every family with the config as it is. Its batches are packed (data.pack_examples: the same examples
and loss per step as padded rows, in less than half the time), not grouped by length
(data.length_group_batches): grouping was as fast, but two of its three demo runs answered badly (README).

Every stage skips work already done, so a re-run reuses the corpus, features, shards and checkpoints.
Prints the wall time of every stage, a table of the test-split figures (model vs baselines vs the
model with shuffled features) and where the report and checkpoint are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from llark.config import load_config

REPO = Path(__file__).resolve().parents[1]
PRIMARY_METRICS = {"key": "mirex", "tempo": "acc1", "meter": "accuracy", "instruments": "micro_f1"}
TARGETS = {("key", "mirex"): 0.85, ("tempo", "acc1"): 0.70, ("tempo", "acc2"): 0.90, ("meter", "accuracy"): 0.90,
           ("instruments", "micro_f1"): 0.70}


def run(name: str, times: dict[str, float], *command: object) -> None:
    print(f"\n[demo] {name}: {' '.join(map(str, command))}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=REPO)
    times[name] = times.get(name, 0.0) + time.perf_counter() - started


def repeated(option: str, values: list[str]) -> list[str]:
    """["--question", "a", "--question", "b"] for a command-line option given once per value."""
    return [part for value in values for part in (option, value)]


def summary_table(results: dict) -> str:
    """Model, shuffled-feature ablation and baselines per metric, with 95 % intervals for the model."""
    lines = ["| task | metric | llark [95 % CI] | target | shuffled | majority | classic (librosa) | unparseable |",
             "|---|---|---|---|---|---|---|---|"]
    for task, entry in results["tasks"].items():
        systems = entry["systems"]
        for metric in systems["llark"]:
            model = systems["llark"][metric]
            cell = lambda name: f"{systems[name][metric]['value']:.3f}" if name in systems else "-"  # noqa: E731
            target = TARGETS.get((task, metric))
            lines.append(f"| {task} | {metric} | {model['value']:.3f} [{model['low']:.3f}, {model['high']:.3f}] | "
                         f"{'≥ %.2f' % target if target else ''} | {cell('llark, features shuffled')} | "
                         f"{cell('majority')} | {cell('classic (librosa)')} | {entry['unparseable']['audio']}/{entry['n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--generated", type=int, default=1200, help="generated pieces in the corpus")
    parser.add_argument("--tunes", type=int, default=300, help="real ABC tunes in the corpus")
    parser.add_argument("--listen-steps", type=int, default=400, help="stage 1 steps (key, mode, chords questions)")
    parser.add_argument("--listen-topics", default="key,mode,chords", help="stage 1 MIR topics")
    parser.add_argument("--steps", type=int, default=0, help="stage 2 steps, every family (0: the config's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="configs/tiny.yaml")
    args = parser.parse_args(argv)
    data, run_dir = Path(args.data), Path(args.run)
    times: dict[str, float] = {}

    config = load_config(REPO / args.config)
    if config.encoder.name != "mir":
        raise SystemExit(f"{args.config}: the demo encodes with the MIR encoder, but encoder.name is {config.encoder.name!r}")
    # The features must be the ones the config's encoder makes: train.py checks, and `llark ask` encodes so.
    settings = repeated("--setting", [f"{key}={json.dumps(value)}" for key, value in config.encoder.settings.items()])
    run("pipeline", times, "preprocessing/run_pipeline.py", "--out", data, "--generated", args.generated,
        "--tunes", args.tunes, "--augment", "--workers", args.workers, "--no-annotate", "--shard-mb", 64, *settings)
    run("eval manifest", times, "preprocessing/make_eval_manifest.py", "clips", "--clips", data / "clips.jsonl",
        "--features", data / "features", "--split", "test", "--tasks", "key,tempo,meter,instruments",
        "--out", data / "eval.jsonl")
    shards = f"data.train_shards=[{data}/shards/train-*.tar]"
    listen = run_dir / "listen" / "checkpoints" / f"step-{args.listen_steps:06d}"
    if not listen.is_dir():
        run("train, stage 1 (listen)", times, "train.py", "--config", args.config, shards,
            f"train.out_dir={run_dir / 'listen'}", f"train.steps={args.listen_steps}", "data.families=[mir_qa]",
            f"data.topics=[{args.listen_topics}]")
    stage2 = [shards, f"train.out_dir={run_dir}", f"train.init_from={listen}"]
    if args.steps:
        stage2.append(f"train.steps={args.steps}")
    steps = args.steps or config.train.steps
    checkpoint = run_dir / "checkpoints" / f"step-{steps:06d}"
    if not checkpoint.is_dir():
        run("train, stage 2 (all tasks)", times, "train.py", "--config", args.config, *stage2)
    run("evaluate", times, "evaluate.py", "--checkpoint", checkpoint, "--manifest", data / "eval.jsonl",
        "--out", run_dir / "eval", "--bootstrap", 1000)

    example = json.loads((data / "eval.jsonl").read_text().splitlines()[0])
    audio = (data / example["audio"]).resolve()
    questions = ["What key is this piece in?", "What is the tempo in BPM?", "What is the time signature?",
                 "Which instruments can you hear?", "Describe this piece of music."]
    # One process: the checkpoint is loaded and the clip encoded once for all five questions.
    run("ask", times, "-m", "llark.cli", "ask", "--checkpoint", checkpoint, "--audio", audio,
        "--start", example.get("start", 0.0), "--end", example.get("end", 25.0),
        *repeated("--question", questions))

    results = json.loads((run_dir / "eval" / "results.json").read_text())
    print("\n[demo] test split, never seen in training:\n" + summary_table(results))
    print("\n[demo] stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items())
          + f"; total {sum(times.values()) / 60:.1f} min")
    print(f"[demo] report: {run_dir / 'eval' / 'report.md'} (plots beside it); checkpoint: {checkpoint}")
    print(f"[demo] try: llark ask --checkpoint {checkpoint} --audio any.wav --question \"What key is this in?\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
