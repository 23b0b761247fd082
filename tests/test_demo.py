"""The demo: its summary table, and the whole pipeline at a small size (slow)."""

import argparse
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from llark.corpus.render import DEFAULT_SOUNDFONT
from llark.config import EncoderConfig
from llark.demo import DECODING, check_features, check_recipe, evaluated, group_table, listening_stage, summary_table
from llark.encoders import build_encoder
from llark.encoders.beat_level import BeatLevelModel
from llark.extraction import encoder_record
from llark.jsonl import write_json_atomic
from tests.conftest import REPO


def test_a_listening_stage_is_topics_and_steps():
    assert listening_stage("key,mode,tempo:900") == (["key", "mode", "tempo"], 900)
    for wrong in ("key", "key:0", "key:many", ":10", "key,,tempo:10"):
        with pytest.raises(argparse.ArgumentTypeError, match="TOPICS:STEPS"):
            listening_stage(wrong)


def test_summary_table_shows_model_targets_ablation_and_baselines():
    metric = lambda v: {"value": v, "low": v - 0.1, "high": v + 0.05}  # noqa: E731
    results = {"tasks": {"key": {"n": 10, "unparseable": {"audio": 1},
                                 "systems": {"llark": {"mirex": metric(0.9)}, "llark, features shuffled": {"mirex": metric(0.2)},
                                             "majority": {"mirex": metric(0.15)}, "classic (librosa)": {"mirex": metric(0.8)}}}}}
    table = summary_table(results).splitlines()
    assert table[2] == "| key | mirex | 0.900 [0.800, 0.950] | ≥ 0.85 | 0.200 | 0.150 | 0.800 | 1/10 |"


def test_the_group_table_shows_the_model_and_librosa_on_each_part_of_the_test_split():
    metric = lambda v: {"value": v, "low": v, "high": v}  # noqa: E731
    results = {"tasks": {
        "key": {"systems": {"llark": {"mirex": metric(0.9)}}, "groups": {
            "generated": {"n": 8, "systems": {"llark": {"mirex": metric(0.95)}, "classic (librosa)": {"mirex": metric(0.7)}}},
            "tunes": {"n": 2, "systems": {"llark": {"mirex": metric(0.7)}, "classic (librosa)": {"mirex": metric(0.8)}}}}},
        "meter": {"systems": {"llark": {"accuracy": metric(0.5)}}, "groups": {
            "generated": {"n": 8, "systems": {"llark": {"accuracy": metric(0.625)}}},
            "tunes": {"n": 2, "systems": {"llark": {"accuracy": metric(0.0)}}}}}}}
    assert group_table(results).splitlines() == [
        "| group | clips | key mirex | meter accuracy |", "|---|---|---|---|",
        "| generated | 8 | 0.950 (0.700) | 0.625 |", "| tunes | 2 | 0.700 (0.800) | 0.000 |"]
    assert group_table({"tasks": {"key": {"systems": {"llark": {"mirex": metric(0.9)}}}}}) == ""


def test_a_data_folder_of_another_encoder_stops_the_demo_first(tmp_path):
    encoder = EncoderConfig(name="mir", settings={"n_mels": 16, "tempo_bins": 0, "clip_tempo_bins": 20})
    check_features(tmp_path / "data", encoder)  # nothing encoded yet
    features = tmp_path / "data" / "features"
    features.mkdir(parents=True)
    write_json_atomic(features / "encoder.json", encoder_record(build_encoder(encoder)))
    check_features(tmp_path / "data", encoder)  # the same encoder: the features are reused
    older = encoder_record(build_encoder(encoder))
    del older["settings"]["clip_tempo_bins"]  # a folder encoded before the clip tempogram existed
    older["settings"]["tempo_bins"] = 96
    write_json_atomic(features / "encoder.json", older)
    with pytest.raises(SystemExit, match=r"data: features made by another encoder .*changed: clip_tempo_bins, "
                                         r"tempo_bins\). Move it aside or pass --data NEW_DIR"):
        check_features(tmp_path / "data", encoder)
    assert json.loads((features / "encoder.json").read_text()) == older  # nothing touched
    # the same settings with another fit of the beat-level model (llark/encoders/beat_level.json refitted)
    levelled = EncoderConfig(name="mir", settings={**encoder.settings, "n_mels": 64, "rhythm": True,
                                                   "beat_level": True})
    refitted = encoder_record(build_encoder(levelled))
    assert refitted["fitted"] == {"beat_level": BeatLevelModel.load().fingerprint()}
    refitted["fitted"] = {"beat_level": "0123456789abcdef"}
    write_json_atomic(features / "encoder.json", refitted)
    with pytest.raises(SystemExit, match=r"another fit of its fitted models \(\{'beat_level': '0123456789abcdef'\}"):
        check_features(tmp_path / "data", levelled)
    del refitted["fitted"]  # a folder encoded before encoder records kept the fit: which fit made it is unknown
    write_json_atomic(features / "encoder.json", refitted)
    with pytest.raises(SystemExit, match=r"another fit of its fitted models \(none recorded"):
        check_features(tmp_path / "data", levelled)


def test_a_rerun_reuses_stages_only_of_the_same_recipe(tmp_path):
    recipe = {"config": {"model": {"label_layer": 0}, "train": {"steps": 600}}, "stages": [[["key"], 1000]], "steps": 600}
    check_recipe(tmp_path / "run", recipe)  # a new run records its recipe
    assert json.loads((tmp_path / "run" / "recipe.json").read_text()) == recipe
    (tmp_path / "run" / "checkpoints").mkdir()
    check_recipe(tmp_path / "run", recipe)  # the same recipe: its stages are reused
    changed = {**recipe, "config": {**recipe["config"], "model": {"label_layer": -1}}, "stages": [[["key"], 900]]}
    with pytest.raises(SystemExit, match=r"run: trained with another recipe .*changed: config.model, stages"):
        check_recipe(tmp_path / "run", changed)
    assert json.loads((tmp_path / "run" / "recipe.json").read_text()) == recipe  # nothing touched
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)  # a run from before recipe.json
    with pytest.raises(SystemExit, match="without recipe.json"):
        check_recipe(tmp_path / "old", recipe)
    assert not (tmp_path / "old" / "recipe.json").exists()
    # A run of the demo from before the listening stages took the config's loss averaging (their recipe.json
    # has no listening_overrides) was trained another way: refused, naming it.
    current = {**recipe, "listening_overrides": ["data.families=[mir_qa]"]}
    with pytest.raises(SystemExit, match=r"changed: listening_overrides"):
        check_recipe(tmp_path / "run", current)


def test_a_finished_evaluation_is_reused_only_for_the_same_checkpoint_manifest_and_decoding(tmp_path):
    checkpoint, manifest = tmp_path / "run" / "checkpoints" / "step-000600", tmp_path / "eval.jsonl"
    manifest.write_text('{"id": "a", "task": "key", "gold": "C major", "groups": ["tunes"]}\n')
    assert not evaluated(tmp_path / "eval", checkpoint, manifest, DECODING)  # nothing there yet
    decoding = asdict(DECODING)
    scored = hashlib.sha256(manifest.read_bytes()).hexdigest()
    for changed, reused in (({}, True), ({"checkpoint": "other"}, False), ({"manifest": "other.jsonl"}, False),
                            ({"manifest_sha256": "0" * 64}, False),  # the manifest was rebuilt since
                            ({"manifest_sha256": None}, False),  # scored before results.json recorded it
                            ({"decoding": {**decoding, "mbr_samples": 0}}, False),
                            ({"decoding": {**decoding, "temperature": 1.0}}, False),
                            ({"decoding": {**decoding, "mbr_weighting": "probability"}}, False),
                            ({"decoding": {**decoding, "head_weight": 0.0}}, False),
                            ({"decoding": {k: v for k, v in decoding.items() if k != "exact_number_mbr"}}, False)):
        results = {"checkpoint": str(checkpoint), "manifest": str(manifest), "manifest_sha256": scored,
                   "decoding": decoding} | changed
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "eval" / "results.json").write_text(json.dumps(results))
        assert evaluated(tmp_path / "eval", checkpoint, manifest, DECODING) is reused, changed


def test_the_demo_decodes_with_the_label_heads_only_where_the_config_trains_them():
    from llark.config import load_config
    from llark.demo import decoding_for

    config = load_config(REPO / "configs" / "tiny.yaml")
    assert config.model.label_loss_weight > 0 and decoding_for(config) == DECODING and DECODING.head_weight == 0.5
    config.model.label_loss_weight = 0.0  # a --config without heads: the same decoding otherwise
    assert decoding_for(config).head_weight == 0.0 and replace(decoding_for(config), head_weight=0.5) == DECODING


@pytest.mark.slow
def test_demo_runs_every_stage_and_a_rerun_reuses_them(tmp_path):
    """`make demo` at a small size: corpus -> features -> shards -> three training stages -> evaluate -> ask."""
    command = [sys.executable, "-m", "llark.demo", "--data", tmp_path / "data", "--run", tmp_path / "run",
               "--generated", 40, "--tunes", 10, "--stage", "key,mode,chords:3", "--stage", "tempo,meter:1",
               "--steps", 2, "--workers", 1, "--train-scores", 1]
    env = {**{k: v for k, v in os.environ.items() if k != "LIBROSA_CACHE_DIR"}, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.run(list(map(str, command)), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    stages = [json.loads((tmp_path / "run" / stage / "checkpoints" / step / "config.json").read_text())
              for stage, step in (("listen-1", "step-000003"), ("listen-2", "step-000001"), (".", "step-000002"))]
    assert [s["data"]["topics"] for s in stages] == [["key", "mode", "chords"], ["tempo", "meter"], []]
    assert [s["data"]["families"] for s in stages] == [["mir_qa"], ["mir_qa"], []]
    assert [s["train"]["loss_per_example"] for s in stages] == [True, True, True]  # the config's, in every stage
    assert stages[0]["train"]["init_from"] == ""
    assert stages[1]["train"]["init_from"].endswith("listen-1/checkpoints/step-000003")
    assert stages[2]["train"]["init_from"].endswith("listen-2/checkpoints/step-000001")
    tracks = [json.loads(line) for line in (tmp_path / "data" / "corpus" / "tracks.jsonl").read_text().splitlines()]
    scores = [t for t in tracks if t["source"] == "midi"]  # --train-scores 1: one score of each training composer
    assert len(scores) >= 5 and {t["split"] for t in scores} == {"train"}
    assert any(t["track_id"].startswith("midi-bach__bwv") for t in scores)
    assert not any(t["track_id"].startswith(("midi-haydn", "midi-mozart", "midi-beethoven")) for t in scores)
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert set(results["tasks"]) == {"key", "tempo", "meter", "instruments"}
    assert {"llark", "llark, features shuffled", "majority"} <= set(results["tasks"]["key"]["systems"])
    assert results["decoding"]["mbr_samples"] == 16 and "decoding: minimum Bayes risk over 16 samples" in first.stdout
    assert "classic (librosa)" in results["tasks"]["tempo"]["systems"]
    assert "| key | mirex |" in first.stdout and "stage times:" in first.stdout
    # librosa kept the chroma's filter banks on disk (LIBROSA_CACHE_DIR) for the encoding workers to reuse.
    assert any((tmp_path / "data" / "librosa-cache").rglob("cq_to_chroma/*/output.pkl"))
    # Re-run: every finished stage is reused, nothing trains again. With --soundfont-test the test pieces are
    # rendered again (here with the same soundfont under another name, so the audio must come out the same);
    # with --scores 1, one score of each composer is written, rendered in both and the model asked about it.
    other = tmp_path / "Other.sf2"
    other.write_bytes(DEFAULT_SOUNDFONT.read_bytes())
    again = subprocess.run(list(map(str, [*command, "--soundfont-test", other, "--scores", 1])), cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train, stage" not in again.stderr and "| key | mirex |" in again.stdout
    assert "[demo] evaluate:" not in again.stderr and "[demo] evaluate (Other.sf2):" in again.stderr  # the first reused
    assert "the same test pieces rendered with Other.sf2" in again.stdout
    tracks = [json.loads(line) for line in (tmp_path / "data-Other" / "corpus" / "tracks.jsonl").read_text().splitlines()]
    assert tracks and {t["split"] for t in tracks} == {"test"} and {t["render"]["soundfont"] for t in tracks} == {"Other.sf2"}
    for track in tracks:
        assert (tmp_path / "data-Other" / "corpus" / track["audio"]).read_bytes() == \
            (tmp_path / "data" / "corpus" / track["audio"]).read_bytes()
    other_results = json.loads((tmp_path / "run" / "eval-Other" / "results.json").read_text())
    assert set(other_results["tasks"]) == {"key", "tempo", "meter", "instruments"}
    assert "classic (librosa)" in other_results["tasks"]["key"]["systems"]
    scores = sorted(p.relative_to(tmp_path / "data-scores" / "midi").as_posix()
                    for p in (tmp_path / "data-scores" / "midi").rglob("*.mid"))
    assert [name.split("/")[0] for name in scores] == ["bach", "beethoven", "haydn", "mozart"]
    for soundfont in ("TimGM6mb", "Other"):
        scored = json.loads((tmp_path / "run" / f"eval-scores-{soundfont}" / "results.json").read_text())
        assert set(scored["tasks"]) == {"key", "tempo", "meter", "instruments"}
        assert "mozart" in scored["tasks"]["key"]["groups"]  # a group per composer
        assert f"real compositions (music21's corpus, orchestrated by make_score_midi.py) rendered with {soundfont}.sf2" \
            in again.stdout
    # Another curriculum in the same run folder stops before training, naming what changed.
    changed = subprocess.run(list(map(str, [*command, "--steps", 3])), cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=900)
    assert changed.returncode != 0 and "changed: steps" in changed.stderr and "train, " not in changed.stderr
