"""llark.annotate on rendered signals with known answers, and preprocessing/annotate.py end to end.

The first annotation in a process pays librosa's numba start-up (~3 s from the on-disk cache).
"""

import json
from pathlib import Path

import librosa
import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile

from llark.annotate import (KEY_PROFILES, annotate, classic_key, classic_tempo,
                            key_from_chroma, viterbi_sticky)
from llark.audio import AudioError
from llark.corpus.theory import MAJOR_TONICS, MINOR_TONICS
from llark.jsonl import sole_writer
from tests.conftest import REPO, load_script

SR = 22050
SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def click_track(bpm: float, seconds: float = 12.0, first: float = 0.25) -> np.ndarray:
    """Decaying 1 kHz clicks every beat over a faint noise floor."""
    wave = 1e-3 * np.random.default_rng(0).standard_normal(int(seconds * SR)).astype(np.float32)
    n = np.arange(int(0.03 * SR))
    click = np.sin(2 * np.pi * 1000 * n / SR) * np.exp(-n / (0.005 * SR))
    for t in np.arange(first, seconds - 0.1, 60.0 / bpm):
        start = int(round(t * SR))
        wave[start:start + len(n)] += click.astype(np.float32)
    return wave


def render(chords: list[tuple[float, float, list[int]]], seconds: float, program: int = 0,
           kicks: list[float] = ()) -> np.ndarray:
    """Mono audio of held chords (start, end, MIDI pitches) and bass-drum hits through pretty_midi's soundfont."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SR, gain=-6)
    font = synth.sfload(str(SOUNDFONT))
    synth.program_select(0, font, 0, program)
    synth.program_select(9, font, 128, 0, is_drums=True)
    events = [(s, 1, 0, p) for s, _, ps in chords for p in ps] + [(e, 0, 0, p) for _, e, ps in chords for p in ps]
    events += [(t, 1, 9, 36) for t in kicks] + [(t + 0.1, 0, 9, 36) for t in kicks]
    chunks, done = [], 0
    for when, on, channel, pitch in sorted(events, key=lambda e: (e[0], e[1])) + [(seconds, 0, 0, None)]:
        target = int(round(when * SR))
        if target > done:
            chunks.append(np.frombuffer(synth.generate(target - done), dtype=np.float32))
            done = target
        if pitch is not None:
            synth.noteon(channel, pitch, 90) if on else synth.noteoff(channel, pitch)
    return np.concatenate(chunks).reshape(-1, 2).mean(axis=1).astype(np.float32)


def cadence(tonic: int, minor: bool, beat: float = 0.5) -> tuple[np.ndarray, float]:
    """I-IV-V-I (minor: i-iv-V-i, the V major as in harmonic minor), a bar each, played twice."""
    third = 3 if minor else 4
    triads = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    chords, t = [], 0.0
    for _ in range(2):
        for triad in triads:
            pitches = [48 + tonic + triad[0] - 12] + [60 + tonic + step for step in triad]
            chords.append((t, t + 4 * beat, pitches))
            t += 4 * beat
    return render(chords, t + 0.5), t + 0.5


@pytest.mark.parametrize("bpm", [92.0, 128.0])
def test_click_track_tempo_and_beats(bpm):
    wave = click_track(bpm)
    labels = annotate(wave, SR)
    assert abs(labels["tempo"]["value"] - bpm) <= 0.04 * bpm
    assert abs(classic_tempo(wave, SR) - bpm) <= 0.04 * bpm
    beats = np.array(labels["beats"]["value"])
    assert abs(np.median(np.diff(beats)) - 60.0 / bpm) <= 0.04 * 60.0 / bpm
    clicks = np.arange(0.25, 11.9, 60.0 / bpm)
    assert mir_eval.beat.f_measure(clicks, beats) > 0.95  # beats land on the clicks (70 ms tolerance)
    assert beats[0] >= 0.15  # nothing placed in the silence before the first click


@pytest.mark.parametrize("key,tonic,minor", [("C major", 0, False), ("F# minor", 6, True), ("Bb major", 10, False),
                                             ("E minor", 4, True), ("Ab major", 8, False)])
def test_key_of_a_rendered_cadence(key, tonic, minor):
    wave, _ = cadence(tonic, minor)
    assert classic_key(wave, SR) == key
    assert classic_key(librosa.resample(wave, orig_sr=SR, target_sr=44100), 44100) == key  # any input rate


def test_key_from_chroma_names_every_key():
    for profile in ("ensemble", *KEY_PROFILES):
        major, minor = (np.array(p) for p in KEY_PROFILES["krumhansl-kessler"])
        for tonic in range(12):
            assert key_from_chroma(np.roll(major, tonic), profile)[0] == f"{MAJOR_TONICS[tonic]} major"
            assert key_from_chroma(np.roll(minor, tonic), profile)[0] == f"{MINOR_TONICS[tonic]} minor"


def test_chords_of_a_rendered_progression_are_mostly_right():
    # C - Am - F - G - Em - D (a bar of 4 beats at 120 BPM each), with a kick on every beat.
    progression = [("C:maj", 0, 4), ("A:min", 9, 3), ("F:maj", 5, 4), ("G:maj", 7, 4), ("E:min", 4, 3), ("D:maj", 2, 4)]
    chords, reference = [], []
    for i, (name, root, third) in enumerate(progression * 2):
        start = i * 2.0
        chords.append((start, start + 2.0, [36 + root, 60 + root, 60 + root + third, 60 + root + 7]))
        reference.append((start, start + 2.0, name))
    seconds = len(reference) * 2.0
    wave = render(chords, seconds, kicks=list(np.arange(0.0, seconds, 0.5)))
    estimate = annotate(wave, SR)["chords"]["value"]
    right = sum(any(c["chord"] == name and c["start"] <= (s + e) / 2 < c["end"] for c in estimate)
                for s, e, name in reference)
    assert right >= 10, estimate  # of 12 bars


def test_labels_carry_tool_and_version_and_follow_the_formats():
    wave, seconds = cadence(2, False)
    labels = annotate(wave, SR)
    assert set(labels) == {"tempo", "beats", "downbeats", "key", "chords"}
    for label in labels.values():
        assert label["tool"] == "llark.annotate/librosa" and label["version"] == librosa.__version__
        assert label["method"]
    mir_eval.key.validate_key(labels["key"]["value"])
    beats = labels["beats"]["value"]
    assert beats == sorted(beats) and 0.0 <= beats[0] and beats[-1] < seconds
    assert set(labels["downbeats"]["value"]) <= set(beats) and labels["downbeats"]["beats_per_bar"] in (2, 3, 4)
    chords = labels["chords"]["value"]
    assert chords[0]["start"] == 0.0 and chords[-1]["end"] == pytest.approx(seconds, abs=1e-3)
    assert all(a["end"] == b["start"] for a, b in zip(chords, chords[1:]))
    for chord in chords:
        mir_eval.chord.validate_chord_label(chord["chord"])
    json.dumps(labels)  # plain JSON types only


def test_bad_input_is_refused_clearly():
    with pytest.raises(AudioError, match="silent"):
        annotate(np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(ValueError, match="mono"):
        annotate(np.zeros((2, SR), dtype=np.float32), SR)


def test_viterbi_keeps_a_chord_through_a_one_beat_blip_but_follows_a_change():
    emission = np.zeros((3, 8))
    emission[0, :] = 1.0
    emission[1, 3] = 1.3  # one beat slightly prefers state 1: noise
    emission[2, 5:] = 4.0  # three beats strongly prefer state 2: a change
    assert viterbi_sticky(emission, stay=0.6).tolist() == [0, 0, 0, 0, 0, 2, 2, 2]


def test_benchmark_scores_rendered_songs():
    bench = load_script("benchmarks/annotator_accuracy.py")
    assert bench.tempo_hits(120.0, 121.0) == (True, True) and bench.tempo_hits(120.0, 60.5) == (False, True)
    result = bench.evaluate(bench.synthetic_clips(2, seed=0), total=2)["summary"]
    assert result["clips"] == 2 and 0.0 <= result["key_mirex"] <= 1.0 and result["acc2"] is not None


def test_annotate_script_spans_failures_and_resume(tmp_path, capsys):
    script = load_script("preprocessing/annotate.py")
    audio = tmp_path / "audio"
    audio.mkdir()
    soundfile.write(audio / "song.wav", cadence(0, False)[0], SR)
    soundfile.write(audio / "clicks.flac", click_track(100.0, seconds=10.0), SR)
    (audio / "bad.wav").write_bytes(b"RIFF....WAVE not really audio")
    clips = [{"clip_id": "song-start0.000-end8.500", "audio": "audio/song.wav", "start": 0.0, "end": 8.5},
             {"clip_id": "clicks-start2.000-end8.000", "audio": "audio/clicks.flac", "start": 2.0, "end": 8.0},
             {"clip_id": "bad-start0.000-end5.000", "audio": "audio/bad.wav", "start": 0.0, "end": 5.0}]
    clips_file = tmp_path / "clips.jsonl"
    clips_file.write_text("".join(json.dumps(c) + "\n" for c in clips))
    out = tmp_path / "pipeline" / "annotations.jsonl"
    failures = tmp_path / "pipeline" / "annotations.failures.jsonl"
    args = ["--clips", str(clips_file), "--out", str(out)]

    assert script.main(args) == 0
    assert "2 clips annotated" in capsys.readouterr().err
    rows = {r["clip_id"]: r["annotations"] for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"song-start0.000-end8.500", "clicks-start2.000-end8.000"}
    assert rows["song-start0.000-end8.500"]["key"]["value"] == "C major"
    span = rows["clicks-start2.000-end8.000"]
    assert span["chords"]["value"][-1]["end"] == pytest.approx(6.0, abs=1e-3)  # exactly the 6 s span was read
    assert abs(span["tempo"]["value"] - 100.0) <= 4.0
    failed = [json.loads(line) for line in failures.read_text().splitlines()]
    assert [f["clip_id"] for f in failed] == ["bad-start0.000-end5.000"] and "bad.wav" in failed[0]["error"]

    before = out.read_bytes()
    assert script.main(args) == 0
    assert "0 clips annotated" in (log := capsys.readouterr().err) and "2 already done, 1 failed" in log
    assert out.read_bytes() == before

    # An interrupted run left a finished clip and half a line in the .partial file; the bad file is fixed.
    extra = {"clip_id": "gone-start0.000-end5.000", "audio": "audio/gone.wav", "start": 0.0, "end": 5.0}
    clips_file.write_text("".join(json.dumps(c) + "\n" for c in [*clips, extra]))
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps({"clip_id": extra["clip_id"], "annotations": {}}) + '\n{"clip_id": "cut sh')
    soundfile.write(audio / "bad.wav", click_track(120.0, seconds=5.0), SR)
    assert script.main(args) == 0
    assert "1 clips annotated" in (log := capsys.readouterr().err) and "3 already done, 0 failed" in log
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["clip_id"] for r in rows) == sorted(c["clip_id"] for c in [*clips, extra])
    assert not partial.exists() and not failures.exists()


def test_annotate_script_in_two_processes_writes_the_same_rows(tmp_path, capsys):
    script = load_script("preprocessing/annotate.py")
    soundfile.write(tmp_path / "a.wav", click_track(110.0, seconds=6.0), SR)
    soundfile.write(tmp_path / "b.wav", cadence(9, True)[0], SR)
    clips = tmp_path / "clips.jsonl"
    clips.write_text("".join(json.dumps({"clip_id": name, "audio": f"{name}.wav"}) + "\n" for name in ("a", "b")))
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.jsonl"
        assert script.main(["--clips", str(clips), "--out", str(out), "--workers", workers]) == 0
    assert "2 clips annotated" in capsys.readouterr().err
    assert (tmp_path / "w1.jsonl").read_text() == (tmp_path / "w2.jsonl").read_text()


def test_annotate_script_refuses_an_output_another_run_is_writing(tmp_path, capsys):
    script = load_script("preprocessing/annotate.py")
    soundfile.write(tmp_path / "a.wav", click_track(110.0, seconds=6.0), SR)
    clips = tmp_path / "clips.jsonl"
    clips.write_text(json.dumps({"clip_id": "a", "audio": "a.wav"}) + "\n")
    out = tmp_path / "annotations.jsonl"
    partial = out.with_name(out.name + ".partial")
    with sole_writer(out):
        partial.write_text(json.dumps({"clip_id": "other", "annotations": {}}) + "\n")
        assert script.main(["--clips", str(clips), "--out", str(out)]) == 2
        assert "annotations.jsonl: another process is writing it" in capsys.readouterr().err
        assert partial.read_text().count("\n") == 1 and not out.exists()
    assert script.main(["--clips", str(clips), "--out", str(out)]) == 0
    assert sorted(json.loads(line)["clip_id"] for line in out.read_text().splitlines()) == ["a", "other"]
