"""Shards and the training data reader: expansion, splitting, shuffling, bad data, collation."""

import hashlib
import io
import itertools
import json
import random
import tarfile
from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from llark.data import ExampleBuilder, ShardDataset, grouped_by_length, collate, expand_shard_patterns, load_features
from llark.distributed import DistEnv
from llark.label_targets import (HEAD_SIZES, INSTRUMENT_CLASSES, MAX_BPM, METERS, MIN_BPM, MISSING, TEMPO_BIN_RATIO,
                                 TEMPO_BELIEF_POINTS, encode_label_targets, tempo_class)
from llark.shards import ClipRecord, clip_id_from_key, clip_key, write_shards
from llark.synthetic import probe_records
from llark.templates import get_template
from tests.conftest import tiny_tokenizer


def builder(position="random"):
    tokenizer, ids = tiny_tokenizer()
    return ExampleBuilder(tokenizer, ids, get_template("llama2"), max_length=128, audio_position=position)


def fingerprint(example) -> str:
    """Identifies an example by its clip's features and its tokens (use a fixed audio position)."""
    return hashlib.sha1(np.asarray(example["features"]).tobytes() + bytes(str(example["input_ids"]), "utf8")).hexdigest()


def all_examples(dataset, num_workers=0):
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return [fingerprint(e) for e in loader]


@pytest.mark.parametrize("clip_id", ["track-start0.000-end25.000", "a.b%2E-start1.5-end2", "plain"])
def test_clip_keys_round_trip_and_have_no_dots(clip_id):
    assert "." not in clip_key(clip_id)
    assert clip_id_from_key(clip_key(clip_id)) == clip_id


def test_write_shards_manifest(tmp_path):
    manifest = write_shards(probe_records(50, 16, seed=1), tmp_path / "train", max_bytes=20_000)
    assert manifest["samples"] == 50 and len(manifest["shards"]) > 1
    on_disk = json.loads((tmp_path / "train-manifest.json").read_text())
    assert on_disk == manifest
    for shard in manifest["shards"]:
        data = (tmp_path / shard["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]
        with tarfile.open(tmp_path / shard["path"]) as tar:
            names = tar.getnames()
        assert len(names) == 2 * shard["samples"]
        assert all(n.endswith((".features.npy", ".json")) for n in names)
    assert not list(tmp_path.glob("*.tmp"))


def test_every_qa_pair_is_expanded_once(probe_shards):
    dataset = ShardDataset([str(probe_shards / "train-*.tar")], builder("before"), shuffle_buffer=0, loop=False)
    examples = all_examples(dataset)
    assert len(examples) == 160 * 2 and len(set(examples)) == 320


@pytest.mark.parametrize("world_size, num_workers", [(2, 2), (4, 1), (8, 1)])  # 4 shards: split by shard / by record
def test_split_by_node_and_worker_is_disjoint_and_complete(probe_shards, world_size, num_workers):
    seen = Counter()
    for rank in range(world_size):
        dataset = ShardDataset([str(probe_shards / "train-*.tar")], builder("before"), shuffle_buffer=16, loop=False,
                               dist=DistEnv(rank=rank, world_size=world_size))
        seen.update(all_examples(dataset, num_workers=num_workers))
    assert len(seen) == 320 and set(seen.values()) == {1}


def test_one_process_two_workers_reads_what_two_processes_read(probe_shards):
    """Batch k of 1 process x 2 workers == batch k//2 of rank k%2 with 2 processes x 0 workers."""
    pattern = [str(probe_shards / "train-*.tar")]
    take = lambda loader, n: [b["input_ids"].tolist() for _, b in zip(range(n), loader)]
    single = take(DataLoader(ShardDataset(pattern, builder(), seed=3), batch_size=4, num_workers=2,
                             collate_fn=lambda e: collate(e, 0)), 6)
    ranks = [take(DataLoader(ShardDataset(pattern, builder(), seed=3, dist=DistEnv(rank=r, world_size=2)),
                             batch_size=4, collate_fn=lambda e: collate(e, 0)), 3) for r in range(2)]
    assert single == [ranks[k % 2][k // 2] for k in range(6)]


def test_uneven_shard_counts_never_run_dry(probe_shards):
    shards = sorted(str(p) for p in probe_shards.glob("train-*.tar"))[:3]
    counts = []
    for rank in range(2):
        dataset = ShardDataset(shards, builder(), dist=DistEnv(rank=rank, world_size=2), loop=True)
        stream = iter(dataset)
        counts.append(sum(1 for _ in zip(range(500), stream)))
    assert counts == [500, 500]  # rank 1 holds one shard (80 examples) and loops over it


def test_shuffling_is_seeded_and_epochs_differ(probe_shards):
    pattern = [str(probe_shards / "train-*.tar")]
    first = [fingerprint(e) for _, e in zip(range(640), ShardDataset(pattern, builder("before"), seed=1))]
    again = [fingerprint(e) for _, e in zip(range(640), ShardDataset(pattern, builder("before"), seed=1))]
    other = [fingerprint(e) for _, e in zip(range(320), ShardDataset(pattern, builder("before"), seed=2))]
    assert first == again and first[:320] != other
    assert first[:320] != first[320:] and sorted(first[:320]) == sorted(first[320:])


def test_audio_goes_before_or_after_the_question_at_random(probe_shards):
    tokenizer, ids = tiny_tokenizer()
    dataset = ShardDataset([str(probe_shards / "train-*.tar")], builder(), loop=False)
    question_first = Counter()
    for example in dataset:
        start = example["input_ids"].index(ids.audio_start)
        question_first[start > 12] += 1  # "[INST] " is a few tokens; a question is longer
    assert 0.35 < question_first[True] / 320 < 0.65


def test_corrupt_shards_and_records_are_skipped_and_counted(tmp_path, caplog):
    write_shards(probe_records(20, 16, seed=0), tmp_path / "good", max_bytes=1 << 20)
    good = (tmp_path / "good-000000.tar").read_bytes()
    (tmp_path / "truncated-000000.tar").write_bytes(good[: len(good) // 2 + 100])
    # A record whose features are a pickled object array must never be unpickled.
    with tarfile.open(tmp_path / "pickled-000000.tar", "w") as tar:
        for name, payload in [("evil.features.npy", _npy(np.array([{"x": 1}], dtype=object))),
                              ("evil.json", json.dumps({"qa": [{"question": "q", "answer": "a"}]}).encode()),
                              ("lonely.json", json.dumps({"qa": []}).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    dataset = ShardDataset([str(tmp_path / "*.tar")], builder(), shuffle_buffer=0, loop=False)
    examples = list(dataset)
    assert len(examples) >= 40  # the whole good shard, plus what the truncated one held intact
    assert dataset.skipped >= 3  # the pickled record, the record without features, the truncated tail
    assert any("pickled-000000.tar" in r.message and "not a plain numeric" in r.message for r in caplog.records)


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_collate_pads_right_for_training_and_left_for_generation():
    b = builder("before")
    rng = random.Random(0)
    examples = [b(np.ones((2, 16), np.float32), "Q?", "A.", rng), b(np.ones((5, 16), np.float32), "Longer question?", "A.", rng)]
    right = collate(examples, pad_id=-1)
    left = collate(examples, pad_id=-1, left_pad=True)
    assert right["audio"].shape == (2, 5, 16) and right["audio_lengths"].tolist() == [2, 5]
    assert right["audio"][0, 2:].abs().sum() == 0
    n = len(examples[0]["input_ids"])
    assert right["input_ids"][0, :n].tolist() == examples[0]["input_ids"] and right["attention_mask"][0, n:].sum() == 0
    assert left["input_ids"][0, -n:].tolist() == examples[0]["input_ids"] and left["attention_mask"][0, :-n].sum() == 0
    assert (right["labels"][0, n:] == -100).all()


def test_unmatched_shard_pattern_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shard matches"):
        expand_shard_patterns([str(tmp_path / "missing-{000..003}.tar")])


@pytest.mark.parametrize("payload, message", [
    (None, "not found"),
    (np.array([{"a": 1}], dtype=object), "not a plain numeric"),
    (np.zeros(5, np.float32), "expected float features"),
    (np.full((3, 4), np.nan, np.float32), "NaN"),
])
def test_load_features_errors_name_the_file(tmp_path, payload, message):
    path = tmp_path / "clip.npy"
    if payload is not None:
        path.write_bytes(_npy(payload))
    with pytest.raises((FileNotFoundError, ValueError), match=message) as err:
        load_features(path)
    assert "clip.npy" in str(err.value)


def test_audio_pool_averages_frames_into_fewer_audio_tokens():
    tokenizer, ids = tiny_tokenizer()
    pooled = ExampleBuilder(tokenizer, ids, get_template("llama2"), max_length=128, audio_position="before", audio_pool=5)
    features = np.repeat(np.arange(50, dtype=np.float32)[:, None], 16, axis=1)  # frame t holds the value t
    example = pooled(features, "Q?", "A.", random.Random(0))
    assert example["input_ids"].count(ids.audio_patch) == 10 and example["features"].shape == (10, 16)
    np.testing.assert_allclose(example["features"][:, 0], np.arange(2, 50, 5))  # means of 0-4, 5-9, ...
    odd = pooled(features[:23], "Q?", "A.", random.Random(0))
    assert odd["input_ids"].count(ids.audio_patch) == len(odd["features"]) == 5  # round(23 / 5)


def test_the_builder_remembers_prompt_segments_and_encodes_the_same_tokens(monkeypatch):
    import llark.data

    tokenizer, ids = tiny_tokenizer()
    fresh = lambda: ExampleBuilder(tokenizer, ids, get_template("llama2"), 128, audio_position="before",  # noqa: E731
                                   system="You are a helpful music assistant.")
    features = np.ones((4, 16), np.float32)
    pairs = [("What key is this piece in?", "It is in F# minor."), ("What is the tempo?", "About 96 BPM."),
             ("What key is this piece in?", "G major."), ("What key is this piece in?", None)] * 2
    remembering = fresh()
    for question, answer in pairs:  # a new builder each time encodes everything
        expected = fresh()(features, question, answer, random.Random(0), truncate=False)
        assert remembering(features, question, answer, random.Random(0), truncate=False)["input_ids"] == expected["input_ids"]
        assert remembering(None, question, answer, random.Random(0), truncate=False)["labels"] == \
            fresh()(None, question, answer, random.Random(0), truncate=False)["labels"]
    memo = remembering._prompt_ids
    assert any("What key is this piece in?" in text for text in memo)  # the prompt's text, with template words
    assert not any(answer in text for text in memo for answer in ("F# minor", "96 BPM", "G major"))  # answers are not kept

    monkeypatch.setattr(llark.data, "PROMPT_MEMO_SIZE", len(memo) + 1)
    for k in range(3):  # new questions past the limit empty it
        remembering(features, f"Question number {k}?", "Yes.", random.Random(0))
    assert len(remembering._prompt_ids) <= len(memo) + 1


def test_the_loader_pools_each_clip_once_into_what_the_builder_makes_of_it(tmp_path):
    tokenizer, ids = tiny_tokenizer()
    pooled = ExampleBuilder(tokenizer, ids, get_template("llama2"), max_length=128, audio_position="before", audio_pool=5)
    records = probe_records(3, 16, seed=4, min_frames=50, max_frames=50)
    for record in records:
        record.qa = [{"question": "What key is this in?", "answer": "C major.", "family": "mir_qa"},
                     {"question": "Describe it.", "answer": "A calm piece.", "family": "captioning"}]
    write_shards(records, tmp_path / "train")
    loaded = list(ShardDataset([str(tmp_path / "train-*.tar")], pooled, shuffle_buffer=0, loop=False))
    expected = [pooled(record.features.astype(np.float16), pair["question"], pair["answer"], random.Random(0))
                for record in records for pair in record.qa]
    assert len(loaded) == len(expected) == 6
    for got, want in zip(loaded, expected):
        assert got["input_ids"] == want["input_ids"] and got["features"].shape == (10, want["features"].shape[1])
        np.testing.assert_array_equal(got["features"], want["features"])


def test_feature_statistics_over_the_first_clips(probe_shards):
    from llark.data import decode_record, feature_statistics
    import webdataset as wds

    mean, std = feature_statistics([str(probe_shards / "train-*.tar")], limit=30)
    shards = sorted(str(p) for p in probe_shards.glob("train-*.tar"))
    frames = np.concatenate([decode_record(raw).features.astype(np.float64)
                             for _, raw in zip(range(30), wds.tarfile_samples([{"url": s} for s in shards]))])
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, frames.std(0), rtol=1e-4, atol=1e-6)


def test_families_and_topics_select_the_pairs_that_train(tmp_path):
    records = probe_records(6, 16, seed=2)
    for record in records:
        record.qa = [{"question": "What key is this in?", "answer": "C major.", "family": "mir_qa", "topic": "key"},
                     {"question": "What is the tempo?", "answer": "96 BPM.", "family": "mir_qa", "topic": "tempo"},
                     {"question": "Describe it.", "answer": "A calm piece.", "family": "captioning"}]
    write_shards(records, tmp_path / "train")
    tokenizer = builder().tokenizer

    def answers(**selection):
        dataset = ShardDataset([str(tmp_path / "train-*.tar")], builder("before"), shuffle_buffer=0, loop=False, **selection)
        return Counter(tokenizer.decode([t for t in e["labels"] if t >= 0], skip_special_tokens=True).strip()
                       for e in dataset)

    assert answers() == Counter({"C major.": 6, "96 BPM.": 6, "A calm piece.": 6})
    assert answers(families=["mir_qa"]) == Counter({"C major.": 6, "96 BPM.": 6})
    assert answers(topics=["key"]) == Counter({"C major.": 6})  # pairs without a topic are not selected
    assert answers(families=["captioning"]) == Counter({"A calm piece.": 6})
    assert answers(families=["mir_qa"], topics=["chords"]) == Counter()
    looping = ShardDataset([str(tmp_path / "train-*.tar")], builder(), loop=True, topics=["chords"])
    with pytest.raises(RuntimeError, match=r"no examples .* topics \['chords'\]"):
        next(iter(looping))


def test_pairs_too_long_to_fit_are_counted_apart_from_bad_data(tmp_path, caplog):
    long_question = "Count the bars of this tune. " + "abc " * 200  # far over max_length 128
    qa = [{"question": "Short?", "answer": "Yes"}, {"question": long_question, "answer": "8"}]
    write_shards([ClipRecord("tune-1", None, {}, qa)], tmp_path / "train", max_bytes=1 << 20)
    dataset = ShardDataset([str(tmp_path / "train-*.tar")], builder(), shuffle_buffer=0, loop=False)
    assert len(list(dataset)) == 1
    assert (dataset.too_long, dataset.skipped) == (1, 0)
    assert any("longer than max_length" in r.message and "tune-1" in r.message for r in caplog.records)
    assert not any("unreadable" in r.message for r in caplog.records)


def test_length_grouping_pads_less_and_keeps_every_example(tmp_path):
    """Grouped batches hold the same examples as ungrouped ones and pad to far fewer tokens, and every
    loader batch is one group (a pool is 4 batches; the stream is not a multiple of the pool)."""
    records = probe_records(45, 16, seed=4)
    for index, record in enumerate(records):
        words = " ".join(["music"] * (1 + 36 * (index % 2)))  # answers of 1 or 37 words: 36+ tokens apart
        record.qa = [{"question": "Describe it.", "answer": words}]
    write_shards(records, tmp_path / "train", max_bytes=1 << 20)
    pattern = [str(tmp_path / "train-*.tar")]

    def batches(**grouping):
        dataset = ShardDataset(pattern, builder("before"), seed=5, shuffle_buffer=8, loop=False, **grouping)
        return [[len(e["input_ids"]) for e in batch] for batch in DataLoader(dataset, batch_size=4, collate_fn=lambda e: e)]

    plain, grouped = batches(), batches(batch_size=4, length_group_batches=4, length_bucket_tokens=32)
    assert sorted(itertools.chain(*plain)) == sorted(itertools.chain(*grouped))
    padding = lambda bs: sum(max(b) - n for b in bs for n in b)
    assert padding(grouped) < 0.3 * padding(plain)  # a mixed batch is left only where a pool turns long
    assert [len(b) for b in grouped] == [4] * 11 + [1]  # the short batch of the last pool comes last
    assert batches(batch_size=4, length_group_batches=4) == grouped  # seeded
    exact = batches(batch_size=4, length_group_batches=4, length_bucket_tokens=1)
    assert all(b == sorted(b) for b in exact)  # buckets of one token count: each pool is sorted by length
    with pytest.raises(ValueError, match="length_group_batches >= 0"):
        batches(batch_size=4, length_group_batches=-1)


def test_length_buckets_keep_a_random_order_inside():
    """Within a bucket the pool's order stays random, so a batch is not one question phrasing."""
    items = [{"input_ids": [0] * (10 + i % 3), "tag": i} for i in range(64)]  # three lengths, one bucket of 32
    once = [e["tag"] for e in grouped_by_length(iter(items), 8, 8, 32, random.Random(0))]
    again = [e["tag"] for e in grouped_by_length(iter(items), 8, 8, 32, random.Random(1))]
    assert sorted(once) == list(range(64)) and once != again
    assert any(len({len(items[t]["input_ids"]) for t in once[i:i + 8]}) > 1 for i in range(0, 64, 8))


def test_clip_labels_become_class_targets():
    targets = encode_label_targets({"key": "F# minor", "tempo": 121.0, "meter": "6/8",
                                    "instruments": ["Flute", "Electric Bass (finger)", "Drums", "Kazoo"]})
    assert targets["target_key"] == 6 + 12 and encode_label_targets({"key": "Gb minor"})["target_key"] == 18
    assert encode_label_targets({"key": "Bb major"})["target_key"] == 10
    # A tempo class is 4 % wide: its centre is within 2 % of every tempo in it.
    for bpm in (30.0, 57.3, 121.0, 299.0):
        centre = MIN_BPM * TEMPO_BIN_RATIO ** tempo_class(bpm)
        assert abs(centre / bpm - 1) <= 0.02
    assert tempo_class(20.0) == 0 and tempo_class(500.0) == tempo_class(MAX_BPM)
    assert METERS[targets["target_meter"]] == "6/8"
    named = {INSTRUMENT_CLASSES[i] for i in np.flatnonzero(targets["target_instruments"] == 1)}
    assert named == {"flute", "bass", "drums"}  # an unknown name has no head output: it is left out
    missing = encode_label_targets({"key": "H major", "meter": "11/16"})
    assert {missing[name] for name in ("target_key", "target_tempo", "target_meter")} == {MISSING}
    assert (missing["target_instruments"] == MISSING).all()


def test_a_heads_reading_becomes_a_belief_over_its_tasks_values():
    from llark.evaluation import get_task
    from llark.label_targets import head_belief

    for name in ("key", "tempo", "meter"):
        probabilities = np.random.default_rng(0).dirichlet(np.ones(HEAD_SIZES[name]))
        belief = head_belief(name, probabilities)
        task = get_task(name)
        # Each value is one the task's parser gives back unchanged, in the order of the head's classes.
        assert all(task.parse_gold(value) == value for value, _ in belief)
        targets = [encode_label_targets({name: value})[f"target_{name}"] for value, _ in belief]
        points = TEMPO_BELIEF_POINTS if name == "tempo" else 1  # a tempo class: tempos across its 4 %
        assert targets == [c for c in range(HEAD_SIZES[name]) for _ in range(points)]
        weights = np.array([w for _, w in belief]).reshape(-1, points)
        assert weights.sum(axis=1) == pytest.approx(probabilities) and (weights == weights[:, :1]).all()
    # The tempos of a class spread evenly (in log tempo) around its centre, to within 2 % of it.
    tempos = np.array([value for value, _ in head_belief("tempo", np.ones(HEAD_SIZES["tempo"]))]).reshape(-1, TEMPO_BELIEF_POINTS)
    centres = MIN_BPM * TEMPO_BIN_RATIO ** np.arange(HEAD_SIZES["tempo"])
    assert np.abs(tempos / centres[:, None] - 1).max() <= 0.02
    assert np.log(tempos).mean(axis=1) == pytest.approx(np.log(centres)) and np.diff(np.log(tempos), axis=1).std() < 1e-9
    centred = head_belief("tempo", np.ones(HEAD_SIZES["tempo"]), tempo_points=1)  # the decoding before 2026-12-06
    assert [value for value, _ in centred] == pytest.approx(centres.tolist())
    # Instruments: sets drawn with the per-class probabilities; the same clip, the same draws.
    probabilities = np.zeros(len(INSTRUMENT_CLASSES))
    probabilities[INSTRUMENT_CLASSES.index("drums")], probabilities[INSTRUMENT_CLASSES.index("flute")] = 1.0, 0.25
    belief = head_belief("instruments", probabilities, draws=400)
    assert belief == head_belief("instruments", probabilities, draws=400) and sum(w for _, w in belief) == pytest.approx(1)
    assert all("drums" in value and value <= {"drums", "flute"} for value, _ in belief)
    assert 0.18 < sum("flute" in value for value, _ in belief) / 400 < 0.32
    with pytest.raises(ValueError, match="the meter head has 10 classes"):
        head_belief("meter", np.ones(4) / 4)


def test_dataset_attaches_each_clips_label_targets_only_when_asked(tmp_path):
    records = probe_records(3, 16, seed=4)
    for record, key in zip(records, ("C major", "A minor", "Eb major")):
        record.meta["labels"] = {"key": key}
    write_shards(records, tmp_path / "train")
    for asked in (False, True):
        dataset = ShardDataset([str(tmp_path / "train-*.tar")], builder("before"), shuffle_buffer=0, loop=False,
                               label_targets=asked)
        examples = list(dataset)
        assert len(examples) == 6 and all(("target_key" in e) == asked for e in examples)
    assert [e["target_key"] for e in examples] == [0, 0, 21, 21, 3, 3]  # two Q/A pairs per clip
    batch = collate(examples, builder().ids.pad, pack=True)
    assert batch["target_key"].tolist() == [0, 0, 21, 21, 3, 3] and len(batch["frame_owner"]) == batch["audio_lengths"].sum()
