"""Text-only examples (ABC tasks, ChatMusician style) go through the same shards, loader, model and
answerer as audio examples: no audio block at all, mixed freely with audio clips in one batch."""

from __future__ import annotations

import io
import json
import random
import tarfile

import numpy as np
import pytest
import torch

from llark.data import ExampleBuilder, ShardDataset, collate, decode_record, feature_statistics
from llark.shards import ClipRecord, write_shards
from llark.synthetic import probe_records
from llark.templates import get_template
from tests.conftest import tiny_model

QUESTION = "Write a reel in D major, 4/4."
ANSWER = "X:1\nM:4/4\nK:D\n|:d2fd AdFA|"


def text_record(index: int) -> ClipRecord:
    return ClipRecord(f"abc-{index}", None, {"source": "test"}, [{"question": QUESTION, "answer": ANSWER, "family": "abc"}])


@pytest.fixture()
def mixed_shards(tmp_path):
    records = [*probe_records(6, audio_dim=16, seed=0), *(text_record(i) for i in range(6))]
    write_shards(random.Random(0).sample(records, len(records)), tmp_path / "train", max_bytes=1 << 20)
    return str(tmp_path / "train-*.tar")


def builder(model) -> ExampleBuilder:
    return ExampleBuilder(model.tokenizer, model.ids, get_template("chatmusician"), max_length=128)


def test_text_record_has_no_features_and_says_so(mixed_shards):
    with tarfile.open(mixed_shards.replace("*", "000000")) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("abc-0.json").read())
    assert "abc-0.json" in names and "abc-0.features.npy" not in names
    assert meta["modality"] == "text"
    mean, _ = feature_statistics([mixed_shards], limit=100)  # text records are skipped, not counted
    assert mean.shape == (16,)


def test_a_record_without_features_must_say_it_is_text():
    meta = json.dumps({"qa": []}).encode()
    with pytest.raises(ValueError, match="lacks \\['features.npy'\\]"):
        decode_record({"__key__": "clip", "__url__": "s.tar", "json": meta})
    text = json.dumps({"qa": [], "modality": "text"}).encode()
    assert decode_record({"__key__": "abc", "json": text}).features is None
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 3), np.float16))
    with pytest.raises(ValueError, match="text-only record must not carry features"):
        decode_record({"__key__": "abc", "json": text, "features.npy": buffer.getvalue()})


def test_text_example_has_no_audio_block_and_trains_only_the_answer():
    model = tiny_model(template="chatmusician")
    example = builder(model)(None, QUESTION, ANSWER, random.Random(0))
    assert example["features"].shape == (0, 0)
    assert not {model.ids.audio_start, model.ids.audio_patch, model.ids.audio_end} & set(example["input_ids"])
    trained = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert model.tokenizer.decode(trained[:-1]) == ANSWER and trained[-1] == model.ids.eos


def test_mixed_and_text_only_batches_train_and_generate(mixed_shards):
    torch.manual_seed(0)
    model = tiny_model(template="chatmusician")
    examples = list(ShardDataset([mixed_shards], builder(model), loop=False, shuffle_buffer=0))
    assert sum(len(e["features"]) == 0 for e in examples) == 6 and len(examples) == 18
    mixed = collate(examples[:8], model.ids.pad)
    assert mixed["audio"].shape[2] == 16 and (mixed["audio_lengths"] == 0).any() and (mixed["audio_lengths"] > 0).any()
    text_only = collate([e for e in examples if len(e["features"]) == 0][:3], model.ids.pad)
    assert text_only["audio"].shape[1] == 0
    for batch in (mixed, text_only):
        loss = model(**batch)
        assert torch.isfinite(loss)
        loss.backward()
    prompt = collate([builder(model)(None, QUESTION, None, random.Random(0))], model.ids.pad, left_pad=True)
    tokens = model.generate(prompt["input_ids"], prompt["attention_mask"], prompt["audio"], prompt["audio_lengths"],
                            max_new_tokens=4)
    assert len(tokens[0]) >= 1


def test_answerer_asks_text_items_without_audio(tmp_path):
    from evaluate import ablate
    from llark.inference import Answerer

    from llark.config import Config

    model = tiny_model(template="chatmusician")
    model.run_config = Config(model=model.config)  # what from_pretrained attaches
    answerer = Answerer(model)
    assert answerer.features_for({"question": QUESTION, "modality": "text"}) is None
    with pytest.raises(ValueError, match="cannot also give audio"):
        answerer.features_for({"question": QUESTION, "modality": "text", "audio": "x.wav"})
    answers = answerer.answer([QUESTION, QUESTION], [None, None])
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert len(answerer.option_scores(QUESTION, None, ["A", "B"])) == 2
    clips = [np.ones((3, 16)), None, 2 * np.ones((3, 16)), None]
    assert ablate(clips, "zeroed", 0)[1] is None and not ablate(clips, "zeroed", 0)[0].any()
    shuffled = ablate(clips, "shuffled", 0)
    assert shuffled[1] is None and shuffled[3] is None and shuffled[0][0, 0] == 2 and shuffled[2][0, 0] == 1
