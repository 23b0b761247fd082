"""The batch inference contract of `llark ask` and the single-clip path, on a trained probe checkpoint."""

import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from llark.inference import read_manifest
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # needs the trained probe checkpoint


def llark(*args):
    return subprocess.run([sys.executable, "-m", "llark.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_manifest_in_answers_out_failures_recorded(trained_probe_checkpoint, tmp_path):
    data, checkpoint = trained_probe_checkpoint
    good = read_manifest(data / "test.jsonl")[:5]  # paths resolved against the manifest's folder
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "long.npy", np.zeros((500, 16), np.float32))  # 500 frames > debug max_length 128
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF....WAVE")  # never read: this checkpoint has no encoder
    lines = [{"id": g["id"], "question": g["question"], "features": g["features"]} for g in good] + [
        {"id": "missing", "question": "Which instrument?", "features": str(tmp_path / "missing.npy")},
        {"id": "corrupt", "question": "Which instrument?", "features": str(tmp_path / "bad.npy")},
        {"id": "audio", "question": "Which instrument?", "audio": str(wav)},
        {"id": "long", "question": "Which instrument?", "features": str(tmp_path / "long.npy")},
    ]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = llark("ask", "--checkpoint", str(checkpoint), "--manifest", str(manifest), "--out", str(tmp_path / "out.jsonl"),
                   "--batch-size", "3")
    assert result.returncode == 1  # some lines failed
    assert "answered 5, failed 4" in result.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(o["id"], o["question"]) for o in out] == [(g["id"], g["question"]) for g in good]
    for row, gold in zip(out, good):
        assert set(row) == {"id", "question", "answer"} and gold["gold"] in row["answer"]
    failures = {f["id"]: f["error"] for f in map(json.loads, (tmp_path / "out.failures.jsonl").read_text().splitlines())}
    assert "not found" in failures["missing"] and "missing.npy" in failures["missing"]
    assert "bad.npy" in failures["corrupt"]
    assert "no encoder configured" in failures["audio"]
    assert "max_length" in failures["long"]



def test_a_manifest_reads_each_clip_once(trained_probe_checkpoint, tmp_path, monkeypatch):
    """Questions on the same features file share one read; a clip that fails fails each of its lines."""
    from llark.inference import Answerer, answer_manifest
    from llark.model import LLark

    data, checkpoint = trained_probe_checkpoint
    good = read_manifest(data / "test.jsonl")[:2]
    lines = [{"id": f"{g['id']}-{k}", "question": g["question"], "features": g["features"]} for g in good for k in range(3)]
    lines += [{"id": f"gone-{k}", "question": "Which instrument?", "features": str(tmp_path / "gone.npy")} for k in range(2)]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    reads = []
    features_for = Answerer.features_for
    monkeypatch.setattr(Answerer, "features_for", lambda self, item: reads.append(item["features"]) or features_for(self, item))
    assert answer_manifest(Answerer(LLark.from_pretrained(checkpoint)), manifest, tmp_path / "out.jsonl") == (6, 2)
    assert sorted(reads) == sorted([*{g["features"] for g in good}, str(tmp_path / "gone.npy"), str(tmp_path / "gone.npy")])
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["answer"] for row in out] == [f"The loudest instrument is the {g['gold']}." for g in good for _ in range(3)]


def test_single_clip_question_and_streaming(trained_probe_checkpoint, tmp_path):
    data, checkpoint = trained_probe_checkpoint
    first = read_manifest(data / "test.jsonl")[0]
    assert not json.loads((data / "test.jsonl").read_text().splitlines()[0])["features"].startswith("/")  # stored relative
    args = ["ask", "--checkpoint", str(checkpoint), "--features", first["features"], "--question", first["question"]]
    plain = llark(*args)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == f"The loudest instrument is the {first['gold']}."
    streamed = llark(*args, "--stream")
    assert streamed.returncode == 0 and streamed.stdout.strip() == plain.stdout.strip()
    # MBR decoding (llark/mbr.py) of a model this sure: its samples agree on the greedy answer, printed once.
    chosen = llark(*args, "--mbr-samples", "4", "--temperature", "0.5", "--stream")
    assert chosen.returncode == 0 and chosen.stdout == streamed.stdout
    second = read_manifest(data / "test.jsonl")[1]
    several = llark("ask", "--checkpoint", str(checkpoint), "--features", first["features"],
                    "--question", first["question"], "--question", second["question"])
    assert several.returncode == 0, several.stderr
    assert several.stdout.splitlines() == [f"Q: {first['question']}", f"A: {plain.stdout.strip()}",
                                           f"Q: {second['question']}", f"A: {plain.stdout.strip()}"]
    streamed_several = llark("ask", "--checkpoint", str(checkpoint), "--features", first["features"],
                             "--question", first["question"], "--question", second["question"], "--stream")
    assert streamed_several.returncode == 0 and streamed_several.stdout == several.stdout
    no_encoder = llark("ask", "--checkpoint", str(checkpoint), "--audio", str(tmp_path / "x.wav"), "--question", "Key?")
    assert no_encoder.returncode == 2 and "no encoder configured" in no_encoder.stderr


def probe_model_and_questions(trained_probe_checkpoint, count: int):
    """The trained probe model, and the questions and features of the first `count` test items."""
    from llark.data import load_features
    from llark.model import LLark

    data, checkpoint = trained_probe_checkpoint
    items = read_manifest(data / "test.jsonl")[:count]
    return (LLark.from_pretrained(checkpoint), [item["question"] for item in items],
            [load_features(item["features"]) for item in items])


def test_batched_answers_equal_one_at_a_time(trained_probe_checkpoint):
    from llark.inference import Answerer

    model, questions, features = probe_model_and_questions(trained_probe_checkpoint, 6)
    assert Answerer(model, batch_size=6).answer(questions, features) == Answerer(model, batch_size=1).answer(questions, features)


def test_mbr_chooses_among_each_questions_own_samples(trained_probe_checkpoint):
    from llark.inference import Answerer, GenerationOptions

    model, questions, features = probe_model_and_questions(trained_probe_checkpoint, 5)
    greedy = Answerer(model, batch_size=2).answer(questions, features)
    assert len(set(greedy)) > 1  # the clips' answers differ, so a mix-up between questions would show
    options = GenerationOptions(mbr_samples=6, temperature=0.5)
    assert Answerer(model, options, batch_size=2).answer(questions, features) == greedy


def test_manifest_errors_name_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "question": "q", "features": "x.npy"}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"in\.jsonl:2: missing field\(s\) \['question'\]"):
        read_manifest(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"in\.jsonl:1: not valid JSON"):
        read_manifest(path)


def test_relative_paths_are_relative_to_the_manifest(trained_probe_checkpoint, tmp_path):
    data, checkpoint = trained_probe_checkpoint
    (tmp_path / "clips").mkdir()
    np.save(tmp_path / "clips" / "a.npy", np.load(read_manifest(data / "test.jsonl")[0]["features"]))
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"id": "a", "question": "Which instrument is loudest in this clip?",
                                    "features": "clips/a.npy"}) + "\n")
    result = llark("ask", "--checkpoint", str(checkpoint), "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 0, result.stderr  # run from the repository, not from tmp_path
    assert "loudest instrument" in json.loads((tmp_path / "o.jsonl").read_text())["answer"]


def test_exact_number_mbr_restates_the_number_most_likely_right(trained_probe_checkpoint):
    """Every candidate number is scored in the answer's own words after one shared prompt: the choice equals
    scoring each whole answer teacher-forced (the shared words cancel) and taking the most probability on
    truths within the tolerance. Only the number the task reads is restated ("3/4" stays)."""
    from llark.evaluation import NumberAnswer
    from llark.evaluation.parsing import tempo_span
    from llark.inference import Answerer, GenerationOptions
    from llark.mbr import most_probable_number
    from llark.tokenizer import IGNORE_INDEX

    model, _, features = probe_model_and_questions(trained_probe_checkpoint, 1)
    answerer = Answerer(model, GenerationOptions(exact_number_mbr=True))
    question, clip, candidates = "What is the tempo?", features[0], range(60, 181)
    number = NumberAnswer(candidates, tempo_span)
    texts = [f"In 3/4, roughly {n} BPM, which feels fairly fast." for n in candidates]
    means = answerer.option_scores(question, clip, texts)
    counts = [sum(label != IGNORE_INDEX for label in answerer.builder(clip, question, text, random.Random(0))["labels"][1:])
              for text in texts]
    sums = np.array(means) * np.array(counts)
    for tolerance in (0.04, 0.0):
        answerer.options.mbr_number_tolerance = tolerance
        expected = candidates[most_probable_number(np.array(candidates), sums, tolerance)]
        assert answerer.with_most_probable_number(question, clip, "In 3/4, roughly 112 BPM, which feels fairly fast.",
                                                  number) == f"In 3/4, roughly {expected} BPM, which feels fairly fast."
    assert answerer.with_most_probable_number(question, clip, "Quite fast, in 3/4.", number) == "Quite fast, in 3/4."
    too_long = "very " * model.run_config.model.max_length + "fast, 112 BPM."  # no room to score it whole
    assert answerer.with_most_probable_number(question, clip, too_long, number) == too_long


def test_exact_number_mbr_applies_to_the_questions_given_numbers(trained_probe_checkpoint, tmp_path):
    from llark.evaluation import get_task, number_answer
    from llark.inference import Answerer, GenerationOptions, answer_manifest

    model, questions, features = probe_model_and_questions(trained_probe_checkpoint, 2)
    plain = Answerer(model).answer(questions, features)
    exact = Answerer(model, GenerationOptions(exact_number_mbr=True))
    tempo = number_answer(get_task("tempo"))
    assert number_answer(get_task("key")) is None and list(tempo.values) == list(range(30, 301))
    assert exact.answer(questions, features, tasks=[None, get_task("tempo")]) == plain  # no number to restate
    with pytest.raises(ValueError, match="1 tasks for 2 questions"):
        exact.answer(questions, features, tasks=[None])
    data, _ = trained_probe_checkpoint
    item = read_manifest(data / "test.jsonl")[0]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"id": name, "question": item["question"], "features": item["features"],
                                            "task": task}) + "\n" for name, task in (("a", "tempo"), ("b", "no-such-task"))))
    assert answer_manifest(exact, manifest, tmp_path / "out.jsonl") == (1, 1)
    failure = json.loads((tmp_path / "out.failures.jsonl").read_text())
    assert failure["id"] == "b" and "unknown task 'no-such-task'" in failure["error"]
    assert answer_manifest(Answerer(model), manifest, tmp_path / "plain.jsonl") == (2, 0)  # the task is not read


def test_ask_takes_the_task_whose_numbers_exact_mbr_chooses_from(trained_probe_checkpoint):
    data, checkpoint = trained_probe_checkpoint
    item = read_manifest(data / "test.jsonl")[0]
    common = ("ask", "--checkpoint", str(checkpoint), "--features", item["features"], "--question", item["question"])
    plain = llark(*common)
    exact = llark(*common, "--task", "tempo", "--exact-number-mbr")
    assert exact.returncode == 0 and exact.stdout == plain.stdout  # the probe's answers state no number
    unknown = llark(*common, "--task", "no-such-task")
    assert unknown.returncode == 2 and "unknown task 'no-such-task'" in unknown.stderr
    both = llark(*common, "--question", "What is the tempo?", "--task", "instruments", "--task", "tempo", "--exact-number-mbr")
    assert both.returncode == 0 and both.stdout.count("Q: ") == 2
    miscounted = llark(*common, "--question", "a", "--question", "b", "--task", "key", "--task", "tempo")
    assert miscounted.returncode == 2 and "2 --task for 3 --question" in miscounted.stderr
    # The label heads weigh sampled answers: without samples, or without heads (the probe's), a clear refusal.
    unsampled = llark(*common, "--task", "key", "--head-weight", "0.5")
    assert unsampled.returncode == 2 and "needs mbr_samples > 0" in unsampled.stderr
    headless = llark(*common, "--task", "key", "--head-weight", "0.5", "--mbr-samples", "2")
    assert headless.returncode == 2 and "needs a checkpoint with label heads" in headless.stderr


def test_audio_is_not_encoded_for_a_checkpoint_of_another_beat_level_fit(trained_probe_checkpoint, tmp_path):
    # The checkpoint records its encoder's fitted models; audio is refused with another fit of them, before encoding.
    from llark.audio import AudioError
    from llark.inference import Answerer, EncoderFitMismatch, answer_manifest
    from llark.model import LLark

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(trained_probe_checkpoint[1], checkpoint)
    assert LLark.from_pretrained(checkpoint).encoder_fitted is None  # the probe's shards carry no encoder record
    raw = json.loads((checkpoint / "config.json").read_text())
    raw["encoder"] = {"name": "mir", "settings": {"rhythm": True, "beat_level": True}}
    raw["llark"]["encoder_fitted"] = {"beat_level": "0123456789abcdef"}
    (checkpoint / "config.json").write_text(json.dumps(raw))
    answerer = Answerer(LLark.from_pretrained(checkpoint))
    mismatch = (r"the checkpoint trained on features of the fitted models \{'beat_level': '0123456789abcdef'\}, "
                r"but this code's encoder mir uses \{'beat_level': '[0-9a-f]{16}'\}")
    with pytest.raises(EncoderFitMismatch, match=mismatch):
        answerer.features_for({"question": "Key?", "audio": str(tmp_path / "never-read.wav")})
    # a batch is refused as a whole, before any item, not item by item (which would only count failures)
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "question": "Key?", "audio": "never-read.wav"}) + "\n")
    with pytest.raises(EncoderFitMismatch, match=mismatch):
        answer_manifest(answerer, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    (tmp_path / "eval.jsonl").write_text(json.dumps({"id": "a", "question": "Key?", "task": "key", "gold": "C major",
                                                     "audio": "never-read.wav"}) + "\n")
    evaluated = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--checkpoint", str(checkpoint), "--manifest",
                                str(tmp_path / "eval.jsonl"), "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert evaluated.returncode == 1 and "ckpt: the checkpoint trained on features of the fitted models" in evaluated.stderr
    del raw["llark"]["encoder_fitted"]  # which fit it trained on is unknown: not checked (the missing file is next)
    (checkpoint / "config.json").write_text(json.dumps(raw))
    with pytest.raises(AudioError, match="never-read.wav: audio file not found"):
        Answerer(LLark.from_pretrained(checkpoint)).features_for({"question": "Key?",
                                                                  "audio": str(tmp_path / "never-read.wav")})


def test_a_track_is_asked_window_by_window_and_answered_by_the_windows_agreement(tmp_path, monkeypatch):
    # The encoder and the model replaced by records of what they were asked: which spans of the file were
    # heard, and one fixed answer per question and window.
    import soundfile

    from llark.config import Config
    from llark.evaluation import get_task
    from llark.inference import Answerer, answer_track
    from llark.model import LLark
    from tests.conftest import tiny_model

    model = tiny_model(seed=2)
    model.save_pretrained(tmp_path / "ckpt", Config(model=model.config), model.tokenizer)
    answerer = Answerer(LLark.from_pretrained(tmp_path / "ckpt").eval())
    heard, asked = [], []

    def features_for(item):
        heard.append((item["start"], item["end"]))
        return np.full((25, 16), len(heard), np.float32)  # which window, in the features themselves

    def answer(questions, features, tasks=None):
        asked.append((questions, [int(f[0, 0]) for f in features], [t.name if t else None for t in tasks]))
        said = {"What is the time signature?": ["3/4.", "It is in 6/8.", "6/8."],
                "Describe it.": ["A slow piano piece.", "A slow piano piece with strings.", "Fast drums."]}
        return [said[q][int(f[0, 0]) - 1] for q, f in zip(questions, features)]

    monkeypatch.setattr(answerer, "features_for", features_for)
    monkeypatch.setattr(answerer, "answer", answer)
    song = tmp_path / "song.wav"
    soundfile.write(song, np.zeros(80 * 8000, np.float32), 8000)
    questions = ["What is the time signature?", "Describe it."]
    result = answer_track(answerer, song, questions, [get_task("meter"), None])
    assert result.windows == heard == [(0.0, 25.0), (25.0, 50.0), (50.0, 75.0)] and result.unheard == 5.0
    # One batch: each question of every window, each window encoded once.
    assert asked == [([questions[0]] * 3 + [questions[1]] * 3, [1, 2, 3] * 2, ["meter"] * 3 + [None] * 3)]
    assert result.answers == [["3/4.", "It is in 6/8.", "6/8."],
                              ["A slow piano piece.", "A slow piano piece with strings.", "Fast drums."]]
    # The meter by the task's score (two windows say 6/8), the description by shared words.
    assert result.track == ["It is in 6/8.", "A slow piano piece."]
    heard.clear()
    assert answer_track(answerer, song, questions[:1], start=10.0, end=40.0).windows == heard == [(10.0, 35.0)]
    snippet = tmp_path / "snippet.wav"
    soundfile.write(snippet, np.zeros(3 * 8000, np.float32), 8000)
    short = answer_track(answerer, snippet, questions[:1])
    assert short.windows == [(0.0, 3.0)] and short.unheard == 0.0


def test_track_answers_only_about_one_audio_file(tmp_path):
    np.save(tmp_path / "clip.npy", np.zeros((25, 16), np.float32))
    for extra in (["--features", str(tmp_path / "clip.npy")], ["--audio", "song.wav", "--stream"]):
        run = llark("ask", "--checkpoint", str(tmp_path), "--track", "--question", "Key?", *extra)
        assert run.returncode == 2 and "--track answers about one --audio file" in run.stderr
