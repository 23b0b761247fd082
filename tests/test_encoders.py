"""The encoder interface and the MIR-feature encoder: exact 25 fps frame counts and meaningful channel groups."""

import numpy as np
import pytest
import soundfile
import torch

from llark.audio import SilentAudio
from llark.config import EncoderConfig
from llark.encoders import NoEncoderConfigured, build_encoder, encode_file, frames_for, pool_to_frames
from llark.encoders.mir import MIRFeatureEncoder

SR = 22050


@pytest.fixture(scope="module")
def encoder():
    return MIRFeatureEncoder()


def test_pooling_matches_torch_adaptive_average_pooling():
    values = np.random.default_rng(0).normal(size=(1077, 5)).astype(np.float32)
    for frames in (1, 7, 625, 1077, 2000):
        expected = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(values.T)[None], frames)[0].T.numpy()
        np.testing.assert_allclose(pool_to_frames(values, frames), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 3.3, 10.02, 25.0])
def test_exact_frame_count_at_25_fps(encoder, seconds):
    wave = np.random.default_rng(1).uniform(-1, 1, int(round(seconds * SR))).astype(np.float32)
    features = encoder.encode(wave)
    assert features.shape == (round(25 * seconds), encoder.dim) == (frames_for(len(wave), SR), 174)
    assert features.dtype == np.float32 and np.isfinite(features).all()


def test_chroma_group_hears_the_pitch_class(encoder):
    t = np.arange(2 * SR) / SR
    a_major = sum(np.sin(2 * np.pi * f * t) for f in (440.0, 554.37, 659.26)).astype(np.float32)  # A C# E
    chroma = encoder.encode(a_major / 3)[:, encoder.n_mels : encoder.n_mels + 12].mean(0)
    assert set(np.argsort(chroma)[-3:]) == {9, 1, 4}


@pytest.mark.parametrize("bpm", [72.0, 120.0, 150.0])
def test_tempogram_group_peaks_at_the_click_tempo(encoder, bpm):
    wave = np.zeros(12 * SR, np.float32)
    click = np.hanning(200) * np.sin(2 * np.pi * 2000 * np.arange(200) / SR)
    for beat in np.arange(0, 12, 60.0 / bpm):
        start = int(beat * SR)
        wave[start : start + 200] += click[: len(wave) - start]
    tempogram = encoder.encode(wave)[:, encoder.n_mels + 14 :].mean(0)
    axis = encoder.bpm_axis()
    peak = axis[np.argmax(np.where((axis > 60) & (axis < 200), tempogram, 0))]
    assert abs(peak / bpm - 1) < 0.04, (peak, bpm)


def test_build_encoder_and_encode_file(tmp_path):
    with pytest.raises(NoEncoderConfigured, match="no encoder configured"):
        build_encoder(EncoderConfig(name="none"))
    with pytest.raises(KeyError, match="unknown encoder"):
        build_encoder(EncoderConfig(name="wav2vec"))
    encoder = build_encoder(EncoderConfig(name="mir", settings={"n_mels": 32, "tempo_bins": 48}))
    assert encoder.dim == 32 + 14 + 48 and encoder.settings()["n_mels"] == 32
    rng = np.random.default_rng(0)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, rng.uniform(-0.1, 0.1, (44100 * 4, 2)).astype(np.float32), 44100)
    features = encode_file(encoder, path, start=1.0, end=3.0)
    assert features.shape == (50, encoder.dim)
    louder = tmp_path / "louder.wav"
    soundfile.write(louder, 5 * soundfile.read(path)[0], 44100)
    np.testing.assert_allclose(encode_file(encoder, louder, 1.0, 3.0), features, atol=2e-3)  # peak-normalised
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(44100, np.float32), 44100)
    with pytest.raises(SilentAudio, match="silent.wav"):
        encode_file(encoder, silent)
