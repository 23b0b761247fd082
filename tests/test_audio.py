"""Audio I/O: formats, channels, rates, spans, and a typed error naming the file for every bad input."""

import sys

import numpy as np
import pytest
import soundfile

from llark.audio import (EmptyAudio, NonFiniteAudio, SilentAudio, TooShortAudio, TruncatedAudio, UnreadableAudio,
                         UnsupportedSampleRate, audio_info, clip_id, clip_windows, load_audio, parse_clip_id,
                         peak_normalise)


def tone(seconds, rate, channels=1, freq=440.0, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_formats_load_as_mono_at_the_requested_rate(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, tone(2.0, 44100, channels=2), 44100, format=fmt, subtype=subtype)
    wave = load_audio(path, 22050)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 44100) < 3000  # lossy codecs pad a little
    spectrum = np.abs(np.fft.rfft(wave[:22050]))
    assert abs(np.argmax(spectrum) - 440) <= 2  # still a 440 Hz tone after mixing and resampling


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("rate", [8000, 44100, 192000])
def test_any_channel_count_and_rate_in_range(tmp_path, channels, rate):
    path = tmp_path / "a.wav"
    soundfile.write(path, tone(0.5, rate, channels), rate)
    wave = load_audio(path, 16000)
    assert len(wave) == 8000
    expected_amplitude = 0.5 * np.mean([(c + 1) / channels for c in range(channels)])
    assert abs(np.abs(wave).max() - expected_amplitude) < 0.02


def test_span_reads_only_the_window(tmp_path):
    rate = 8000
    ramp = (np.arange(10 * rate) / (10 * rate)).astype(np.float32)
    path = tmp_path / "ramp.wav"
    soundfile.write(path, ramp, rate, subtype="FLOAT")
    span = load_audio(path, rate, start=2.0, end=3.5)
    np.testing.assert_array_equal(span, ramp[2 * rate : int(3.5 * rate)])
    assert len(load_audio(path, rate, start=9.0, end=30.0)) == rate  # cut at the end of the file
    with pytest.raises(TooShortAudio, match="ramp.wav"):
        load_audio(path, rate, start=11.0, end=12.0)


def test_normalise_and_minimum_length(tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, tone(1.0, 8000, amplitude=0.01), 8000, subtype="FLOAT")
    assert abs(np.abs(load_audio(path, 8000, normalise=True)).max() - 1.0) < 1e-6
    with pytest.raises(TooShortAudio, match="quiet.wav.*minimum 2"):
        load_audio(path, 8000, min_seconds=2)


def write_bytes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_inputs_raise_typed_errors_naming_the_file(tmp_path):
    cases = []
    cases.append((UnreadableAudio, tmp_path / "missing.wav"))
    cases.append((UnreadableAudio, write_bytes(tmp_path, "text.wav", b"this is not audio at all" * 10)))
    cases.append((UnreadableAudio, write_bytes(tmp_path, "zero.flac", b"")))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1), np.float32), 8000)
    cases.append((EmptyAudio, empty))
    full = tmp_path / "full.wav"
    soundfile.write(full, tone(1.0, 8000), 8000)
    data = full.read_bytes()
    cases.append((TruncatedAudio, write_bytes(tmp_path, "truncated.wav", data[: len(data) // 2])))
    flac = tmp_path / "full.flac"
    soundfile.write(flac, np.random.default_rng(0).uniform(-0.5, 0.5, 80000).astype(np.float32), 8000)
    data = flac.read_bytes()
    cases.append((TruncatedAudio, write_bytes(tmp_path, "truncated.flac", data[: len(data) // 2])))
    slow = tmp_path / "slow.wav"
    soundfile.write(slow, tone(1.0, 4000), 4000)
    cases.append((UnsupportedSampleRate, slow))
    nan = tmp_path / "nan.wav"
    samples = tone(0.1, 8000)
    samples[10] = np.nan
    soundfile.write(nan, samples, 8000, subtype="FLOAT")
    cases.append((NonFiniteAudio, nan))
    for error, path in cases:
        with pytest.raises(error) as raised:
            load_audio(path, 8000)
        assert path.name in str(raised.value), (error, str(raised.value))
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros((8000, 1), np.float32), 8000)
    with pytest.raises(SilentAudio, match="silent.wav"):
        load_audio(silent, 8000, normalise=True)
    with pytest.raises(SilentAudio):
        peak_normalise(np.zeros(10, np.float32), "x")


def test_long_files_are_not_read_whole(tmp_path, monkeypatch):
    path = tmp_path / "long.flac"
    with soundfile.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as f:
        for _ in range(60):  # one minute written in blocks
            f.write(tone(1.0, 8000))
    assert audio_info(path).duration == 60.0
    reads = []
    real_read = soundfile.read
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: reads.append(k) or real_read(*a, **k))
    load_audio(path, 8000, start=30.0, end=32.0)
    assert reads[0]["start"] == 240000 and reads[0]["stop"] == 256000


def encode_with_ffmpeg(path, samples, rate, codec, sample_format):
    """Write [frames, channels] float samples with one of ffmpeg's encoders (through PyAV)."""
    av = pytest.importorskip("av")
    channels = samples.shape[1]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout={1: "mono", 2: "stereo"}[channels])
        block = stream.codec_context.frame_size or 1024
        for at in range(0, len(samples), block):
            chunk = samples[at: at + block]
            if sample_format == "s16":  # interleaved 16-bit integers, as ALAC and PCM encoders take them
                frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                                   layout=stream.layout.name)
            else:  # planar float, as the AAC encoder takes it
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T), format="fltp", layout=stream.layout.name)
            frame.sample_rate, frame.pts = rate, at
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize("name, codec, sample_format, lossy", [("a.m4a", "aac", "fltp", True),
                                                                ("a.m4a", "alac", "s16", False),
                                                                ("a.mka", "pcm_s16le", "s16", False)])
def test_formats_libsndfile_cannot_read_are_decoded_by_ffmpeg(tmp_path, name, codec, sample_format, lossy):
    path = tmp_path / name
    encode_with_ffmpeg(path, tone(3.0, 44100, channels=2), 44100, codec, sample_format)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.info(str(path))
    info = audio_info(path)
    assert (info.decoder, info.sample_rate, info.channels) == ("ffmpeg", 44100, 2)
    assert abs(info.duration - 3.0) < 0.05
    wave = load_audio(path, 22050)
    assert wave.dtype == np.float32 and wave.ndim == 1 and abs(len(wave) - 3 * 22050) < 0.05 * 22050
    spectrum = np.abs(np.fft.rfft(wave[11025:33075]))
    assert abs(np.argmax(spectrum) - 440) <= 2  # 440 Hz after decoding, mixing to mono and resampling
    expected_peak = 0.5 * (0.5 + 1.0) / 2  # the channel mean of amplitudes 0.25 and 0.5
    assert abs(np.abs(wave[11025:33075]).max() - expected_peak) < (0.02 if lossy else 1e-3)


def test_ffmpeg_spans_hold_the_same_samples_as_a_whole_decode(tmp_path):
    rate = 16000
    t = np.arange(8 * rate) / rate
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 50 * t) * t))[:, None].astype(np.float32)  # every window differs
    path = tmp_path / "chirp.m4a"
    encode_with_ffmpeg(path, chirp, rate, "aac", "fltp")
    whole = load_audio(path, rate)
    for start, end in [(0.2, 1.0), (3.0, 5.5), (6.0, 7.9)]:
        span = load_audio(path, rate, start=start, end=end)
        a, b = int(round(start * rate)), int(round(end * rate))
        assert len(span) == b - a
        np.testing.assert_allclose(span, whole[a:b], atol=1e-4)  # seeked decode placed by timestamps
    assert len(load_audio(path, rate, start=7.0, end=30.0)) == len(whole) - 7 * rate  # cut at the end
    with pytest.raises(TooShortAudio, match="chirp.m4a"):
        load_audio(path, rate, start=9.0, end=10.0)


def test_files_neither_decoder_reads_name_the_file(tmp_path, monkeypatch):
    full = tmp_path / "full.m4a"
    encode_with_ffmpeg(full, tone(2.0, 22050), 22050, "aac", "fltp")
    data = full.read_bytes()
    for path in (write_bytes(tmp_path, "truncated.m4a", data[: len(data) // 2]),
                 write_bytes(tmp_path, "text.m4a", b"not audio " * 100)):
        with pytest.raises(UnreadableAudio, match=path.name):
            load_audio(path, 22050)
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed: the error says what to install
    with pytest.raises(UnreadableAudio, match="full.m4a.*pip install av"):
        load_audio(full, 22050)


def test_clip_windows():
    assert clip_windows(60.0, mode="first") == [(0.0, 25.0)]
    assert clip_windows(60.0, mode="all") == [(0.0, 25.0), (25.0, 50.0)]
    assert clip_windows(50.0, mode="all") == [(0.0, 25.0), (25.0, 50.0)]
    assert clip_windows(12.5, mode="all") == [(0.0, 12.5)]
    assert clip_windows(3.0, min_seconds=5.0) == []
    with pytest.raises(ValueError, match="mode"):
        clip_windows(30.0, mode="random")


@pytest.mark.parametrize("track, start, end", [("gen-00042", 0.0, 25.0), ("a-start1.000-end2.000", 12.3456, 37.3456),
                                               ("fma/000123", 30.0, 55.0)])
def test_clip_ids_round_trip(track, start, end):
    value = clip_id(track, start, end)
    assert parse_clip_id(value) == (track, round(start, 3), round(end, 3))
    with pytest.raises(ValueError, match="not a clip id"):
        parse_clip_id("gen-00042")


def test_llark_ask_says_which_span_of_a_file_it_answers_about(tmp_path):
    from llark.cli import span_notes

    song, snippet, clip = tmp_path / "song.wav", tmp_path / "snippet.wav", tmp_path / "clip.wav"
    soundfile.write(song, tone(60.0, 8000), 8000)
    soundfile.write(snippet, tone(3.0, 8000), 8000)
    soundfile.write(clip, tone(25.0, 8000), 8000)
    assert span_notes(str(clip), 0.0, None) == []  # one whole clip: nothing to say
    assert span_notes(str(song), 0.0, None) == [
        f"the answers are about 0.0-25.0 s of {song} (60.0 s long; --start and --end choose another span)"]
    assert "30.0-55.0 s of" in span_notes(str(song), 30.0, None)[0]
    assert "50.0-60.0 s of" in span_notes(str(song), 50.0, 75.0)[0]  # the file ends first
    assert span_notes(str(song), 50.0, 75.0)[1].startswith("only 10.0 s to hear: the models learn from 25 s clips")
    short = span_notes(str(snippet), 0.0, None)
    assert len(short) == 1 and short[0].startswith("only 3.0 s to hear")
