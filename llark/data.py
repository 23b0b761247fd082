"""Training data: webdataset shards -> (clip, question, answer) examples -> padded batches.

One shard record holds one clip and all its Q/A pairs; pairs are expanded here. Shards are split
across every (process, loader worker) pair jointly, so 1 process with 2 workers reads exactly what
2 processes with 1 worker each read, batch for batch. Each stream is seeded by (seed, epoch, global
worker) alone and training streams loop forever, so uneven shard counts never stall a rank.

    dataset = ShardDataset(["data/shards/train-*.tar"], example_builder, seed=0, loop=True)
    # or batches of like length (pools of 32 batches in buckets of 32 token counts): pass the loader's batch size
    dataset = ShardDataset(["data/shards/train-*.tar"], example_builder, batch_size=8, length_group_batches=32)
    loader = DataLoader(dataset, batch_size=8, collate_fn=partial(collate, pad_id=ids.pad))
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import webdataset as wds
from braceexpand import braceexpand
from torch.utils.data import IterableDataset, get_worker_info

from llark.distributed import DistEnv
from llark.encoders import pool_to_frames
from llark.label_targets import TARGET_KEYS, encode_label_targets
from llark.shards import clip_id_from_key, decode_npy
from llark.templates import ConversationTemplate
from llark.tokenizer import IGNORE_INDEX, SpecialIds, encode_segments

log = logging.getLogger(__name__)


def expand_shard_patterns(patterns: list[str]) -> list[str]:
    """Tar paths from globs and {000..009} brace patterns, sorted; an unmatched pattern is an error."""
    paths: list[str] = []
    for pattern in patterns:
        for expanded in braceexpand(pattern):
            matches = sorted(glob.glob(expanded))
            if not matches:
                raise FileNotFoundError(f"no shard matches {expanded!r}")
            paths += matches
    return sorted(dict.fromkeys(paths))


@dataclass
class Clip:
    clip_id: str
    features: np.ndarray | None  # [T, D] float16; None for a text-only record (an ABC task)
    meta: dict[str, Any]


def decode_record(raw: dict[str, Any]) -> Clip:
    """A raw webdataset record -> Clip; raises ValueError naming the shard and key when malformed."""
    where = f"{raw.get('__url__', '?')}:{raw.get('__key__', '?')}"
    if "json" not in raw:
        raise ValueError(f"{where}: record lacks ['json']")
    meta = json.loads(raw["json"])
    if not isinstance(meta.get("qa"), list):
        raise ValueError(f"{where}: json has no 'qa' list")
    if meta.get("modality") == "text":  # said explicitly, so a lost features file is never read as text
        if "features.npy" in raw:
            raise ValueError(f"{where}: a text-only record must not carry features.npy")
        return Clip(clip_id_from_key(raw["__key__"]), None, meta)
    if "features.npy" not in raw:
        raise ValueError(f"{where}: record lacks ['features.npy']")
    features = decode_npy(raw["features.npy"], where)
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{where}: features must be a float [T, D] array, got {features.dtype} {features.shape}")
    return Clip(clip_id_from_key(raw["__key__"]), features, meta)


PROMPT_MEMO_SIZE = 100_000  # prompt segment texts an ExampleBuilder keeps the ids of


class ExampleTooLong(ValueError):
    pass


@dataclass
class ExampleBuilder:
    """Renders and tokenizes one (clip, question, answer) with a conversation template."""

    tokenizer: Any
    ids: SpecialIds
    template: ConversationTemplate
    max_length: int
    audio_position: str = "random"  # random | before | after
    system: str = ""
    audio_pool: int = 1  # average every k frames into one audio token
    # The prompt segments' ids, by text (encode_segments' `known`): training reads 8 pairs per clip with the
    # same system prompt and template words, and exact number MBR builds one prompt 271 times. Emptied when
    # it holds PROMPT_MEMO_SIZE texts, so a stream of ever-new questions cannot grow it without bound.
    _prompt_ids: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, features: np.ndarray | None, question: str, answer: str | None,
                 rng: random.Random, truncate: bool = True) -> dict[str, Any]:
        """One tokenized example; `features=None` is a text-only example (no audio block at all).

        A training example longer than max_length loses the end of its answer (`truncate`); without
        `truncate`, or when the prompt itself does not fit, it raises ExampleTooLong."""
        return self.with_audio_tokens(None if features is None else self.audio_tokens(features), question, answer,
                                      rng, truncate)

    def audio_tokens(self, features: np.ndarray) -> np.ndarray:
        """[T, D] encoder frames -> the [T / audio_pool, D] frames the LM reads, one per audio token."""
        if self.audio_pool > 1:
            return pool_to_frames(features, max(1, round(len(features) / self.audio_pool)))  # float16 shards: summed in float64
        return features

    def with_audio_tokens(self, features: np.ndarray | None, question: str, answer: str | None,
                          rng: random.Random, truncate: bool = True) -> dict[str, Any]:
        """As calling the builder, from frames already pooled by `audio_tokens`: a clip's Q/A pairs share
        them (ShardDataset pools each clip once)."""
        if len(self._prompt_ids) >= PROMPT_MEMO_SIZE:
            self._prompt_ids.clear()
        if features is None:
            segments = self.template.render(question, answer, system=self.system, with_audio=False)
            input_ids, labels = encode_segments(self.tokenizer, self.ids, segments, num_frames=0, known=self._prompt_ids)
            if len(input_ids) > self.max_length:
                prompt_length = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
                if not truncate or answer is None or prompt_length >= self.max_length:
                    raise ExampleTooLong(f"{len(input_ids)} tokens > max_length {self.max_length}")
                input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
            return {"input_ids": input_ids, "labels": labels, "features": np.zeros((0, 0), np.float32)}
        position = self.audio_position
        if position == "random":
            position = "before" if rng.random() < 0.5 else "after"
        segments = self.template.render(question, answer, audio_position=position, system=self.system)
        input_ids, labels = encode_segments(self.tokenizer, self.ids, segments, num_frames=len(features),
                                            known=self._prompt_ids)
        if len(input_ids) > self.max_length:
            last_audio = len(input_ids) - 1 - input_ids[::-1].index(self.ids.audio_end)
            if last_audio >= self.max_length or answer is None or not truncate:
                raise ExampleTooLong(f"{len(input_ids)} tokens (audio block included) > max_length {self.max_length}")
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        return {"input_ids": input_ids, "labels": labels, "features": features}


class ShardDataset(IterableDataset):
    """Examples from shards, split by process and loader worker, shuffled with a seeded buffer."""

    def __init__(
        self,
        shard_patterns: list[str],
        builder: ExampleBuilder,
        seed: int = 0,
        shuffle_buffer: int = 256,
        loop: bool = True,
        dist: DistEnv | None = None,
        families: Sequence[str] = (),
        topics: Sequence[str] = (),
        batch_size: int = 1,
        length_group_batches: int = 0,
        length_bucket_tokens: int = 32,
        label_targets: bool = False,
    ):
        """`label_targets`: every example also carries its clip's labels as class targets (label_targets.py)."""
        self.shards = expand_shard_patterns(shard_patterns)
        self.families, self.topics = frozenset(families), frozenset(topics)  # empty: every pair
        self.builder = builder
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.loop = loop
        self.dist = dist or DistEnv()
        if batch_size < 1 or length_group_batches < 0 or length_bucket_tokens < 1:
            raise ValueError(f"batch_size and length_bucket_tokens must be >= 1 and length_group_batches >= 0 "
                             f"(0: no grouping), got {batch_size}, {length_bucket_tokens} and {length_group_batches}")
        self.batch_size = batch_size
        self.length_group_batches, self.length_bucket_tokens = length_group_batches, length_bucket_tokens
        self.label_targets = label_targets
        self.skipped = 0  # malformed records and unreadable shards (per worker process)
        self.too_long = 0  # pairs whose prompt does not fit max_length (per worker process, every epoch)

    def _stream_position(self) -> tuple[int, int]:
        worker = get_worker_info()
        num_workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        return self.dist.rank * num_workers + worker_id, self.dist.world_size * num_workers

    def selected(self, pair: dict[str, Any]) -> bool:
        """Whether a Q/A pair trains: its family and its topic are listed (an empty list admits all)."""
        return ((not self.families or pair.get("family") in self.families)
                and (not self.topics or pair.get("topic") in self.topics))

    def _count_and_continue(self, error: Exception) -> bool:
        self.skipped += 1
        log.warning("skipping unreadable shard data (%d so far): %s", self.skipped, error)
        return True

    def _skip_too_long(self, clip_id: str, error: ExampleTooLong) -> None:
        """Count a pair that cannot fit. The same pairs come back every epoch, so after the first ten
        only every thousandth is logged, with the running count."""
        self.too_long += 1
        if self.too_long <= 10 or self.too_long % 1000 == 0:
            log.warning("skipping a pair longer than max_length (%d so far): %s: %s", self.too_long, clip_id, error)

    def _clips(self, shards: list[str], keep: tuple[int, int] | None) -> Iterator[Clip]:
        """Clips of the given shards; `keep=(i, n)` keeps every n-th record starting at i."""
        records = wds.tarfile_samples([{"url": s} for s in shards], handler=self._count_and_continue)
        for index, raw in enumerate(records):
            if keep is not None and index % keep[1] != keep[0]:
                continue
            try:
                yield decode_record(raw)
            except ValueError as err:
                self._count_and_continue(err)

    def _examples(self, epoch: int, stream: int, streams: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(f"{self.seed}-{epoch}-{stream}")
        if len(self.shards) >= streams:
            shards, keep = self.shards[stream::streams], None
            if self.shuffle_buffer:
                shards = rng.sample(shards, len(shards))
        else:  # fewer shards than streams: everyone reads all shards and keeps its share of records
            shards, keep = self.shards, (stream, streams)
        for clip in self._clips(shards, keep):
            targets = encode_label_targets(clip.meta.get("labels") or {}) if self.label_targets else {}
            pairs = list(filter(self.selected, clip.meta["qa"]))
            tokens = self.builder.audio_tokens(clip.features) if pairs and clip.features is not None else None
            for pair in pairs:
                try:
                    example = self.builder.with_audio_tokens(tokens, pair["question"], pair["answer"], rng)
                except ExampleTooLong as err:
                    self._skip_too_long(clip.clip_id, err)
                    continue
                yield example | targets

    def __iter__(self) -> Iterator[dict[str, Any]]:
        stream, streams = self._stream_position()
        examples = self._epochs(stream, streams)
        if self.length_group_batches:
            # Over the whole stream, not per epoch: every yielded group is then exactly one loader batch.
            rng = random.Random(f"lengths-{self.seed}-{stream}")
            examples = grouped_by_length(examples, self.batch_size, self.length_group_batches,
                                         self.length_bucket_tokens, rng)
        yield from examples

    def _epochs(self, stream: int, streams: int) -> Iterator[dict[str, Any]]:
        epoch = 0
        while True:
            rng = random.Random(f"shuffle-{self.seed}-{epoch}-{stream}")
            produced = 0
            for example in _shuffled(self._examples(epoch, stream, streams), self.shuffle_buffer, rng):
                produced += 1
                yield example
            if not self.loop:
                return
            if produced == 0:
                chosen = ""
                if self.families or self.topics:
                    chosen = f" with families {sorted(self.families)} and topics {sorted(self.topics)}"
                raise RuntimeError(f"stream {stream}/{streams} produced no examples from {len(self.shards)} shards"
                                   + chosen)
            epoch += 1


def _shuffled(items: Iterator[Any], buffer_size: int, rng: random.Random) -> Iterator[Any]:
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= buffer_size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def grouped_by_length(items: Iterator[dict[str, Any]], batch_size: int, pool_batches: int, bucket_tokens: int,
                      rng: random.Random) -> Iterator[dict[str, Any]]:
    """Examples in runs of `batch_size` of like length: each pool of `pool_batches` batches is ordered by
    length bucket (token count // bucket_tokens; random order within a bucket), cut into batches, and the
    batches leave in random order (the last pool may be short)."""
    pool_size = batch_size * pool_batches
    while pool := list(itertools.islice(items, pool_size)):
        rng.shuffle(pool)
        pool.sort(key=lambda example: len(example["input_ids"]) // bucket_tokens)  # stable: random within a bucket
        batches = [pool[start:start + batch_size] for start in range(0, len(pool), batch_size)]
        rng.shuffle(batches)
        batches.sort(key=lambda batch: len(batch) < batch_size)  # a short one last, so later ones stay aligned
        for batch in batches:
            yield from batch


def collate(examples: list[dict[str, Any]], pad_id: int, left_pad: bool = False, pack: bool = False
            ) -> dict[str, torch.Tensor]:
    """Pad token ids (right for training, left for generation), labels, and audio frames.

    With `pack`, the examples share rows: each row holds several, no longer together than the batch's
    longest example (rounded up to a multiple of PACKED_LENGTH_MULTIPLE), and `position_ids` restart at 0 for
    each, which tells the LM (Hugging Face's packed format) to let every token attend only within its own
    example. The step then trains on exactly the examples and label tokens it would unpacked, with the same
    mean loss, on fewer padded positions.
    """
    if pack:
        if left_pad:
            raise ValueError("packed rows are for training; generation pads each prompt on the left, one per row")
        return _packed(examples, pad_id)
    longest = max(len(e["input_ids"]) for e in examples)
    most_frames = max(len(e["features"]) for e in examples)
    dim = max(e["features"].shape[1] for e in examples)  # text-only examples carry [0, 0]
    batch = len(examples)
    input_ids = torch.full((batch, longest), pad_id, dtype=torch.long)
    labels = torch.full((batch, longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    audio = torch.zeros((batch, most_frames, dim), dtype=torch.float32)
    audio_lengths = torch.zeros(batch, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        span = slice(longest - n, longest) if left_pad else slice(0, n)
        input_ids[row, span] = torch.tensor(example["input_ids"])
        attention_mask[row, span] = 1
        if "labels" in example:
            labels[row, span] = torch.tensor(example["labels"])
        frames = torch.from_numpy(np.asarray(example["features"], dtype=np.float32))
        if len(frames):
            audio[row, : len(frames)] = frames
        audio_lengths[row] = len(frames)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "audio": audio,
        "audio_lengths": audio_lengths,
    } | _label_targets(examples, torch.repeat_interleave(torch.arange(batch), audio_lengths))


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: example indices per row, longest first, no row over `capacity` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if lengths[index] > capacity:
            raise ValueError(f"an example of {lengths[index]} tokens does not fit rows of {capacity}")
        row = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if row is None:
            rows.append([])
            room.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= lengths[index]
    return rows


# Packed rows are as long as the batch's longest example rounded up to a multiple of this. On CPU, oneDNN
# JIT-compiles a bf16 matmul kernel for every new shape and keeps only so many: rows of any length made a new
# shape nearly every step, and stage 2 of the demo slowed from 9,300 to 6,700 tokens/s over 400 steps while
# the process grew by 9 MB a step (benchmarks/matmul_shapes.py). A multiple of 8 bounds the shapes
# for about 2 % more positions.
PACKED_LENGTH_MULTIPLE = 8


def _packed(examples: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    lengths = [len(e["input_ids"]) for e in examples]
    row_length = -(-max(lengths) // PACKED_LENGTH_MULTIPLE) * PACKED_LENGTH_MULTIPLE
    rows = pack_rows(lengths, row_length)
    dim = max(e["features"].shape[1] for e in examples)
    frames_per_row = [sum(len(examples[i]["features"]) for i in row) for row in rows]
    input_ids = torch.full((len(rows), row_length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), row_length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), row_length), dtype=torch.long)
    position_ids = torch.zeros((len(rows), row_length), dtype=torch.long)
    audio = torch.zeros((len(rows), max(frames_per_row), dim), dtype=torch.float32)
    frame_owner = []  # the example of every frame, in the order the model fills the rows' placeholders
    for r, row in enumerate(rows):
        start = frame = 0
        for index in row:
            example, n = examples[index], lengths[index]
            input_ids[r, start:start + n] = torch.tensor(example["input_ids"])
            example_labels = torch.tensor(example["labels"])
            example_labels[0] = IGNORE_INDEX  # the previous example's last token must not predict it (unpacked, nothing does)
            labels[r, start:start + n] = example_labels
            attention_mask[r, start:start + n] = 1
            position_ids[r, start:start + n] = torch.arange(n)
            count = len(example["features"])
            if count:  # frames in the order of the row's placeholders: the model fills them left to right
                audio[r, frame:frame + count] = torch.from_numpy(np.asarray(example["features"], dtype=np.float32))
            frame_owner += [index] * count
            start, frame = start + n, frame + count
        position_ids[r, start:] = torch.arange(row_length - start)  # the padding is one more sequence of its own
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "audio": audio,
        "audio_lengths": torch.tensor(frames_per_row, dtype=torch.long),
        "position_ids": position_ids,
    } | _label_targets(examples, torch.tensor(frame_owner, dtype=torch.long))


def _label_targets(examples: list[dict[str, Any]], frame_owner: torch.Tensor) -> dict[str, torch.Tensor]:
    """The examples' label targets, when the dataset attached them (ShardDataset(label_targets=True)), and
    `frame_owner`: for every audio frame, in the order of the batch's placeholders, the index of its example."""
    if TARGET_KEYS[0] not in examples[0]:
        return {}
    targets = {name: torch.tensor(np.array([e[name] for e in examples])) for name in TARGET_KEYS}
    return targets | {"frame_owner": frame_owner}


def channel_statistics(arrays: Iterable[np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over the rows of all the [T, D] arrays, summed in float64 (`source`, where
    they come from, names them in the error when there are none)."""
    total = squares = None
    rows = 0
    for features in arrays:
        features = features.astype(np.float64)
        total = features.sum(0) if total is None else total + features.sum(0)
        squares = (features**2).sum(0) if squares is None else squares + (features**2).sum(0)
        rows += len(features)
    if not rows:
        raise ValueError(f"no features in {source}")
    mean = total / rows
    return mean.astype(np.float32), np.sqrt(np.maximum(squares / rows - mean**2, 0.0)).astype(np.float32)


def feature_statistics(shard_patterns: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over the frames of the first `limit` audio clips, in shard order."""

    def clip_features() -> Iterator[np.ndarray]:
        clips = 0
        records = wds.tarfile_samples([{"url": s} for s in expand_shard_patterns(shard_patterns)])
        for raw in records:
            if clips >= limit:
                return
            clip = decode_record(raw)
            if clip.features is not None:  # text-only records carry no features
                clips += 1
                yield clip.features

    return channel_statistics(clip_features(), str(shard_patterns))


def iter_qa_texts(shard_patterns: list[str], limit: int) -> Iterator[str]:
    """Questions and answers in shard order (deterministic), for training a BPE tokenizer."""
    seen = 0
    records = wds.tarfile_samples([{"url": s} for s in expand_shard_patterns(shard_patterns)])
    for raw in records:
        for pair in json.loads(raw["json"])["qa"]:
            yield pair["question"]
            yield pair["answer"]
            seen += 1
            if seen >= limit:
                return


def load_features(path: str | Path) -> np.ndarray:
    """A [T, D] float feature file (.npy, never pickled), with an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found")
    try:
        features = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a plain numeric .npy file ({err})") from None
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{path}: expected float features [T, D], got {features.dtype} {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{path}: features contain NaN or inf")
    return features
