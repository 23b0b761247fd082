"""The embedded default, end to end on CPU: corpus -> clips -> features -> Q/A -> shards -> train tiny in two
stages -> evaluate on the held-out test split (baselines, the model with shuffled features) -> answer questions
-> summary. Answers are decoded by minimum Bayes risk over 16 samples (DECODING below).

    make demo                              # sets up .venv, then runs this
    python -m llark.demo                   # the same, with the defaults below
    python -m llark.demo --generated 400 --tunes 60 --stage key,mode,chords,tempo,meter:300 --steps 150   # quicker, weaker
    python -m llark.demo --stage key,mode,chords:400 --stage key,mode,chords,tempo,meter:600   # a three-stage curriculum
    python -m llark.demo --soundfont-test data/soundfonts/FluidR3_GM.sf2     # also the test pieces in another soundfont
    python -m llark.demo --soundfont-test data/soundfonts/FluidR3_GM.sf2 --scores 60   # and real compositions (make demo-scores)

The corpus is encoded with the config's encoder settings (encoder.settings), so each config needs its
own --data folder: encode.py refuses to mix features of two encoders in one, and the demo stops before
anything runs if the --data folder's features come from other settings, naming them.

Training is a curriculum. A from-scratch LM first learns the answer formats, which it can do without
its audio, and on a CPU budget it stays there. So the listening stages train only on the MIR questions
of some topics (by default key, mode, chords, tempo, meter and instruments, 1000 steps), whose answers
cannot be guessed without reading the audio tokens; the label heads of configs/tiny.yaml
(model.label_loss_weight) meanwhile train the audio positions to carry key, tempo, meter and instruments
on every example. The last stage starts from those weights (train.init_from) and trains every family.
Every stage trains with the config as it is apart from the questions it reads: packed batches
(data.pack_examples), each example's answer weighing the same whatever its length
(train.loss_per_example). In the last stage the token mean would let the captions, half of the answer
tokens, outweigh the MIR answers; in the listening stage, the instrument lists (the longest answers
there) the tempo. Without the instrument questions in the listening stage, the answers named fewer of
the instruments the audio tokens carried (docs/demo-experiments.md, "How the recipe was chosen", rows 45-50).

With --soundfont-test, the test split's pieces are also rendered with another General MIDI soundfont
(other instrument samples; `make demo-soundfont` fetches FluidR3_GM) and the model is evaluated on them
as well, beside librosa on the same audio: how much of what it hears is the training soundfont's sound.
Real compositions join the training corpus (--train-scores N, 240 by default; only the train split): N of
Bach's chorales and up to N of each other composer of music21's corpus (Monteverdi, the Schumanns...; 308 with
240), none of them in --scores' set, orchestrated with the generator's own instruments and rendered and
augmented as the rest (preprocessing/make_score_midi.py --for-training, make_corpus.py --midi).
With --scores N, the model is also evaluated on real compositions the generator did not write: N scores of
each composer of music21's corpus (Bach's chorales; Haydn's, Mozart's and Beethoven's quartet movements: 107
with 60), each part given an instrument of its register and the piece a tempo by preprocessing/
make_score_midi.py, rendered with the corpus's soundfont and with each --soundfont-test soundfont
(make_eval_manifest.py's `midi` layout: the gold answers are what each file states).

Every stage skips work already done, so a re-run reuses the corpus, features, shards, checkpoints and
evaluations (of the same checkpoint, manifest and decoding; delete runs/demo/eval to score again).
Prints the wall time of every stage, a table of the test-split figures (model vs baselines vs the
model with shuffled features), the model's figures on each part of the test split (generated pieces and
real tunes; clips with and without drums) and where the report and checkpoint are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterable

from llark.cli import generation_arguments
from llark.config import Config, EncoderConfig, load_config
from llark.encoders import build_encoder
from llark.corpus.render import DEFAULT_SOUNDFONT
from llark.evaluation.report import decoding_summary
from llark.extraction import encoder_difference, encoder_record, same_encoder
from llark.inference import GenerationOptions
from llark.jsonl import file_sha256, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
PRIMARY_METRICS = {"key": "mirex", "tempo": "acc1", "meter": "accuracy", "instruments": "micro_f1"}
# The curriculum before the last, every-family stage (module docstring): MIR questions on these topics only.
LISTENING_STAGES = ("key,mode,chords,tempo,meter,instruments:1000",)
# Real compositions in the train split: with 240 (308 scores), the real-composition set read meter 0.781 against
# 0.419 and tempo Acc1 0.819 against 0.590; on the test split key and tempo within a training's spread, meter
# and instruments just below (docs/demo-measurements.md, "Measured: a fresh clone with real compositions in
# training").
TRAIN_SCORES = 240
# What a listening stage changes in the config besides its topics and steps (recorded in recipe.json: stages
# trained before the listening stages took the config's train.loss_per_example ran with the token mean).
LISTENING_OVERRIDES = ("data.families=[mir_qa]",)
# How the demo's answers are decoded, in evaluation and questions alike: the answer that agrees best with
# 16 sampled at temperature 0.5 (minimum Bayes risk, llark/mbr.py), agreement as the question's task scores
# answers. The small model spreads a tempo over neighbouring numbers, and greedy decoding picks a noisy one of
# them (docs/demo-experiments.md, "How the recipe was chosen"). A tempo answer's number is then restated as the
# BPM most likely right, every BPM from 30 to 300 scored in the answer's words (exact_number_mbr; the same file,
# "What these runs showed"). The truth is taken as half what the answers say and half what the label heads read of
# the clip (head_weight): the heads and the answers err on different clips (the same file, "Decoding with the label
# heads").
DECODING = GenerationOptions(mbr_samples=16, temperature=0.5, exact_number_mbr=True, head_weight=0.5)
TARGETS = {("key", "mirex"): 0.85, ("tempo", "acc1"): 0.70, ("tempo", "acc2"): 0.90, ("meter", "accuracy"): 0.90,
           ("instruments", "micro_f1"): 0.70}


def listening_stage(text: str) -> tuple[list[str], int]:
    """"key,tempo:900" -> (["key", "tempo"], 900): a stage's MIR topics and steps."""
    topics, _, steps = text.rpartition(":")
    if not topics or not steps.isdigit() or int(steps) < 1 or not all(topics.split(",")):
        raise argparse.ArgumentTypeError(f"a stage is TOPICS:STEPS, e.g. key,mode,tempo:900; got {text!r}")
    return topics.split(","), int(steps)


def run(name: str, times: dict[str, float], *command: object, env: dict[str, str] | None = None) -> None:
    print(f"\n[demo] {name}: {' '.join(map(str, command))}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=REPO, env=env)
    times[name] = times.get(name, 0.0) + time.perf_counter() - started


def decoding_for(config: Config) -> GenerationOptions:
    """The demo's DECODING, without the label heads for a config that trains none (model.label_loss_weight 0)."""
    return DECODING if config.model.label_loss_weight > 0 else replace(DECODING, head_weight=0.0)


def evaluated(out: Path, checkpoint: Path, manifest: Path, decoding: GenerationOptions) -> bool:
    """Whether out/results.json already scores this checkpoint on this manifest, as it now reads, with the
    demo's decoding: then a re-run (e.g. make demo-soundfont after make demo) reuses it. A rebuilt manifest
    (other questions, or groups it did not have) is scored again. Delete `out` to score again anyway."""
    path = out / "results.json"
    if not path.is_file():
        return False
    results = json.loads(path.read_text())
    return (results.get("checkpoint") == str(checkpoint) and results.get("manifest") == str(manifest)
            and manifest.is_file() and results.get("manifest_sha256") == file_sha256(manifest)
            and results.get("decoding") == asdict(decoding))  # every option: one added since is not assumed


def check_recipe(run_dir: Path, recipe: dict) -> None:
    """Reuse run_dir's finished stages only if they were trained with this recipe (run_dir/recipe.json).

    A run left by another config, curriculum or corpus size would otherwise be evaluated as if it were
    this one's; the demo stops instead, touching nothing, and says which parts differ."""
    stored, current = run_dir / "recipe.json", json.loads(json.dumps(recipe))
    if stored.is_file():
        before = recipe_parts(json.loads(stored.read_text()))
        changed = [name for name, value in recipe_parts(current).items() if before.get(name) != value]
        if changed:
            raise SystemExit(f"{run_dir}: trained with another recipe ({stored}; changed: {', '.join(changed)}). "
                             "Move it aside or pass --run NEW_DIR to train this one.")
        return
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise SystemExit(f"{run_dir}: holds a run without {stored.name}, so its recipe is unknown. "
                         "Move it aside or pass --run NEW_DIR.")
    write_json_atomic(stored, current)


def soundfont_data(data: Path, soundfont: Path) -> Path:
    """Where --soundfont-test renders and encodes the test split: data/demo-FluidR3_GM beside data/demo."""
    return data.with_name(f"{data.name}-{soundfont.stem}")


def check_features(data: Path, encoder: EncoderConfig) -> None:
    """Stop before anything runs if data/features holds another encoder's features (encode.py would
    refuse them midway): say which settings differ, e.g. after a config change of the encoder."""
    stored = data / "features" / "encoder.json"
    if not stored.is_file():
        return
    before, wanted = json.loads(stored.read_text()), encoder_record(build_encoder(encoder))
    if not same_encoder(before, wanted):
        raise SystemExit(f"{data}: features made by another encoder ({stored}; {encoder_difference(before, wanted)}). "
                         "Move it aside or pass --data NEW_DIR to build this config's corpus.")


def recipe_parts(recipe: dict) -> dict:
    """{"config.model": ..., "config.train": ..., "corpus": ..., "stages": ..., "steps": ...}: what a message names."""
    sections = {f"config.{name}": value for name, value in recipe.get("config", {}).items()}
    return sections | {name: value for name, value in recipe.items() if name != "config"}


def repeated(option: str, values: Iterable[str]) -> list[str]:
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


def group_table(results: dict) -> str:
    """The model's figures on each group of the test split (generated pieces, real tunes; with and without
    drums), librosa's in brackets where it has one; "" when the manifest has no groups. `clips` is the
    group's largest count over the tasks (a clip without an instruments label has no drums group)."""
    columns = [(task, metric) for task, entry in results["tasks"].items() if entry.get("groups")
               for metric in entry["systems"]["llark"]]
    if not columns:
        return ""
    groups = list(dict.fromkeys(group for task, _ in columns for group in results["tasks"][task]["groups"]))
    lines = ["| group | clips | " + " | ".join(f"{task} {metric}" for task, metric in columns) + " |",
             "|---" * (len(columns) + 2) + "|"]
    for group in groups:
        cells, clips = [], 0
        for task, metric in columns:
            scored = results["tasks"][task]["groups"].get(group)
            if scored is None:
                cells.append("-")
                continue
            clips = max(clips, scored["n"])
            systems = scored["systems"]
            classic = systems.get("classic (librosa)", {}).get(metric)
            cells.append(f"{systems['llark'][metric]['value']:.3f}" + (f" ({classic['value']:.3f})" if classic else ""))
        lines.append(f"| {group} | {clips} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--generated", type=int, default=1800, help="generated pieces in the corpus")
    parser.add_argument("--tunes", type=int, default=300, help="real ABC tunes in the corpus")
    parser.add_argument("--stage", action="append", type=listening_stage, metavar="TOPICS:STEPS",
                        help="a listening stage: only the MIR questions on TOPICS, for STEPS steps (repeatable, in order; "
                             f"default: {' then '.join(LISTENING_STAGES)})")
    parser.add_argument("--steps", type=int, default=0, help="the last stage's steps, every family (0: the config's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--train-soundfont", action="append", default=[], metavar="SF2",
                        help="another soundfont a train piece may be rendered with, drawn per piece (repeatable; "
                        "make_corpus.py --train-soundfont)")
    parser.add_argument("--soundfont-test", action="append", default=[], metavar="SF2",
                        help="also evaluate on the test split rendered with this soundfont (repeatable)")
    parser.add_argument("--train-scores", type=int, default=TRAIN_SCORES, metavar="N",
                        help="real compositions in the training corpus: make_score_midi.py --for-training --limit N "
                             f"(none of --scores' set), every one in the train split (make_corpus.py --midi; default "
                             f"{TRAIN_SCORES}, 0: none)")
    parser.add_argument("--scores", type=int, default=0, metavar="N",
                        help="also evaluate on real compositions: N scores of each composer of music21's corpus "
                             "(preprocessing/make_score_midi.py --limit; 60: 107 scores), rendered with the corpus's "
                             "soundfont and each --soundfont-test")
    args = parser.parse_args(argv)
    for flag, soundfonts in (("--soundfont-test", args.soundfont_test), ("--train-soundfont", args.train_soundfont)):
        for soundfont in soundfonts:
            if not Path(soundfont).is_file():
                parser.error(f"{flag} {soundfont}: file not found (make demo-soundfont fetches FluidR3_GM)")
    data, run_dir = Path(args.data), Path(args.run)
    times: dict[str, float] = {}
    # librosa's own disk cache of its filter banks (LIBROSA_CACHE_DIR, read when librosa is imported), for the
    # steps that run librosa (encoding, the librosa baselines, ask): the chroma's CQT filters are otherwise built
    # again for every clip. The features are bit-identical, and a clip takes 0.89 of the time to encode
    # (benchmarks/encode.py --librosa-cache). A cache the caller set is kept.
    cache = os.environ.get("LIBROSA_CACHE_DIR") or str((data / "librosa-cache").resolve())
    print(f"[demo] LIBROSA_CACHE_DIR={cache}", file=sys.stderr)
    env = {**os.environ, "LIBROSA_CACHE_DIR": cache}
    # oneDNN, which runs the bf16 matmuls of training and answering on CPU, compiles a kernel for each new shape and
    # keeps 1024 (its own cache and PyTorch's, read when a process starts): training's shapes outnumber that,
    # and a full cache compiles again and again (data.PACKED_LENGTH_MULTIPLE; benchmarks/matmul_shapes.py).
    # Capacities the caller set are kept.
    train_env = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8192", "LRU_CACHE_CAPACITY": "8192"} | dict(os.environ)

    config = load_config(REPO / args.config)
    if config.encoder.name != "mir":
        raise SystemExit(f"{args.config}: the demo encodes with the MIR encoder, but encoder.name is {config.encoder.name!r}")
    decoding = decoding_for(config)
    stages = args.stage or [listening_stage(stage) for stage in LISTENING_STAGES]
    steps = args.steps or config.train.steps
    for folder in [data, *(soundfont_data(data, Path(soundfont)) for soundfont in args.soundfont_test)]:
        check_features(folder, config.encoder)
    corpus = {"generated": args.generated, "tunes": args.tunes}
    if args.train_soundfont:  # only then, so the recipe of a run made before the option still matches
        corpus["train_soundfonts"] = [Path(soundfont).name for soundfont in args.train_soundfont]
    if args.train_scores:  # the same
        corpus["train_scores"] = args.train_scores
    check_recipe(run_dir, {"config": asdict(config), "corpus": corpus,
                           "stages": stages, "listening_overrides": list(LISTENING_OVERRIDES), "steps": steps})
    # The features must be the ones the config's encoder makes: train.py checks, and `llark ask` encodes so.
    settings = repeated("--setting", [f"{key}={json.dumps(value)}" for key, value in config.encoder.settings.items()])

    def corpus_and_manifest(names: tuple[str, str], out: Path, *corpus: object) -> None:
        """The pipeline into `out` (the demo's corpus, features and shards; `corpus`: more of its options)
        and the evaluation manifest of its test split, out/eval.jsonl."""
        run(names[0], times, "preprocessing/run_pipeline.py", "--out", out, "--generated", args.generated,
            "--tunes", args.tunes, "--augment", "--workers", args.workers, "--no-annotate", "--shard-mb", 64,
            *corpus, *settings, env=env)
        run(names[1], times, "preprocessing/make_eval_manifest.py", "clips", "--clips", out / "clips.jsonl",
            "--features", out / "features", "--split", "test", "--tasks", "key,tempo,meter,instruments",
            "--out", out / "eval.jsonl")

    train_scores = []
    if args.train_scores:
        run("real compositions for training", times, "preprocessing/make_score_midi.py", "--for-training", "--out",
            data / "train-scores", "--limit", args.train_scores, "--jobs", args.workers)
        train_scores = ["--midi", data / "train-scores", "--midi-split", "train"]
    corpus_and_manifest(("pipeline", "eval manifest"), data,
                        *repeated("--train-soundfont", [Path(s).resolve() for s in args.train_soundfont]), *train_scores)
    shards = f"data.train_shards=[{data}/shards/train-*.tar]"
    previous: list[str] = []  # train.init_from of the next stage
    for number, (topics, stage_steps) in enumerate(stages, start=1):
        out = run_dir / f"listen-{number}"
        stage_checkpoint = out / "checkpoints" / f"step-{stage_steps:06d}"
        if not stage_checkpoint.is_dir():
            run(f"train, stage {number} (listen: {','.join(topics)})", times, "train.py", "--config", args.config, shards,
                f"train.out_dir={out}", f"train.steps={stage_steps}", *LISTENING_OVERRIDES,
                f"data.topics=[{','.join(topics)}]", *previous, env=train_env)
        previous = [f"train.init_from={stage_checkpoint}"]
    checkpoint = run_dir / "checkpoints" / f"step-{steps:06d}"
    if not checkpoint.is_dir():
        run("train, last stage (every family)", times, "train.py", "--config", args.config, shards,
            f"train.out_dir={run_dir}", f"train.steps={steps}", *previous, env=train_env)

    def evaluate_once(name: str, manifest: Path, out: Path, ablations: str) -> None:
        """evaluate.py on `manifest` into `out`, unless `out` already scores this checkpoint that way."""
        if not evaluated(out, checkpoint, manifest, decoding):
            run(name, times, "evaluate.py", "--checkpoint", checkpoint, "--manifest", manifest, "--out", out,
                "--bootstrap", 1000, "--ablations", ablations, "--answer-workers", 2, *generation_arguments(decoding),
                env=env)

    evaluate_once("evaluate", data / "eval.jsonl", run_dir / "eval", "shuffled")

    example = json.loads((data / "eval.jsonl").read_text().splitlines()[0])
    audio = (data / example["audio"]).resolve()
    questions = {"key": "What key is this piece in?", "tempo": "What is the tempo in BPM?",
                 "meter": "What is the time signature?", "instruments": "Which instruments can you hear?",
                 "caption": "Describe this piece of music."}  # task: question (the task says what a number may be)
    # One process: the checkpoint is loaded and the clip encoded once for all five questions.
    run("ask", times, "-m", "llark.cli", "ask", "--checkpoint", checkpoint, "--audio", audio,
        "--start", example.get("start", 0.0), "--end", example.get("end", 25.0),
        *repeated("--question", questions.values()), *repeated("--task", questions), *generation_arguments(decoding),
        env=env)

    for soundfont in map(Path, args.soundfont_test):
        # The same test pieces, seed and augmentation, other instrument samples; only the test split is rendered.
        other = soundfont_data(data, soundfont)
        corpus_and_manifest((f"test split with {soundfont.name}", f"eval manifest ({soundfont.name})"), other,
                            "--soundfont", soundfont.resolve(), "--splits", "test")
        evaluate_once(f"evaluate ({soundfont.name})", other / "eval.jsonl", run_dir / f"eval-{soundfont.stem}", "none")

    scores = data.with_name(f"{data.name}-scores")  # data/demo-scores: MIDI files, then a folder per soundfont
    score_soundfonts = [DEFAULT_SOUNDFONT, *map(Path, args.soundfont_test)] if args.scores else []
    if args.scores:
        run("real compositions (music21's corpus)", times, "preprocessing/make_score_midi.py", "--out", scores / "midi",
            "--limit", args.scores, "--jobs", args.workers)
    newest_score = max(path.stat().st_mtime for path in (scores / "midi").rglob("*.mid")) if args.scores else 0.0
    for soundfont in score_soundfonts:
        manifest = scores / soundfont.stem / "eval.jsonl"
        if not manifest.is_file() or manifest.stat().st_mtime < newest_score:
            run(f"compositions with {soundfont.name}", times, "preprocessing/make_eval_manifest.py", "midi", "--root",
                scores / "midi", "--soundfont", soundfont.resolve(), "--out", manifest, "--no-progress")
        evaluate_once(f"evaluate (compositions, {soundfont.name})", manifest, run_dir / f"eval-scores-{soundfont.stem}",
                      "shuffled")

    results = json.loads((run_dir / "eval" / "results.json").read_text())
    print(f"\n[demo] test split, never seen in training; decoding: {decoding_summary(results['decoding'])}:\n"
          + summary_table(results))
    by_group = group_table(results)
    if by_group:
        print("\n[demo] the model on each part of the test split (librosa in brackets):\n" + by_group)
    for soundfont in map(Path, args.soundfont_test):
        other = json.loads((run_dir / f"eval-{soundfont.stem}" / "results.json").read_text())
        print(f"\n[demo] the same test pieces rendered with {soundfont.name} (the corpus uses {DEFAULT_SOUNDFONT.name}):\n"
              + "\n\n".join(filter(None, (summary_table(other), group_table(other)))))
    for soundfont in score_soundfonts:
        scored = json.loads((run_dir / f"eval-scores-{soundfont.stem}" / "results.json").read_text())
        print(f"\n[demo] real compositions (music21's corpus, orchestrated by make_score_midi.py) rendered with "
              f"{soundfont.name}; by composer below (librosa in brackets):\n"
              + "\n\n".join(filter(None, (summary_table(scored), group_table(scored)))))
    print("\n[demo] stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items())
          + f"; total {sum(times.values()) / 60:.1f} min")
    print(f"[demo] report: {run_dir / 'eval' / 'report.md'} (plots beside it); checkpoint: {checkpoint}")
    print(f"[demo] try: llark ask --checkpoint {checkpoint} --audio any.wav --question \"What is the tempo in BPM?\" "
          "--task tempo " + " ".join(generation_arguments(decoding)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
