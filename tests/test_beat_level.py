"""The beat-level model (llark/encoders/beat_level.py), its fit script, and the MIR encoder's use of it."""

import json

import numpy as np
import pytest
import soundfile

import llark.encoders.mir as mir
from llark.encoders.beat_level import LEVEL_NAMES, LEVEL_RATIOS, SHIPPED, BeatLevelError, BeatLevelModel, fit, level_of
from llark.encoders.boosted_trees import BoostedTrees
from llark.encoders.mir import RHYTHM_DIM, TRACKED_TEMPO_AXIS, MIRFeatureEncoder
from llark.jsonl import write_jsonl_atomic
from tests.conftest import load_script
from tests.test_encoders import SR, accented_clicks


def test_level_of_names_the_ratio_within_four_percent():
    assert LEVEL_RATIOS[level_of(120.0, 60.0)] == 2.0
    assert LEVEL_RATIOS[level_of(80.0, 121.0)] == pytest.approx(2 / 3)
    assert LEVEL_RATIOS[level_of(100.0, 101.0)] == 1.0
    assert level_of(100.0, 110.0) is None  # 10 % off the tracked beat: no level
    assert level_of(100.0, 0.0) is None


def clustered(levels, features=6, seed=0):
    """Descriptors whose first channels say the level: one cluster per level."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, (len(levels), features))
    x[np.arange(len(levels)), np.asarray(levels) % features] += 3.0
    return x


@pytest.mark.parametrize("taught", [(4, 7), (1, 4, 6)])
def test_fit_learns_the_levels_it_was_taught_and_never_names_the_others(taught):
    levels = np.array([taught[k % len(taught)] for k in range(90)])
    model = fit(clustered(levels), levels, provenance={"clips": "x"})
    held_out = np.array([taught[k % len(taught)] for k in range(30)])
    ratios = [model.ratio(d) for d in clustered(held_out, seed=1)]
    assert ratios == [LEVEL_RATIOS[level] for level in held_out]
    assert model.provenance == {"clips": "x"} and set(model.trees.classes) == {LEVEL_NAMES[level] for level in taught}


def test_save_and_load_round_trip(tmp_path):
    levels = np.array([4, 7] * 20)
    model = fit(clustered(levels), levels, provenance={"encoder": {"sample_rate": SR, "n_mels": 64}})
    model.save(tmp_path / "level.json")
    loaded = BeatLevelModel.load(tmp_path / "level.json")
    probe = clustered(np.array([7, 4, 4]), seed=2)
    assert [loaded.ratio(d) for d in probe] == [model.ratio(d) for d in probe] == [2.0, 1.0, 1.0]
    assert loaded.provenance == model.provenance
    with pytest.raises(ValueError, match="expected 6 rhythm descriptors"):
        loaded.ratio(np.zeros(5))
    # the fingerprint follows the weights, not the provenance or the file's formatting
    assert loaded.fingerprint() == model.fingerprint() and len(model.fingerprint()) == 16
    renamed = BeatLevelModel(model.trees, {"note": "other"})
    assert renamed.fingerprint() == model.fingerprint()
    refitted = fit(clustered(levels, seed=5), levels)  # other clips: other trees
    assert refitted.fingerprint() != model.fingerprint()
    assert [p.name for p in tmp_path.iterdir()] == ["level.json"]  # written atomically: no temporary file left


def test_bad_model_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(BeatLevelError, match="missing.json: beat-level model not found"):
        BeatLevelModel.load(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(BeatLevelError, match="broken.json: not a beat-level model"):
        BeatLevelModel.load(tmp_path / "broken.json")
    levels = np.array([4, 7] * 20)
    fit(clustered(levels), levels).save(tmp_path / "good.json")
    good = json.loads((tmp_path / "good.json").read_text())
    for name, change, message in (
            ("ratio", lambda raw: raw.update(classes=["1", "5/2"]), r"ratios \['5/2'\] are not among LEVEL_NAMES"),
            ("shapes", lambda raw: raw.update(initial=[0.0]), "inconsistent shapes"),
            ("loop", lambda raw: raw["trees"][0][1]["right"].__setitem__(0, 0), "points outside it or back up it"),
            ("nan", lambda raw: raw["trees"][0][1]["value"].__setitem__(-1, float("nan")), "non-finite leaf"),
            ("old", lambda raw: raw.pop("trees"), "not a beat-level model")):  # the logistic fit's file of before
        raw = json.loads(json.dumps(good))
        change(raw)
        (tmp_path / f"{name}.json").write_text(json.dumps(raw))
        with pytest.raises(BeatLevelError, match=f"{name}.json: .*{message}"):
            BeatLevelModel.load(tmp_path / f"{name}.json")


def test_the_shipped_model_matches_the_encoder():
    model = BeatLevelModel.load(SHIPPED)
    assert model.trees.features == RHYTHM_DIM and set(model.trees.classes) <= set(LEVEL_NAMES)
    assert model.provenance["encoder"] == {"sample_rate": 22050, "n_mels": 64}
    assert model.provenance["cross_validated_tempo_acc1"] > model.provenance["tracked_tempo_acc1"]
    MIRFeatureEncoder(rhythm=True, beat_level=True)  # the demo's settings accept it
    # encoder records keep the fit beside the settings: features of two fits are never mixed (llark/extraction.py)
    assert MIRFeatureEncoder.fitted({"rhythm": True, "beat_level": True}) == {"beat_level": model.fingerprint()}
    assert MIRFeatureEncoder.fitted({"rhythm": True}) == {} == MIRFeatureEncoder.fitted({})
    with pytest.raises(ValueError, match="fitted on descriptors of"):
        MIRFeatureEncoder(rhythm=True, beat_level=True, n_mels=32)
    with pytest.raises(ValueError, match="needs rhythm=True"):
        MIRFeatureEncoder(beat_level=True)


def always(ratio: float) -> BeatLevelModel:
    """A model that names `ratio` whatever it hears: no trees, the highest initial score for `ratio`."""
    initial = np.where(np.isclose(LEVEL_RATIOS, ratio), 1.0, 0.0)
    return BeatLevelModel(BoostedTrees(LEVEL_NAMES, initial, [], RHYTHM_DIM), {"encoder": {"sample_rate": SR, "n_mels": 64}})


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])  # levels a click track has a pulse at
def test_encoder_describes_the_rhythm_at_the_level_the_model_names(monkeypatch, ratio):
    wave = accented_clicks(100.0, 4)
    tracked, bpm = MIRFeatureEncoder(rhythm=True).tracked_rhythm(wave)
    assert abs(bpm / 100.0 - 1) < 0.03
    monkeypatch.setattr(mir, "load_beat_level", lambda: always(ratio))
    encoder = MIRFeatureEncoder(rhythm=True, beat_level=True, n_mels=64)
    rhythm = encoder.encode(wave)[:, -RHYTHM_DIM:]
    assert rhythm.shape[1] == RHYTHM_DIM and np.isfinite(rhythm).all()
    bump = rhythm[0, : len(TRACKED_TEMPO_AXIS)]
    assert abs(np.log(TRACKED_TEMPO_AXIS[np.argmax(bump)] / (bpm * ratio))) < np.log(1.08)  # one axis step
    plain = MIRFeatureEncoder(rhythm=True).encode(wave)
    assert np.array_equal(plain[:, :-RHYTHM_DIM], encoder.encode(wave)[:, :-RHYTHM_DIM])  # only the rhythm group moves


def test_fit_script_fits_on_a_small_corpus_and_reports_skipped_clips(tmp_path, capsys):
    script = load_script("preprocessing/fit_beat_level.py")
    rows = []
    for k, (bpm, label) in enumerate([(100.0, 100.0), (120.0, 60.0), (90.0, 90.0), (110.0, 55.0)] * 3):
        path = tmp_path / f"clip{k}.wav"
        soundfile.write(path, accented_clicks(bpm, 4, seconds=8.0), SR)
        rows.append({"clip_id": f"c{k}", "track_id": f"t{k}", "audio": path.name, "start": 0.0, "end": 8.0,
                     "labels": {"tempo": label}})
    rows.append({"clip_id": "gone", "track_id": "gone", "audio": "missing.wav", "start": 0.0, "end": 8.0,
                 "labels": {"tempo": 100.0}})
    write_jsonl_atomic(tmp_path / "clips.jsonl", rows)
    out = tmp_path / "level.json"
    assert script.main(["--clips", str(tmp_path / "clips.jsonl"), "--out", str(out), "--min-clips", "3"]) == 0
    report = capsys.readouterr()
    assert "skipped: gone:" in report.err and "1 clip(s) skipped" in report.out
    model = BeatLevelModel.load(out)
    assert model.provenance["described"] == 12 and model.provenance["skipped"] == 1
    assert model.provenance["levels"]["1"] == 6 and model.provenance["levels"]["0.5"] == 6


def test_fit_script_leaves_out_a_level_too_rare_to_fit_and_names_it(tmp_path, capsys):
    script = load_script("preprocessing/fit_beat_level.py")
    rng = np.random.default_rng(0)
    labelled = [100.0] * 10 + [50.0] * 10 + [200.0] * 2 + [115.0]  # tracked at 100: levels 1, 1/2, 2, and none
    rows = [({"clip_id": f"c{k}", "track_id": f"t{k}", "source": "generated", "labels": {"tempo": bpm}},
             (rng.normal(0.0, 1.0, RHYTHM_DIM).astype(np.float32) + (bpm == 50.0), 100.0))
            for k, bpm in enumerate(labelled)]
    out = tmp_path / "level.json"
    assert script.fit_described(rows, [], ["clips.jsonl"], str(out), min_clips=3) == 0
    report = capsys.readouterr().out
    assert "left out, fewer than 3 clips each: 2 2" in report and "at none of them 1" in report
    model = BeatLevelModel.load(out)
    assert model.provenance["left_out_levels"] == {"2": 2} and model.provenance["fitted"] == 20
    assert model.provenance["levels"]["1"] == 10 and model.provenance["levels"]["0.5"] == 10
    assert model.provenance["levels"]["2"] == 0 and set(model.trees.classes) == {"1", "1/2"}
    # every level under the bar: nothing to fit, and nothing written
    assert script.fit_described(rows, [], ["clips.jsonl"], str(tmp_path / "none.json"), min_clips=11) == 1
    assert "0 level(s)" in capsys.readouterr().err and not (tmp_path / "none.json").exists()
