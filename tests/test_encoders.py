"""The encoder interface and the MIR-feature encoder: exact 25 fps frame counts and meaningful channel groups."""

import librosa
import numpy as np
import pytest
import soundfile
import torch

from llark.audio import SilentAudio
from llark.config import EncoderConfig
from llark.encoders import NoEncoderConfigured, build_encoder, changed_settings, channel_families, channel_gains, encode_file, frames_for, pool_to_frames
from llark.encoders.mir import BAR_BEATS, BEAT_MULTIPLES, RHYTHM_DIM, TRACKED_TEMPO_AXIS, MIRFeatureEncoder

SR = 22050


def assert_equal_to_rounding(actual: np.ndarray, desired: np.ndarray, err_msg: str = "") -> None:
    """Equal up to float32 rounding: the same numbers computed from another memory layout (every other column
    of a matrix, or a copy of it) go through the BLAS's float32 matrix product, whose kernels may sum them in
    another order. Bit for bit on an AMD EPYC with AVX-512; within 1.2e-7 on a Zen 3 with AVX2 only. A frame off
    by one differs by orders of magnitude more."""
    np.testing.assert_allclose(actual, desired, rtol=1e-6, atol=1e-6, err_msg=err_msg)


@pytest.fixture(scope="module")
def encoder():
    return MIRFeatureEncoder(rhythm=True)  # every group


def test_pooling_matches_torch_adaptive_average_pooling():
    values = np.random.default_rng(0).normal(size=(1077, 5)).astype(np.float32)
    for frames in (1, 7, 625, 1077, 2000):
        expected = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(values.T)[None], frames)[0].T.numpy()
        np.testing.assert_allclose(pool_to_frames(values, frames), expected, rtol=1e-5, atol=1e-6)


def test_pooling_float16_rows_as_their_float32_copy():
    # The shards hold float16 features; the loader pools them without a float32 copy first.
    values = np.random.default_rng(2).normal(size=(618, 342)).astype(np.float16)
    for frames in (25, 24, 1, 618, 700):
        pooled = pool_to_frames(values, frames)
        assert pooled.dtype == np.float32 and pooled.shape == (frames, 342)
        np.testing.assert_array_equal(pooled, pool_to_frames(values.astype(np.float32), frames))


@pytest.mark.parametrize("seconds", [0.5, 1.0, 3.3, 10.02, 25.0])
def test_exact_frame_count_at_25_fps(encoder, seconds):
    wave = np.random.default_rng(1).uniform(-1, 1, int(round(seconds * SR))).astype(np.float32)
    features = encoder.encode(wave)
    assert features.shape == (round(25 * seconds), encoder.dim) == (frames_for(len(wave), SR), 174 + RHYTHM_DIM)
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
    tempogram = encoder.encode(wave)[:, encoder.n_mels + 14 : encoder.n_mels + 14 + encoder.tempo_bins].mean(0)
    axis = encoder.bpm_axis()
    peak = axis[np.argmax(np.where((axis > 60) & (axis < 200), tempogram, 0))]
    assert abs(peak / bpm - 1) < 0.04, (peak, bpm)


def clicks(bpm: float, seconds: float) -> np.ndarray:
    wave = np.zeros(int(seconds * SR), np.float32)
    click = np.hanning(200) * np.sin(2 * np.pi * 2000 * np.arange(200) / SR)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        start = int(beat * SR)
        wave[start : start + 200] += click[: len(wave) - start]
    return wave


def peak_centre(clip_tempogram: np.ndarray, axis: np.ndarray, bpm: float) -> float:
    """Geometric centre of the BPM values at the highest value between 0.75 and 1.5 times `bpm`: each value
    reads the autocorrelation's maximum within one step either side, so a peak shows on a few neighbours."""
    near = (axis > 0.75 * bpm) & (axis < 1.5 * bpm)
    top = axis[near & (clip_tempogram >= clip_tempogram[near].max() - 1e-4)]
    return float(np.exp(np.log(top).mean()))


@pytest.mark.parametrize("bpm", [66.0, 118.0, 171.0])
def test_clip_tempogram_peaks_at_the_click_tempo_within_two_percent(bpm):
    encoder = MIRFeatureEncoder(tempo_bins=0, clip_tempo_bins=156)
    features = encoder.encode(clicks(bpm, 25.0))
    assert encoder.dim == encoder.n_mels + 14 + 156 and features.shape == (625, encoder.dim)
    clip_tempogram = features[:, -156:]
    assert np.allclose(clip_tempogram, clip_tempogram[0], atol=1e-5)  # one segment: the same on every frame
    axis = np.geomspace(encoder.min_bpm, encoder.max_bpm, 156)
    assert clip_tempogram[0].max() == pytest.approx(1.0, abs=1e-3)
    assert abs(peak_centre(clip_tempogram[0], axis, bpm) / bpm - 1) < 0.02  # the local tempogram is asked for 4 %


def test_without_the_local_tempogram_the_other_groups_are_unchanged():
    wave = clicks(100.0, 8.0) + 0.1 * np.sin(2 * np.pi * 330 * np.arange(8 * SR) / SR).astype(np.float32)
    full = MIRFeatureEncoder(rhythm=True).encode(wave)
    without = MIRFeatureEncoder(rhythm=True, tempo_bins=0).encode(wave)
    front = MIRFeatureEncoder().n_mels + 14
    assert_equal_to_rounding(without[:, :front], full[:, :front])
    assert_equal_to_rounding(without[:, front:], full[:, -RHYTHM_DIM:])
    with pytest.raises(ValueError, match="must be >= 0"):
        MIRFeatureEncoder(clip_tempo_bins=-1)


def test_clip_tempogram_of_long_input_is_per_segment():
    wave = np.concatenate([clicks(90.0, 10.0), clicks(150.0, 10.0)])
    clip_tempogram = MIRFeatureEncoder(clip_tempo_bins=156, rhythm_seconds=10.0).encode(wave)[:, -156:]
    axis = np.geomspace(30.0, 300.0, 156)
    for frames, bpm in ((clip_tempogram[5], 90.0), (clip_tempogram[-5], 150.0)):
        assert abs(peak_centre(frames, axis, bpm) / bpm - 1) < 0.02
    assert not np.allclose(clip_tempogram[5], clip_tempogram[-5])


def accented_clicks(bpm: float, beats_per_bar: int, seconds: float = 16.0) -> np.ndarray:
    """Clicks on every beat; a low tone with a loud click on every bar's first beat, and the chord
    (a 220 Hz or a 330 Hz tone over the bar, alternating) changing on the bar line."""
    wave = np.zeros(int(seconds * SR), np.float32)
    t = np.arange(int(0.08 * SR)) / SR
    click = (np.hanning(len(t)) * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    bass = (np.hanning(len(t)) * np.sin(2 * np.pi * 60 * t)).astype(np.float32)
    period = 60.0 / bpm
    for index, beat in enumerate(np.arange(0, seconds - 0.1, period)):
        start = int(beat * SR)
        downbeat = index % beats_per_bar == 0
        wave[start: start + len(t)] += (1.0 if downbeat else 0.4) * click + (1.5 * bass if downbeat else 0)
        if downbeat:
            bar = np.arange(min(int(beats_per_bar * period * SR), len(wave) - start)) / SR
            tone = 220.0 if (index // beats_per_bar) % 2 == 0 else 330.0
            wave[start: start + len(bar)] += 0.3 * np.sin(2 * np.pi * tone * bar).astype(np.float32)
    return wave / np.abs(wave).max()


@pytest.mark.parametrize("beats_per_bar", [3, 4])
def test_rhythm_group_tracks_the_beat_and_hears_the_bar(encoder, beats_per_bar):
    rhythm = encoder.encode(accented_clicks(120.0, beats_per_bar))[:, -RHYTHM_DIM:]
    assert np.allclose(rhythm, rhythm[0], atol=1e-5)  # one segment: the same descriptors on every frame
    tempo_bump, rest = rhythm[0, : len(TRACKED_TEMPO_AXIS)], rhythm[0, len(TRACKED_TEMPO_AXIS):]
    assert abs(TRACKED_TEMPO_AXIS[np.argmax(tempo_bump)] / 120.0 - 1) < 0.05
    # The accent contrasts (chroma change, bass onset, onset; bars of 2, 3, 4, 6 beats) start after the
    # three 13-wide autocorrelation blocks. The bass and onset accents peak at the bar or a multiple of it;
    # the chord changes every bar, so its accent ties between 4 beats and 2 (every other beat is a downbeat).
    contrasts = rest[3 * 13: 3 * 13 + 3 * len(BAR_BEATS)].reshape(3, len(BAR_BEATS))
    for accent in contrasts[1:]:
        assert BAR_BEATS[int(np.argmax(accent))] % beats_per_bar == 0, contrasts
    other = 4 if beats_per_bar == 3 else 3
    assert (contrasts[:, BAR_BEATS.index(beats_per_bar)] > contrasts[:, BAR_BEATS.index(other)]).all()


def test_rhythm_descriptors_at_given_beats():
    """The meter error of a wrong beat level (benchmarks/meter_ceiling.py): a 4/4 heard at half its tempo is a 2/4."""
    encoder = MIRFeatureEncoder(rhythm=True)
    wave = accented_clicks(120.0, 4)
    assert np.allclose(encoder.rhythm_descriptors(wave), encoder.encode(wave)[0, -RHYTHM_DIM:], atol=1e-6)  # encode's segment
    first = len(TRACKED_TEMPO_AXIS) + 3 * len(BEAT_MULTIPLES)  # the accent contrasts follow the tempo and autocorrelations
    contrasts = slice(first, first + 3 * len(BAR_BEATS))
    readings = {}
    for bpm, period in ((120.0, 0.5), (60.0, 1.0)):  # the written beat, and every other click
        descriptors = encoder.rhythm_descriptors(wave, beat_seconds=np.arange(0.0, 15.9, period))
        assert abs(TRACKED_TEMPO_AXIS[np.argmax(descriptors[: len(TRACKED_TEMPO_AXIS)])] / bpm - 1) < 0.08  # one axis step
        bass = descriptors[contrasts].reshape(3, len(BAR_BEATS))[1]  # bass-onset accent contrast per bar length
        readings[bpm] = BAR_BEATS[int(np.argmax(bass))]
    assert readings == {120.0: 4, 60.0: 2}


def test_without_the_rhythm_group_the_other_channels_are_unchanged():
    wave = accented_clicks(100.0, 3, seconds=6.0)
    full, plain = MIRFeatureEncoder(rhythm=True).encode(wave), MIRFeatureEncoder().encode(wave)
    assert plain.shape[1] == 174 and np.array_equal(full[:, :174], plain)


def test_timbre_group_hears_attacks_and_noise():
    encoder = MIRFeatureEncoder(timbre=True)
    assert encoder.dim == 174 + encoder.n_mels + 8
    t = np.arange(4 * SR) / SR
    sustained = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    plucked = sustained * np.exp(-12.0 * (t % 0.25))  # the same pitch, a decaying note every 250 ms
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, len(t))
    plain, timbre = {}, {}
    for name, wave in (("sustained", sustained), ("plucked", plucked), ("noise", noise)):
        features = encoder.encode(wave.astype(np.float32))
        plain[name], timbre[name] = features[:, :174], features[25:-25, 174:].mean(axis=0)  # away from the edges
    band = int(np.argmax(plain["sustained"][:, : encoder.n_mels].mean(axis=0)))  # the mel band of 440 Hz
    spread = {name: values[band] for name, values in timbre.items()}
    assert spread["plucked"] > 5 * spread["sustained"], spread  # its level moves within every second
    contrast, flatness = {n: v[encoder.n_mels: -1].mean() for n, v in timbre.items()}, {n: v[-1] for n, v in timbre.items()}
    assert flatness["noise"] > flatness["sustained"] + 0.5 and contrast["sustained"] > contrast["noise"], (flatness, contrast)
    # The group is appended: the channels before it are the ones an encoder without it makes.
    np.testing.assert_array_equal(plain["plucked"], MIRFeatureEncoder().encode(plucked.astype(np.float32)))


def partials(f0: float, amplitudes: list[float], seconds: float = 3.0) -> np.ndarray:
    """A steady tone whose k-th harmonic (k = 1, 2, ...) has amplitudes[k - 1]."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(a * np.sin(2 * np.pi * f0 * k * t) for k, a in enumerate(amplitudes, start=1) if f0 * k < SR / 2)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def test_chroma_is_librosas_chroma_cqt():
    wave = partials(261.63, [1.0, 0.5, 0.3])
    encoder = MIRFeatureEncoder()
    chroma = encoder._chroma(encoder._cqt(wave, encoder._magnitude(wave)))
    np.testing.assert_array_equal(chroma, librosa.feature.chroma_cqt(y=wave, sr=SR, hop_length=512).T)


def test_onset_is_librosas_onset_strength():
    wave = clicks(118.0, 4.0)  # the onset is read off the encoder's own STFT instead of a second one
    onset, _ = MIRFeatureEncoder()._onset_and_level(wave, MIRFeatureEncoder()._magnitude(wave))
    np.testing.assert_array_equal(onset[:, 0], np.log1p(librosa.onset.onset_strength(y=wave, sr=SR, hop_length=512)))


@pytest.mark.parametrize("samples", [SR * 4, SR * 4 + 255, SR * 4 + 256, SR * 4 + 511])
def test_fine_spectrum_is_both_stfts(samples):
    # every other frame at the onset hop is a frame at the spectral hop, whatever the wave's length: the
    # magnitudes bit for bit; the onset's mel, a matrix product of them, to float32 rounding
    wave = clicks(118.0, 5.0)[:samples]
    encoder = MIRFeatureEncoder()
    magnitude, onset_mel = encoder._fine_spectrum(wave)
    np.testing.assert_array_equal(magnitude, encoder._magnitude(wave))
    np.testing.assert_array_equal(encoder._fine_onset(onset_mel),
                                  librosa.onset.onset_strength(y=wave, sr=SR, hop_length=encoder.onset_hop))
    onset, _ = encoder._onset_and_level(wave, magnitude, np.ascontiguousarray(onset_mel[:, ::2]))
    assert_equal_to_rounding(onset, encoder._onset_and_level(wave, encoder._magnitude(wave))[0])


def test_interval_group_hears_the_partials_whatever_the_pitch():
    encoder = MIRFeatureEncoder(interval_bins=120)
    assert encoder.dim == 174 + 120 and encoder.groups()["intervals"] == (174, 294)
    bright = [1 / k for k in range(1, 11)]  # every harmonic
    hollow = [1 / k if k % 2 else 0.0 for k in range(1, 11)]  # odd harmonics only, as a clarinet's low notes
    heard = {(name, f0): encoder.encode(partials(f0, amplitudes))[10:-10, 174:].mean(axis=0)
             for name, amplitudes in (("bright", bright), ("hollow", hollow)) for f0 in (196.0, 293.66)}
    same_timbre = max(np.abs(heard["bright", 196.0] - heard["bright", 293.66]).mean(),
                      np.abs(heard["hollow", 196.0] - heard["hollow", 293.66]).mean())
    same_pitch = min(np.abs(heard["bright", f0] - heard["hollow", f0]).mean() for f0 in (196.0, 293.66))
    assert same_timbre < 0.5 * same_pitch, (same_timbre, same_pitch)  # 0.38 here: the CQT's bins are not all alike
    # an octave is 36 bins: every harmonic has its octave above it, the odd ones none
    octave = {name: heard[name, 196.0][36 - 1] for name in ("bright", "hollow")}
    assert octave["bright"] > octave["hollow"] + 0.1, octave
    with pytest.raises(ValueError, match="interval_bins"):
        MIRFeatureEncoder(interval_bins=252)


def test_long_input_is_described_in_segments():
    wave = np.concatenate([accented_clicks(90.0, 3, seconds=10.0), accented_clicks(150.0, 4, seconds=10.0)])
    rhythm = MIRFeatureEncoder(rhythm=True, rhythm_seconds=10.0).encode(wave)[:, -RHYTHM_DIM:]
    first, second = rhythm[: 250, : len(TRACKED_TEMPO_AXIS)], rhythm[-250:, : len(TRACKED_TEMPO_AXIS)]
    assert abs(TRACKED_TEMPO_AXIS[np.argmax(first[5])] / 90.0 - 1) < 0.05
    assert abs(TRACKED_TEMPO_AXIS[np.argmax(second[-5])] / 150.0 - 1) < 0.05


def test_build_encoder_and_encode_file(tmp_path):
    with pytest.raises(NoEncoderConfigured, match="no encoder configured"):
        build_encoder(EncoderConfig(name="none"))
    with pytest.raises(KeyError, match="unknown encoder"):
        build_encoder(EncoderConfig(name="wav2vec"))
    encoder = build_encoder(EncoderConfig(name="mir", settings={"n_mels": 32, "tempo_bins": 48}))
    assert encoder.dim == 32 + 14 + 48 and encoder.settings()["n_mels"] == 32  # no rhythm group by default
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


def test_changed_settings_count_a_left_out_setting_as_its_default():
    full = MIRFeatureEncoder(n_mels=32).settings()
    older = {key: value for key, value in full.items() if key != "clip_tempo_bins"}  # before the setting existed
    assert changed_settings("mir", older, full) == [] and changed_settings("mir", full, {"n_mels": 32}) == []
    assert changed_settings("mir", older, {**full, "clip_tempo_bins": 156, "min_bpm": 40}) == ["clip_tempo_bins",
                                                                                            "min_bpm"]
    assert changed_settings("mir", {"n_mels": 64}, {}) == []  # 64 is the default
    assert changed_settings("jukebox", {"layer": 36, "dtype": "bfloat16"}, {"dtype": "bfloat16", "tf32": False}) == []
    assert changed_settings("jukebox", {"layer": 36}, {"layer": 48}) == ["layer"]
    # where and how fast Jukebox runs is not recorded, so a config may say it freely
    assert changed_settings("jukebox", {"layer": 36}, {"layer": 36, "device": "cuda", "batch_size": 8, "trusted": True}) == []
    with pytest.raises(KeyError, match="unknown encoder 'clap'"):
        changed_settings("clap", {}, {})


@pytest.mark.parametrize("settings", [{}, {"rhythm": True, "timbre": True},
                                      {"tempo_bins": 0, "rhythm": True, "timbre": True, "clip_tempo_bins": 156},
                                      {"tempo_bins": 0, "rhythm": True, "timbre": True, "clip_tempo_bins": 156,
                                       "interval_bins": 120}])
def test_groups_tile_the_features_in_order(settings):
    encoder = MIRFeatureEncoder(**settings)
    groups = encoder.groups()
    assert list(groups)[:4] == ["log_mel", "chroma", "onset", "rms"] and groups["chroma"] == (64, 76)
    bounds = list(groups.values())
    assert bounds[0][0] == 0 and bounds[-1][1] == encoder.dim
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
    assert ("tempogram" in groups) == bool(encoder.tempo_bins) and ("timbre" in groups) == encoder.timbre
    # each range holds that group's channels: compare with the groups computed on their own
    wave = clicks(118.0, 4.0)  # at SR, the encoder's default rate
    features, frames = encoder.encode(wave), frames_for(len(wave), encoder.sample_rate)
    magnitude = encoder._magnitude(wave)  # encode() takes it from the STFT at the onset hop when a tempogram needs one
    fine_onset = librosa.onset.onset_strength(y=wave, sr=SR, hop_length=encoder.onset_hop)
    mel_power = encoder._mel_power(magnitude)
    cqt = encoder._cqt(wave, magnitude)
    alone = {"log_mel": encoder._log_mel(encoder._decibels(mel_power)), "chroma": encoder._chroma(cqt),
             "onset": encoder._onset_and_level(wave, magnitude)[0], "rms": encoder._onset_and_level(wave, magnitude)[1],
             "tempogram": encoder._tempogram(fine_onset) if encoder.tempo_bins else None,
             "rhythm": encoder._rhythm(mel_power, encoder._chroma(cqt)) if encoder.rhythm else None,
             "timbre": encoder._timbre(magnitude, encoder._decibels(mel_power)) if encoder.timbre else None,
             "clip_tempogram": encoder._clip_tempogram(fine_onset) if encoder.clip_tempo_bins else None,
             "intervals": encoder._intervals(cqt) if encoder.interval_bins else None}
    for name, (start, stop) in groups.items():
        assert_equal_to_rounding(features[:, start:stop], pool_to_frames(alone[name], frames), err_msg=name)


def test_channel_gains_scale_the_named_groups():
    config = EncoderConfig(name="mir", settings={"n_mels": 16, "tempo_bins": 0, "clip_tempo_bins": 10})
    assert (channel_gains(config, {}, 40) == 1).all()  # no gains: the encoder is not built (nor checked)
    gains = channel_gains(config, {"chroma": 3.0, "clip_tempogram": 0.5}, 40)
    assert (gains[16:28] == 3).all() and (gains[30:] == 0.5).all() and (gains[:16] == 1).all() and (gains[28:30] == 1).all()
    with pytest.raises(ValueError, match=r"names 'tempogram', not a channel group of encoder mir .*its groups: "
                                         r"\['chroma', 'clip_tempogram', 'log_mel', 'onset', 'rms'\]"):
        channel_gains(config, {"tempogram": 2.0}, 40)
    with pytest.raises(ValueError, match="encoder mir makes 40 channels, model.audio_dim is 41"):
        channel_gains(config, {"chroma": 3.0}, 41)
    for bad in (0.0, "3", True):
        with pytest.raises(ValueError, match="chroma must be a number > 0"):
            channel_gains(config, {"chroma": bad}, 40)
    with pytest.raises(ValueError, match=r"needs an encoder with channel groups \(mir\), not encoder.name=jukebox"):
        channel_gains(EncoderConfig(name="jukebox"), {"chroma": 3.0}, 4800)  # refused before loading any weights


def test_channel_families_list_each_familys_channels_in_order():
    config = EncoderConfig(name="mir", settings={"n_mels": 16, "tempo_bins": 0, "clip_tempo_bins": 10})
    # groups: log_mel 0-15, chroma 16-27, onset 28, rms 29, clip_tempogram 30-39
    families = channel_families(config, [["clip_tempogram", "onset"], ["chroma"], ["log_mel", "rms"]], 40)
    assert families == [[*range(30, 40), 28], list(range(16, 28)), [*range(16), 29]]
    with pytest.raises(ValueError, match=r"names \['tempogram'\], not channel groups of encoder mir"):
        channel_families(config, [["log_mel", "chroma", "onset", "rms"], ["tempogram"]], 40)
    with pytest.raises(ValueError, match=r"exactly one non-empty family; repeated: \['chroma'\], missing: \['clip_tempogram'\]"):
        channel_families(config, [["log_mel", "chroma"], ["chroma", "onset", "rms"]], 40)
    with pytest.raises(ValueError, match="exactly one non-empty family"):
        channel_families(config, [["log_mel", "chroma", "onset", "rms", "clip_tempogram"], []], 40)
    with pytest.raises(ValueError, match="encoder mir makes 40 channels, model.audio_dim is 41"):
        channel_families(config, [["log_mel", "chroma", "onset", "rms", "clip_tempogram"]], 41)
    with pytest.raises(ValueError, match=r"model.projector_families needs an encoder with channel groups \(mir\)"):
        channel_families(EncoderConfig(name="none"), [["chroma"]], 40)
