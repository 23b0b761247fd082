"""The audio pipeline stages on hand-made tracks: crop -> encode -> shards, with failures and re-runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from llark.clips import crop_labels
from llark.data import ExampleBuilder, ShardDataset
from llark.templates import get_template
from tests.conftest import REPO, tiny_tokenizer

SR = 22050


def run(script, *args):
    result = subprocess.run([sys.executable, str(REPO / "preprocessing" / script), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_crop_labels_cuts_and_rezeroes():
    labels = {"key": "D minor", "tempo": 120.0, "meter": "4/4", "beats": [0.0, 0.5, 24.5, 25.0, 25.5],
              "downbeats": [0.0, 24.0, 26.0], "abc": "X:1", "title": "never copied",
              "chords": [{"start": 0.0, "end": 24.0, "chord": "D:min"}, {"start": 24.0, "end": 28.0, "chord": "A:maj"}]}
    first = crop_labels(labels, 0.0, 25.0, covers_whole_track=False)
    assert first["beats"] == [0.0, 0.5, 24.5] and first["downbeats"] == [0.0, 24.0]
    assert first["chords"][-1] == {"start": 24.0, "end": 25.0, "chord": "A:maj"}
    assert "abc" not in first and "title" not in first and first["key"] == "D minor"
    second = crop_labels(labels, 25.0, 50.0, covers_whole_track=False)
    assert second["beats"] == [0.0, 0.5] and second["downbeats"] == [1.0]
    assert second["chords"] == [{"start": 0.0, "end": 3.0, "chord": "A:maj"}]
    assert crop_labels(labels, 0.0, 25.0, covers_whole_track=True)["abc"] == "X:1"


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    (root / "corpus" / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for name, seconds, split in [("long", 55.0, "train"), ("short", 12.0, "val"), ("tiny", 3.0, "train"),
                                 ("broken", 30.0, "test"), ("quiet", 30.0, "test")]:
        path = root / "corpus" / "audio" / f"{name}.flac"
        t = np.arange(int(seconds * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.normal(size=len(t))
        if name == "quiet":
            wave[:] = 0.0
        soundfile.write(path, wave.astype(np.float32), SR)
        if name == "broken":
            path.write_bytes(path.read_bytes()[:2000])
        rows.append({"track_id": name, "audio": f"audio/{name}.flac", "split": split, "source": "test",
                     "licence": "CC0", "duration": seconds,
                     "labels": {"key": "A minor", "tempo": 100.0, "meter": "3/4", "beats": [0.0, 0.6, 30.0]}})
    (root / "corpus" / "tracks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_crop_encode_shard_and_read_back(tracks):
    work = tracks / "work"
    log = run("crop_clips.py", "--tracks", tracks / "corpus" / "tracks.jsonl", "--out", work / "clips.jsonl", "--mode", "all")
    clips = [json.loads(line) for line in (work / "clips.jsonl").read_text().splitlines()]
    assert [c["clip_id"] for c in clips] == [
        "long-start0.000-end25.000", "long-start25.000-end50.000", "short-start0.000-end12.000",
        "broken-start0.000-end25.000", "quiet-start0.000-end25.000"]  # tiny (3 s) is below --min-seconds
    assert clips[1]["labels"]["beats"] == [5.0] and clips[1]["split"] == "train"
    assert (work / clips[0]["audio"]).resolve() == (tracks / "corpus" / "audio" / "long.flac").resolve()

    features = work / "features"
    log = run("encode.py", "--clips", work / "clips.jsonl", "--out", features, "--setting", "n_mels=32")
    assert "3 encoded, 0 already done, 2 failed" in log
    failures = {f["clip_id"]: f["error"] for f in map(json.loads, (features / "failures.jsonl").read_text().splitlines())}
    assert "broken.flac" in failures["broken-start0.000-end25.000"]
    assert "SilentAudio" in failures["quiet-start0.000-end25.000"]
    assert np.load(features / "long-start25.000-end50.000.npy").shape == (625, 32 + 14 + 96)
    assert np.load(features / "short-start0.000-end12.000.npy").dtype == np.float16
    assert "0 encoded, 3 already done" in run("encode.py", "--clips", work / "clips.jsonl", "--out", features,
                                               "--setting", "n_mels=32")
    refused = subprocess.run([sys.executable, str(REPO / "preprocessing" / "encode.py"), "--clips", str(work / "clips.jsonl"),
                              "--out", str(features)], capture_output=True, text=True)
    assert refused.returncode != 0 and "encoder.json" in refused.stderr

    qa = [{"clip_id": c["clip_id"], "qa": [{"question": "What key is this in?", "answer": "A minor.", "family": "mir_qa"}]}
          for c in clips if c["clip_id"] != "short-start0.000-end12.000"]
    (work / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa))
    log = run("make_shards.py", "--clips", work / "clips.jsonl", "--qa", work / "qa.jsonl", "--features", features,
              "--out", work / "shards")
    assert "train 2 clips in 1 shards" in log and "3 clips skipped" in log
    manifest = json.loads((work / "shards" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "mir" and set(manifest["splits"]) == {"train"}
    assert "up to date" in run("make_shards.py", "--clips", work / "clips.jsonl", "--qa", work / "qa.jsonl",
                               "--features", features, "--out", work / "shards")

    tokenizer, ids = tiny_tokenizer()
    builder = ExampleBuilder(tokenizer, ids, get_template("llama2"), max_length=1024)
    examples = list(ShardDataset([str(work / "shards" / "train-*.tar")], builder, loop=False))
    assert len(examples) == 2 and {len(e["features"]) for e in examples} == {625}
