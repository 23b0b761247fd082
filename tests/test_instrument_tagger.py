"""The instrument tagger (llark/encoders/instrument_tagger.py), its fit script, and the MIR encoder's group of it."""

import json
import zlib

import numpy as np
import pytest
import soundfile
import torch

import llark.encoders.instrument_tagger as instrument_tagger
import llark.encoders.mir as mir
from llark.encoders.instrument_tagger import SHIPPED, InstrumentTagger, InstrumentTaggerError, TaggerNet, fit, micro_f1
from llark.encoders.mir import MIRFeatureEncoder
from llark.jsonl import write_jsonl_atomic
from llark.label_targets import INSTRUMENT_CLASSES
from tests.conftest import load_script
from tests.test_encoders import SR

LOW, HIGH = INSTRUMENT_CLASSES.index("tuba"), INSTRUMENT_CLASSES.index("flute")


def banded_clips(count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Log-mel [frames, 64] of noise with a loud band low down (a "tuba"), high up (a "flute"), both or
    neither, in short notes; targets [count, classes] say which."""
    rng = np.random.default_rng(seed)
    clips, targets = [], np.zeros((count, len(INSTRUMENT_CLASSES)), np.float32)
    for k in range(count):
        frames = int(rng.integers(160, 260))
        mel = rng.normal(-0.8, 0.1, (frames, 64)).astype(np.float32)
        for column, bands in ((LOW, slice(4, 9)), (HIGH, slice(50, 56))):
            if (k >> (column == HIGH)) & 1:
                notes = rng.random(frames) < 0.5
                mel[notes, bands] += 1.2
                targets[k, column] = 1.0
        clips.append(mel)
    return clips, targets


def test_fit_learns_which_bands_play_on_clips_it_never_saw():
    clips, targets = banded_clips(48, seed=0)
    tagger = fit(clips, targets, steps=150, batch_size=8, width=4, provenance={"clips": "x"})
    held_clips, held_targets = banded_clips(16, seed=1)
    probabilities = np.stack([tagger.probabilities(mel) for mel in held_clips])
    assert probabilities.shape == (16, len(INSTRUMENT_CLASSES))
    assert micro_f1(probabilities, held_targets) >= 0.9
    others = np.ones(len(INSTRUMENT_CLASSES), bool)
    others[[LOW, HIGH]] = False
    assert probabilities[:, others].max() < 0.5  # never taught, never named
    assert tagger.provenance == {"clips": "x"} and tagger.n_mels == 64


def test_fit_draws_clips_as_often_as_their_weights_say():
    """A clip weighted 0 is never trained on: with every clip where the "flute" plays at 0, the flute is never
    learnt."""
    clips, targets = banded_clips(48, seed=0)
    weights = np.where(targets[:, HIGH] == 1, 0.0, 1.0)
    tagger = fit(clips, targets, steps=150, batch_size=8, width=4, weights=weights / weights.sum())
    held_clips, held_targets = banded_clips(16, seed=1)
    probabilities = np.stack([tagger.probabilities(mel) for mel in held_clips])
    assert probabilities[held_targets[:, HIGH] == 1, HIGH].max() < 0.5
    assert micro_f1(probabilities[:, [LOW]], held_targets[:, [LOW]]) >= 0.8  # the rest is learnt
    with pytest.raises(ValueError, match="weights must be one per clip"):
        fit(clips, targets, steps=1, weights=np.ones(48))


def test_micro_f1_counts_every_class_of_every_clip():
    truth = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    assert micro_f1(np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1]]), truth) == 1.0
    # one hit of two chosen, against three true: 2 * 1 / (2 + 3)
    assert micro_f1(np.array([[0.9, 0.6, 0.1], [0.2, 0.1, 0.1]]), truth) == pytest.approx(0.4)
    assert micro_f1(np.array([[0.4, 0.0, 0.4], [0.0, 0.4, 0.0]]), truth, threshold=0.3) == 1.0


def test_save_and_load_round_trip_leaves_no_temporary_file(tmp_path):
    torch.manual_seed(0)
    tagger = InstrumentTagger(TaggerNet(width=4).eval(), 64, {"held_out_micro_f1_0.5": 0.5})
    tagger.save(tmp_path / "tagger.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["tagger.safetensors"]
    loaded = InstrumentTagger.load(tmp_path / "tagger.safetensors")
    mel = np.random.default_rng(0).normal(size=(40, 64)).astype(np.float32)
    np.testing.assert_allclose(loaded.probabilities(mel), tagger.probabilities(mel), rtol=1e-6)
    assert loaded.provenance == tagger.provenance and loaded.fingerprint() == tagger.fingerprint()
    assert len(tagger.fingerprint()) == 16
    with torch.no_grad():
        tagger.net.classify.bias += 1e-3
    assert tagger.fingerprint() != loaded.fingerprint()  # the fingerprint follows the weights
    assert loaded.probabilities(mel[:3]).shape == (len(INSTRUMENT_CLASSES),)  # shorter than the poolings: padded
    with pytest.raises(ValueError, match=r"expected log-mel \[frames, 64\]"):
        loaded.probabilities(mel[:, :32])


def test_bad_tagger_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(InstrumentTaggerError, match="missing.safetensors: instrument tagger not found"):
        InstrumentTagger.load(tmp_path / "missing.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InstrumentTaggerError, match="broken.safetensors: not an instrument tagger"):
        InstrumentTagger.load(tmp_path / "broken.safetensors")
    from safetensors.torch import save_file

    weights = {name: t.contiguous() for name, t in TaggerNet(width=4).state_dict().items()}
    save_file(weights, tmp_path / "classes.safetensors",
              metadata={"classes": json.dumps(["tuba"]), "n_mels": "64", "width": "4"})
    with pytest.raises(InstrumentTaggerError, match="classes.safetensors: fitted for 1 instrument classes"):
        InstrumentTagger.load(tmp_path / "classes.safetensors")
    save_file(weights, tmp_path / "width.safetensors",
              metadata={"classes": json.dumps(list(INSTRUMENT_CLASSES)), "n_mels": "64", "width": "8"})
    with pytest.raises(InstrumentTaggerError, match="width.safetensors: weights do not fit the tagger"):
        InstrumentTagger.load(tmp_path / "width.safetensors")


def test_the_shipped_tagger_matches_the_encoder():
    tagger = InstrumentTagger.load(SHIPPED)
    assert tagger.n_mels == 64 and tagger.provenance["encoder"] == {"sample_rate": 22050, "n_mels": 64}
    assert tagger.provenance["held_out"] > 100 and tagger.provenance["held_out_micro_f1_0.5"] > 0.6
    encoder = MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                                instrument_tags=True)  # the demo's settings
    assert encoder.dim == 402 + len(INSTRUMENT_CLASSES) and encoder.groups()["instrument_tags"] == (402, 448)
    fitted = MIRFeatureEncoder.fitted({"rhythm": True, "beat_level": True, "instrument_tags": True})
    assert fitted["instrument_tagger"] == tagger.fingerprint() and "beat_level" in fitted
    assert "instrument_tagger" not in MIRFeatureEncoder.fitted({"rhythm": True})
    with pytest.raises(ValueError, match="reads 64 mel bands, not n_mels=32"):
        MIRFeatureEncoder(instrument_tags=True, n_mels=32)


def test_encoder_appends_each_segments_tags_read_off_its_own_log_mel(monkeypatch):
    torch.manual_seed(0)
    tagger = InstrumentTagger(TaggerNet(width=4).eval(), 64)
    monkeypatch.setattr(mir, "load_instrument_tagger", lambda: tagger)
    t = np.arange(int(14.0 * SR)) / SR
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 7) + 0.3 * np.sin(2 * np.pi * 1760 * t) * (t >= 7)).astype(np.float32)
    encoder = MIRFeatureEncoder(instrument_tags=True, rhythm_seconds=7.0)  # two segments of 7 s
    features = encoder.encode(wave)
    plain = MIRFeatureEncoder().encode(wave)
    assert features.shape == (350, plain.shape[1] + len(INSTRUMENT_CLASSES))
    np.testing.assert_array_equal(features[:, : plain.shape[1]], plain)  # the other groups do not move
    tags = features[:, plain.shape[1]:]
    np.testing.assert_allclose(tags[0], tagger.probabilities(plain[:175, :64]), rtol=1e-5)
    np.testing.assert_allclose(tags[-1], tagger.probabilities(plain[175:, :64]), rtol=1e-5)
    assert (tags[:175] == tags[0]).all() and (tags[175:] == tags[-1]).all() and not np.allclose(tags[0], tags[-1])
    np.testing.assert_allclose(encoder.log_mel_frames(wave), plain[:, :64], atol=1e-6)


def test_fit_script_trains_holds_out_by_track_and_reports_skipped_clips(tmp_path, capsys):
    """Two renderings of the same tracks (two clips.jsonl, audio beside each): a held-out track is held out in both."""
    script = load_script("preprocessing/fit_instrument_tagger.py")
    t = np.arange(int(4.0 * SR)) / SR
    tracks = [f"t{k}" for k in range(40)]
    held = [track for track in tracks if zlib.crc32(track.encode()) % 10 == 0]
    assert 0 < len(held) < len(tracks)
    for rendering, partial in (("first", 2), ("second", 3)):  # the second plays other partials: other samples
        folder = tmp_path / rendering
        folder.mkdir()
        rows = []
        for k, track in enumerate(tracks):
            low, high = bool(k & 1), bool(k & 2)
            wave = (0.3 * np.sin(2 * np.pi * 55 * t) * low + 0.1 * np.sin(2 * np.pi * 55 * partial * t) * low
                    + 0.3 * np.sin(2 * np.pi * 3520 * t) * high + 0.01 * np.sin(2 * np.pi * 440 * t))
            soundfile.write(folder / f"{track}.wav", wave.astype(np.float32), SR)
            names = ["Tuba"] * low + ["Flute"] * high or ["Violin"]
            rows.append({"clip_id": track, "track_id": track, "audio": f"{track}.wav", "start": 0.0, "end": 4.0,
                         "labels": {"instruments": names}, "source": "midi" if rendering == "second" else "generated"})
        if rendering == "second":
            rows.append({"clip_id": "gone", "track_id": "gone", "audio": "missing.wav", "start": 0.0, "end": 4.0,
                         "labels": {"instruments": ["Tuba"]}})
        write_jsonl_atomic(folder / "clips.jsonl", rows)
    out = tmp_path / "tagger.safetensors"
    assert script.main(["--clips", str(tmp_path / "first" / "clips.jsonl"), "--clips", str(tmp_path / "second" / "clips.jsonl"),
                        "--out", str(out), "--steps", "8", "--threads", "1"]) == 0
    report = capsys.readouterr()
    assert "skipped: gone:" in report.err and "1 clip(s) skipped" in report.out and "held-out micro-F1" in report.out
    tagger = InstrumentTagger.load(out)
    assert tagger.provenance["read"] == 80 and tagger.provenance["skipped"] == 1 and tagger.provenance["steps"] == 8
    assert tagger.provenance["held_out"] == 2 * len(held) and tagger.provenance["trained_on"] == 2 * (40 - len(held))
    assert tagger.provenance["clips"] == f"{tmp_path / 'first' / 'clips.jsonl'}, {tmp_path / 'second' / 'clips.jsonl'}"
    assert 0.0 <= tagger.provenance["held_out_micro_f1_0.5"] <= 1.0 and tagger.provenance["midi_share"] == 0.0
    with pytest.raises(SystemExit):  # no clip made from a MIDI file to draw the share from
        script.main(["--clips", str(tmp_path / "first" / "clips.jsonl"), "--out", str(out), "--steps", "8",
                     "--midi-share", "0.3"])
    assert "--midi-share 0.3: needs clips made from MIDI files (0)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--clips", str(tmp_path / "first" / "clips.jsonl"), "--midi-share", "1.5"])
    assert "--midi-share 1.5: a share" in capsys.readouterr().err
    both = ["--clips", str(tmp_path / "first" / "clips.jsonl"), "--clips", str(tmp_path / "second" / "clips.jsonl")]
    assert script.main([*both, "--out", str(out), "--steps", "8", "--threads", "1", "--midi-share", "0.3",
                        "--width", "4"]) == 0
    narrow = InstrumentTagger.load(out)  # the width is stored with the weights, so a load builds the same net
    assert narrow.provenance["midi_share"] == 0.3 and narrow.net.blocks[0].out_channels == 4
    with pytest.raises(SystemExit):
        script.main([*both, "--width", "0"])
    assert "--width 0: a block needs at least one channel" in capsys.readouterr().err
    weights = script.share_weights(np.array([True, False, False, False, True]), 0.3)
    np.testing.assert_allclose(weights, [0.15, 0.7 / 3, 0.7 / 3, 0.7 / 3, 0.15])


def test_shipped_tagger_is_loaded_once_per_process():
    assert instrument_tagger.load_shipped() is instrument_tagger.load_shipped()


def test_benchmark_scores_midi_clips_apart_and_a_manifests_audio(tmp_path, capsys):
    """benchmarks/instrument_tagger.py: clips made from MIDI files get a row of their own, and --manifest scores the
    tagger on the audio of a manifest's instrument questions, exactly as on that audio's log-mel."""
    script = load_script("benchmarks/instrument_tagger.py")
    rng = np.random.default_rng(0)
    features = tmp_path / "features"
    features.mkdir()
    clips = []
    for k, (split, source) in enumerate([("train", "generated"), ("train", "midi"), ("test", "generated")]):
        np.save(features / f"c{k}.npy", rng.normal(-0.5, 0.3, (100, 70)).astype(np.float32))
        clips.append({"clip_id": f"c{k}", "split": split, "source": source, "labels": {"instruments": ["Flute"]}})
    write_jsonl_atomic(tmp_path / "clips.jsonl", clips)
    (tmp_path / "eval" / "audio").mkdir(parents=True)
    t = np.arange(int(3.0 * SR)) / SR
    soundfile.write(tmp_path / "eval" / "audio" / "a.wav", (0.3 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), SR)
    manifest = tmp_path / "eval" / "eval.jsonl"
    write_jsonl_atomic(manifest, [
        {"id": "a", "task": "key", "gold": "C major", "audio": "audio/a.wav", "start": 0.0, "end": 2.0},
        {"id": "a", "task": "instruments", "gold": ["Flute", "Tuba"], "audio": "audio/a.wav",
         "start": 0.5, "end": 2.5}])

    (log_mel, target), = script.manifest_log_mels(manifest)
    encoder = MIRFeatureEncoder(sample_rate=SR)
    wave = soundfile.read(tmp_path / "eval" / "audio" / "a.wav", dtype="float32")[0][int(0.5 * SR): int(2.5 * SR)]
    np.testing.assert_allclose(log_mel, encoder.log_mel_frames(wave / np.abs(wave).max()), atol=1e-4)
    assert target[[LOW, HIGH]].tolist() == [1, 1] and target.sum() == 2

    assert script.main(["--clips", str(tmp_path / "clips.jsonl"), "--features", str(features), "--probe-channels", "0",
                        "--manifest", str(manifest)]) == 0
    rows = [line.split(" | ")[0].strip("| ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["train", "test", "train, real compositions", str(manifest)]
