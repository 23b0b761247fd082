"""Feature extraction (llark/extraction.py, preprocessing/extract_features.py) with the MIR encoder on
a few seconds of generated audio: one process, audio shards, failures, resume, and Ray in local mode."""

from __future__ import annotations

import io
import json
import os
import tarfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray
import soundfile

from llark.config import EncoderConfig
from llark.encoders import build_encoder, encode_file
from llark.encoders.mir import MIRFeatureEncoder
from llark.extraction import EncoderMismatch, extract, jobs_from_clips, jobs_from_shards
from llark.extraction_ray import RayOptions, extract_with_ray
from preprocessing import extract_features
from tests.conftest import REPO

# The MIR encoder's CQT warns on clips this short (they are short for speed); Ray Data warns about
# its own deprecated settings.
pytestmark = [pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]
SETTINGS = {"n_mels": 16, "tempo_bins": 8}  # small and quick; the layout is what is under test
GOOD = ["sine", "noise", "chord", "stereo44k"]
BAD = {"broken": "broken.wav", "missing": "missing.wav"}


class SimulatedCrash(Exception):
    """Not a per-clip error: it stops the run, as a killed process or a lost node would."""


class CountingEncoder:
    """The MIR encoder, logging one line per clip encoded to a file (Ray actors are other processes);
    with `crash_after`, the call that takes the count past it raises SimulatedCrash instead."""

    def __init__(self, log: str, crash_after: int | None = None, **settings):
        self.inner = MIRFeatureEncoder(**settings)
        self.log, self.crash_after = Path(log), crash_after
        self.name, self.sample_rate, self.dim, self.frame_rate = "mir", self.inner.sample_rate, self.inner.dim, 25.0

    def settings(self) -> dict:
        return self.inner.settings()

    def encode(self, wave: np.ndarray) -> np.ndarray:
        return self.encode_batch([wave])[0]

    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        with self.log.open("a") as f:
            f.write("".join(f"{len(wave)}\n" for wave in waves))
        if self.crash_after is not None and encode_count(self.log) > self.crash_after:
            raise SimulatedCrash(f"simulated crash after {self.crash_after} clips")
        return self.inner.encode_batch(waves)


def encode_count(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def tone(seconds: float, sr: int, freqs: tuple[float, ...], seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    return (0.5 * wave + 0.01 * np.random.default_rng(seed).normal(size=len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """clips.jsonl over 4 good WAVs (one a span, one 44.1 kHz stereo), a broken WAV and a missing one."""
    root = tmp_path_factory.mktemp("audio")
    soundfile.write(root / "sine.wav", tone(3.0, 22050, (440.0,)), 22050)
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, 2 * 22050).astype(np.float32)
    soundfile.write(root / "noise.wav", noise, 22050)
    soundfile.write(root / "chord.wav", tone(4.0, 16000, (261.6, 329.6, 392.0)), 16000)
    stereo = np.stack([tone(2.5, 44100, (220.0,)), tone(2.5, 44100, (330.0,))], axis=1)
    soundfile.write(root / "stereo44k.wav", stereo, 44100)
    (root / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(64))
    spans = {"sine": (0.0, 3.0), "noise": (0.0, 2.0), "chord": (0.5, 3.5), "stereo44k": (0.0, 2.5),
             "broken": (0.0, 2.0), "missing": (0.0, 2.0)}
    rows = [{"clip_id": name, "audio": f"{name}.wav", "start": s, "end": e} for name, (s, e) in spans.items()]
    (root / "clips.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module")
def reference(audio) -> dict[str, np.ndarray]:
    """What encode_file gives each good clip, as stored (float16)."""
    encoder = build_encoder(EncoderConfig(name="mir", settings=SETTINGS))
    return {job.clip_id: encode_file(encoder, job.audio, job.start, job.end).astype(np.float16)
            for job in jobs_from_clips(audio / "clips.jsonl") if job.clip_id in GOOD}


def folder_state(out: Path) -> dict[str, np.ndarray]:
    """Every features file of a folder; stray temp files fail the test (no duplicates)."""
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"
    return {p.stem: np.load(p, allow_pickle=False) for p in sorted(out.glob("*.npy"))}


def failures(out: Path) -> dict[str, dict]:
    path = out / "failures.jsonl"
    return {row["clip_id"]: row for row in map(json.loads, path.read_text().splitlines())} if path.exists() else {}


def assert_complete(out: Path, reference: dict[str, np.ndarray]) -> None:
    """No gaps, no duplicates, and the features encode_file gives: equal to float16 rounding, because
    BLAS sums in another order with another thread count (Ray actors keep to one thread)."""
    state = folder_state(out)
    assert sorted(state) == sorted(reference)
    for clip_id, features in state.items():
        assert features.dtype == np.float16 and features.shape == reference[clip_id].shape, clip_id
        np.testing.assert_allclose(features.astype(np.float32), reference[clip_id].astype(np.float32), rtol=2e-3,
                                   atol=2e-3, err_msg=clip_id)


def test_single_process_writes_features_and_records_failures(audio, reference, tmp_path):
    out = tmp_path / "features"
    encoder = build_encoder(EncoderConfig(name="mir", settings=SETTINGS))
    summary = extract(encoder, jobs_from_clips(audio / "clips.jsonl"), out, batch_size=3, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (4, 2, 0) and summary.audio_seconds == pytest.approx(10.5)
    assert_complete(out, reference)
    assert reference["chord"].shape == (75, encoder.dim) and reference["stereo44k"].shape == (62, encoder.dim)
    assert json.loads((out / "encoder.json").read_text())["settings"]["n_mels"] == 16
    failed = failures(out)
    assert set(failed) == set(BAD)
    for clip_id, file_name in BAD.items():
        assert failed[clip_id]["audio"].endswith(file_name) and file_name in failed[clip_id]["error"]
    assert failed["missing"]["error_type"] == "UnreadableAudio"

    # failures.jsonl is the latest run's: a clip that now succeeds is no longer listed, and none left: no file.
    (audio / "missing.wav").write_bytes((audio / "sine.wav").read_bytes())
    try:
        summary = extract(encoder, jobs_from_clips(audio / "clips.jsonl"), out, progress=False)
        assert (summary.done, summary.failed, summary.skipped) == (1, 1, 4) and set(failures(out)) == {"broken"}
        jobs = [job for job in jobs_from_clips(audio / "clips.jsonl") if job.clip_id != "broken"]
        assert extract(encoder, jobs, out, progress=False).failed == 0 and not (out / "failures.jsonl").exists()
    finally:
        (audio / "missing.wav").unlink()


def test_resume_after_interrupted_run(audio, reference, tmp_path):
    out, jobs = tmp_path / "features", jobs_from_clips(audio / "clips.jsonl")
    crashing = CountingEncoder(str(tmp_path / "run1.log"), crash_after=2, **SETTINGS)
    with pytest.raises(SimulatedCrash):
        extract(crashing, jobs, out, batch_size=1, progress=False)
    finished = folder_state(out)
    assert sorted(finished) == ["noise", "sine"]  # the clips before the crash, whole
    # What a crash of a writer can leave: a stray temp file, and (from a tool that does not rename)
    # a truncated .npy under the final name. Neither may pass for a finished clip.
    (out / ".chord.npy.tmp-999-dead").write_bytes(b"\x93NUMPY half")
    (out / "noise.npy").write_bytes((out / "noise.npy").read_bytes()[:1000])  # the header and some rows
    sine_mtime = (out / "sine.npy").stat().st_mtime_ns

    log = tmp_path / "run2.log"
    summary = extract(CountingEncoder(str(log), **SETTINGS), jobs, out, batch_size=2, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (3, 2, 1)
    assert encode_count(log) == 3 and (out / "sine.npy").stat().st_mtime_ns == sine_mtime  # sine not redone
    assert_complete(out, reference)
    again = extract(CountingEncoder(str(log), **SETTINGS), jobs, out, progress=False)
    assert (again.done, again.skipped, encode_count(log)) == (0, 4, 3)


def write_shard(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_audio_shards(audio, tmp_path):
    flac = io.BytesIO()
    soundfile.write(flac, tone(3.0, 22050, (440.0,)), 22050, format="FLAC")
    write_shard(tmp_path / "audio-000.tar", {
        "a.flac": flac.getvalue(), "a.json": json.dumps({"start": 0.5, "end": 2.5}).encode(),
        "b%2E1.wav": (audio / "noise.wav").read_bytes(), "notes.txt": b"not audio"})
    write_shard(tmp_path / "audio-001.tar", {
        "c.wav": (audio / "chord.wav").read_bytes(), "c.json": json.dumps({"clip_id": "chord-start0.000"}).encode(),
        "bad.wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64})
    jobs = jobs_from_shards([str(tmp_path / "audio-*.tar")])
    assert sorted(job.clip_id for job in jobs) == ["a", "b.1", "bad", "chord-start0.000"]

    out = tmp_path / "features"
    encoder = build_encoder(EncoderConfig(name="mir", settings=SETTINGS))
    summary = extract(encoder, jobs, out, progress=False)
    assert (summary.done, summary.failed) == (3, 1)
    state = folder_state(out)
    soundfile.write(tmp_path / "a.flac", tone(3.0, 22050, (440.0,)), 22050)
    assert np.array_equal(state["a"], encode_file(encoder, tmp_path / "a.flac", 0.5, 2.5).astype(np.float16))
    assert np.array_equal(state["b.1"], encode_file(encoder, audio / "noise.wav").astype(np.float16))
    assert state["chord-start0.000"].shape == (100, encoder.dim)
    assert failures(out)["bad"]["audio"] == f"{tmp_path / 'audio-001.tar'}:bad.wav"
    assert "audio-001.tar:bad.wav" in failures(out)["bad"]["error"]  # the member, not a temp copy

    write_shard(tmp_path / "dup-000.tar", {"a.wav": (audio / "sine.wav").read_bytes()})
    with pytest.raises(ValueError, match="'a' appears twice"):
        jobs_from_shards([str(tmp_path / "*-000.tar")])


def test_encoder_mismatch_refused(audio, tmp_path):
    out = tmp_path / "features"
    jobs = [job for job in jobs_from_clips(audio / "clips.jsonl") if job.clip_id == "noise"]
    extract(build_encoder(EncoderConfig(name="mir", settings=SETTINGS)), jobs, out, progress=False)
    other = build_encoder(EncoderConfig(name="mir", settings={**SETTINGS, "n_mels": 8}))
    with pytest.raises(EncoderMismatch, match="encoder.json"):
        extract(other, jobs, out, progress=False)
    with pytest.raises(SystemExit, match="encoder.json"):
        extract_features.main(["--clips", str(audio / "clips.jsonl"), "--out", str(out), "--no-progress"])
    (out / "encoder.json").unlink()  # features of an unknown encoder: refused too
    with pytest.raises(EncoderMismatch, match="unknown encoder"):
        extract(other, jobs, out, progress=False)


def test_a_folder_encoded_before_a_setting_existed_is_reused(audio, tmp_path):
    out = tmp_path / "features"
    jobs = [job for job in jobs_from_clips(audio / "clips.jsonl") if job.clip_id == "noise"]
    encoder = build_encoder(EncoderConfig(name="mir", settings=SETTINGS))
    extract(encoder, jobs, out, progress=False)
    record = json.loads((out / "encoder.json").read_text())
    del record["settings"]["clip_tempo_bins"]  # written before the setting existed: it was off (its default)
    (out / "encoder.json").write_text(json.dumps(record))
    extract(encoder, jobs, out, progress=False)  # the same features: reused, not refused
    with pytest.raises(EncoderMismatch, match="encoder.json"):
        extract(build_encoder(EncoderConfig(name="mir", settings={**SETTINGS, "clip_tempo_bins": 8})), jobs, out,
                progress=False)


def test_command_line(audio, reference, tmp_path, capsys):
    out = tmp_path / "features"
    args = ["--clips", str(audio / "clips.jsonl"), "--out", str(out), "--setting", "n_mels=16", "--setting",
            "tempo_bins=8", "--batch-size", "2", "--no-progress"]
    assert extract_features.main(args) == 0
    assert "4 encoded, 0 already done, 2 failed" in capsys.readouterr().err
    assert_complete(out, reference)
    extract_features.main(args)
    assert "0 encoded, 4 already done, 2 failed" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster; 2 cores, so actors declare fractional CPUs (whole ones would stall)."""
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


@pytest.mark.slow  # ~40-60 s on 2 cores: a Ray cluster, then three actor pools that each load librosa
def test_ray_interrupted_then_resumed(audio, reference, tmp_path, ray_cluster, capsys):
    out, jobs = tmp_path / "features", jobs_from_clips(audio / "clips.jsonl")
    options = RayOptions(actors=2, cpus_per_actor=0.5, batch_size=1)
    with pytest.raises(ray.exceptions.RayError, match="simulated crash"):
        extract_with_ray(partial(CountingEncoder, str(tmp_path / "run1.log"), crash_after=2, **SETTINGS), jobs, out,
                         options, progress=False)
    before = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert 0 < len(before) < len(GOOD)

    log = tmp_path / "run2.log"
    summary = extract_with_ray(partial(CountingEncoder, str(log), **SETTINGS), jobs, out, options, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (len(GOOD) - len(before), 2, len(before))
    assert encode_count(log) == len(GOOD) - len(before)  # each unfinished clip encoded once, finished ones never
    assert all(before[c] == (out / f"{c}.npy").stat().st_mtime_ns for c in before)
    assert_complete(out, reference)  # identical to the one-process path
    assert set(failures(out)) == set(BAD)

    # The command line on the same cluster: nothing left to do, and another encoder is refused.
    args = ["--clips", str(audio / "clips.jsonl"), "--out", str(out), "--ray", "--actors", "2", "--cpus-per-actor",
            "0.5", "--no-progress", "--setting", "n_mels=16", "--setting", "tempo_bins=8"]
    extract_features.main(args)
    assert "0 encoded, 4 already done, 2 failed" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="encoder.json"):
        extract_features.main(args[:-4])


JUKEBOX_TINY = REPO.parent / "shared" / "reference" / "jukebox" / "tiny"


@pytest.mark.slow  # a second Ray actor pool: ~20 s on 2 cores
@pytest.mark.skipif(not JUKEBOX_TINY.is_dir(), reason="../shared/reference/jukebox is not beside the repo")
def test_jukebox_tiny_config_through_both_paths_with_resume(audio, tmp_path, ray_cluster):
    # The case: the jukebox encoder (tiny random-weight config of the shared fixture) in a Ray
    # actor pool, interrupted (here: only part of the clips done) and resumed, against one process.
    from llark.encoders.jukebox import JukeboxConfig

    settings = {"vqvae": str(JUKEBOX_TINY / "vqvae.pth.tar"), "prior": str(JUKEBOX_TINY / "prior_level_2.pth.tar"),
                "layer": 3, "device": "cpu", "config": JukeboxConfig.from_hparams_file(JUKEBOX_TINY / "hparams.json").to_dict()}
    config = EncoderConfig(name="jukebox", settings=settings)
    encoder = build_encoder(config)
    jobs = jobs_from_clips(audio / "clips.jsonl")
    expected = {job.clip_id: encode_file(encoder, job.audio, job.start, job.end).astype(np.float16)
                for job in jobs if job.clip_id in GOOD}
    assert all(f.shape[1] == 64 for f in expected.values())

    single = tmp_path / "single"
    extract(encoder, jobs, single, batch_size=2, progress=False)
    assert {k: v.tolist() for k, v in folder_state(single).items()} == {k: v.tolist() for k, v in expected.items()}

    out, options = tmp_path / "ray", RayOptions(actors=2, cpus_per_actor=0.5, batch_size=2)
    partial_run = extract_with_ray(partial(build_encoder, config), jobs[:2], out, options, progress=False)
    assert partial_run.done == 2
    first = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    resumed = extract_with_ray(partial(build_encoder, config), jobs, out, options, progress=False)
    assert (resumed.skipped, resumed.done, resumed.failed) == (2, len(GOOD) - 2, len(BAD))
    assert all(first[c] == (out / f"{c}.npy").stat().st_mtime_ns for c in first)  # never re-encoded
    assert_complete(out, expected)  # no gaps, no duplicates, the one-process features
    assert json.loads((out / "encoder.json").read_text())["name"] == "jukebox"
