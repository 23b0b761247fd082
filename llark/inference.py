"""Answering questions about clips with a trained checkpoint: one clip, or a manifest in batches.

Manifest contract (other tools rely on it): each input line is a JSON object with `id`, `question`
and either `audio` (a path; optional `start`/`end` seconds, default the first 25 s) or `features`
(a `.npy` path of shape [T, D]); relative paths are relative to the manifest's folder. Each output
line repeats
`id` and `question` and adds `answer`. Lines that fail (missing file, bad features, no encoder)
go to `<out>.failures.jsonl` with the error; the rest are answered.

    llark ask --checkpoint runs/demo/checkpoints/step-001200 --manifest in.jsonl --out out.jsonl
    llark ask --checkpoint runs/demo/checkpoints/step-001200 --features clip.npy --question "What key?"
    llark ask --checkpoint runs/demo/checkpoints/step-001200 --audio song.mp3 --track --question "What key?" --task key
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from llark.audio import CLIP_SECONDS, audio_info, clip_windows
from llark.data import ExampleBuilder, ExampleTooLong, collate, load_features
from llark.encoders import Encoder, build_encoder, encode_file, fitted_models
from llark.evaluation import NumberAnswer, Task, answer_agreement, get_task, number_answer
from llark.jsonl import read_jsonl, resolve_path, write_jsonl_atomic
from llark.label_targets import TEMPO_BELIEF_POINTS, head_belief
from llark.mbr import MBR_WEIGHTINGS, Belief, choose_answer, choose_by_agreement, most_probable_number
from llark.model import LLark
from llark.templates import get_template
from llark.tokenizer import IGNORE_INDEX

log = logging.getLogger(__name__)


class DecodingOptionsError(ValueError):
    """Decoding options that do not go together, or not with the checkpoint (llark ask and evaluate.py say so
    as a usage error)."""


@dataclass
class GenerationOptions:
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    # > 0: sample this many answers per question (with the settings above) and return the one that
    # agrees best with the others (llark/mbr.py): as the question's task scores answers where it is known
    # (choose_by_agreement), otherwise by their words, numbers agreeing within mbr_number_tolerance
    # (choose_answer; the tolerance also serves exact_number_mbr).
    mbr_samples: int = 0
    mbr_number_tolerance: float = 0.04
    # How MBR weighs each distinct sampled answer: "count" (how often it was sampled) or "probability"
    # (the model's probability of it; llark/mbr.py: answer_weights).
    mbr_weighting: str = "count"
    # For a question whose answer states one number from a known range (a tempo: its task in
    # Answerer.answer), restate the chosen answer's number as the one most likely right (within
    # mbr_number_tolerance of the truth) under the model's probability of every number of the range
    # (llark/mbr.py: most_probable_number); sampled answers only estimate that probability.
    exact_number_mbr: bool = False
    # For a question of a known task with a label head (key, tempo, meter, instruments), MBR takes the truth
    # as distributed like (1 - head_weight) x the model's answers + head_weight x what the head reads of the
    # clip (llark/label_targets.py: head_belief); 0: the answers alone. Needs mbr_samples and a checkpoint
    # with label heads.
    head_weight: float = 0.0
    # With head_weight: the tempos each of the tempo head's 4 % classes is spread over, evenly across it
    # (llark/label_targets.py: head_belief). 1 is one point at each class's centre, the decoding before
    # 2026-12-06, whose answers sat on a grid about 8 % apart (docs/demo-experiments.md).
    tempo_belief_points: int = TEMPO_BELIEF_POINTS

    def __post_init__(self) -> None:
        if self.mbr_samples < 0:
            raise DecodingOptionsError(f"mbr_samples (--mbr-samples) must be >= 0, got {self.mbr_samples}")
        if not 0.0 <= self.mbr_number_tolerance < 1.0:
            raise DecodingOptionsError(f"mbr_number_tolerance (--mbr-number-tolerance) must be in [0, 1), "
                                       f"got {self.mbr_number_tolerance}")
        if self.mbr_weighting not in MBR_WEIGHTINGS:
            raise DecodingOptionsError(f"mbr_weighting must be one of {MBR_WEIGHTINGS}, got {self.mbr_weighting!r}")
        if not 0.0 <= self.head_weight <= 1.0:
            raise DecodingOptionsError(f"head_weight (--head-weight) must be in [0, 1], got {self.head_weight}")
        if self.tempo_belief_points < 1:
            raise DecodingOptionsError(f"tempo_belief_points (--tempo-belief-points) must be >= 1, got "
                                       f"{self.tempo_belief_points}")
        if self.head_weight > 0 and self.mbr_samples == 0:
            raise DecodingOptionsError("head_weight (--head-weight) weighs sampled answers: it needs mbr_samples > 0 "
                                       "(--mbr-samples)")


def choose_for_task(candidates: list[str], task: Task | None, number_tolerance: float, belief: Belief | None = None,
                    belief_weight: float = 0.0, log_probs: list[float] | None = None) -> int:
    """Index of the candidate answer (sampled answers, or a track's window answers) that agrees best with the
    others: by the task's own score where it has one (llark/mbr.py: choose_by_agreement, with the head's
    `belief`), by shared words where it has none or no candidate states a value of it (choose_answer)."""
    agreement = answer_agreement(task) if task is not None else None
    chosen = None
    if agreement is not None:
        chosen = choose_by_agreement(candidates, task.parse, agreement, belief, belief_weight, log_probs)
    return chosen if chosen is not None else choose_answer(candidates, number_tolerance, log_probs)


class EncoderFitMismatch(ValueError):
    """The checkpoint trained on features of other fitted models than this code's encoder uses."""


def check_encoder_fit(model: LLark) -> None:
    """Refuse to encode audio for a checkpoint that trained on features of other fitted models (a refit of
    llark/encoders/beat_level.json or instrument_tagger.safetensors since): it would hear other rhythm
    features or instrument tags than it learnt from.
    Checkpoints saved before they recorded their encoder's fits are not checked."""
    encoder = model.run_config.encoder
    recorded, current = getattr(model, "encoder_fitted", None), fitted_models(encoder.name, encoder.settings)
    if recorded is not None and recorded != current:
        raise EncoderFitMismatch(f"the checkpoint trained on features of the fitted models {recorded or '(none)'}, but "
                                 f"this code's encoder {encoder.name} uses {current}: encode audio with the code it "
                                 "trained with, or train again on features of this fit")


def check_encoder_fit_for(model: LLark, items: list[dict[str, Any]]) -> None:
    """`check_encoder_fit` once for a batch, before any item, when some item would be encoded from its audio
    (every such item would fail alike, and a run that records failures per item would hide why)."""
    if any(item.get("audio") and not item.get("features") and item.get("modality") != "text" for item in items):
        check_encoder_fit(model)


@dataclass
class Answerer:
    """Turns (question, features) pairs into answers with one loaded model."""

    model: LLark
    options: GenerationOptions = field(default_factory=GenerationOptions)
    batch_size: int = 8
    _encoder: Encoder | None = None

    def __post_init__(self) -> None:
        cfg = self.model.run_config
        self.template = get_template(cfg.model.template)
        # Inference puts the audio before the question (LLark).
        self.builder = ExampleBuilder(self.model.tokenizer, self.model.ids, self.template, cfg.model.max_length,
                                      audio_position="before", system=cfg.model.system_prompt,
                                      audio_pool=cfg.model.audio_pool)
        self.device = next(self.model.parameters()).device
        if self.options.head_weight > 0 and not self.model.label_heads:
            raise DecodingOptionsError("head_weight (--head-weight) > 0 needs a checkpoint with label heads (trained with "
                                       "model.label_loss_weight > 0)")

    @property
    def decodes_by_task(self) -> bool:
        """Whether a question's task changes how it is decoded (MBR by its score, exact number MBR)."""
        return self.options.mbr_samples > 0 or self.options.exact_number_mbr

    def features_for(self, item: dict[str, Any]) -> np.ndarray | None:
        """Features of a manifest item: from its `features` .npy, or by encoding its `audio`; None for
        a text-only item (`"modality": "text"`, e.g. an ABC task), which is asked without audio.

        Audio is encoded from `start` to `end` seconds when the item gives them, else its first 25 s
        (the clip length the models are trained on).
        """
        if item.get("modality") == "text":
            if item.get("features") or item.get("audio"):
                raise ValueError("a text-only item ('modality': 'text') cannot also give audio or features")
            return None
        if item.get("features"):
            features = load_features(item["features"])
        elif item.get("audio"):
            if self._encoder is None:
                check_encoder_fit(self.model)
                self._encoder = build_encoder(self.model.run_config.encoder)
            start = float(item.get("start", 0.0))
            end = float(item.get("end", start + CLIP_SECONDS))
            features = encode_file(self._encoder, item["audio"], start=start, end=end)
        else:
            raise ValueError("needs 'audio' or 'features'")
        dim = self.model.config.audio_dim
        if features.shape[1] != dim:
            raise ValueError(f"features have {features.shape[1]} dims, the checkpoint expects {dim}")
        return features

    def checked_features(self, item: dict[str, Any], loaded: dict[tuple, np.ndarray | None] | None = None
                         ) -> np.ndarray | None:
        """`features_for(item)`, also refusing a prompt too long for the model, so a batch job can record
        that item as failed instead of failing the whole batch. With `loaded` (a dict the caller keeps over a
        manifest), each clip's features are read or encoded once for all the questions asked of it: the items
        with the same `features`, or the same `audio` span, share one array (a clips manifest asks four)."""
        if loaded is None:
            features = self.features_for(item)
        else:
            source = (item.get("modality"), item.get("features"), item.get("audio"), item.get("start"), item.get("end"))
            if source not in loaded:  # a clip that fails is not kept: each of its items records the error
                loaded[source] = self.features_for(item)
            features = loaded[source]
        self.prompt(item["question"], features)
        return features

    def prompt(self, question: str, features: np.ndarray | None) -> dict[str, Any]:
        """The tokenized prompt; raises ExampleTooLong when it exceeds the model's max_length."""
        return self.builder(features, question, None, random.Random(0))

    def option_scores(self, question: str, features: np.ndarray | None, options: list[str]) -> list[float]:
        """Mean log-probability of each option's text as the answer (higher is more likely); raises
        ExampleTooLong rather than score a cut-off answer."""
        examples = [self.builder(features, question, option, random.Random(0), truncate=False) for option in options]
        batch = {k: v.to(self.device) for k, v in collate(examples, self.model.ids.pad).items()}
        return self.model.answer_logprobs(**batch).tolist()

    def number_log_probs(self, question: str, features: np.ndarray | None, answer: str,
                         number: NumberAnswer) -> np.ndarray | None:
        """[len(number.values)] the model's log-probability of `answer` with each value in place of its number
        (where `number.locate` finds it), up to a constant shared by all values; None where the answer states
        no number, or is too long to score whole (it ran to the model's length).

        The prompt and the answer's words before the number are read once (LLark.continuation_log_probs).
        """
        span = number.locate(answer)
        if span is None:
            return None
        start, end = span
        frames = None if features is None else self.builder.audio_tokens(features)  # pooled once for all
        try:
            examples = [self.builder.with_audio_tokens(frames, question, f"{answer[:start]}{n}{answer[end:]}",
                                                       random.Random(0), truncate=False) for n in number.values]
        except ExampleTooLong as err:
            log.warning("exact number MBR left an answer as decoded: %s", err)
            return None
        rows = [e["input_ids"] for e in examples]
        shared = next((i for i, column in enumerate(zip(*rows)) if len(set(column)) > 1), min(map(len, rows)))
        # Each value's tokens after the shared start (the number and the words after it), right-padded.
        tails = collate([{"input_ids": e["input_ids"][shared:], "labels": e["labels"][shared:],
                          "features": np.zeros((0, 0), np.float32)} for e in examples], self.model.ids.pad)
        prefix = collate(examples[:1], self.model.ids.pad)
        return self.model.continuation_log_probs(
            prefix["input_ids"][:, :shared].to(self.device), prefix["audio"].to(self.device),
            prefix["audio_lengths"].to(self.device), tails["input_ids"].to(self.device),
            (tails["labels"] != IGNORE_INDEX).to(self.device)).cpu().numpy()

    def with_most_probable_number(self, question: str, features: np.ndarray | None, answer: str,
                                  number: NumberAnswer, belief: Belief | None = None) -> str:
        """`answer` with its number (where `number.locate` finds it) restated as the one of `number.values`
        most likely right within `options.mbr_number_tolerance` under the model's probability of each
        (`number_log_probs`; llark/mbr.py: most_probable_number); unchanged where it states none.

        Each candidate is scored in the answer's own words ("Roughly 112 BPM, which feels fairly fast." for
        every N in place of 112): the words are the same for every N, so the scores compare the numbers. The
        words stay as sampled, so a restated number may sit beside a word chosen for the old one ("fairly fast").
        One fixed wording for every answer ("The tempo is about N BPM.") read within 3 of 196 val questions
        of this, either way, and would tie the task to the training answers' wordings (README). With a
        `belief` (the tempo head's), the truth is the mixture `options.head_weight` says.
        """
        log_probs = self.number_log_probs(question, features, answer, number)
        if log_probs is None:
            return answer
        start, end = number.locate(answer)
        weight = self.options.head_weight if belief else 0.0
        chosen = number.values[most_probable_number(np.asarray(number.values), log_probs, self.options.mbr_number_tolerance,
                                                    belief, weight)]
        return f"{answer[:start]}{chosen}{answer[end:]}"

    def _cut_at_stop(self, text: str) -> str:
        for stop in self.template.stop_strings:
            text = text.split(stop, 1)[0]
        return text.strip()

    def head_beliefs(self, batch: dict[str, torch.Tensor], tasks: list[Task | None]) -> list[Belief | None]:
        """For each prompt of a collated batch whose task has a label head, that head's reading of its audio
        as a belief over the task's values (llark/label_targets.py: head_belief); None for the others."""
        heads = self.model.label_heads
        if not any(task is not None and task.name in heads for task in tasks):
            return [None] * len(tasks)
        probabilities = self.model.label_probabilities(batch["input_ids"], batch["attention_mask"], batch["audio"],
                                                       batch["audio_lengths"])
        return [head_belief(task.name, probabilities[task.name][row].cpu().numpy(),
                            tempo_points=self.options.tempo_belief_points)
                if task is not None and task.name in heads and batch["audio_lengths"][row] > 0 else None
                for row, task in enumerate(tasks)]

    def answer(
        self, questions: list[str], features: list[np.ndarray | None], on_text: Callable[[str], None] | None = None,
        tasks: list[Task | None] | None = None,
    ) -> list[str]:
        """Answers for parallel lists of questions and [T, D] features, `batch_size` at a time.

        `on_text` (single-question streaming) receives the decoded text as it grows; with MBR
        decoding (`options.mbr_samples`), the chosen answer once. `tasks` (parallel to `questions`): the
        evaluation task a question asks about, or None. With MBR, a task's sampled answers are chosen by its
        own per-item score (`agreement`: llark/mbr.py, choose_by_agreement; the shared words otherwise), with
        `options.head_weight` weighed against its label head's reading of the clip too; with
        `options.exact_number_mbr`, a one-number answer's number is restated (`with_most_probable_number`).
        """
        if tasks is not None and len(tasks) != len(questions):
            raise ValueError(f"{len(tasks)} tasks for {len(questions)} questions")
        tasks = tasks if tasks is not None else [None] * len(questions)
        tokenizer = self.model.tokenizer
        options = self.options
        samples = max(1, options.mbr_samples)  # rows per question
        do_sample = options.do_sample or options.mbr_samples > 0
        generator = torch.Generator(device=self.device).manual_seed(options.seed)
        stops = self.template.stop_strings
        streaming = on_text is not None and len(questions) == 1 and options.mbr_samples == 0
        answers: list[str] = []
        beliefs: list[Belief | None] = []
        for start in range(0, len(questions), self.batch_size):
            chunk = list(zip(questions[start : start + self.batch_size], features[start : start + self.batch_size]))
            prompts = [self.prompt(q, f) for q, f in chunk]
            batch = {k: v.to(self.device) for k, v in collate(prompts, self.model.ids.pad, left_pad=True).items()}
            chunk_tasks = tasks[start : start + self.batch_size]
            chunk_beliefs = (self.head_beliefs(batch, chunk_tasks) if options.head_weight > 0
                             else [None] * len(chunk_tasks))
            beliefs += chunk_beliefs
            streamed: list[int] = []

            def stream(tokens: torch.Tensor) -> None:
                streamed.append(int(tokens[0]))
                on_text(tokenizer.decode(streamed, skip_special_tokens=True))

            def is_done(row: int, tokens: list[int]) -> bool:
                return any(stop in tokenizer.decode(tokens[-8:]) for stop in stops)

            log_probs: list[float] | None = [] if options.mbr_weighting == "probability" and samples > 1 else None
            outputs = self.model.generate(
                batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                max_new_tokens=options.max_new_tokens, do_sample=do_sample,
                temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                repetition_penalty=options.repetition_penalty,
                generator=generator if do_sample else None,
                on_tokens=stream if streaming else None,
                is_done=is_done if stops else None,
                samples_per_prompt=samples,  # one row per sample, each prompt read once
                log_probs=log_probs,
            )
            texts = [self._cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True)) for tokens in outputs]
            for row, first in enumerate(range(0, len(texts), samples)):
                candidates = texts[first : first + samples]
                weights = log_probs[first : first + samples] if log_probs is not None else None
                task, belief = chunk_tasks[row], chunk_beliefs[row]
                chosen = (choose_for_task(candidates, task, options.mbr_number_tolerance, belief,
                                          options.head_weight if belief else 0.0, weights) if samples > 1 else 0)
                answers.append(candidates[chosen])
        if options.exact_number_mbr:
            for i, task in enumerate(tasks):
                number = number_answer(task) if task is not None else None
                if number is not None:
                    answers[i] = self.with_most_probable_number(questions[i], features[i], answers[i], number, beliefs[i])
        if on_text is not None and (not streaming or options.exact_number_mbr) and len(answers) == 1:
            on_text(answers[0])
        return answers


def read_manifest(path: str | Path, required: Iterable[str] = ("id", "question")) -> list[dict[str, Any]]:
    """Manifest lines with their paths resolved (`audio`, `features`, and a generation task's
    `gold.novelty_reference`: relative paths are relative to the manifest's own folder); an unreadable
    line or a missing field is an error naming the file and line."""
    items = read_jsonl(path, required)
    for item in items:
        for field_name in ("audio", "features"):
            if item.get(field_name):
                item[field_name] = str(resolve_path(item[field_name], path))
        gold = item.get("gold")
        if isinstance(gold, dict) and gold.get("novelty_reference"):
            gold["novelty_reference"] = str(resolve_path(gold["novelty_reference"], path))
    return items


def failures_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".failures.jsonl")


def answer_manifest(answerer: Answerer, manifest: str | Path, out: str | Path) -> tuple[int, int]:
    """Answer every line of `manifest` into `out`; returns (answered, failed)."""
    items = read_manifest(manifest)
    check_encoder_fit_for(answerer.model, items)
    ready, tasks, failures = [], [], []
    loaded: dict[tuple, np.ndarray | None] = {}  # each clip read or encoded once
    for item in items:
        try:
            features = answerer.checked_features(item, loaded)
            # A line naming its task (an evaluation manifest's "task": "tempo") is decoded as the task says
            # (Answerer.answer: MBR by its score, exact number MBR); an unknown task fails the line.
            task = get_task(item["task"]) if item.get("task") and answerer.decodes_by_task else None
        except Exception as err:  # recorded per line, the batch goes on
            failures.append({"id": item["id"], "question": item["question"], "error": f"{type(err).__name__}: {err}"})
            continue
        ready.append((item, features))
        tasks.append(task)
    answers = answerer.answer([item["question"] for item, _ in ready], [f for _, f in ready], tasks=tasks)
    write_jsonl_atomic(out, ({"id": item["id"], "question": item["question"], "answer": answer}
                             for (item, _), answer in zip(ready, answers)))
    if failures:
        write_jsonl_atomic(failures_path(out), failures)
    elif failures_path(out).exists():
        failures_path(out).unlink()  # a stale list from an earlier run would mislead
    return len(ready), len(failures)


@dataclass
class TrackAnswers:
    """`answer_track`'s result: the windows heard, each question's answer in each of them, and its answer for
    the track; `unheard` seconds at the end, shorter than a window, were not heard."""

    windows: list[tuple[float, float]]
    answers: list[list[str]]  # [question][window]
    track: list[str]  # [question]
    unheard: float


def answer_track(answerer: Answerer, audio: str | Path, questions: list[str], tasks: list[Task | None] | None = None,
                 start: float = 0.0, end: float | None = None) -> TrackAnswers:
    """Questions about a whole file (or its [start, end) seconds), where a model hears one clip: each question
    is asked of every 25 s window in turn (the clip length the models learn from; full windows, as the
    pipeline cuts tracks, or the one shorter span of a file shorter than a window), and its answer for the
    track is the window answer that agrees best with the others, chosen as MBR chooses among samples: by
    the task's own score where the question names one (keys by their MIREX weight, tempi within 4 %, the
    same meter, instrument sets by their F1), otherwise by shared words.

        llark ask --checkpoint runs/demo/checkpoints/step-001200 --audio song.mp3 --track \\
            --question "What key is this in?" --task key --question "Describe this piece of music."
    """
    tasks = tasks if tasks is not None else [None] * len(questions)
    duration = audio_info(audio).duration
    stop = duration if end is None else min(end, duration)
    spans = clip_windows(max(0.0, stop - start), mode="all", min_seconds=0.0)
    windows = [(round(start + first, 3), round(start + last, 3)) for first, last in spans]
    features = [answerer.features_for({"audio": str(audio), "start": first, "end": last}) for first, last in windows]
    count = len(windows)
    answers = answerer.answer([q for q in questions for _ in windows], [f for _ in questions for f in features],
                              tasks=[task for task in tasks for _ in windows])
    per_question = [answers[i * count : (i + 1) * count] for i in range(len(questions))]
    track = [window_answers[choose_for_task(window_answers, task, answerer.options.mbr_number_tolerance)]
             for task, window_answers in zip(tasks, per_question)]
    return TrackAnswers(windows, per_question, track, round(stop - windows[-1][1], 3))
